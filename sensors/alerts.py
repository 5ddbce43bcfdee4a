"""Alerts: every failed run of this code location leaves a row in program/alerts."""

import datetime as dt

import dagster as dg

from medlake.alerts import record_alert
from pipelines.resources import LakeResource


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING)
def run_failure_alert(context: dg.RunFailureSensorContext, lake: LakeResource):
    """Records each failed run (job, run, partition, first failed step and its error) in
    program/alerts, a table anyone on call can query or forward, beside the programme's other
    tables. A run that run_retries will retry is recorded too: the retry is a new run with its own
    outcome."""
    run = context.dagster_run
    step, message = _first_failure(context)
    record_alert(lake.store(), kind="run_failure", job=run.job_name, run_id=run.run_id,
                 partition=context.partition_key or run.tags.get("dagster/partition"), step=step,
                 message=message, at=dt.datetime.now(dt.timezone.utc))


def _first_failure(context: dg.RunFailureSensorContext) -> tuple[str | None, str]:
    failure = context.failure_event.job_failure_data
    step_event = failure.first_step_failure_event if failure else None
    if step_event is None:
        step_events = context.get_step_failure_events()
        step_event = step_events[0] if step_events else None
    if step_event is not None and step_event.step_failure_data.error is not None:
        return step_event.step_key, _error_text(step_event.step_failure_data.error)
    # The run failed outside any step (its worker died, run monitoring timed it out).
    if failure and failure.error is not None:
        return None, _error_text(failure.error)
    reason = failure.failure_reason.value if failure and failure.failure_reason else "RunFailure"
    return None, f"{reason}: {context.failure_event.message or ''}"


def _error_text(error) -> str:
    """'<Class>: <message>' of the error the code raised, without Dagster's wrapper or the stack."""
    # Dagster wraps an asset's exception in its own error (DagsterExecutionStepExecutionError for a
    # step, other Dagster*Error for resources, inputs and outputs); the asset's error is the cause.
    while (error.cls_name or "").startswith("Dagster") and error.cause is not None:
        error = error.cause
    name = error.cls_name or "Error"
    text = (error.message or "").strip()
    prefix, sep, rest = text.partition(": ")
    if sep and prefix.rsplit(".", 1)[-1] == name:  # 'pkg.mod.Class: msg' -> 'Class: msg'
        text = rest
    return f"{name}: {text}"
