"""Custom rules for what no great-expectations expectation expresses over a pandas batch.

A rule takes the pyarrow table and the suite kwargs and returns the row numbers that break it; the
runner turns that into an ExpectationOutcome exactly like a GX result. Types start with `medlake_`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def column_equals_sum(table: pa.Table, column: str, sum_of: list[str]) -> np.ndarray:
    """Rows where `column` != the sum of `sum_of` (a null anywhere counts as a break).

    batches: files_landed == files_catalogued + files_quarantined + files_duplicate. GX's
    expect_multicolumn_sum_to_equal only compares with a constant, and UnexpectedRowsExpectation
    needs a SQL datasource, so this one is ours."""
    total = table.column(sum_of[0])
    for c in sum_of[1:]:
        total = pc.add_checked(total, table.column(c))
    ok = pc.fill_null(pc.equal(table.column(column), total), False)
    return np.flatnonzero(~ok.to_numpy(zero_copy_only=False))


def sum_at_least(table: pa.Table, column_list: list[str], min_value: int) -> np.ndarray:
    """Rows where the sum of `columns` is below `min_value` (nulls count as 0).

    cases: instances + slides >= 1, i.e. every case has at least one de-identified image."""
    total = pc.fill_null(table.column(column_list[0]), 0)
    for c in column_list[1:]:
        total = pc.add_checked(total, pc.fill_null(table.column(c), 0))
    ok = pc.fill_null(pc.greater_equal(total, min_value), False)
    return np.flatnonzero(~ok.to_numpy(zero_copy_only=False))


RULES: dict[str, Callable[..., np.ndarray]] = {
    "medlake_column_equals_sum": column_equals_sum,
    "medlake_sum_at_least": sum_at_least,
}
