"""Scan tables: Delta (data batch by batch, and every file of the transaction log) and Parquet
(data, and the footer: column statistics and key-value metadata)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from medlake.checker.sink import Sink

BATCH_ROWS = 65_536


def _scannable(t: pa.DataType) -> bool:
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return True
    if pa.types.is_dictionary(t):
        return _scannable(t.value_type)
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        return True
    if pa.types.is_integer(t):           # chart numbers read by pandas become integers
        return True
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _scannable(t.value_type)
    if pa.types.is_struct(t):
        return any(_scannable(t.field(i).type) for i in range(t.num_fields))
    if pa.types.is_map(t):
        return _scannable(t.key_type) or _scannable(t.item_type)
    return False


def _as_text(arr: pa.Array) -> pa.Array:
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_timestamp(t):
        return pc.strftime(arr, format="%Y-%m-%d %H:%M:%S")
    if pa.types.is_date(t) or pa.types.is_integer(t):
        return pc.cast(arr, pa.string())
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return pc.cast(arr, pa.large_string(), safe=False)
    return arr


class ColumnScanner:
    """Scans the columns of successive record batches; each distinct value is looked up once per
    batch, and a finding names the column and the row (counted over the whole table)."""

    def __init__(self, sink: Sink, max_rows_per_column: int):
        self.sink = sink
        self.max_rows = max_rows_per_column
        self.reported: dict[tuple[str, str], int] = {}
        self.offset = 0
        self._names: dict[str, str] = {}

    def _name(self, name: str) -> str:
        shown = self._names.get(name)
        if shown is None:
            shown = self.sink.safe(name, "column")
            if shown != name:
                self.sink.check(f"column name {shown}", name)
            self._names[name] = shown
        return shown

    def batch(self, batch: pa.RecordBatch) -> None:
        for i, field in enumerate(batch.schema):
            if _scannable(field.type):
                self._array(self._name(field.name), batch.column(i), row_of=None)
        self.offset += batch.num_rows

    def _report(self, loc_col: str, rows: list[int], kinds: list[str], suffix: str = "") -> None:
        for k in kinds:
            key = (loc_col, k)
            n = self.reported.get(key, 0)
            for r in rows:
                if n < self.max_rows:
                    self.sink.add(f"{loc_col}[{self.offset + r}]{suffix}", k)
                elif n == self.max_rows:
                    self.sink.add(f"{loc_col}[more rows not listed]", k)
                n += 1
            self.reported[key] = n

    def _array(self, col: str, arr: pa.Array, row_of) -> None:
        """row_of maps positions of `arr` to batch rows (for list children); None is identity."""
        t = arr.type
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks()
        if pa.types.is_struct(t):
            for j in range(t.num_fields):
                f = t.field(j)
                if _scannable(f.type):
                    child = arr.field(j)
                    self._array(f"{col}.{self.sink.safe(f.name, 'field')}", child, row_of)
            return
        if pa.types.is_map(t):
            parents = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
            rows = parents if row_of is None else row_of[parents]
            self._array(f"{col}.key", arr.keys, rows)
            self._array(f"{col}.value", arr.items, rows)
            return
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            parents = pc.list_parent_indices(arr).to_numpy(zero_copy_only=False)
            rows = parents if row_of is None else row_of[parents]
            self._array(f"{col}[]", pc.list_flatten(arr), rows)
            return
        text = _as_text(arr)
        if len(text) == 0 or text.null_count == len(text):
            return
        enc = pc.dictionary_encode(text).combine_chunks() if isinstance(text, pa.ChunkedArray) \
            else pc.dictionary_encode(text)
        values = enc.dictionary.to_pylist()
        hits = {}
        for code in self.sink.index.suspects([v or "" for v in values]):
            kinds = self.sink.index.find(values[code])
            if kinds:
                hits[code] = kinds
        if not hits:
            return
        idx = enc.indices.to_numpy(zero_copy_only=False)
        for code, kinds in hits.items():
            pos = [int(p) for p in (idx == code).nonzero()[0]]
            rows = pos if row_of is None else sorted({int(row_of[p]) for p in pos})
            self._report(col, rows, kinds)


def _walk_json(sink: Sink, loc: str, obj, sep: str = ".") -> None:
    """Every key and scalar of a parsed JSON document; a key holding an identifier is a placeholder."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            ks = str(k)
            shown = sink.safe(ks, "key")
            if shown != ks:
                sink.check(f"{loc}{sep}{shown}", ks)
            _walk_json(sink, f"{loc}{sep}{shown}" if loc else shown, v, sep)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _walk_json(sink, f"{loc}[{i}]", v, sep)
    elif obj is None or isinstance(obj, bool):
        return
    else:
        if isinstance(obj, str) and obj[:1] in "{[":
            try:                       # Delta keeps per-file statistics as a JSON string
                _walk_json(sink, loc, json.loads(obj), sep)
                return
            except ValueError:
                pass
        sink.check(loc, obj)


