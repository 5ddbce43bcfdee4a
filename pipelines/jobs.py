"""Jobs."""

import dagster as dg

INGEST_JOB = dg.define_asset_job(
    "process_export_batch",
    selection=dg.AssetSelection.groups("ingestion", "deid", "cases"),
    description="One export batch (a partition of export_batch): catalogue it into the restricted zone, "
                "de-identify it into the deid zone, check the result for identifiers, then read its "
                "annotations and recompute its dataset's cases.",
)

PROGRAMME_JOB = dg.define_asset_job(
    "refresh_programme",
    selection=dg.AssetSelection.groups("program"),
    description="Progress tables (seed tables 4, 5, 7), the dashboard and the Parquet catalogue, from the whole lake.",
)
