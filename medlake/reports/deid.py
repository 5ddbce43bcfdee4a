"""Per-dataset de-identification summary from the deid tables (counts only, no identifiers)."""

from __future__ import annotations

import duckdb

from medlake.lake import DeltaStore
from medlake.lake.tables import DEID_AUDIT, DEID_QUARANTINE, IDENTIFIER_CHECKS


def deid_summary(store: DeltaStore) -> list[dict]:
    if not store.exists(DEID_AUDIT):
        return []
    audit = store.dataset(DEID_AUDIT).to_table(
        columns=["team", "dataset", "object_kind", "fast_path", "pixels_cleaned", "defaced"])
    quarantine = (store.dataset(DEID_QUARANTINE).to_table(columns=["team", "dataset"])
                  if store.exists(DEID_QUARANTINE) else None)
    checks = (store.dataset(IDENTIFIER_CHECKS).to_table(
        columns=["team", "dataset", "batch_ref", "passed", "checked_at"])
        if store.exists(IDENTIFIER_CHECKS) else None)
    with duckdb.connect() as con:
        con.register("audit", audit)
        if quarantine is not None:
            con.register("quarantine", quarantine)
        if checks is not None:
            con.register("checks", checks)
        return _summary(con, quarantine is not None, checks is not None)


def _summary(con, has_quarantine: bool, has_checks: bool) -> list[dict]:
    q_sql = ("(SELECT team, dataset, count(*) AS n FROM quarantine GROUP BY ALL)" if has_quarantine
             else "(SELECT NULL::VARCHAR AS team, NULL::VARCHAR AS dataset, 0 AS n WHERE false)")
    c_sql = ("""(SELECT team, dataset, bool_and(passed) AS passed FROM (
                   SELECT *, row_number() OVER (PARTITION BY team, dataset, batch_ref ORDER BY checked_at DESC) AS r
                   FROM checks) WHERE r = 1 GROUP BY ALL)""" if has_checks
             else "(SELECT NULL::VARCHAR AS team, NULL::VARCHAR AS dataset, NULL::BOOLEAN AS passed WHERE false)")
    return con.sql(f"""
        SELECT a.team, a.dataset,
               count(*) FILTER (WHERE object_kind NOT IN ('wsi', 'aim', 'mask_image', 'label_sheet')) AS dicom,
               count(*) FILTER (WHERE object_kind = 'wsi') AS slides,
               count(*) FILTER (WHERE object_kind IN ('aim', 'mask_image', 'label_sheet')) AS annotation_files,
               count(*) FILTER (WHERE pixels_cleaned) AS pixels_cleaned,
               count(*) FILTER (WHERE defaced) AS defaced,
               coalesce(any_value(q.n), 0) AS quarantined,
               any_value(c.passed) AS identifier_check_passed
        FROM audit a LEFT JOIN {q_sql} q USING (team, dataset) LEFT JOIN {c_sql} c USING (team, dataset)
        GROUP BY a.team, a.dataset ORDER BY a.team, a.dataset
    """).to_arrow_table().to_pylist()
