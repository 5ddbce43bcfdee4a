"""The Dagster code location: `dagster dev -w workspace.yaml` and `medlake run` both load this."""

from __future__ import annotations

import dagster as dg

from assets.cases import annotations_and_cases
from assets.deid import deidentify_export_batch, no_identifiers_in_deid_batch
from assets.ingestion import ingest_export_batch
from medlake.settings import Settings
from pipelines.jobs import INGEST_JOB
from pipelines.resources import resources_from
from sensors.landing import landing_sensor


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    return dg.Definitions(
        assets=[ingest_export_batch, deidentify_export_batch, annotations_and_cases],
        asset_checks=[no_identifiers_in_deid_batch],
        jobs=[INGEST_JOB],
        sensors=[landing_sensor],
        resources=resources_from(settings or Settings.from_env()),
    )


defs = build_definitions()
