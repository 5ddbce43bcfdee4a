"""Jobs."""

import dagster as dg

INGEST_JOB = dg.define_asset_job(
    "ingest_batch",
    selection=dg.AssetSelection.groups("ingestion"),
    description="Catalogue one export batch (a partition of export_batch) into the restricted zone.",
)
