"""One batch's cases without rebuilding its dataset: the cases the batch can change, merged in.

A batch changes its own cases and the earlier cases whose studies its images, slides or annotations
reach; every other case of the dataset has the inputs it was built from. Rebuilding the whole dataset
on every batch made case assembly grow with the square of a dataset's batches (lung X-ray at full
scale: 5.5 s for the first of its equal batches, 26 s for the eighth).

The update is planned only when deid/cases holds one row per earlier source case whose patient has
not withdrawn (counted, with no duplicate), and every row still has the part and status the registry
gives it; otherwise the caller rebuilds the dataset, as before. Rows of withdrawn patients are
deleted, as a rebuild would leave them out.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from medlake.cases.build import annotation_status, assembled_source_cases, case_inputs, case_row, dataset_rows, part_of
from medlake.consent.status import withdrawn_patient_ids
from medlake.deid.keys import DeidKeys
from medlake.lake.delta import DeltaStore, matching
from medlake.lake.tables import ANNOTATIONS, CASES, INSTANCES, SLIDES
from medlake.program import Registry

_EXISTING = ["case_pseudonym", "patient_pseudonym", "part", "study_instance_uids", "annotation_kinds",
             "annotation_status", "label_source", "shareable", "consent_class"]


@dataclass
class CasePlan:
    """What one batch's update needs: its own source cases and the dataset's current cases."""

    team: str
    dataset: str
    batch_ref: str
    mine: list[dict]              # the batch's source cases of patients who have not withdrawn, with
                                  # their case_pseudonym
    existing: pa.Table            # deid/cases rows of the dataset, withdrawn patients' left out
    withdrawn_rows: list[str]     # patient pseudonyms of withdrawn patients that still have rows
    known_cases: set[str]         # every source case's pseudonym, as case_pseudonyms() gives it
    expected: int                 # source cases of the dataset whose patients have not withdrawn


def plan_update(store: DeltaStore, keys: DeidKeys, registry: Registry, team: str, dataset: str,
                batch: str, batch_ref: str) -> CasePlan | None:
    """The update for the batch's cases, or None when the dataset must be rebuilt."""
    if not store.exists(CASES):
        return None
    existing = dataset_rows(store, CASES, team, dataset, _EXISTING)
    if not existing.num_rows:
        return None
    source = assembled_source_cases(store, team, dataset, batch, ["batch", "case_id", "patient_id",
                                                                   "study_instance_uids", "label_source",
                                                                   "shareable", "consent_class"])
    withdrawn = withdrawn_patient_ids(store, team)
    out_mask = pc.is_in(source.column("patient_id"), pa.array(sorted(withdrawn), pa.string()))
    in_batch = pc.equal(source.column("batch"), batch)
    mine_all = [c | {"case_pseudonym": keys.case_id(team, dataset, c["case_id"])}
                for c in source.filter(in_batch).to_pylist()]
    mine_cases = {c["case_pseudonym"] for c in mine_all}
    gone = source.filter(pc.and_(out_mask, pc.invert(in_batch))).column("case_id").to_pylist()
    known = mine_cases | {keys.case_id(team, dataset, c) for c in gone}

    gone_patients = pa.array(sorted({keys.patient_pseudonym(team, p) for p in withdrawn}), pa.string())
    out_rows = pc.is_in(existing.column("patient_pseudonym"), gone_patients)
    withdrawn_rows = sorted(set(existing.filter(out_rows).column("patient_pseudonym").to_pylist()))
    existing = existing.filter(pc.invert(out_rows))
    pseudonyms = existing.column("case_pseudonym")
    earlier = pc.sum(pc.invert(pc.is_in(pseudonyms, pa.array(sorted(mine_cases), pa.string())))).as_py() or 0
    expected = source.num_rows - (pc.sum(out_mask).as_py() or 0)
    expected_earlier = expected - sum(1 for c in mine_all if c["patient_id"] not in withdrawn)
    if earlier != expected_earlier or pc.count_distinct(pseudonyms).as_py() != existing.num_rows:
        return None
    if not _registry_agrees(existing, registry, dataset):
        return None
    return CasePlan(team, dataset, batch_ref, [c for c in mine_all if c["patient_id"] not in withdrawn],
                    existing, withdrawn_rows, known | set(pseudonyms.to_pylist()), expected)


