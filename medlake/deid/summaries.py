"""deid/series and deid/studies: one dataset's de-identified instances, summarised with DuckDB."""

from __future__ import annotations

import duckdb
import pyarrow.dataset as pads

from medlake.lake.delta import DeltaStore
from medlake.lake.tables import SERIES, STUDIES
from medlake.lake.tables import INSTANCES


def summarise(store: DeltaStore, team: str, dataset: str) -> dict[str, int]:
    """Rewrite the dataset's slice of deid/series and deid/studies; returns their new Delta versions."""
    ds = store.dataset(INSTANCES)
    if ds is None:
        return {}
    instances = ds.to_table(
        columns=["team", "dataset", "patient_pseudonym", "study_instance_uid", "series_instance_uid", "kind",
                 "modality", "number_of_frames", "size", "pixels_cleaned", "defaced", "study_date"],
        filter=(pads.field("team") == team) & (pads.field("dataset") == dataset))
    with duckdb.connect() as con:
        con.register("instances", instances)
        series, studies = _summaries(con)
    slice_ = {"team": team, "dataset": dataset}
    return {"series": store.replace(SERIES, series, slice_), "studies": store.replace(STUDIES, studies, slice_)}


def _summaries(con):
    series = con.sql("""
        SELECT team, dataset, any_value(study_instance_uid) AS study_instance_uid, series_instance_uid,
               any_value(patient_pseudonym) AS patient_pseudonym, any_value(modality) AS modality,
               list_sort(list_distinct(list(kind))) AS kinds, count(*)::BIGINT AS instances,
               sum(coalesce(number_of_frames, 1))::BIGINT AS frames, sum(size)::BIGINT AS bytes,
               count(*) FILTER (WHERE pixels_cleaned)::BIGINT AS pixels_cleaned,
               count(*) FILTER (WHERE defaced)::BIGINT AS defaced
        FROM instances GROUP BY team, dataset, series_instance_uid ORDER BY series_instance_uid
    """).to_arrow_table().cast(SERIES.schema)
    studies = con.sql("""
        SELECT team, dataset, study_instance_uid, any_value(patient_pseudonym) AS patient_pseudonym,
               min(study_date) AS study_date,
               list_sort(list_distinct(list(modality) FILTER (WHERE modality IS NOT NULL))) AS modalities,
               count(DISTINCT series_instance_uid)::BIGINT AS series, count(*)::BIGINT AS instances,
               sum(coalesce(number_of_frames, 1))::BIGINT AS frames, sum(size)::BIGINT AS bytes
        FROM instances GROUP BY team, dataset, study_instance_uid ORDER BY study_instance_uid
    """).to_arrow_table().cast(STUDIES.schema)
    return series, studies
