"""The cases table of one dataset: cases.csv rows joined to the de-identified objects and annotations.

Status follows DESIGN.md: none of the registry's required kinds is image only, some is partial, all
is full; labels taken from diagnosis codes (label_source ehr_code) count as partial however complete.
"""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa
import pyarrow.compute as pc

from medlake.consent.status import withdrawn_patient_ids
from medlake.deid.keys import DeidKeys
from medlake.lake.delta import DeltaStore
from medlake.lake.tables import ANNOTATIONS, BATCH_COMPLETIONS, CASES, INSTANCES, SLIDES, SOURCE_CASES, TableDef
from medlake.program import Registry

IMAGE_KINDS = ("dicom_image", "dicom_waveform")


def case_pseudonyms(store: DeltaStore, keys: DeidKeys, team: str, dataset: str) -> set[str]:
    t = dataset_rows(store, SOURCE_CASES, team, dataset, ["case_id"])
    return {keys.case_id(team, dataset, c) for c in t.column("case_id").to_pylist()} if t.num_rows else set()


def assembled_source_cases(store: DeltaStore, team: str, dataset: str, batch: str | None,
                           columns: list[str]) -> pa.Table:
    """The dataset's source cases whose batch job has finished, and those of `batch` (the one being
    assembled). A batch ingested beside it but not yet de-identified (two batch runs of a dataset at
    once) is left to its own job: counted now, its cases would have no images."""
    source = dataset_rows(store, SOURCE_CASES, team, dataset, list(dict.fromkeys(["batch", *columns])))
    done = store.read(BATCH_COMPLETIONS, ["batch"], where={"team": team, "dataset": dataset}).column(0)
    batches = pa.concat_arrays([done.combine_chunks(), pa.array([batch] if batch else [], pa.string())])
    return source.filter(pc.is_in(source.column("batch"), value_set=batches)).select(columns)


def build_cases(store: DeltaStore, keys: DeidKeys, registry: Registry, team: str, dataset: str,
                batch: str | None = None) -> pa.Table:
    """Every case of the dataset's finished batches and of `batch`, from the deid zone."""
    spec = registry.dataset(dataset)
    required = set(spec.required_annotation_kinds)
    source = assembled_source_cases(store, team, dataset, batch, ["case_id", "patient_id", "study_instance_uids",
                                                                   "label_source", "shareable", "consent_class"])
    instances = dataset_rows(store, INSTANCES, team, dataset,
                             ["kind", "study_instance_uid", "series_instance_uid", "sop_instance_uid", "modality",
                              "number_of_frames"])
    slides = dataset_rows(store, SLIDES, team, dataset, ["study_instance_uid"])
    annotations = dataset_rows(store, ANNOTATIONS, team, dataset,
                               ["kind", "target_study_uid", "target_series_uid", "target_instance_uid",
                                "target_case", "resolved"])

    per_study, per_case_kinds = case_inputs(instances, slides, annotations)

    # Cases of patients who opted out or withdrew are not rebuilt once the purge has removed them.
    withdrawn = withdrawn_patient_ids(store, team)
    rows = []
    for c in source.to_pylist():
        if c["patient_id"] in withdrawn:
            continue
        rows.append(case_row(team, dataset, spec.sharing, required, per_study, per_case_kinds,
                             case_pseudonym=keys.case_id(team, dataset, c["case_id"]),
                             patient_pseudonym=keys.patient_pseudonym(team, c["patient_id"]),
                             studies=[keys.uid(u) for u in c["study_instance_uids"]],
                             label_source=c["label_source"], shareable=c["shareable"],
                             consent_class=c["consent_class"]))
    return CASES.from_rows(rows)


def case_inputs(instances: pa.Table, slides: pa.Table, annotations: pa.Table
                ) -> tuple[dict[str, dict], dict[str, set[str]]]:
    """Per keyed study: images, frames, slides, modalities and annotation kinds; per case pseudonym:
    the kinds of annotations that name the case itself. Unresolved annotations count for nothing."""
    study_of: dict[str, str] = {}
    per_study: dict[str, dict] = defaultdict(lambda: {"instances": 0, "frames": 0, "slides": 0,
                                                      "modalities": set(), "kinds": set()})
    for r in instances.to_pylist():
        study_of[r["sop_instance_uid"]] = study_of[r["series_instance_uid"]] = r["study_instance_uid"]
        if r["kind"] in IMAGE_KINDS:
            s = per_study[r["study_instance_uid"]]
            s["instances"] += 1
            s["frames"] += r["number_of_frames"] or 1
            if r["modality"]:
                s["modalities"].add(r["modality"])
    for r in slides.to_pylist():
        if r["study_instance_uid"]:
            per_study[r["study_instance_uid"]]["slides"] += 1
    per_case_kinds: dict[str, set[str]] = defaultdict(set)
    for a in annotations.to_pylist():
        if not a["resolved"]:
            continue
        if a["target_case"]:
            per_case_kinds[a["target_case"]].add(a["kind"])
            continue
        study = a["target_study_uid"] or study_of.get(a["target_series_uid"] or "") or \
            study_of.get(a["target_instance_uid"] or "")
        if study:
            per_study[study]["kinds"].add(a["kind"])
    return per_study, per_case_kinds


def case_row(team: str, dataset: str, sharing: str, required: set[str], per_study: dict[str, dict],
             per_case_kinds: dict[str, set[str]], *, case_pseudonym: str, patient_pseudonym: str,
             studies: list[str], label_source: str, shareable: bool, consent_class: str | None) -> dict:
    """One deid/cases row from its case's keyed fields and the inputs of case_inputs()."""
    mine = [per_study[s] for s in studies if s in per_study]
    kinds = set(per_case_kinds.get(case_pseudonym, set()))
    for s in mine:
        kinds |= s["kinds"]
    return {
        "team": team, "dataset": dataset, "case_pseudonym": case_pseudonym,
        "patient_pseudonym": patient_pseudonym, "part": part_of(sharing, shareable),
        "study_instance_uids": studies,
        "instances": sum(s["instances"] for s in mine),
        "frames": sum(s["frames"] for s in mine),
        "slides": sum(s["slides"] for s in mine),
        "modalities": sorted(set().union(*(s["modalities"] for s in mine))),
        "annotation_kinds": sorted(kinds),
        "annotation_status": annotation_status(kinds, required, label_source),
        "label_source": label_source, "shareable": shareable, "consent_class": consent_class,
    }


def annotation_status(kinds: set[str], required: set[str], label_source: str) -> str:
    found = kinds & required
    if not found:
        return "image_only"
    if label_source == "ehr_code" or found != required:
        return "partial"
    return "full"


def part_of(sharing: str, shareable: bool) -> str:
    if sharing == "not_shared":
        return "not_shared"
    if sharing == "shared" or shareable:
        return "shared"
    return "partially_not_shared"


def dataset_rows(store: DeltaStore, table: TableDef, team: str, dataset: str, columns: list[str]) -> pa.Table:
    """The given columns of one dataset's rows of a table."""
    return store.read(table, columns, where={"team": team, "dataset": dataset})
