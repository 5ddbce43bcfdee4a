"""Consent files and access applications start a programme run when they change; so does every
finished export batch, and a daily run moves dates on (expiries, overdue usage reports)."""

import dagster as dg

from pipelines.jobs import INGEST_JOB, PROGRAMME_JOB
from pipelines.resources import LandingResource


@dg.sensor(job=PROGRAMME_JOB, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def consent_and_applications_sensor(context: dg.SensorEvaluationContext, landing: LandingResource):
    """Watches <team>/_consent/*.csv and _applications/: a new event (a withdrawal above all) or a
    committee decision is acted on by the next run. The run key is the listing's fingerprint, so
    racing ticks make one run."""
    fingerprint = landing.zone().sharing_fingerprint()
    if fingerprint == context.cursor:
        return dg.SkipReason("no consent file or application changed")
    return dg.SensorResult(run_requests=[dg.RunRequest(run_key=f"sharing@{fingerprint}")], cursor=fingerprint)


@dg.run_status_sensor(run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=[INGEST_JOB],
                      request_job=PROGRAMME_JOB, default_status=dg.DefaultSensorStatus.RUNNING)
def programme_after_batch(context: dg.RunStatusSensorContext):
    """A batch has landed: progress, eligibility and releases follow."""
    return dg.RunRequest(run_key=f"after:{context.dagster_run.run_id}")


daily_programme_refresh = dg.ScheduleDefinition(
    name="daily_programme_refresh", job=PROGRAMME_JOB, cron_schedule="30 6 * * *",
    execution_timezone="Asia/Taipei", default_status=dg.DefaultScheduleStatus.RUNNING)
