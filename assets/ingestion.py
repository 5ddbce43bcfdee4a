"""Ingestion assets: one export batch (a partition) into the restricted zone's catalogue tables."""


import dagster as dg

from medlake.ingest.batch import ingest_batch
from medlake.lake.tables import RESTRICTED_INGEST_TABLES
from medlake.landing import BatchRef
from pipelines.partitions import EXPORT_BATCHES
from pipelines.policies import IO_RETRY_POLICY
from pipelines.resources import LakeResource, LandingResource, RegistryResource

_TABLES = RESTRICTED_INGEST_TABLES
_LOG_EVERY = 1000


def _spec(t) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=dg.AssetKey([t.zone, t.name]),
        description=t.doc,
        group_name="ingestion",
        kinds={"delta"},
        partitions_def=EXPORT_BATCHES,
        metadata={
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(c.name, str(c.type), description=c.doc) for c in t.columns]),
            "natural_key": ", ".join(t.keys),
        },
    )


@dg.multi_asset(specs=[_spec(t) for t in _TABLES], name="ingest_export_batch", pool="landing_io",
                retry_policy=IO_RETRY_POLICY)
def ingest_export_batch(context: dg.AssetExecutionContext, landing: LandingResource, lake: LakeResource,
                        registry: RegistryResource):
    """Read every file of one export batch once (sha256 and DICOM header from the same read), catalogue
    it or quarantine it with a reason, and record the batch summary. Re-running replaces the batch's
    rows, so it never duplicates them."""
    ref = BatchRef.from_key(context.partition_key)

    def progress(done: int, total: int) -> None:
        if done % _LOG_EVERY == 0 or done == total:
            context.log.info(f"{ref.key}: {done}/{total} files read")

    r = ingest_batch(landing.zone(), lake.store(), registry.load(), ref, progress=progress, log=context.log.info)
    quarantined = dg.MetadataValue.md(
        "| reason | count |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in sorted(r.quarantine_by_reason.items()))
        if r.quarantine_by_reason else "nothing quarantined")
    common = {
        "outcome": r.outcome,
        "files_landed": r.files_landed,
        "files_catalogued": r.files_catalogued,
        "files_quarantined": r.files_quarantined,
        "files_duplicate": r.files_duplicate,
        "bytes": r.bytes,
        "seconds": round(r.duration_s, 3),
    }
    per_table = {
        "landed_files": {"dagster/partition_row_count": r.files_landed},
        "source_instances": {"dagster/partition_row_count": r.dicom_objects},
        "source_slides": {"dagster/partition_row_count": r.slides},
        "source_cases": {"dagster/partition_row_count": r.cases, "case_rows_rejected": r.case_rows_rejected},
        "quarantine": {"by_reason": quarantined},
        "batches": {"reason_code": r.reason_code or "", "kinds": dg.MetadataValue.json(r.kinds)},
    }
    for t in _TABLES:
        meta = {**common, **per_table[t.name], "dagster/uri": lake.store().uri(t)}
        if t.name in r.table_versions:
            meta["delta_version"] = r.table_versions[t.name]
        yield dg.MaterializeResult(asset_key=dg.AssetKey([t.zone, t.name]), metadata=meta)
