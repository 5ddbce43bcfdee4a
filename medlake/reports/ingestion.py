"""Per-dataset ingestion summary from the `batches` table (counts only, no identifiers)."""

from __future__ import annotations

import duckdb

from medlake.lake import DeltaStore
from medlake.lake.tables import BATCHES


def ingestion_summary(store: DeltaStore) -> list[dict]:
    ds = store.dataset(BATCHES)
    if ds is None:
        return []
    with duckdb.connect() as con:
        con.register("batches", ds.to_table())
        return _summary(con)


def _summary(con) -> list[dict]:
    return con.sql("""
        SELECT team, dataset,
               count(*) FILTER (WHERE status = 'ingested')            AS batches,
               count(*) FILTER (WHERE status = 'refused')             AS refused,
               sum(files_landed)                                      AS files,
               sum(dicom_objects + slides) FILTER (WHERE status = 'ingested') AS objects,
               sum(cases) FILTER (WHERE status = 'ingested')          AS cases,
               sum(case_rows_rejected)                                AS case_rows_refused,
               sum(files_quarantined)                                 AS quarantined,
               sum(files_duplicate)                                   AS duplicates
        FROM batches GROUP BY team, dataset ORDER BY team, dataset
    """).to_arrow_table().to_pylist()
