"""Export the de-identified tables (and the programme figures) as Parquet in the catalog zone.

Layout under `<lake>/catalog/`:

* `<table>/team=<t>/dataset=<d>/part-<i>.parquet` for the de-identified tables (hive layout);
* `<table>.parquet` for the small programme tables.

Every export rewrites what it exports: a partition present in the source replaces the catalogue's
(pyarrow's `delete_matching`), and a partition that has left the source (a withdrawn dataset, a team
removed) is deleted, so the catalogue is always a copy of the source as of the export. Only the
documented columns (the TableDefs) are written, in their documented order and types.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from medlake.lake.delta import DeltaStore
from medlake.lake.tables import (
    ANNOTATIONS,
    CASES,
    CONSENT_SUMMARY,
    INSTANCES,
    PROGRESS_BY_DATASET,
    PROGRESS_BY_TEAM,
    SERIES,
    STUDIES,
    TableDef,
)

# Bumped (with a note in docs/catalog.md) whenever a column is renamed or removed; adding columns
# does not bump it.
CATALOG_VERSION = 1

# The restricted zone's identifier columns: none of them may ever reach the catalogue.
RESTRICTED_IDENTIFIER_COLUMNS = ("patient_id", "patient_name", "patient_birth_date", "accession_number", "path")

PARTITION_COLUMNS = ("team", "dataset")
PARTITIONED_TABLES: dict[str, TableDef] = {t.name: t for t in (INSTANCES, SERIES, STUDIES, CASES, ANNOTATIONS)}
PROGRAM_TABLES: dict[str, TableDef] = {t.name: t for t in (PROGRESS_BY_DATASET, PROGRESS_BY_TEAM, CONSENT_SUMMARY)}

_MAX_ROWS_PER_FILE = 4_000_000
_ROWS_PER_GROUP = 256 * 1024


class CatalogError(RuntimeError):
    """The catalogue cannot be exported, built or queried; the message says why."""


def catalog_root(store: DeltaStore) -> Path:
    """`<lake>/catalog` as an absolute local path: the lake's own folder, or for a remote lake this
    machine's copy, which the catalogue asset uploads (ObjectStore.sync_up) once it is built."""
    return store.lake.objects().path("catalog").resolve()


def check_no_identifiers(table: str, names: Iterable[str]) -> None:
    """Refuse a table carrying one of the restricted zone's identifier columns."""
    found = sorted(set(names) & set(RESTRICTED_IDENTIFIER_COLUMNS))
    if found:
        raise CatalogError(
            f"refusing to export {table}: it carries restricted identifier column(s) {', '.join(found)}; "
            "only pseudonymous de-identified tables may enter the catalogue")


def _projection(tdef: TableDef, source: pa.Schema) -> dict[str, pc.Expression]:
    missing = [c.name for c in tdef.columns if c.name not in source.names]
    if missing:
        raise CatalogError(f"cannot export {tdef.name}: the source lacks documented column(s) {', '.join(missing)}")
    return {c.name: pc.field(c.name).cast(c.type) for c in tdef.columns}


def _partition_dirs(table_dir: Path) -> set[Path]:
    if not table_dir.is_dir():
        return set()
    return {d for t in table_dir.glob("team=*") if t.is_dir() for d in t.glob("dataset=*") if d.is_dir()}


def export_partitioned(store: DeltaStore, tdef: TableDef) -> int:
    """Write one de-identified table as team/dataset partitions; returns the rows written."""
    table_dir = catalog_root(store) / tdef.name
    source = store.dataset(tdef)
    written_dirs: set[Path] = set()
    rows = 0
    if source is not None:
        check_no_identifiers(f"{tdef.zone}/{tdef.name}", source.schema.names)
        scanner = source.scanner(columns=_projection(tdef, source.schema))

        def visit(f) -> None:
            nonlocal rows
            written_dirs.add(Path(f.path).resolve().parent)
            rows += f.metadata.num_rows if f.metadata is not None else 0

        pads.write_dataset(
            scanner,
            table_dir,
            format="parquet",
            partitioning=pads.partitioning(pa.schema([tdef.schema.field(c) for c in PARTITION_COLUMNS]),
                                           flavor="hive"),
            basename_template="part-{i}.parquet",
            existing_data_behavior="delete_matching",
            max_partitions=100_000,
            max_rows_per_file=_MAX_ROWS_PER_FILE,
            max_rows_per_group=_ROWS_PER_GROUP,
            min_rows_per_group=min(_ROWS_PER_GROUP, 64 * 1024),
            file_visitor=visit,
        )
    # Partitions no longer in the source (a withdrawn dataset, a removed team) leave the catalogue.
    for stale in _partition_dirs(table_dir) - written_dirs:
        shutil.rmtree(stale)
    if table_dir.is_dir():
        for team_dir in table_dir.glob("team=*"):
            if team_dir.is_dir() and not any(team_dir.iterdir()):
                team_dir.rmdir()
    table_dir.mkdir(parents=True, exist_ok=True)
    return rows


def export_single(store: DeltaStore, tdef: TableDef) -> int:
    """Write one small table as `<catalog>/<table>.parquet` (replaced atomically); returns its rows."""
    root = catalog_root(store)
    root.mkdir(parents=True, exist_ok=True)
    source = store.dataset(tdef)
    if source is None:
        data = tdef.schema.empty_table()
    else:
        check_no_identifiers(f"{tdef.zone}/{tdef.name}", source.schema.names)
        data = source.to_table(columns=_projection(tdef, source.schema))
    data = data.cast(tdef.schema)
    target = root / f"{tdef.name}.parquet"
    tmp = root / f".{tdef.name}.{uuid.uuid4().hex}.parquet.tmp"
    try:
        pq.write_table(data, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return data.num_rows


def export_catalog(
    store: DeltaStore,
    tables: Iterable[str] = ("instances", "series", "studies", "cases", "annotations"),
    program_tables: Iterable[str] = tuple(PROGRAM_TABLES),
) -> dict[str, int]:
    """Export the de-identified `tables` (partitioned) and the programme tables (single files).

    Returns rows written per table. A table absent from the lake exports as empty (its partitions
    are removed). Raises CatalogError for an unknown table or one carrying an identifier column;
    the identifier check runs on every table before anything is written.
    """
    tables, program_tables = list(tables), list(program_tables)
    unknown = [t for t in tables if t not in PARTITIONED_TABLES] + [t for t in program_tables if t not in PROGRAM_TABLES]
    if unknown:
        raise CatalogError(f"unknown catalogue table(s) {', '.join(unknown)}; exportable: "
                           f"{', '.join(list(PARTITIONED_TABLES) + list(PROGRAM_TABLES))}")
    defs = [PARTITIONED_TABLES[t] for t in tables] + [PROGRAM_TABLES[t] for t in program_tables]
    for tdef in defs:  # refuse before writing anything
        ds = store.dataset(tdef)
        if ds is not None:
            check_no_identifiers(f"{tdef.zone}/{tdef.name}", ds.schema.names)
    counts: dict[str, int] = {}
    for name in tables:
        counts[name] = export_partitioned(store, PARTITIONED_TABLES[name])
    for name in program_tables:
        counts[name] = export_single(store, PROGRAM_TABLES[name])
    return counts