def _log_location(action_loc: str) -> str:
    # "add.stats.minValues.patient_id" -> "stats.minValues.patient_id" (the documented form)
    for action in ("add.", "remove."):
        if action_loc.startswith(action + "stats"):
            return action_loc[len(action):]
    return action_loc


class _LogSink:
    """Routes the JSON walker's findings under "delta_log:<file>:<path>"."""

    def __init__(self, sink: Sink, name: str):
        self.sink, self.name, self.index = sink, name, sink.index

    def safe(self, seg, what="key"):
        return self.sink.safe(seg, what)

    def check(self, loc, text):
        return self.sink.check(f"delta_log:{self.name}:{_log_location(loc)}", text)

    def add(self, loc, kind):
        self.sink.add(f"delta_log:{self.name}:{_log_location(loc)}", kind)


@dataclass(frozen=True)
class DeltaScope:
    """The part of a Delta table one batch wrote: the rows `rows` selects and the commits `commits`.

    A batch's check that read the whole table and its whole log grew with the lake, so a lake of
    n batches cost n^2 to check; everything outside the scope was checked by its own batch.
    """

    rows: pads.Expression
    commits: tuple[int, ...]


def _log_fs(dt):
    from pyarrow.fs import LocalFileSystem, SubTreeFileSystem

    uri = dt.table_uri
    if "://" not in uri or uri.startswith("file://"):
        root = uri[7:] if uri.startswith("file://") else uri
        return SubTreeFileSystem(root.rstrip("/"), LocalFileSystem())
    return dt.to_pyarrow_dataset().filesystem


def _iter_log_files(dt, commits: tuple[int, ...] | None = None) -> Iterator[tuple[str, bytes]]:
    """(name, bytes) of every file under _delta_log (or of the given commits only), through the
    table's own filesystem (local or object store alike)."""
    from pyarrow.fs import FileSelector, FileType

    fs = _log_fs(dt)
    if commits is not None:
        for v in sorted(set(commits)):
            name = f"{v:020d}.json"
            if fs.get_file_info(f"_delta_log/{name}").type == FileType.File:
                with fs.open_input_stream(f"_delta_log/{name}") as f:
                    yield name, f.read()
        return
    infos = fs.get_file_info(FileSelector("_delta_log", recursive=True, allow_not_found=True))
    for info in sorted(infos, key=lambda i: i.path):
        if info.type != FileType.File:
            continue
        with fs.open_input_stream(info.path) as f:
            yield info.path.split("_delta_log/", 1)[-1], f.read()


def scan_delta_into(uri: str, sink: Sink, storage_options: dict | None, max_rows: int,
                    scope: DeltaScope | None = None) -> None:
    from deltalake import DeltaTable

    dt = DeltaTable(uri, storage_options=storage_options or None)
    cols = ColumnScanner(sink, max_rows)
    ds = dt.to_pyarrow_dataset()
    for batch in ds.to_batches(batch_size=BATCH_ROWS, filter=scope.rows if scope else None):
        cols.batch(batch)
    for name, data in _iter_log_files(dt, scope.commits if scope else None):
        log = _LogSink(sink, name)
        if name.endswith(".parquet"):            # checkpoints: the same actions, columnar
            try:
                rows = pq.read_table(pa.BufferReader(data)).to_pylist()
            except Exception:
                sink.check_bytes(f"delta_log:{name}", data)
                continue
            for i, row in enumerate(rows):
                _walk_json(log, f"[{i}]", {k: v for k, v in row.items() if v is not None})
            continue
        text = data.decode("utf-8", errors="replace")
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                sink.check(f"delta_log:{name}:line {lineno}", line)
                continue
            _walk_json(log, "", obj)
    if scope is not None:
        return
    # Files still on disk but no longer in the snapshot (removed, not yet vacuumed) are readable
    # by time travel: scan them too (local tables only).
    if "://" not in dt.table_uri or dt.table_uri.startswith("file://"):
        root = dt.table_uri[7:] if dt.table_uri.startswith("file://") else dt.table_uri
        live = {os.path.normpath(u[7:] if u.startswith("file://") else u) for u in dt.file_uris()}
        for d, dirs, files in os.walk(root):
            dirs[:] = [x for x in dirs if x != "_delta_log"]
            for fn in sorted(files):
                p = os.path.normpath(os.path.join(d, fn))
                if fn.endswith(".parquet") and p not in live:
                    rel = os.path.relpath(p, root)
                    scan_parquet_into(p, sink, max_rows, prefix=f"unreferenced:{sink.safe(rel, 'file')}:")