def _registry_agrees(existing: pa.Table, registry: Registry, dataset: str) -> bool:
    """Part and status depend on the registry (sharing, required kinds), which may have changed
    since the rows were built: checked once per distinct combination, not per row."""
    spec = registry.dataset(dataset)
    required = set(spec.required_annotation_kinds)
    combos = pa.table({
        "kinds": pc.binary_join(existing.column("annotation_kinds"), "\n"),
        "label_source": existing.column("label_source"), "shareable": existing.column("shareable"),
        "part": existing.column("part"), "status": existing.column("annotation_status"),
    }).group_by(["kinds", "label_source", "shareable", "part", "status"]).aggregate([]).to_pylist()
    return all(c["part"] == part_of(spec.sharing, c["shareable"])
               and c["status"] == annotation_status(set(filter(None, (c["kinds"] or "").split("\n"))),
                                                    required, c["label_source"])
               for c in combos)


def apply_update(store: DeltaStore, keys: DeidKeys, registry: Registry, plan: CasePlan,
                 annotations: list[dict]) -> int | None:
    """Rebuild the batch's cases and the earlier cases it reaches, merge them into deid/cases (after
    the batch's annotations are written); the new version, or None when the dataset's row count
    came out wrong and it must be rebuilt."""
    spec = registry.dataset(plan.dataset)
    team, dataset = plan.team, plan.dataset
    in_dataset = matching(team=team, dataset=dataset)
    instances = store.dataset(INSTANCES)
    slides = store.dataset(SLIDES)

    # Studies the batch reached: its images and slides, and what its annotations point at.
    touched: set[str] = set()
    if instances is not None:
        touched |= set(instances.to_table(columns=["study_instance_uid"], filter=in_dataset
                                          & (pads.field("batch_ref") == plan.batch_ref)).column(0).to_pylist())
    if slides is not None:
        touched |= set(slides.to_table(columns=["study_instance_uid"], filter=in_dataset
                                       & (pads.field("batch_ref") == plan.batch_ref)).column(0).to_pylist())
    resolved = [a for a in annotations if a["resolved"]]
    named_cases = {a["target_case"] for a in resolved if a["target_case"]}
    touched |= {a["target_study_uid"] for a in resolved if a["target_study_uid"]}
    parts = {u for a in resolved for u in (a["target_series_uid"], a["target_instance_uid"]) if u}
    if parts and instances is not None:
        hit = instances.to_table(columns=["study_instance_uid"], filter=in_dataset & (
            pads.field("series_instance_uid").isin(sorted(parts)) | pads.field("sop_instance_uid").isin(sorted(parts))))
        touched |= set(hit.column(0).to_pylist())
    touched.discard(None)

    mine = [(c, [keys.uid(u) for u in c["study_instance_uids"]]) for c in plan.mine]
    mine_cases = {c["case_pseudonym"] for c in plan.mine}
    reached = _reached(plan.existing, touched, named_cases, mine_cases)
    studies = {s for _, ss in mine for s in ss} | {s for r in reached for s in r["study_instance_uids"]}
    cases = mine_cases | {r["case_pseudonym"] for r in reached}

    per_study, per_case_kinds = case_inputs(*_inputs(store, team, dataset, studies, cases))
    required = set(spec.required_annotation_kinds)
    rows = [case_row(team, dataset, spec.sharing, required, per_study, per_case_kinds,
                     case_pseudonym=c["case_pseudonym"],
                     patient_pseudonym=keys.patient_pseudonym(team, c["patient_id"]),
                     studies=ss, label_source=c["label_source"], shareable=c["shareable"],
                     consent_class=c["consent_class"]) for c, ss in mine]
    rows += [case_row(team, dataset, spec.sharing, required, per_study, per_case_kinds,
                      case_pseudonym=r["case_pseudonym"], patient_pseudonym=r["patient_pseudonym"],
                      studies=r["study_instance_uids"], label_source=r["label_source"],
                      shareable=r["shareable"], consent_class=r["consent_class"]) for r in reached]

    new = CASES.from_rows(rows)
    gone = pa.array(sorted(plan.withdrawn_rows), pa.string())

    def merged(current: pa.Table) -> pa.Table:
        # Rows of withdrawn patients go in the same commit; the commit names only the dataset.
        kept = current.filter(pc.invert(pc.is_in(current.column("patient_pseudonym"), value_set=gone)))
        return pa.concat_tables([kept.filter(pc.invert(pc.is_in(kept.column("case_pseudonym"),
                                                                value_set=new.column("case_pseudonym")))), new])

    version = store.rewrite(CASES, {"team": team, "dataset": dataset}, merged)
    now = store.count(CASES, where=in_dataset)
    return version if now == plan.expected else None


