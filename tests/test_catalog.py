"""The analysis catalogue: Parquet export, DuckDB views, read-only queries, documented schema."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import textwrap

import pyarrow as pa
import pytest

from conftest import REPO
from medlake.catalog import (
    PARTITIONED_TABLES,
    PROGRAM_TABLES,
    CatalogError,
    build_duckdb,
    catalog_root,
    default_db_path,
    export_catalog,
    query,
)
from medlake.catalog.docs import render
from medlake.lake import DeltaStore, Lake
from medlake.lake.tables import CASES, INSTANCES, PROGRESS_BY_TEAM, TableDef

# (team, dataset, cases)
LAYOUT = [("ntu", "ccta", 3), ("ntu", "ffr", 2), ("tmu", "lung-ct", 4)]


def _value(tdef: TableDef, col, i: int, team: str, dataset: str):
    if col.name == "team":
        return team
    if col.name == "dataset":
        return dataset
    t = col.type
    if pa.types.is_string(t):
        return f"{col.name}-{dataset}-{i}"
    if pa.types.is_list(t):
        return [f"{col.name}-{i}"]
    if pa.types.is_boolean(t):
        return i % 2 == 0
    if pa.types.is_integer(t):
        return i
    if pa.types.is_floating(t):
        return i / 2
    if pa.types.is_date(t):
        return dt.date(2019, 1, 1) + dt.timedelta(days=i)
    if pa.types.is_timestamp(t):
        return dt.datetime(2019, 1, 1, tzinfo=dt.timezone.utc)
    raise AssertionError(t)


def rows_of(tdef: TableDef, layout=LAYOUT, per_case: int = 1) -> pa.Table:
    rows = [{c.name: _value(tdef, c, i, team, dataset) for c in tdef.columns}
            for team, dataset, n in layout for i in range(n * per_case)]
    return tdef.from_rows(rows)


def write(store: DeltaStore, tdef: TableDef, data: pa.Table) -> None:
    store.replace(tdef, data, {})


@pytest.fixture
def store(tmp_path) -> DeltaStore:
    s = DeltaStore(Lake.from_root(str(tmp_path / "lake")))
    write(s, CASES, rows_of(CASES))
    write(s, INSTANCES, rows_of(INSTANCES, per_case=5))
    write(s, PROGRESS_BY_TEAM, rows_of(PROGRESS_BY_TEAM, [("ntu", "x", 2)]))
    return s


def count(db, table: str) -> int:
    return query(db, f"SELECT count(*) AS n FROM {table}").column("n")[0].as_py()


def test_export_and_query(store):
    counts = export_catalog(store)
    assert counts["cases"] == 9 and counts["instances"] == 45
    assert counts["series"] == counts["studies"] == counts["annotations"] == 0  # absent tables export empty
    assert counts["progress_by_team"] == 2 and counts["consent_summary"] == 0
    root = catalog_root(store)
    for team, dataset, _ in LAYOUT:
        assert list((root / "cases" / f"team={team}" / f"dataset={dataset}").glob("part-*.parquet"))
    assert (root / "progress_by_dataset.parquet").is_file()

    db = build_duckdb(store)
    assert db == default_db_path(store) and db.is_absolute()
    assert count(db, "cases") == 9 and count(db, "instances") == 45
    assert count(db, "series") == 0 and count(db, "progress_by_team") == 2
    # Every view has exactly the documented columns, in order, with team/dataset as text.
    for name, tdef in {**PARTITIONED_TABLES, **PROGRAM_TABLES}.items():
        assert query(db, f"SELECT * FROM {name} LIMIT 0").column_names == tdef.column_names, name
    t = query(db, "SELECT dataset, count(*) AS n FROM cases GROUP BY dataset ORDER BY dataset")
    assert t.to_pydict() == {"dataset": ["ccta", "ffr", "lung-ct"], "n": [3, 2, 4]}
    assert query(db, "SELECT study_instance_uids FROM cases LIMIT 1").schema.field(0).type == pa.list_(pa.string())


def test_reexport_follows_the_source(store):
    export_catalog(store)
    # One case removed from ccta, dataset ffr withdrawn entirely.
    kept = [("ntu", "ccta", 2), ("tmu", "lung-ct", 4)]
    write(store, CASES, rows_of(CASES, kept))
    write(store, INSTANCES, rows_of(INSTANCES, kept, per_case=5))
    counts = export_catalog(store)
    assert counts["cases"] == 6
    root = catalog_root(store)
    assert not (root / "cases" / "team=ntu" / "dataset=ffr").exists()
    assert not (root / "instances" / "team=ntu" / "dataset=ffr").exists()
    db = build_duckdb(store)
    assert count(db, "cases") == 6 and count(db, "instances") == 30
    assert query(db, "SELECT count(*) AS n FROM cases WHERE dataset = 'ffr'").column("n")[0].as_py() == 0

    # A whole team gone: its team= directory goes too; an emptied table still has its (empty) view.
    store.replace(CASES, [], {"team": "tmu"})
    export_catalog(store, tables=("cases",))
    assert not (root / "cases" / "team=tmu").exists()
    store.replace(CASES, [], {})
    assert export_catalog(store, tables=("cases",))["cases"] == 0
    db = build_duckdb(store)
    assert count(db, "cases") == 0


def test_second_process_reads_read_only(store, tmp_path):
    export_catalog(store)
    db = build_duckdb(store, tmp_path / "elsewhere" / "cat.duckdb")
    script = textwrap.dedent(f"""
        import duckdb
        con = duckdb.connect({str(db)!r}, read_only=True)
        print(con.execute("SELECT count(*) FROM cases").fetchone()[0])
        print(con.execute("SELECT count(*) FROM instances").fetchone()[0])
    """)
    # Two readers at once, while this process also holds a read-only connection.
    import duckdb
    held = duckdb.connect(str(db), read_only=True)
    try:
        procs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
                 for _ in range(2)]
    finally:
        held.close()
    for p in procs:
        assert p.returncode == 0, p.stderr
        assert p.stdout.split() == ["9", "45"]
    # A rebuild while a reader holds the file replaces it atomically; the reader keeps its snapshot.
    reader = duckdb.connect(str(db), read_only=True)
    try:
        build_duckdb(store, db)
        assert reader.execute("SELECT count(*) FROM cases").fetchone()[0] == 9
    finally:
        reader.close()
    assert count(db, "cases") == 9


def test_restricted_identifier_column_is_refused(store):
    import shutil
    leaky = rows_of(CASES).append_column("patient_id", pa.array(["A123456789"] * 9))
    from deltalake import write_deltalake

    # A table the table API would refuse to write: one drifted outside medlake (by hand, another tool).
    shutil.rmtree(store.uri(CASES))
    write_deltalake(store.uri(CASES), leaky, partition_by=["team"])
    with pytest.raises(CatalogError, match="patient_id"):
        export_catalog(store)
    assert not (catalog_root(store) / "cases").exists(), "nothing may be written when a table is refused"


def test_query_errors_are_clear(store, tmp_path):
    with pytest.raises(CatalogError, match="not been built"):
        query(tmp_path / "nope.duckdb", "SELECT 1")
    with pytest.raises(CatalogError, match="export_catalog"):
        build_duckdb(store)
    export_catalog(store)
    db = build_duckdb(store)
    with pytest.raises(CatalogError, match="no_such_table"):
        query(db, "SELECT * FROM no_such_table")
    with pytest.raises(CatalogError, match="query failed"):
        query(db, "SELEC oops")
    with pytest.raises(CatalogError, match="read-only"):
        query(db, "CREATE TABLE x AS SELECT 1")
    with pytest.raises(CatalogError, match="unknown catalogue table"):
        export_catalog(store, tables=("source_instances",))


def test_catalog_docs_are_current():
    assert (REPO / "docs" / "catalog.md").read_text(encoding="utf-8") == render(), (
        "regenerate with: python -m medlake.catalog.docs > docs/catalog.md")
