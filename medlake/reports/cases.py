"""Cases per dataset by annotation status, from deid/cases (counts only)."""

from __future__ import annotations

import duckdb

from medlake.lake import DeltaStore
from medlake.lake.tables import CASES


def cases_summary(store: DeltaStore) -> list[dict]:
    ds = store.dataset(CASES)
    if ds is None:
        return []
    with duckdb.connect() as con:
        con.register("cases", ds.to_table(columns=["team", "dataset", "annotation_status", "shareable"]))
        return con.sql("""
            SELECT team, dataset, count(*) AS cases,
                   count(*) FILTER (WHERE annotation_status = 'image_only') AS image_only,
                   count(*) FILTER (WHERE annotation_status = 'partial') AS partial,
                   count(*) FILTER (WHERE annotation_status = 'full') AS "full",
                   count(*) FILTER (WHERE NOT shareable) AS withheld
            FROM cases GROUP BY team, dataset ORDER BY team, dataset
        """).to_arrow_table().to_pylist()
