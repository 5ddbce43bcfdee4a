"""Suite files: plain JSON, one per table, named <zone>.<table>.json (see expectations/README.md).

    {"table": "deid.instances",
     "description": "...",
     "example_keys": ["team", "dataset", "sop_instance_uid"],   // null: report row numbers
     "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "team"},
         "severity": "integrity", "reason": "natural key", "notes": "..."},
        {"type": "expect_column_values_to_be_between",
         "kwargs": {"column": "study_date", "min_value": {"$date": "2007-11-01"}, ...},
         "severity": "plausibility", "reason": "acquisition value as the scanner wrote it"},
        {"type": "medlake_column_equals_sum", "kwargs": {...}, ...}    // custom rule (rules.py)
     ]}

Values tagged {"$date": "YYYY-MM-DD"} become datetime.date. Types starting with `medlake_` are the
custom rules of medlake.validation.rules; every other type is a great-expectations expectation.
Restricted-zone suites always report row numbers, whatever example_keys says.

Every expectation says which kind it is, with the reason: an `integrity` expectation (keys, keyed
id formats, references, accounting, no identifier) holds the batch when it fails; a `plausibility`
one (ranges and enumerations of acquisition values) only flags the rows it finds. `unit` is
optional, for the rule's description ("slice thickness outside 0-100 mm").
"""

from __future__ import annotations

import datetime
import json
import re
from dataclasses import dataclass
from pathlib import Path

from medlake.lake.zones import ZONES

_NAME = re.compile(r"^(?P<zone>[a-z]+)\.(?P<name>[a-z0-9_]+)$")
CUSTOM_PREFIX = "medlake_"
INTEGRITY, PLAUSIBILITY = "integrity", "plausibility"
SEVERITIES = (INTEGRITY, PLAUSIBILITY)


class SuiteError(ValueError):
    pass


@dataclass(frozen=True)
class ExpectationDef:
    type: str
    kwargs: dict
    notes: str = ""
    severity: str = INTEGRITY
    reason: str = ""
    unit: str = ""

    @property
    def blocks(self) -> bool:
        return self.severity == INTEGRITY

    @property
    def is_custom(self) -> bool:
        return self.type.startswith(CUSTOM_PREFIX)

    @property
    def column(self) -> str | None:
        if "column" in self.kwargs:
            return self.kwargs["column"]
        if "column_list" in self.kwargs:
            return ",".join(self.kwargs["column_list"])
        if "column_A" in self.kwargs:
            return f"{self.kwargs['column_A']},{self.kwargs['column_B']}"
        return None

    def columns(self) -> list[str]:
        cols = [self.kwargs["column"]] if "column" in self.kwargs else []
        cols += list(self.kwargs.get("column_list", []))
        cols += [self.kwargs[k] for k in ("column_A", "column_B") if k in self.kwargs]
        cols += list(self.kwargs.get("sum_of", []))
        return cols


@dataclass(frozen=True)
class Suite:
    zone: str
    name: str
    description: str
    expectations: tuple[ExpectationDef, ...]
    example_keys: tuple[str, ...] | None  # None: row numbers

    @property
    def table_id(self) -> str:
        return f"{self.zone}.{self.name}"

    @property
    def reports_row_numbers(self) -> bool:
        return self.zone == "restricted" or not self.example_keys

    def columns(self) -> set[str]:
        return {c for e in self.expectations for c in e.columns()} | set(self.example_keys or ())


def _decode(value):
    if isinstance(value, dict):
        if set(value) == {"$date"}:
            return datetime.date.fromisoformat(value["$date"])
        return {k: _decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def parse_suite(data: dict, source: str = "<suite>") -> Suite:
    m = _NAME.match(str(data.get("table", "")))
    if not m or m["zone"] not in ZONES:
        raise SuiteError(f"{source}: 'table' must be <zone>.<table> with zone in {ZONES}")
    exps = []
    for i, e in enumerate(data.get("expectations") or []):
        if not isinstance(e, dict) or not isinstance(e.get("type"), str) or not isinstance(e.get("kwargs", {}), dict):
            raise SuiteError(f"{source}: expectation {i} needs a 'type' string and a 'kwargs' object")
        severity, reason = e.get("severity"), e.get("reason")
        # Unclassified, an expectation would silently pick a default: a new range must not start
        # holding batches, nor a new key check stop holding them, because nobody said which it is.
        if severity not in SEVERITIES:
            raise SuiteError(f"{source}: expectation {i} ({e['type']}) needs a 'severity': one of "
                             f"{', '.join(SEVERITIES)}")
        if not isinstance(reason, str) or not reason.strip():
            raise SuiteError(f"{source}: expectation {i} ({e['type']}) needs a 'reason' for its severity")
        exps.append(ExpectationDef(e["type"], _decode(e.get("kwargs", {})), e.get("notes", ""), severity,
                                   reason, str(e.get("unit", ""))))
    if not exps:
        raise SuiteError(f"{source}: no expectations")
    keys = data.get("example_keys")
    return Suite(m["zone"], m["name"], data.get("description", ""), tuple(exps),
                 tuple(keys) if keys else None)


def load_suite(path: str | Path) -> Suite:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise SuiteError(f"{path}: not valid JSON: {e}") from e
    suite = parse_suite(data, str(path))
    if path.name != f"{suite.table_id}.json":
        raise SuiteError(f"{path}: a suite for {suite.table_id} must be named {suite.table_id}.json")
    return suite


def load_suites(directory: str | Path) -> dict[str, Suite]:
    """Every <zone>.<table>.json under `directory`, by table id."""
    return {s.table_id: s for s in (load_suite(p) for p in sorted(Path(directory).glob("*.*.json")))}
