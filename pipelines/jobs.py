"""Jobs."""

import dagster as dg

# Every run carries its job's name as a tag: Dagster's run queue limits runs by tag, and
# deploy/dagster.yaml uses these to allow one programme refresh at a time and to keep a run slot
# free for it however many batches are queued.
JOB_TAG = "medlake/job"

INGEST_JOB = dg.define_asset_job(
    "process_export_batch",
    selection=dg.AssetSelection.groups("ingestion", "deid", "cases"),
    tags={JOB_TAG: "process_export_batch"},
    description="One export batch (a partition of export_batch): catalogue it into the restricted zone, "
                "de-identify it into the deid zone, check the result for identifiers, then read its "
                "annotations and recompute its dataset's cases.",
)

PROGRAMME_JOB = dg.define_asset_job(
    "refresh_programme",
    selection=dg.AssetSelection.groups("consent", "program", "sharing"),
    tags={JOB_TAG: "refresh_programme"},
    description="Consent status and the purge of withdrawn patients, progress tables (seed tables 4, 5, 7), "
                "release eligibility, every team's releases and the access applications' releases, dataset "
                "cards, the dashboard and the Parquet catalogue, from the whole lake.",
)
