"""One batch's step: its annotations into deid/annotations, then its dataset's cases brought up to
date: the cases the batch reaches merged in (cases/update.py), or the dataset rebuilt when the table
does not hold what the update assumes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pyarrow.compute as pc

from medlake.cases.annotations import batch_annotations
from medlake.cases.build import build_cases, case_pseudonyms
from medlake.cases.update import apply_update, plan_update
from medlake.deid.keys import DeidKeys
from medlake.ingest.pending import record_completion, was_ingested
from medlake.lake.delta import DeltaStore
from medlake.lake.tables import ANNOTATION_PROBLEMS, ANNOTATIONS, CASES
from medlake.landing import BatchRef
from medlake.program import Registry


@dataclass
class CasesResult:
    """Counts only: safe for logs and Dagster metadata."""

    annotations: int = 0
    unresolved: int = 0
    problems_by_code: dict[str, int] = field(default_factory=dict)
    cases: int = 0
    status: dict[str, int] = field(default_factory=dict)
    cases_without_images: int = 0
    table_versions: dict[str, int] = field(default_factory=dict)


def annotate_and_count(store: DeltaStore, keys: DeidKeys, registry: Registry, ref: BatchRef) -> CasesResult:
    """The batch's annotations, its cases merged into the dataset's, and the batch recorded complete
    (under the dataset's lock: another batch's assembly counts this one's cases once it is complete)."""
    if not was_ingested(store, ref):
        return CasesResult()  # refused as a whole at ingestion: no annotations, no cases
    with store.lake.dataset_lock(ref.team, ref.dataset, f"annotations and cases {ref.key}"):
        result = _annotate_and_count(store, keys, registry, ref)
        record_completion(store, ref)
        return result


def _annotate_and_count(store: DeltaStore, keys: DeidKeys, registry: Registry, ref: BatchRef) -> CasesResult:
    batch_ref = keys.batch_ref(ref.team, ref.dataset, ref.batch)
    plan = plan_update(store, keys, registry, ref.team, ref.dataset, ref.batch, batch_ref)
    pseudonyms = plan.known_cases if plan else case_pseudonyms(store, keys, ref.team, ref.dataset)
    rows, problems = batch_annotations(store, ref.team, ref.dataset, batch_ref, pseudonyms)
    out = CasesResult(annotations=len(rows), unresolved=sum(not r["resolved"] for r in rows),
                      problems_by_code=dict(Counter(p["code"] for p in problems)))
    in_dataset = {"team": ref.team, "dataset": ref.dataset}
    batch_slice = {**in_dataset, "batch_ref": batch_ref}
    v = out.table_versions
    v["annotations"] = store.replace(ANNOTATIONS, rows, batch_slice)
    v["annotation_problems"] = store.replace(ANNOTATION_PROBLEMS, problems, batch_slice)
    version = apply_update(store, keys, registry, plan, rows) if plan else None
    if version is None:
        version = store.replace(CASES, build_cases(store, keys, registry, ref.team, ref.dataset, ref.batch),
                                in_dataset)
    v["cases"] = version
    cases = store.read(CASES, ["annotation_status", "instances", "slides"], where=in_dataset)
    out.cases = cases.num_rows
    out.status = {c["values"]: c["counts"] for c in pc.value_counts(cases.column("annotation_status")).to_pylist()}
    empty = pc.and_(pc.equal(pc.fill_null(cases.column("instances"), 0), 0),
                    pc.equal(pc.fill_null(cases.column("slides"), 0), 0))
    out.cases_without_images = pc.sum(empty).as_py() or 0
    return out