def _reached(existing: pa.Table, studies: set[str], cases: set[str], mine: set[str]) -> list[dict]:
    """Rows of earlier cases with a study in `studies` or a pseudonym in `cases` (vectorised: a
    dataset holds hundreds of thousands of cases, a batch reaches few of the earlier ones)."""
    lists = existing.column("study_instance_uids").combine_chunks()
    flat = pc.list_flatten(lists)
    owners = pc.list_parent_indices(lists)
    hit = pc.filter(owners, pc.is_in(flat, pa.array(sorted(studies), pa.string())))
    mask = pc.is_in(pa.array(range(existing.num_rows), pa.int64()), pc.cast(pc.unique(hit), pa.int64()))
    mask = pc.or_(mask, pc.is_in(existing.column("case_pseudonym"), pa.array(sorted(cases), pa.string())))
    mask = pc.and_(mask, pc.invert(pc.is_in(existing.column("case_pseudonym"), pa.array(sorted(mine), pa.string()))))
    return existing.filter(mask).to_pylist()


def _inputs(store: DeltaStore, team: str, dataset: str, studies: set[str], cases: set[str]
            ) -> tuple[pa.Table, pa.Table, pa.Table]:
    """deid instances, slides and annotations that bear on the given studies and cases."""
    in_dataset = matching(team=team, dataset=dataset)
    wanted = sorted(studies)
    image_columns = ["kind", "study_instance_uid", "series_instance_uid", "sop_instance_uid", "modality",
                     "number_of_frames"]
    instances = store.read(INSTANCES, image_columns,
                           in_dataset & pads.field("study_instance_uid").isin(wanted))
    slides = store.read(SLIDES, ["study_instance_uid"],
                        in_dataset & pads.field("study_instance_uid").isin(wanted))
    parts = sorted(set(instances.column("series_instance_uid").to_pylist())
                   | set(instances.column("sop_instance_uid").to_pylist()))
    annotations = store.read(ANNOTATIONS, ["kind", "target_study_uid", "target_series_uid",
                                                     "target_instance_uid", "target_case", "resolved"],
                             in_dataset & (pads.field("target_case").isin(sorted(cases))
                                           | pads.field("target_study_uid").isin(wanted)
                                           | pads.field("target_series_uid").isin(parts)
                                           | pads.field("target_instance_uid").isin(parts)))
    # An annotation is placed by its series before its instance: images of other studies that its
    # targets name complete that lookup (they count only towards studies no rebuilt case has).
    targets = sorted({u for c in ("target_series_uid", "target_instance_uid")
                      for u in annotations.column(c).to_pylist() if u} - set(parts))
    if targets:
        others = store.read(INSTANCES, image_columns, in_dataset
                            & (pads.field("series_instance_uid").isin(targets)
                               | pads.field("sop_instance_uid").isin(targets))
                            & ~pads.field("study_instance_uid").isin(wanted))
        instances = pa.concat_tables([instances, others])
    return instances, slides, annotations
