"""program/alerts: one row per failed run, for the programme office and whoever is on call.

Written by the Dagster run-failure sensor (sensors/alerts.py); plain Python so any scheduler can
write the same rows.
"""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from medlake.lake.tables import Column, TableDef

MESSAGE_LIMIT = 500

_STR = pa.string()

ALERTS = TableDef(
    zone="program",
    name="alerts",
    doc="Every run that failed: which job, which run and partition, the first failed step and its "
        "error. No identifier values: a partition names team, dataset and batch folders only.",
    keys=("run_id", "kind"),
    columns=(
        Column("raised_at", pa.timestamp("us", tz="UTC"), "when the alert was recorded", False),
        Column("kind", _STR, "run_failure", False),
        Column("job", _STR, "the Dagster job (process_export_batch, refresh_programme, ...)", False),
        Column("run_id", _STR, "the failed run's id", False),
        Column("partition", _STR, "the run's partition key (team/dataset/batch folder names); null for "
                                  "unpartitioned jobs"),
        Column("step", _STR, "the first step that failed; null when the run failed outside a step"),
        Column("message", _STR, f"the error's class and message, at most {MESSAGE_LIMIT} characters", False),
    ),
)


def record_alert(store, *, kind: str, job: str, run_id: str, partition: str | None, message: str,
                 at: dt.datetime, step: str | None = None) -> int:
    """Record one alert in program/alerts; returns the table's new version.

    Merged on (run_id, kind), so evaluating the same failure twice (a sensor tick retried after a
    restart) leaves one row.
    """
    # The message is the failing code's own error text. medlake's errors name reason codes, tags,
    # columns and pseudonymous paths, never an identifier value (DeidError's rule, the checker's
    # findings), so it may be kept in the program zone; the limit keeps a stack-sized message from
    # bloating the table.
    row = {"raised_at": at.astimezone(dt.timezone.utc), "kind": kind, "job": job, "run_id": run_id,
           "partition": partition, "step": step, "message": message[:MESSAGE_LIMIT]}
    return store.merge(ALERTS, [row], {})