def scan_parquet_into(path: str, sink: Sink, max_rows: int, prefix: str = "") -> None:
    """A Parquet file: its data, its footer statistics and its key-value metadata."""
    pf = pq.ParquetFile(path)
    md = pf.metadata
    names = {}
    for j in range(md.num_columns):
        p = md.schema.column(j).path
        shown = sink.safe(p, "column")
        if shown != p:
            sink.check(f"{prefix}column name {shown}", p)
        names[j] = shown
    for rg in range(md.num_row_groups):
        g = md.row_group(rg)
        for j in range(g.num_columns):
            st = g.column(j).statistics
            if st is None or not st.has_min_max:
                continue
            for which in ("min", "max"):
                try:
                    v = getattr(st, which)
                except Exception:
                    continue
                if isinstance(v, bytes):
                    sink.check_bytes(f"{prefix}parquet_stats:row_group[{rg}].{names[j]}.{which}", v)
                elif v is not None and not isinstance(v, (float, bool)):
                    sink.check(f"{prefix}parquet_stats:row_group[{rg}].{names[j]}.{which}", v)
    kv = md.metadata or {}
    for k, v in kv.items():
        ks = k.decode("utf-8", errors="replace")
        shown = sink.safe(ks, "key")
        if shown != ks:
            sink.check(f"{prefix}parquet_meta:{shown}", ks)
        vs = v.decode("utf-8", errors="replace")
        try:
            _walk_json(_Prefixed(sink, f"{prefix}parquet_meta:{shown}"), "", json.loads(vs))
        except ValueError:
            sink.check(f"{prefix}parquet_meta:{shown}", vs)
    if prefix:
        cols = _PrefixedColumns(sink, max_rows, prefix)
    else:
        cols = ColumnScanner(sink, max_rows)
    for batch in pf.iter_batches(batch_size=BATCH_ROWS):
        cols.batch(batch)


class _Prefixed:
    def __init__(self, sink: Sink, prefix: str):
        self.sink, self.prefix, self.index = sink, prefix, sink.index

    def safe(self, seg, what="key"):
        return self.sink.safe(seg, what)

    def check(self, loc, text):
        return self.sink.check(f"{self.prefix}{loc}" if loc.startswith("[") or not loc
                               else f"{self.prefix}.{loc}", text)

    def add(self, loc, kind):
        self.sink.add(f"{self.prefix}.{loc}", kind)


class _PrefixedColumns(ColumnScanner):
    def __init__(self, sink: Sink, max_rows: int, prefix: str):
        super().__init__(sink, max_rows)
        self.prefix = prefix

    def _name(self, name: str) -> str:
        return self.prefix + super()._name(name)


def scan_parquet_dataset_into(path: str, sink: Sink, max_rows: int) -> None:
    """A folder of Parquet files (not Delta): each file, footer and data."""
    if os.path.isfile(path):
        scan_parquet_into(path, sink, max_rows)
        return
    for d, dirs, files in os.walk(path):
        dirs.sort()
        for fn in sorted(files):
            if fn.endswith(".parquet"):
                p = os.path.join(d, fn)
                rel = os.path.relpath(p, path)
                scan_parquet_into(p, sink, max_rows, prefix=f"{sink.safe(rel, 'file')}:")


def is_delta(path: str) -> bool:
    return os.path.isdir(os.path.join(path, "_delta_log"))

