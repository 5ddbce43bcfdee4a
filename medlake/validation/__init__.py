"""Data-quality validation of lake tables against great-expectations suites kept as JSON.

    suite = load_suite("expectations/deid.instances.json")
    outcome = validate(table, suite)          # pyarrow.Table in, ValidationOutcome out
    record(store, suite.table_id, outcome, run_id)   # program/validation_history

great_expectations is imported lazily inside `validate` (it costs ~3 s and ~265 MB), so importing
this package is cheap. Nothing here imports dagster: expectations/checks.py is the Dagster side.
"""

from medlake.validation.history import VALIDATION_HISTORY, record
from medlake.validation.outcome import ExpectationOutcome, ValidationOutcome
from medlake.validation.suite import Suite, SuiteError, load_suite, load_suites
from medlake.validation.runner import validate

__all__ = [
    "VALIDATION_HISTORY",
    "ExpectationOutcome",
    "Suite",
    "SuiteError",
    "ValidationOutcome",
    "load_suite",
    "load_suites",
    "record",
    "validate",
]
