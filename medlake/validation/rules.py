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


def keys_repeated_in(table: pa.Table, universe: pa.Table, columns: list[str]) -> np.ndarray:
    """Rows of `table` whose key (`columns`) occurs more than once in `universe`, which holds the key
    columns of every row the key must be unique over, `table`'s own rows included.

    A batch is validated on its own rows, but its keys must be unique across the dataset: this is
    the uniqueness expectation evaluated that way, in one group-by and one join on the keys only.
    A key with a null part matches nothing (the not-null expectations report those rows)."""
    if table.num_rows == 0:
        return np.empty(0, dtype=np.int64)
    counts = universe.select(columns).group_by(columns).aggregate([(columns[0], "count", pc.CountOptions("all"))])
    repeated = counts.filter(pc.greater(counts.column(f"{columns[0]}_count"), 1)).select(columns)
    if repeated.num_rows == 0:
        return np.empty(0, dtype=np.int64)
    rows = table.select(columns).append_column("__row", pa.array(np.arange(table.num_rows)))
    hit = rows.join(repeated, keys=columns, join_type="inner").column("__row").to_numpy()
    return np.sort(hit)


RULES: dict[str, Callable[..., np.ndarray]] = {
    "medlake_column_equals_sum": column_equals_sum,
    "medlake_sum_at_least": sum_at_least,
}
