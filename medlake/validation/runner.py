"""Validate a pyarrow table against a Suite with great-expectations 1.x (ephemeral context, pandas)."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import replace

import pyarrow as pa

from medlake.validation.outcome import ExpectationOutcome, ValidationOutcome
from medlake.validation.rule_text import rule_text
from medlake.validation.rules import RULES, keys_repeated_in
from medlake.validation.suite import ExpectationDef, Suite, SuiteError

MAX_EXAMPLES = 5
WITHHELD = "<withheld>"
UNIQUENESS = ("expect_compound_columns_to_be_unique", "expect_column_values_to_be_unique")
_lock = threading.Lock()
_batch_definition = None


def _gx_batch_definition():
    """One ephemeral context and pandas batch definition per process; GX is imported here, lazily."""
    global _batch_definition
    with _lock:
        if _batch_definition is None:
            import os

            os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
            import great_expectations as gx
            from great_expectations.data_context.types.base import ProgressBarsConfig

            ctx = gx.get_context(mode="ephemeral")
            ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
            _batch_definition = (ctx.data_sources.add_pandas("medlake")
                                 .add_dataframe_asset("table")
                                 .add_batch_definition_whole_dataframe("all"))
        return _batch_definition


def validate(table: pa.Table, suite: Suite, key_universe: pa.Table | None = None) -> ValidationOutcome:
    """Run every expectation of `suite` over `table`; never raises for a data problem.

    With `key_universe` (the key columns of every row the keys must be unique over, `table`'s rows
    among them), the uniqueness expectations check `table`'s keys against it instead of against
    `table` alone: how one batch's rows are validated without validating the whole dataset again.

    Only counts and example keys leave this function: GX's partial_unexpected_list (the failing
    values themselves) is dropped, since in the restricted zone those are identifiers."""
    import great_expectations as gx  # lazy: ~3 s

    started = time.perf_counter()
    against_universe = {i for i, e in enumerate(suite.expectations)
                        if key_universe is not None and e.type in UNIQUENESS}
    gx_defs = [(i, e) for i, e in enumerate(suite.expectations) if not e.is_custom and i not in against_universe]
    outcomes: dict[int, ExpectationOutcome] = {}

    if gx_defs:
        wanted = [c for c in table.column_names if c in suite.columns()]
        df = table.select(wanted).to_pandas()
        try:
            gx_suite = gx.ExpectationSuite(name=suite.table_id, expectations=[
                {"type": e.type, "kwargs": e.kwargs, "meta": {"medlake_index": i}} for i, e in gx_defs])
        except Exception as e:  # unknown expectation type or bad kwargs: a suite bug, not a data problem
            raise SuiteError(f"{suite.table_id}: {e}") from e
        result = _gx_batch_definition().get_batch(batch_parameters={"dataframe": df}).validate(
            gx_suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": MAX_EXAMPLES})
        del df
        for r in result.results:
            i = r.expectation_config.meta["medlake_index"]
            e = suite.expectations[i]
            res = r.result or {}
            error = _error(r.exception_info)
            rows = list(res.get("partial_unexpected_index_list") or [])[:MAX_EXAMPLES]
            outcomes[i] = ExpectationOutcome(
                expectation=e.type, column=e.column, success=bool(r.success) and error is None,
                unexpected_count=res.get("unexpected_count", None if error else 0),
                unexpected_percent=res.get("unexpected_percent", None if error else 0.0),
                example_keys=[] if r.success else _examples(table, suite, e, [int(x) for x in rows]),
                error=error)

    for i, e in enumerate(suite.expectations):
        if e.is_custom:
            outcomes[i] = _run_rule(table, suite, e)
        elif i in against_universe:
            outcomes[i] = _unique_against(table, key_universe, suite, e)

    # Each outcome carries its expectation's kind and words, so whoever reads it (the check, the
    # history, the dashboard) tells a warning from a failure without the suite at hand.
    results = [replace(outcomes[i], severity=e.severity, rule=rule_text(e))
               for i, e in enumerate(suite.expectations)]
    return ValidationOutcome(table_id=suite.table_id, success=all(r.success for r in results),
                             row_count=table.num_rows, results=results,
                             seconds=round(time.perf_counter() - started, 3))


def _run_rule(table: pa.Table, suite: Suite, e: ExpectationDef) -> ExpectationOutcome:
    rule = RULES.get(e.type)
    if rule is None:
        raise SuiteError(f"{suite.table_id}: unknown custom rule {e.type}")
    missing = [c for c in e.columns() if c not in table.column_names]
    if missing:
        return ExpectationOutcome(e.type, e.column, False, None, None, [], "missing column")
    return _rows_outcome(table, suite, e, rule(table, **e.kwargs))


def _unique_against(table: pa.Table, universe: pa.Table, suite: Suite, e: ExpectationDef) -> ExpectationOutcome:
    unsupported = set(e.kwargs) - {"column", "column_list"}
    if unsupported:  # mostly, ignore_row_if...: GX semantics this evaluation does not reproduce
        raise SuiteError(f"{suite.table_id}: {e.type} with {', '.join(sorted(unsupported))} cannot be "
                         "checked batch by batch")
    columns = e.columns()
    missing = [c for c in columns if c not in table.column_names or c not in universe.column_names]
    if missing:
        return ExpectationOutcome(e.type, e.column, False, None, None, [], "missing column")
    return _rows_outcome(table, suite, e, keys_repeated_in(table, universe, columns))


def _rows_outcome(table: pa.Table, suite: Suite, e: ExpectationDef, bad) -> ExpectationOutcome:
    """The outcome of an expectation broken by the rows numbered `bad`."""
    n = table.num_rows
    return ExpectationOutcome(
        expectation=e.type, column=e.column, success=len(bad) == 0, unexpected_count=int(len(bad)),
        unexpected_percent=100.0 * len(bad) / n if n else 0.0,
        example_keys=_examples(table, suite, e, [int(x) for x in bad[:MAX_EXAMPLES]]))


def _error(info) -> str | None:
    """A short, value-free description of an evaluation failure (GX messages are not trusted)."""
    infos = info.values() if isinstance(info, dict) and "raised_exception" not in info else [info]
    for x in infos:
        if isinstance(x, dict) and x.get("raised_exception"):
            msg = str(x.get("exception_message") or "")
            return "missing column" if "does not exist" in msg else "evaluation error"
    return None


def _examples(table: pa.Table, suite: Suite, failing: ExpectationDef, rows: list[int]) -> list[tuple]:
    """Row numbers for restricted tables; else natural-key tuples, each value shown only when it
    passes every pattern expectation of its column (so a leaked identifier is never repeated)."""
    if suite.reports_row_numbers:
        return [("row", r) for r in rows]
    keys = [k for k in suite.example_keys if k in table.column_names]
    out = []
    for r in rows:
        out.append(tuple(_safe_value(suite, failing, k, table.column(k)[r].as_py()) for k in keys))
    return out


def _safe_value(suite: Suite, failing: ExpectationDef, column: str, value):
    if value is None:
        return None
    if failing.column == column and failing.type not in (
            "expect_column_values_to_be_unique", "expect_column_values_to_not_be_null"):
        return WITHHELD
    s = str(value)
    for e in suite.expectations:
        if e.kwargs.get("column") != column:
            continue
        if e.type == "expect_column_values_to_match_regex" and not re.search(e.kwargs["regex"], s):
            return WITHHELD
        if e.type == "expect_column_values_to_not_match_regex" and re.search(e.kwargs["regex"], s):
            return WITHHELD
        if e.type == "expect_column_values_to_not_match_regex_list" and any(
                re.search(p, s) for p in e.kwargs["regex_list"]):
            return WITHHELD
    return value
