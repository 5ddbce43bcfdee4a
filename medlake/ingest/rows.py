"""Row accumulation that stays columnar, so a 100,000-file batch fits comfortably in memory."""

from __future__ import annotations

import pyarrow as pa


class RowBuffer:
    """Collect dict rows into Arrow record batches of `chunk` rows; rows can be dropped by index later."""

    def __init__(self, schema: pa.Schema, chunk: int = 4096):
        self.schema = schema
        self.chunk = chunk
        self._pending: list[dict] = []
        self._batches: list[pa.RecordBatch] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, row: dict) -> int:
        """Add a row; returns its index."""
        self._pending.append(row)
        self._count += 1
        if len(self._pending) >= self.chunk:
            self._flush()
        return self._count - 1

    def _flush(self) -> None:
        if self._pending:
            self._batches.append(pa.RecordBatch.from_pylist(self._pending, schema=self.schema))
            self._pending = []

    def to_table(self, drop: set[int] | None = None) -> pa.Table:
        self._flush()
        table = pa.Table.from_batches(self._batches, schema=self.schema)
        if drop:
            keep = pa.array([i not in drop for i in range(table.num_rows)])
            table = table.filter(keep)
        return table


