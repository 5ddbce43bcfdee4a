"""The Dagster code location: `dagster dev -w workspace.yaml` and `medlake run` both load this."""

from __future__ import annotations

import dagster as dg

from assets.cases import annotations_and_cases
from assets.consent import consent, withdrawals
from assets.deid import deidentify_export_batch, no_identifiers_in_deid_batch
from assets.ingestion import ingest_export_batch
from assets.programme import catalog, dashboard, programme_progress
from assets.sharing import access_applications_asset, dataset_cards, eligibility, team_release_asset
from expectations.checks import suite_checks
from medlake.program import load_registry
from medlake.settings import Settings
from pipelines.executors import executor_from_env
from pipelines.jobs import INGEST_JOB, PROGRAMME_JOB
from pipelines.partitions import EXPORT_BATCHES
from pipelines.resources import resources_from
from sensors.alerts import run_failure_alert
from sensors.consent import consent_and_applications_sensor, daily_programme_refresh, programme_after_batch
from sensors.landing import landing_sensor
from sensors.schedules import daily_batch_sweep


# Per suite in expectations/, one validation reports two checks on its table: a blocking integrity check
# and a warning-only plausibility check (see its README).
SUITE_TABLES = ("restricted.landed_files", "restricted.source_instances", "restricted.quarantine",
                "restricted.batches", "deid.instances", "deid.series", "deid.studies", "deid.deid_audit",
                "deid.annotations", "deid.cases")
SUITE_CHECKS = suite_checks({dg.AssetKey(t.split(".")): t for t in SUITE_TABLES}, partitions_def=EXPORT_BATCHES,
                            secret_resource_key="secret")


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    # One release asset per team, owned by it: the registry names the teams.
    teams = [t.id for t in load_registry(settings.absolute().program).teams]
    return dg.Definitions(
        assets=[ingest_export_batch, deidentify_export_batch, annotations_and_cases, consent, withdrawals,
                programme_progress, eligibility, *[team_release_asset(t) for t in teams],
                access_applications_asset(teams), dataset_cards, dashboard, catalog],
        asset_checks=[no_identifiers_in_deid_batch, *SUITE_CHECKS],
        jobs=[INGEST_JOB, PROGRAMME_JOB],
        sensors=[landing_sensor, consent_and_applications_sensor, programme_after_batch, run_failure_alert],
        schedules=[daily_batch_sweep, daily_programme_refresh],
        resources=resources_from(settings),
        executor=executor_from_env(),
    )


def process_export_batch_job() -> dg.JobDefinition:
    """The batch job as `dg.reconstructable` needs it: a module-level function that each dask worker
    or step process calls to load the job itself, with the settings of its own environment."""
    return build_definitions().resolve_job_def("process_export_batch")


defs = build_definitions()
