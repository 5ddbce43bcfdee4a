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


RULES: dict[str, Callable[..., np.ndarray]] = {
    "medlake_column_equals_sum": column_equals_sum,
}
