"""The data-quality state the dashboard shows, from program/validation_history rows.

A batch's check validates that batch's rows, so each (table, batch) is judged by its latest
validation: a fault stays on the board until that batch is validated again and passes, whatever
other batches did since. Rows without a batch (whole tables, histories written before batches were
recorded) count as one validation per table. Only integrity expectations fail a table or a batch;
a plausibility expectation that flagged rows is a warning, shown apart with its count and rule.
Rows written before expectations had kinds (severity null) held the batch then, and count as
integrity.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# What one row of each table is, to say "2 objects", "1 study".
_ROW_NOUNS = {
    "restricted.landed_files": ("file", "files"),
    "restricted.source_instances": ("object", "objects"),
    "restricted.quarantine": ("quarantine row", "quarantine rows"),
    "restricted.batches": ("batch row", "batch rows"),
    "deid.instances": ("object", "objects"),
    "deid.series": ("series", "series"),
    "deid.studies": ("study", "studies"),
    "deid.deid_audit": ("audit row", "audit rows"),
    "deid.annotations": ("annotation", "annotations"),
    "deid.cases": ("case", "cases"),
}


@dataclass
class TableQuality:
    rules: int = 0
    failing: int = 0      # integrity expectations failing
    warnings: int = 0     # plausibility expectations that flagged rows
    last_checked: Any = None


@dataclass(frozen=True)
class QualityWarning:
    table: str
    count: int | None     # rows flagged; None when the rule could not be evaluated
    rule: str

    @property
    def text(self) -> str:
        if self.count is None:
            return f"warning: {self.rule} could not be checked"
        one, many = _ROW_NOUNS.get(self.table, ("row", "rows"))
        return f"warning: {self.count:,} {one if self.count == 1 else many} with {self.rule}"


@dataclass
class BatchQuality:
    team: str
    dataset: str
    batch_ref: str | None
    failing: int = 0
    warnings: list[QualityWarning] = field(default_factory=list)
    last_checked: Any = None

    @property
    def failed(self) -> bool:
        return self.failing > 0


@dataclass
class QualityState:
    tables: dict[str, TableQuality]
    batches: list[BatchQuality]   # failed first, then with warnings, then the rest; newest first within

    @property
    def failing(self) -> int:
        return sum(t.failing for t in self.tables.values())

    @property
    def warnings(self) -> int:
        return sum(t.warnings for t in self.tables.values())


def severity_of(row: dict) -> str:
    return row.get("severity") or "integrity"


def quality_state(rows: list[dict]) -> QualityState:
    def scope(r) -> tuple:
        return r["table"], r.get("team"), r.get("dataset"), r.get("batch_ref")

    latest_of: dict[tuple, Any] = {}
    for r in rows:
        if scope(r) not in latest_of or r["checked_at"] > latest_of[scope(r)]:
            latest_of[scope(r)] = r["checked_at"]
    tables: dict[str, TableQuality] = {}
    batches: dict[tuple, BatchQuality] = {}
    for r in rows:
        if r["checked_at"] != latest_of[scope(r)]:
            continue
        t = tables.setdefault(r["table"], TableQuality())
        t.rules += 1
        t.last_checked = r["checked_at"] if t.last_checked is None else max(t.last_checked, r["checked_at"])
        b = None
        if r.get("team") is not None:
            key = (r["team"], r["dataset"], r.get("batch_ref"))
            b = batches.setdefault(key, BatchQuality(*key))
            b.last_checked = r["checked_at"] if b.last_checked is None else max(b.last_checked, r["checked_at"])
        if r["success"]:
            continue
        if severity_of(r) == "plausibility":
            t.warnings += 1
            if b is not None:
                b.warnings.append(QualityWarning(r["table"], r["unexpected_count"],
                                          r.get("rule") or f"{r['expectation']}({r['column']})"))
        else:
            t.failing += 1
            if b is not None:
                b.failing += 1
    for b in batches.values():
        b.warnings.sort(key=lambda w: (w.table, w.rule))
    ordered = sorted(batches.values(), key=lambda b: (not b.failed, not b.warnings, _neg_time(b.last_checked),
                                                      b.team, b.dataset, b.batch_ref or ""))
    return QualityState(tables, ordered)


def _neg_time(t) -> float:
    return -t.timestamp() if t is not None else 0.0
