"""What a validation returns: per-expectation counts and identifier-free example keys."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ExpectationOutcome:
    expectation: str              # GX expectation type (or medlake_* custom rule type)
    column: str | None            # the column, or "a,b,c" for multi-column expectations
    success: bool
    unexpected_count: int | None  # None when the expectation could not be evaluated (see error)
    unexpected_percent: float | None
    # Up to 5 failing rows: natural-key tuples of key columns that carry no identifier (deid and
    # program tables) or ("row", n) row numbers (restricted tables). Never a value that failed a check.
    example_keys: list[tuple] = field(default_factory=list)
    error: str | None = None      # exception type when GX could not evaluate it (e.g. missing column)
    severity: str = "integrity"   # the suite's kind for it: integrity holds the batch, plausibility warns
    rule: str = ""                # the expectation in words (medlake.validation.rule_text), no data in it

    @property
    def name(self) -> str:
        return f"{self.expectation}({self.column})" if self.column else self.expectation


@dataclass(frozen=True)
class ValidationOutcome:
    table_id: str
    success: bool
    row_count: int
    results: list[ExpectationOutcome]
    seconds: float = 0.0

    @property
    def failed(self) -> list[ExpectationOutcome]:
        return [r for r in self.results if not r.success]

    @property
    def integrity_failures(self) -> list[ExpectationOutcome]:
        """What holds the batch: keys, keyed ids, references, accounting, identifiers."""
        return [r for r in self.failed if r.severity == "integrity"]

    @property
    def warnings(self) -> list[ExpectationOutcome]:
        """Plausibility expectations that flagged rows: reported, never holding the batch."""
        return [r for r in self.failed if r.severity == "plausibility"]

    @property
    def holds_batch(self) -> bool:
        return bool(self.integrity_failures)

    def failing(self, expectation: str, column: str | None = None) -> bool:
        """True when the named expectation (optionally on `column`) failed."""
        return any(r.expectation == expectation and (column is None or r.column == column) for r in self.failed)
