"""A DuckDB file of views over the exported Parquet, and read-only queries against it.

The database holds no data: each table is a VIEW over `read_parquet(...)` with absolute paths, so
the file is small, is rebuilt atomically (a temporary file renamed over the old one) and can be
opened read-only by any number of downstream processes at once. Rebuild it after every export.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import duckdb
import pyarrow as pa

from medlake.catalog.export import (
    CATALOG_VERSION,
    PARTITION_COLUMNS,
    PARTITIONED_TABLES,
    PROGRAM_TABLES,
    CatalogError,
    catalog_root,
)
from medlake.lake.delta import DeltaStore
from medlake.lake.tables import TableDef

DB_NAME = "medlake.duckdb"


def default_db_path(store: DeltaStore) -> Path:
    return catalog_root(store) / DB_NAME


def duckdb_type(t: pa.DataType) -> str:
    """The DuckDB type a documented column reads as."""
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "VARCHAR"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return duckdb_type(t.value_type) + "[]"
    simple = {pa.int32(): "INTEGER", pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN",
              pa.date32(): "DATE"}
    if t in simple:
        return simple[t]
    if pa.types.is_timestamp(t):
        return "TIMESTAMP WITH TIME ZONE" if t.tz else "TIMESTAMP"
    raise CatalogError(f"no DuckDB type for {t}")


def _lit(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _ident(s: str) -> str:
    return '"' + s.replace('"', '""') + '"'


def _empty_select(tdef: TableDef) -> str:
    cols = ", ".join(f"CAST(NULL AS {duckdb_type(c.type)}) AS {_ident(c.name)}" for c in tdef.columns)
    return f"SELECT {cols} WHERE false"


def view_sql(tdef: TableDef, root: Path) -> str:
    """CREATE VIEW for one exported table; columns in documented order whatever the file layout."""
    cols = ", ".join(_ident(c.name) for c in tdef.columns)
    if tdef.name in PARTITIONED_TABLES:
        table_dir = root / tdef.name
        if not any(table_dir.glob("team=*/dataset=*/*.parquet")):
            body = _empty_select(tdef)
        else:
            hive_types = ", ".join(f"{_lit(c)}: VARCHAR" for c in PARTITION_COLUMNS)
            body = (f"SELECT {cols} FROM read_parquet({_lit(str(table_dir) + '/**/*.parquet')}, "
                    f"hive_partitioning = true, hive_types = {{{hive_types}}}, union_by_name = true)")
    else:
        f = root / f"{tdef.name}.parquet"
        body = (f"SELECT {cols} FROM read_parquet({_lit(str(f))}, union_by_name = true)" if f.exists()
                else _empty_select(tdef))
    return f"CREATE VIEW {_ident(tdef.name)} AS {body}"


def build_duckdb(store: DeltaStore, db_path: str | Path | None = None) -> Path:
    """(Re)build the DuckDB file of views over the exported catalogue; returns its absolute path."""
    root = catalog_root(store)
    if not root.is_dir():
        raise CatalogError(f"nothing exported yet under {root}: run export_catalog first")
    db = Path(db_path).resolve() if db_path is not None else root / DB_NAME
    db.parent.mkdir(parents=True, exist_ok=True)
    tmp = db.parent / f".{db.name}.{uuid.uuid4().hex}.tmp"
    try:
        con = duckdb.connect(str(tmp))
        try:
            for tdef in list(PARTITIONED_TABLES.values()) + list(PROGRAM_TABLES.values()):
                con.execute(view_sql(tdef, root))
            con.execute("CREATE VIEW catalog_info AS SELECT "
                        f"{CATALOG_VERSION} AS catalog_version, {_lit(str(root))} AS catalog_root")
            con.execute("CHECKPOINT")
        finally:
            con.close()
        os.replace(tmp, db)
    finally:
        tmp.unlink(missing_ok=True)
        Path(str(tmp) + ".wal").unlink(missing_ok=True)
    return db


def query(db_path: str | Path, sql: str) -> pa.Table:
    """Run `sql` against the catalogue database, read-only; CatalogError when it cannot."""
    db = Path(db_path)
    if not db.is_file():
        raise CatalogError(f"the catalogue has not been built yet: {db} does not exist "
                           "(run export_catalog then build_duckdb)")
    try:
        con = duckdb.connect(str(db), read_only=True)
    except duckdb.Error as e:
        raise CatalogError(f"cannot open the catalogue {db}: {e}") from e
    try:
        rel = con.sql(sql)
        return pa.table({}) if rel is None else rel.to_arrow_table()
    except duckdb.Error as e:
        raise CatalogError(f"query failed against {db}: {e}") from e
    finally:
        con.close()
