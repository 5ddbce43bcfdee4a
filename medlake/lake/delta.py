"""Delta table reads and idempotent writes.

Two write shapes cover every table: `replace_where` rewrites one slice (a batch, a team) so that a
re-run replaces instead of duplicating, at a cost proportional to the slice rather than the table;
`upsert` merges on natural keys for small tables whose rows change in place.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.dataset as pads
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from medlake.lake.zones import Lake

# Two runs writing the same table at once (two batches ingested in parallel) can both try to commit
# the same log version; delta-rs refuses the loser, which simply tries again.
_COMMIT_ATTEMPTS = 8


def sql_literal(value: str) -> str:
    """A string as a SQL literal for a Delta predicate."""
    return "'" + str(value).replace("'", "''") + "'"


def where(**equals: str) -> str:
    return " AND ".join(f"{k} = {sql_literal(v)}" for k, v in equals.items())


def matching(**equals: str) -> pads.Expression:
    """The same slice as `where`, as a filter for reading: rows whose columns equal the values."""
    expr = None
    for k, v in equals.items():
        expr = pads.field(k) == v if expr is None else expr & (pads.field(k) == v)
    return expr


class DeltaStore:
    """Tables of one lake, addressed as (zone, name)."""

    def __init__(self, lake: Lake):
        self.lake = lake

    def uri(self, zone: str, name: str) -> str:
        return self.lake.uri(zone, name)

    def table(self, zone: str, name: str) -> DeltaTable | None:
        try:
            return DeltaTable(self.uri(zone, name), storage_options=self.lake.storage_options or None)
        except TableNotFoundError:
            return None

    def exists(self, zone: str, name: str) -> bool:
        return self.table(zone, name) is not None

    def version(self, zone: str, name: str) -> int | None:
        t = self.table(zone, name)
        return None if t is None else t.version()

    def dataset(self, zone: str, name: str) -> pads.Dataset | None:
        t = self.table(zone, name)
        return None if t is None else t.to_pyarrow_dataset()

    def read(
        self,
        zone: str,
        name: str,
        columns: Sequence[str] | None = None,
        filter: pads.Expression | None = None,
        schema: pa.Schema | None = None,
    ) -> pa.Table:
        """The table's rows (optionally projected and filtered); empty with `schema` when absent."""
        ds = self.dataset(zone, name)
        if ds is None:
            if schema is None:
                raise FileNotFoundError(f"Delta table {zone}/{name} does not exist yet")
            empty = schema.empty_table()
            return empty.select(list(columns)) if columns else empty
        return ds.to_table(columns=list(columns) if columns else None, filter=filter)

    def replace_where(
        self,
        zone: str,
        name: str,
        data: pa.Table,
        predicate: str,
        partition_by: Sequence[str] | None = None,
    ) -> int:
        """Replace the rows matching `predicate` with `data` in one commit; returns the new version."""
        uri = self.uri(zone, name)
        opts = self.lake.storage_options or None

        def attempt() -> None:
            if self.table(zone, name) is None:
                write_deltalake(uri, data, mode="append", partition_by=list(partition_by or []) or None,
                                storage_options=opts)
            else:
                write_deltalake(uri, data, mode="overwrite", predicate=predicate, storage_options=opts)

        _with_commit_retries(attempt)
        return self.version(zone, name)  # type: ignore[return-value]

    def append(self, zone: str, name: str, data: pa.Table, partition_by: Sequence[str] | None = None,
               add_columns: bool = False) -> int:
        """Append rows; with `add_columns`, columns the table lacks are added to it (older rows: null)."""
        uri = self.uri(zone, name)
        opts = self.lake.storage_options or None
        _with_commit_retries(lambda: write_deltalake(
            uri, data, mode="append", partition_by=list(partition_by or []) or None, storage_options=opts,
            schema_mode="merge" if add_columns else None))
        return self.version(zone, name)  # type: ignore[return-value]

    def upsert(
        self,
        zone: str,
        name: str,
        data: pa.Table,
        keys: Sequence[str],
        partition_by: Sequence[str] | None = None,
    ) -> int:
        """Insert new rows and update existing ones matched on `keys`; a repeat adds nothing."""
        uri = self.uri(zone, name)
        opts = self.lake.storage_options or None
        on = " AND ".join(f"t.{k} = s.{k}" for k in keys)

        def attempt() -> None:
            t = self.table(zone, name)
            if t is None:
                write_deltalake(uri, data, mode="append", partition_by=list(partition_by or []) or None,
                                storage_options=opts)
                return
            (
                t.merge(data, predicate=on, source_alias="s", target_alias="t")
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )

        _with_commit_retries(attempt)
        return self.version(zone, name)  # type: ignore[return-value]

    def delete(self, zone: str, name: str, predicate: str) -> None:
        t = self.table(zone, name)
        if t is not None:
            _with_commit_retries(lambda: t.delete(predicate))


def _with_commit_retries(attempt) -> None:
    for n in range(_COMMIT_ATTEMPTS):
        try:
            attempt()
            return
        except CommitFailedError as e:
            if n == _COMMIT_ATTEMPTS - 1:
                raise RuntimeError(f"gave up after {_COMMIT_ATTEMPTS} conflicting commits: {e}") from e
            time.sleep(0.05 * (2**n) * (1 + random.random()))

