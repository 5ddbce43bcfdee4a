"""Annotations and cases: normalised annotation rows from each de-identified batch, and the cases
table of its dataset with annotation status computed from what was found."""

import dagster as dg

from assets.deid import INSTANCES_KEY
from medlake.cases.batch import annotate_and_count
from medlake.lake.tables import table_named
from medlake.landing import BatchRef
from pipelines.keys import SecretKeyResource
from pipelines.partitions import EXPORT_BATCHES
from pipelines.resources import LakeResource, RegistryResource

_KEYS = {name: dg.AssetKey(["deid", name]) for name in ("annotations", "annotation_problems", "cases")}
_DEID = [INSTANCES_KEY, dg.AssetKey(["deid", "annotation_files"]), dg.AssetKey(["deid", "slides"]),
         dg.AssetKey(["restricted", "source_cases"])]


@dg.multi_asset(
    specs=[dg.AssetSpec(key=k, group_name="cases", kinds={"delta"}, partitions_def=EXPORT_BATCHES, deps=_DEID)
           for k in _KEYS.values()],
    name="annotations_and_cases",
)
def annotations_and_cases(context: dg.AssetExecutionContext, lake: LakeResource, registry: RegistryResource,
                          secret: SecretKeyResource):
    """Reads every de-identified annotation object of the batch (RTSTRUCT, SEG, SR, presentation
    states, AIM, masks, label sheets) into deid/annotations, reports unreadable ones and annotations
    whose target does not exist in deid/annotation_problems, and recomputes the dataset's cases:
    image only, partial or full against the registry's required kinds."""
    ref = BatchRef.from_key(context.partition_key)
    r = annotate_and_count(lake.store(), secret.deid_keys(), registry.load(), ref)
    status_md = "| status | cases |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in sorted(r.status.items()))
    meta = {
        "annotations": {"dagster/partition_row_count": r.annotations, "unresolved": r.unresolved},
        "annotation_problems": {"by_code": dg.MetadataValue.json(r.problems_by_code)},
        "cases": {"cases_in_dataset": r.cases, "status": dg.MetadataValue.md(status_md),
                  "cases_without_images": r.cases_without_images},
    }
    for name, key in _KEYS.items():
        m = {**meta[name], "dagster/uri": lake.store().uri(table_named("deid", name))}
        if name in r.table_versions:
            m["delta_version"] = r.table_versions[name]
        yield dg.MaterializeResult(asset_key=key, metadata=m)
