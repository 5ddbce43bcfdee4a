"""The table API: every read and write of a lake table goes through DeltaStore, by its TableDef.

The definition owns the table's Arrow schema, partitioning and natural key, and the store enforces
them on every write (rows are conformed to the declared schema: one string type, declared column
order, not-null columns checked) and every read (results carry the declared types). Writes come in
four shapes:

- `append`: new rows only (logs, audits, snapshots).
- `replace`: the rows of one slice (a batch, a dataset, the whole table) become exactly the given
  rows; for slices that one writer owns, computed from other tables. A re-run replaces instead of
  duplicating, at a cost proportional to the slice.
- `rewrite`: a read-modify-write of one slice. The slice is read from a snapshot, changed by the
  caller's function, and committed against that snapshot: if another writer committed to the slice
  meanwhile, the commit is refused and the function runs again on the new snapshot, so the other
  writer's rows are never lost.
- `merge` (upsert on the natural key) and `delete` are rewrites.

delta-rs's own MERGE and DELETE are not used: in deltalake 1.6 they write string columns as Arrow
string_view, and a table whose files carry two string types fails every filtered read with
"no kernel matching input types (string, string_view)" (delta-io/delta-rs#4579). A DELETE would also
keep its predicate, values and all, in the commit log for good; a rewrite names only the slice.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from medlake.lake.tables import TableDef
from medlake.lake.zones import Lake, writing_to

# Concurrent writers of one table (two batches ingested in parallel, a purge beside a batch) can both
# try to commit the same log version; delta-rs refuses the loser, which tries again.
_COMMIT_ATTEMPTS = 8

Slice = Mapping[str, str]
Filter = Slice | pads.Expression | None


class TableSchemaError(ValueError):
    """Rows that do not fit a table's declared schema; the message names the table and the column."""


class CommitConflictError(RuntimeError):
    """A write kept losing to concurrent commits; the message names the table."""


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


def conform(t: TableDef, data: pa.Table | Sequence[Mapping]) -> pa.Table:
    """`data` with exactly the table's declared schema: columns in order, declared types, nullable
    columns the caller left out filled with nulls. Refuses unknown columns, values that do not cast
    and nulls in a not-null column, naming the table and the column."""
    if not isinstance(data, pa.Table):
        return _check_not_null(t, t.from_rows(list(data)))
    if data.schema.equals(t.schema):
        return _check_not_null(t, data)
    unknown = [c for c in data.column_names if c not in set(t.column_names)]
    if unknown:
        raise TableSchemaError(f"{t.zone}/{t.name} has no column {', '.join(unknown)}")
    arrays = []
    for f in t.schema:
        if f.name not in data.column_names:
            if not f.nullable:
                raise TableSchemaError(f"{t.zone}/{t.name}: column {f.name} is required")
            arrays.append(pa.nulls(data.num_rows, f.type))
            continue
        col = data.column(f.name)
        if col.type != f.type:
            try:
                col = col.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise TableSchemaError(f"{t.zone}/{t.name}: column {f.name} is {col.type}, "
                                       f"declared {f.type}: {e}") from e
        arrays.append(col)
    return _check_not_null(t, pa.Table.from_arrays(arrays, schema=t.schema))


def _check_not_null(t: TableDef, data: pa.Table) -> pa.Table:
    for f in t.schema:
        if not f.nullable and data.column(f.name).null_count:
            raise TableSchemaError(f"{t.zone}/{t.name}: column {f.name} may not be null "
                                   f"({data.column(f.name).null_count} rows)")
    return data


def _filter(where_: Filter) -> pads.Expression | None:
    if where_ is None or isinstance(where_, pads.Expression):
        return where_
    return matching(**where_) if where_ else None


