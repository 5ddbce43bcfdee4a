"""cases.csv rows against the catalogue: every study must be carried by a catalogued object of the
dataset, and by the same patient."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.dataset as pads

from medlake.ingest.manifest import parse_cases_csv
from medlake.ingest.records import LandedRecord, QuarantineLog
from medlake.lake.delta import DeltaStore
from medlake.landing.zone import CASES_MANIFEST, BatchRef
from medlake.lake.tables import SOURCE_INSTANCES, SOURCE_SLIDES


def check_cases(manifest: bytes | None, ref: BatchRef, instances: pa.Table, slides: pa.Table, store: DeltaStore,
           quarantine: QuarantineLog, files: list[LandedRecord]) -> tuple[list[dict], int]:
    """Valid cases.csv rows whose studies and patient match the catalogued images."""
    if manifest is None:
        quarantine.add(CASES_MANIFEST, "batch", "cases_manifest_missing",
                       "the batch has no cases.csv; its objects are catalogued but form no cases")
        return [], 0
    parsed = parse_cases_csv(manifest)
    if parsed.file_problem:
        code, message = parsed.file_problem
        for f in files:
            if f.path == CASES_MANIFEST:
                f.status = "quarantined"
        quarantine.add(CASES_MANIFEST, "file", code, message)
        return [], 0
    patients_of_study = _study_patients(instances, store, ref)
    # A slide names its study but not its patient, so it proves the study exists and nothing more.
    for uid in _slide_studies(slides, store, ref):
        patients_of_study.setdefault(uid, set())
    accepted: list[dict] = []
    for issue in parsed.issues:
        quarantine.add(CASES_MANIFEST, "row", issue.code, issue.message, issue.line)
    rejected = len(parsed.issues)
    for row in parsed.rows:
        missing = [u for u in row["study_instance_uids"] if u not in patients_of_study]
        if missing:
            quarantine.add(CASES_MANIFEST, "row", "case_study_missing",
                           f"{len(missing)} of the case's {len(row['study_instance_uids'])} studies has no "
                           "catalogued image in this dataset", row["line"])
            rejected += 1
            continue
        others = {p for u in row["study_instance_uids"] for p in patients_of_study[u]} - {row["patient_id"]}
        if others:
            quarantine.add(CASES_MANIFEST, "row", "case_patient_mismatch",
                           "the case's patient_id differs from the PatientID of its images", row["line"])
            rejected += 1
            continue
        accepted.append(row)
    return accepted, rejected


def _study_patients(instances: pa.Table, store: DeltaStore, ref: BatchRef) -> dict[str, set[str]]:
    """Study UID -> PatientIDs carried by its images, in this batch and the dataset's earlier batches."""
    tables = [instances.select(["study_instance_uid", "patient_id"])]
    ds = store.dataset(SOURCE_INSTANCES)
    if ds is not None:
        tables.append(ds.to_table(
            columns=["study_instance_uid", "patient_id"],
            filter=(pads.field("team") == ref.team) & (pads.field("dataset") == ref.dataset)
            & (pads.field("batch") != ref.batch)))
    pairs = pa.concat_tables(tables).group_by(["study_instance_uid", "patient_id"]).aggregate([])
    out: dict[str, set[str]] = {}
    for study, patient in zip(pairs.column(0).to_pylist(), pairs.column(1).to_pylist()):
        out.setdefault(study, set()).add(patient)
    return out


def _slide_studies(slides: pa.Table, store: DeltaStore, ref: BatchRef) -> set[str]:
    uids = set(slides.column("study_instance_uid").to_pylist())
    ds = store.dataset(SOURCE_SLIDES)
    if ds is not None:
        uids |= set(ds.to_table(
            columns=["study_instance_uid"],
            filter=(pads.field("team") == ref.team) & (pads.field("dataset") == ref.dataset)
            & (pads.field("batch") != ref.batch)).column(0).to_pylist())
    uids.discard(None)
    return uids
