"""Remove every object and row of patients who opted out or withdrew from the de-identified zone.

The restricted zone keeps what the hospital sent (it is the record of what was received and the
key to the withdrawal itself); everything shareable is derived from the deid zone, so the purge
here, the catalogue export after it and the release step's new versions together make the patient
vanish. Deleted Delta rows are also physically removed (vacuum with no retention), because a
Delta delete only hides rows from readers and leaves the old files on disk.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import hashlib
import io
import os
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.dataset as pads

from medlake.consent.tables import WITHDRAWAL_AUDIT
from medlake.lake.delta import DeltaStore
from medlake.lake.tables import (
    ANNOTATION_FILES,
    ANNOTATION_PROBLEMS,
    ANNOTATIONS,
    CASES,
    DEID_AUDIT,
    INSTANCES,
    SERIES,
    SLIDES,
    STUDIES,
    TableDef,
)
from medlake.sharing.tables import RELEASE_ELIGIBILITY

# Tables that hold rows of a patient, and the column that ties a row to the patient's ids.
_ROW_TABLES: tuple[tuple[TableDef, str, str], ...] = (
    (CASES, "patient_pseudonym", "patients"),
    (SERIES, "patient_pseudonym", "patients"),
    (STUDIES, "patient_pseudonym", "patients"),
    (INSTANCES, "patient_pseudonym", "patients"),
    (RELEASE_ELIGIBILITY, "patient_pseudonym", "patients"),
    (SLIDES, "study_instance_uid", "studies"),
    (DEID_AUDIT, "object_id", "objects"),
    (ANNOTATION_PROBLEMS, "object_id", "objects"),
)


@dataclass
class PatientFootprint:
    """Everything de-identified that belongs to the withdrawn patients of one team."""
    team: str
    patients: set[str]
    cases: set[str] = field(default_factory=set)
    studies: set[str] = field(default_factory=set)
    series: set[str] = field(default_factory=set)
    instances: set[str] = field(default_factory=set)
    objects: set[str] = field(default_factory=set)       # object ids (SOP UIDs, slide ids, file names)
    files: dict[str, int] = field(default_factory=dict)  # lake-relative path -> bytes (deleted whole)
    sheets: list[dict] = field(default_factory=list)     # annotation_files rows to rewrite without them

    @property
    def ids(self) -> set[str]:
        return self.cases | self.studies | self.series | self.instances


@dataclass
class PurgeResult:
    patients: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0
    audit: list[dict] = field(default_factory=list)


def purge_withdrawn(store: DeltaStore, withdrawn: dict[tuple[str, str], dict],
                    now: dt.datetime | None = None) -> PurgeResult:
    """`withdrawn`: (team, patient_pseudonym) -> the withdrawing event (medlake.consent.status)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    result = PurgeResult()
    by_team: dict[str, set[str]] = {}
    for team, pseudonym in withdrawn:
        by_team.setdefault(team, set()).add(pseudonym)
    touched: set[TableDef] = set()
    for team, patients in sorted(by_team.items()):
        with contextlib.ExitStack() as held:
            # Batches of the team may be running: each of its datasets is purged between their steps.
            for dataset in _datasets(store, team):
                held.enter_context(store.lake.dataset_lock(team, dataset, "withdrawal purge"))
            _purge_team(store, team, patients, withdrawn, now, result, touched)
    for table in sorted(touched, key=lambda t: t.name):
        vacuum(store, table)
    if result.audit:
        store.append(WITHDRAWAL_AUDIT, result.audit)
    return result


def _datasets(store: DeltaStore, team: str) -> list[str]:
    """Every dataset of the team with rows in the deid zone, sorted (locks are taken in this order)."""
    found: set[str] = set()
    for table in (CASES, INSTANCES, SLIDES, ANNOTATION_FILES, RELEASE_ELIGIBILITY):
        found |= set(store.read(table, ["dataset"], where={"team": team}).column(0).unique().to_pylist())
    return sorted(found)


def _purge_team(store: DeltaStore, team: str, patients: set[str], withdrawn: dict[tuple[str, str], dict],
                now: dt.datetime, result: PurgeResult, touched: set[TableDef]) -> None:
    fp = footprint(store, team, patients)
    if not (fp.cases or fp.instances or fp.files or fp.sheets or _has_rows(store, team, patients)):
        return
    team_rows: dict[TableDef, int] = {}
    for table, column, which in _ROW_TABLES:
        values = fp.patients if which == "patients" else fp.studies if which == "studies" else fp.objects
        team_rows[table] = _delete_rows(store, table, team, column, values)
    team_rows[ANNOTATIONS] = _delete_annotations(store, team, fp)
    team_rows[ANNOTATION_FILES] = _delete_rows(store, ANNOTATION_FILES, team, "object_path", set(fp.files))
    team_rows = {k: n for k, n in team_rows.items() if n}
    touched.update(team_rows)
    for table, n in team_rows.items():
        result.rows[table.name] = result.rows.get(table.name, 0) + n
    rewritten = _rewrite_sheets(store, team, fp)
    if rewritten:
        touched.add(ANNOTATION_FILES)
    files = store.lake.objects()
    for rel, size in fp.files.items():
        if files.delete(rel, prune_below=_dataset_folder(rel)):
            result.files += 1
            result.bytes += size
    result.files += rewritten
    result.patients += len(patients)
    # One audit row per patient and place; counts are the team's, as one delete serves all its patients.
    for pseudonym in sorted(patients):
        event = withdrawn[(team, pseudonym)]
        base = {"team": team, "patient_pseudonym": pseudonym, "event": event["event"],
                "event_date": event["event_date"], "event_file": event["event_file"],
                "event_line": event["event_line"], "removed_at": now}
        result.audit.append({**base, "scope": "deid_objects", "target": "deid/objects",
                             "removed_rows": 0, "removed_objects": len(fp.files) + rewritten,
                             "removed_bytes": sum(fp.files.values())})
        for table, n in sorted(team_rows.items(), key=lambda kv: kv[0].name):
            result.audit.append({**base, "scope": "deid_table", "target": f"deid/{table.name}",
                                 "removed_rows": n, "removed_objects": 0, "removed_bytes": 0})


