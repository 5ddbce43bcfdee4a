"""One batch's step: its annotations into deid/annotations, then its dataset's cases recomputed."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from medlake.cases.annotations import batch_annotations
from medlake.cases.build import build_cases, case_pseudonyms
from medlake.deid.keys import DeidKeys
from medlake.lake.delta import DeltaStore, where
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
    batch_ref = keys.batch_ref(ref.team, ref.dataset, ref.batch)
    pseudonyms = case_pseudonyms(store, keys, ref.team, ref.dataset)
    rows, problems = batch_annotations(store, ref.team, ref.dataset, batch_ref, pseudonyms)
    out = CasesResult(annotations=len(rows), unresolved=sum(not r["resolved"] for r in rows),
                      problems_by_code=dict(Counter(p["code"] for p in problems)))
    batch_slice = where(team=ref.team, dataset=ref.dataset, batch_ref=batch_ref)
    v = out.table_versions
    v["annotations"] = store.replace_where("deid", "annotations", ANNOTATIONS.from_rows(rows), batch_slice,
                                           ANNOTATIONS.partition_by)
    v["annotation_problems"] = store.replace_where("deid", "annotation_problems",
                                                   ANNOTATION_PROBLEMS.from_rows(problems), batch_slice,
                                                   ANNOTATION_PROBLEMS.partition_by)
    cases = build_cases(store, keys, registry, ref.team, ref.dataset)
    v["cases"] = store.replace_where("deid", "cases", cases, where(team=ref.team, dataset=ref.dataset),
                                     CASES.partition_by)
    out.cases = cases.num_rows
    out.status = dict(Counter(cases.column("annotation_status").to_pylist()))
    out.cases_without_images = sum(1 for i, s in zip(cases.column("instances").to_pylist(),
                                                     cases.column("slides").to_pylist()) if not i and not s)
    return out