class DeltaStore:
    """Tables of one lake, addressed by their TableDef."""

    def __init__(self, lake: Lake):
        self.lake = lake

    def _options(self, t: TableDef) -> dict[str, str] | None:
        return self.lake.options(t.zone) or None

    def uri(self, t: TableDef) -> str:
        return self.lake.uri(t.zone, t.name)

    def snapshot(self, t: TableDef) -> DeltaTable | None:
        """The table's current version, or None before its first write."""
        try:
            return DeltaTable(self.uri(t), storage_options=self._options(t))
        except TableNotFoundError:
            return None

    def exists(self, t: TableDef) -> bool:
        return self.snapshot(t) is not None

    def version(self, t: TableDef) -> int | None:
        s = self.snapshot(t)
        return None if s is None else s.version()

    def dataset(self, t: TableDef) -> pads.Dataset | None:
        """A pyarrow dataset over the current version (for scans too large to read whole)."""
        s = self.snapshot(t)
        return None if s is None else s.to_pyarrow_dataset()

    def read(self, t: TableDef, columns: Sequence[str] | None = None, where: Filter = None) -> pa.Table:
        """The table's rows (optionally projected and filtered), in the declared types; an empty table
        of the declared schema before the first write."""
        return _read(self.snapshot(t), t, columns, where)

    def count(self, t: TableDef, where: Filter = None) -> int:
        s = self.snapshot(t)
        return 0 if s is None else s.to_pyarrow_dataset().count_rows(filter=_filter(where))

    # --- writes ---------------------------------------------------------------------------------

    def append(self, t: TableDef, rows: pa.Table | Sequence[Mapping]) -> int:
        """Add rows; returns the table's new version."""
        with writing_to(t.zone):
            return self._append(t, conform(t, rows))

    def _append(self, t: TableDef, data: pa.Table) -> int:
        def attempt() -> int:
            s = self.snapshot(t)
            if s is None:
                return self._create(t, data)
            self._evolve(t, s)
            write_deltalake(s, data, mode="append")
            return s.version()

        return _with_commit_retries(t, attempt)

    def replace(self, t: TableDef, rows: pa.Table | Sequence[Mapping], slice: Slice) -> int:
        """The slice's rows become `rows` (every one of which lies in the slice), in one commit; `{}`
        is the whole table. Returns the new version."""
        data = conform(t, rows)
        _check_in_slice(t, data, slice)

        def attempt() -> int:
            s = self.snapshot(t)
            if s is None:
                return self._create(t, data)
            self._evolve(t, s)
            self._overwrite(s, data, slice)
            return s.version()

        with writing_to(t.zone):
            return _with_commit_retries(t, attempt)

    def rewrite(self, t: TableDef, slice: Slice, change: Callable[[pa.Table], pa.Table | Sequence[Mapping]]) -> int:
        """Read the slice, let `change` compute its new rows, commit them against the snapshot read.

        When another writer commits to the slice in between, the commit is refused and `change` runs
        again on the new snapshot: it must be a function of the rows it is given. Nothing is written
        when the rows come out unchanged. Returns the table's version after the call.
        """
        with writing_to(t.zone):
            return self._rewrite(t, slice, change)

    def _rewrite(self, t: TableDef, slice: Slice, change) -> int:
        for n in range(_COMMIT_ATTEMPTS):
            s = self.snapshot(t)
            try:
                current = _read(s, t, None, slice)
            except OSError:
                # The snapshot's files were vacuumed under us (a purge committed meanwhile).
                _backoff(n)
                continue
            new = conform(t, change(current))
            _check_in_slice(t, new, slice)
            if s is not None and _same_rows(t, new, current):
                return s.version()
            try:
                if s is None:
                    return self._create(t, new)
                self._evolve(t, s)
                self._overwrite(s, new, slice)
                return s.version()
            except CommitFailedError:
                _backoff(n)
        raise CommitConflictError(f"{t.zone}/{t.name}: gave up after {_COMMIT_ATTEMPTS} conflicting commits")

    def merge(self, t: TableDef, rows: pa.Table | Sequence[Mapping], slice: Slice, update: bool = True) -> int:
        """Insert rows, replacing those with the same natural key (with `update=False`, keeping them),
        within the slice, which holds every row given; a repeat writes nothing. Returns the table's
        version."""
        data = conform(t, rows)
        _check_in_slice(t, data, slice)

        def change(current: pa.Table) -> pa.Table:
            if update:
                return pa.concat_tables([_without_keys(t, current, data), data])
            return pa.concat_tables([current, _without_keys(t, data, current)])

        return self.rewrite(t, slice, change)

    def delete(self, t: TableDef, slice: Slice, doomed: pads.Expression) -> int:
        """Remove the slice's rows matching `doomed`; returns how many went. The commit names only the
        slice, never the values `doomed` tests."""
        removed = {"n": 0}

        def change(current: pa.Table) -> pa.Table:
            kept = current.filter(~doomed | doomed.is_null())
            removed["n"] = current.num_rows - kept.num_rows
            return kept

        in_slice = _filter(slice)
        # Counting first keeps a delete that matches nothing from reading the whole slice.
        if self.count(t, where=doomed if in_slice is None else in_slice & doomed):
            self.rewrite(t, slice, change)
        return removed["n"]

    def _create(self, t: TableDef, data: pa.Table) -> int:
        write_deltalake(self.uri(t), data, mode="append", partition_by=list(t.partition_by) or None,
                        storage_options=self._options(t))
        return self.version(t)  # type: ignore[return-value]

    def _overwrite(self, s: DeltaTable, data: pa.Table, slice: Slice) -> None:
        predicate = where(**slice) if slice else None
        write_deltalake(s, data, mode="overwrite", predicate=predicate)

    def _evolve(self, t: TableDef, s: DeltaTable) -> None:
        """Add the columns the definition declares and the table lacks (older rows read null)."""
        present = {f.name for f in s.schema().fields}
        if not set(t.column_names) <= present:
            write_deltalake(s, t.schema.empty_table(), mode="append", schema_mode="merge")


