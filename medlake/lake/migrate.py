"""Bring a lake written by an older medlake to the declared table schemas.

Lakes written before the table API owned schemas can hold files that delta-rs's MERGE and DELETE
wrote with Arrow string_view columns; every filtered read of such a table fails. Each such table is
rewritten once, whole, in its declared types, and a marker in the restricted zone records that the
lake is current, so later runs check nothing but the marker.
"""

from __future__ import annotations

import json
import threading

import pyarrow as pa
from deltalake import write_deltalake
from deltalake.exceptions import CommitFailedError

from medlake.lake.delta import DeltaStore, conform_read
from medlake.lake.tables import TableDef, every_table

LAKE_FORMAT = 2
_MARKER = "restricted/_medlake_format.json"
_current: set[str] = set()
_guard = threading.Lock()


def ensure_current(store: DeltaStore) -> list[str]:
    """Rewrite every table whose files drifted from its declared types; returns those rewritten.
    Cheap once a process has seen the lake current."""
    root = store.lake.root
    if root in _current:
        return []
    with _guard:
        if root in _current:
            return []
        files = store.lake.objects()
        if _marked(files):
            _current.add(root)
            return []
        rewritten = [f"{t.zone}/{t.name}" for t in every_table() if normalise(store, t)]
        files.write_bytes(_MARKER, json.dumps({"lake_format": LAKE_FORMAT}).encode() + b"\n")
        _current.add(root)
        return rewritten


def _marked(files) -> bool:
    try:
        return json.loads(files.read_bytes(_MARKER)).get("lake_format", 0) >= LAKE_FORMAT
    except (FileNotFoundError, ValueError):
        return False


def normalise(store: DeltaStore, t: TableDef) -> bool:
    """Rewrite the table whole in its declared types if any of its files holds a view type."""
    for _ in range(8):
        s = store.snapshot(t)
        if s is None:
            return False
        ds = s.to_pyarrow_dataset()
        if not any(_has_view_type(f.physical_schema) for f in ds.get_fragments()):
            return False
        # Unfiltered scans cast each file to the table's schema; only filters trip over view types.
        data = ds.to_table()
        declared = pa.schema([t.schema.field(n) if n in t.column_names else data.schema.field(n)
                              for n in data.column_names])
        try:
            write_deltalake(s, conform_read(declared, data), mode="overwrite")
            return True
        except CommitFailedError:
            continue
    raise RuntimeError(f"{t.zone}/{t.name}: could not rewrite it in its declared types (concurrent writers)")


def _has_view_type(schema: pa.Schema) -> bool:
    return any(_is_view(f.type) for f in schema)


def _is_view(t: pa.DataType) -> bool:
    if pa.types.is_string_view(t) or pa.types.is_binary_view(t):
        return True
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return _is_view(t.value_type)
    if pa.types.is_struct(t):
        return any(_is_view(t.field(i).type) for i in range(t.num_fields))
    return False
