"""program/validation_history: one row per expectation per validation run (counts, never values)."""

from __future__ import annotations

import datetime

import pyarrow as pa

from medlake.lake.tables import Column, TableDef
from medlake.validation.outcome import ValidationOutcome

_STR = pa.string()

# Lives here until it moves to medlake/lake/tables.py.
VALIDATION_HISTORY = TableDef(
    zone="program",
    name="validation_history",
    doc="Every data-quality validation of a lake table against its expectations suite: one row per "
        "expectation per run, counts only (no values, no example keys). A failing plausibility row is a "
        "warning: its unexpected_count is the number of rows it flagged.",
    keys=("table", "expectation", "column", "run_id", "checked_at"),
    columns=(
        Column("table", _STR, "<zone>.<table> validated", False),
        Column("expectation", _STR, "expectation type (great-expectations or medlake_* rule)", False),
        Column("column", _STR, "column(s) checked, comma-separated; '' for table-level", False),
        Column("success", pa.bool_(), "the expectation held", False),
        Column("unexpected_count", pa.int64(), "rows breaking it; null when it could not be evaluated"),
        Column("element_count", pa.int64(), "rows validated", False),
        Column("run_id", _STR, "the Dagster run (or caller's) id", False),
        Column("checked_at", pa.timestamp("us", tz="UTC"), "when", False),
        # Added after the first release: the table API adds them to older tables, whose rows read null.
        Column("team", _STR, "team of the export batch whose check this was; null: a whole table"),
        Column("dataset", _STR, "that batch's dataset"),
        Column("batch_ref", _STR, "that batch's keyed reference (folder names are hospital text)"),
        Column("severity", _STR, "the expectation's kind: integrity (a failure holds the batch) or plausibility "
                                 "(a failure flags unexpected_count rows as a warning); null: recorded before "
                                 "suites had kinds, when every failure held the batch"),
        Column("rule", _STR, "the expectation in words, from the suite (\"slice thickness outside 0-100 mm\"); "
                             "never a value from the data"),
    ),
)


def history_rows(table_id: str, outcome: ValidationOutcome, run_id: str,
                 checked_at: datetime.datetime | None = None, batch: tuple[str, str, str | None] | None = None,
                 ) -> pa.Table:
    at = checked_at or datetime.datetime.now(datetime.UTC)
    team, dataset, batch_ref = batch or (None, None, None)
    return VALIDATION_HISTORY.from_rows([
        {"table": table_id, "expectation": r.expectation, "column": r.column or "", "success": r.success,
         "unexpected_count": r.unexpected_count, "element_count": outcome.row_count, "run_id": run_id,
         "checked_at": at, "team": team, "dataset": dataset, "batch_ref": batch_ref, "severity": r.severity,
         "rule": r.rule}
        for r in outcome.results])


def record(store, table_id: str, outcome: ValidationOutcome, run_id: str,
           checked_at: datetime.datetime | None = None, batch: tuple[str, str, str | None] | None = None) -> int:
    """Append the outcome to program/validation_history; returns the table's new version. `batch`:
    (team, dataset, batch_ref) of the export batch whose check this was."""
    return store.append(VALIDATION_HISTORY, history_rows(table_id, outcome, run_id, checked_at, batch))
