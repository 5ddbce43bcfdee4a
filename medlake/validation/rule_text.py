"""An expectation in words, as the dashboard and a check's metadata show what it flagged:
"slice thickness outside 0-100 mm". Made from the suite alone (column names, bounds, enumerations),
never from the data, so it cannot carry an identifier."""

from __future__ import annotations

import datetime

from medlake.validation.suite import ExpectationDef


def rule_text(e: ExpectationDef) -> str:
    k = e.kwargs
    column = _words(k["column"]) if "column" in k else ""
    if e.type == "expect_column_values_to_be_between":
        return f"{column} {_outside(k.get('min_value'), k.get('max_value'), e.unit)}"
    if e.type == "expect_column_values_to_be_in_set":
        values = [_value(v) for v in k["value_set"]]
        return f"{column} not {values[0]}" if len(values) == 1 else f"{column} not one of {', '.join(values)}"
    if e.type == "expect_column_values_to_not_be_null":
        return f"{column} missing"
    if e.type in ("expect_compound_columns_to_be_unique", "expect_column_values_to_be_unique"):
        return f"key {', '.join(_words(c) for c in e.columns())} repeated"
    if e.type == "expect_column_values_to_match_regex":
        return f"{column} not in its format"
    if e.type == "expect_column_values_to_not_match_regex_list":
        return f"{column} shaped like an identifier"
    if e.type == "medlake_column_equals_sum":
        return f"{column} not {' + '.join(_words(c) for c in k['sum_of'])}"
    if e.type == "medlake_sum_at_least":
        return f"{' + '.join(_words(c) for c in k['column_list'])} below {_value(k['min_value'])}"
    return f"{e.type.removeprefix('expect_').replace('_', ' ')}{f' ({column})' if column else ''}"


def _words(column: str) -> str:
    return column.replace("_", " ")


def _outside(low, high, unit: str) -> str:
    tail = f" {unit}" if unit else ""
    if low is not None and high is not None:
        # "0.1-20 mm" reads as a range only when neither bound carries a sign or a hyphen of its own.
        plain = all(isinstance(v, (int, float)) and v >= 0 for v in (low, high))
        return f"outside {_value(low)}{'-' if plain else ' to '}{_value(high)}{tail}"
    if low is not None:
        return f"below {_value(low)}{tail}"
    return f"above {_value(high)}{tail}"


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)