def _read(s: DeltaTable | None, t: TableDef, columns: Sequence[str] | None, where_: Filter) -> pa.Table:
    cols = list(columns) if columns else None
    if s is None:
        empty = t.schema.empty_table()
        return empty.select(cols) if cols else empty
    out = s.to_pyarrow_dataset().to_table(columns=cols, filter=_filter(where_))
    declared = t.schema if cols is None else pa.schema([t.schema.field(c) for c in cols])
    return out if out.schema.equals(declared) else conform_read(declared, out)


def conform_read(declared: pa.Schema, data: pa.Table) -> pa.Table:
    """A read in the declared types (a column added after older rows were written reads null)."""
    arrays = [data.column(f.name).cast(f.type) if f.name in data.column_names else pa.nulls(data.num_rows, f.type)
              for f in declared]
    return pa.Table.from_arrays(arrays, schema=declared)


def _check_in_slice(t: TableDef, data: pa.Table, slice: Slice) -> None:
    for column, value in slice.items():
        col = data.column(column)
        if data.num_rows and not pc.all(pc.equal(col, value)).as_py():
            raise TableSchemaError(f"{t.zone}/{t.name}: rows outside the slice being written ({column})")


def _same_rows(t: TableDef, a: pa.Table, b: pa.Table) -> bool:
    """The same rows, in whatever order (a false "different" only costs a commit)."""
    if a.num_rows != b.num_rows:
        return False
    order = [(k, "ascending") for k in t.keys]
    return a.equals(b) or (bool(order) and a.sort_by(order).equals(b.sort_by(order)))


def _without_keys(t: TableDef, current: pa.Table, new: pa.Table) -> pa.Table:
    """`current` without the rows whose natural key one of `new`'s rows has."""
    if not current.num_rows or not new.num_rows:
        return current
    keys = list(t.keys)
    index = pa.array(range(current.num_rows), pa.int64())
    hit = current.select(keys).append_column("_row", index).join(
        new.select(keys), keys=keys, join_type="left semi").column("_row")
    return current.filter(pc.invert(pc.is_in(index, value_set=hit.combine_chunks())))


def _backoff(n: int) -> None:
    time.sleep(0.05 * (2**n) * (1 + random.random()))


def _with_commit_retries(t: TableDef, attempt: Callable[[], int]) -> int:
    for n in range(_COMMIT_ATTEMPTS):
        try:
            return attempt()
        except CommitFailedError:
            _backoff(n)
    raise CommitConflictError(f"{t.zone}/{t.name}: gave up after {_COMMIT_ATTEMPTS} conflicting commits")
