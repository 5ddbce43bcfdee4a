"""Which rows a table's check validates after one export batch.

Every suite's natural key starts with team and dataset, so the (team, dataset) slice is what a key
must be unique over. The rows a batch wrote are found by its folder name (restricted tables) or its
keyed reference (deid tables). Those rows are validated in full, and their keys are checked against
the key columns of the whole slice: the batch's cost no longer grows with the dataset (lung X-ray's
ninth batch validated 440,000 rows per table to add 40,000). Each row is validated by the run of
the batch that wrote it; a fault found then fails that batch's run, not every later one.

Series and studies are summaries that the batch rewrites for the whole dataset, but a row changes
only where the batch brought instances (the others are recomputed from the same instances, or lose
instances, which no expectation can newly break): their rows are those of the series and studies
the batch's instances belong to. Cases carry no batch column, and a batch also reaches earlier
cases through its annotations' targets (medlake.cases.update): the case table's slice is validated
whole. So is every table when the batch re-sent an object an earlier batch had catalogued with
other content: ingestion then rewrote that batch's rows too (medlake/ingest/duplicates.py).
"""

from __future__ import annotations

import pyarrow.compute as pc
import pyarrow.dataset as pads

from medlake.lake.delta import DeltaStore, matching
from medlake.validation.outcome import ValidationOutcome
from medlake.validation.runner import UNIQUENESS, validate
from medlake.validation.suite import Suite
from medlake.lake.tables import INSTANCES, QUARANTINE, table_named


# Summary tables whose rows follow from the deid instances of one series or study.
_FROM_INSTANCES = {"deid.series": "series_instance_uid", "deid.studies": "study_instance_uid"}
# Quarantine reason of a re-sent object whose earlier copy ingestion retracted from its batch.
_RETRACTING = "conflicting_sop_instance"


def batch_filter(store: DeltaStore, suite: Suite, columns: list[str], team: str, dataset: str,
                 batch: str, batch_ref: str) -> pads.Expression | None:
    """The rows one batch wrote, or None when that cannot be told (validate the whole slice)."""
    if _changed_other_batches(store, team, dataset, batch):
        return None
    if "batch" in columns:
        return pads.field("batch") == batch
    if "batch_ref" in columns:
        return pads.field("batch_ref") == batch_ref
    key = _FROM_INSTANCES.get(suite.table_id)
    instances = store.dataset(INSTANCES) if key else None
    if instances is None or key not in columns:
        return None
    uids = instances.to_table(columns=[key], filter=matching(team=team, dataset=dataset)
                              & (pads.field("batch_ref") == batch_ref)).column(key)
    return pads.field(key).isin(pc.unique(uids))


def _changed_other_batches(store: DeltaStore, team: str, dataset: str, batch: str) -> bool:
    quarantine = store.dataset(QUARANTINE)
    return quarantine is not None and quarantine.count_rows(
        filter=matching(team=team, dataset=dataset, batch=batch, reason_code=_RETRACTING)) > 0


def unique_key_columns(suite: Suite) -> list[str]:
    return sorted({c for e in suite.expectations if e.type in UNIQUENESS for c in e.columns()})


def validate_dataset(store: DeltaStore, suite: Suite, team: str, dataset: str, batch: str | None = None,
                     batch_ref: str | None = None) -> ValidationOutcome | None:
    """Validate the (team, dataset) slice of the suite's table (None when the table does not exist);
    with `batch` (its folder name) and `batch_ref`, only the rows that batch wrote, their keys
    checked against the whole slice's."""
    ds = store.dataset(table_named(suite.zone, suite.name))
    if ds is None:
        return None
    names = ds.schema.names
    columns = [c for c in names if c in suite.columns()]
    where = matching(team=team, dataset=dataset)
    rows = None
    if batch is not None and batch_ref is not None:
        rows = batch_filter(store, suite, names, team, dataset, batch, batch_ref)
    if rows is None:
        return validate(ds.to_table(columns=columns, filter=where), suite)
    keys = [c for c in unique_key_columns(suite) if c in names]
    return validate(ds.to_table(columns=columns, filter=where & rows), suite,
                    key_universe=ds.to_table(columns=keys, filter=where))