def _dataset_folder(rel: str) -> str:
    """deid/objects/<team>/<dataset>: below it, folders are named after keyed UIDs."""
    return "/".join(rel.split("/")[:4])


def footprint(store: DeltaStore, team: str, patients: set[str]) -> PatientFootprint:
    fp = PatientFootprint(team, set(patients))
    in_team = pads.field("team") == team
    plist = sorted(patients)
    cases = store.read(CASES, ["case_pseudonym", "study_instance_uids"],
                       where=in_team & pads.field("patient_pseudonym").isin(plist))
    for case, studies in zip(cases.column(0).to_pylist(), cases.column(1).to_pylist()):
        fp.cases.add(case)
        fp.studies.update(studies or [])
    inst = store.read(INSTANCES, ["study_instance_uid", "series_instance_uid", "sop_instance_uid", "object_path",
                                  "size"], where=in_team & pads.field("patient_pseudonym").isin(plist))
    for study, series, sop, path, size in zip(*(inst.column(i).to_pylist() for i in range(5))):
        fp.studies.add(study)
        fp.series.add(series)
        fp.instances.add(sop)
        fp.objects.add(sop)
        fp.files[path] = size
    if fp.studies:
        slides = store.read(SLIDES, ["slide_id", "object_path", "size"],
                            where=in_team & pads.field("study_instance_uid").isin(sorted(fp.studies)))
        for slide, path, size in zip(*(slides.column(i).to_pylist() for i in range(3))):
            fp.objects.add(slide)
            fp.files[path] = size
    ids = fp.ids
    files = store.read(ANNOTATION_FILES, ["object_path", "targets", "size", "kind", "sha256"], where={"team": team})
    for row in files.to_pylist():
        targets = set(row["targets"] or [])
        hit = targets & ids
        if not hit:
            continue
        if targets <= ids or row["kind"] != "label_sheet":
            fp.files[row["object_path"]] = row["size"]
            fp.objects.add(row["object_path"].rsplit("/", 1)[-1])
        else:
            fp.sheets.append(row)
    return fp


def _has_rows(store: DeltaStore, team: str, patients: set[str]) -> bool:
    return store.count(RELEASE_ELIGIBILITY, where=(pads.field("team") == team)
                       & pads.field("patient_pseudonym").isin(sorted(patients))) > 0


def _delete_rows(store: DeltaStore, table: TableDef, team: str, column: str, values: set[str]) -> int:
    """Rewrite the team's slice without the rows (the commit names only the team: a Delta DELETE's
    predicate, pseudonyms and all, would stay in the table's commit log for good)."""
    if not values:
        return 0
    return store.delete(table, {"team": team}, pads.field(column).isin(sorted(values)))


def _delete_annotations(store: DeltaStore, team: str, fp: PatientFootprint) -> int:
    t = store.read(ANNOTATIONS, ["annotation_id", "target_study_uid", "target_series_uid", "target_instance_uid",
                                 "target_case"], where={"team": team})
    doomed = set()
    for aid, study, series, inst, case in zip(*(t.column(i).to_pylist() for i in range(5))):
        if (study in fp.studies or series in fp.series or inst in fp.instances or case in fp.cases
                or aid.split("#", 1)[0] in fp.objects):
            doomed.add(aid)
    return _delete_rows(store, ANNOTATIONS, team, "annotation_id", doomed)


def _rewrite_sheets(store: DeltaStore, team: str, fp: PatientFootprint) -> int:
    """A label sheet covers many cases: drop the patient's rows and keep the file for the others."""
    files = store.lake.objects()
    ids = fp.ids
    rows = []
    for row in fp.sheets:
        path = files.fetch(row["object_path"])
        lines = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
        kept = [lines[0]] + [r for r in lines[1:] if r and r[0] not in ids]
        buf = io.StringIO(newline="")
        csv.writer(buf, lineterminator="\n").writerows(kept)
        data = buf.getvalue().encode("utf-8")
        # A new inode: releases that hard-linked the old file keep it until they are purged.
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        files.upload([row["object_path"]])
        rows.append({"object_path": row["object_path"], "targets": sorted(set(row["targets"]) - ids),
                     "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})
    if rows:
        by_path = {r["object_path"]: r for r in rows}

        def rewritten(current: pa.Table) -> pa.Table:
            updated = [{**old, **by_path.get(old["object_path"], {})} for old in current.to_pylist()]
            return ANNOTATION_FILES.from_rows(updated)

        store.rewrite(ANNOTATION_FILES, {"team": team}, rewritten)
    return len(rows)


def vacuum(store: DeltaStore, table: TableDef) -> int:
    """Physically delete the files the table's commits removed; returns how many.

    Only files that a commit removed go (delta-rs's lite vacuum), never files no commit names yet: a
    writer of the same table may have written its new files and not committed them, and a full
    vacuum with no retention would delete them under it and leave its commit naming missing files.
    """
    t = store.snapshot(table)
    if t is None:
        return 0
    removed = t.vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False, full=False)
    return len(removed)
