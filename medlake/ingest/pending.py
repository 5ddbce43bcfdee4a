"""Which ready batches need their batch job: new ones, finished ones whose files changed since, and
ones whose last run was interrupted before the job's last step."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import pyarrow.dataset as pads

from medlake.lake.delta import DeltaStore
from medlake.landing.zone import BatchRef, LandingZone
from medlake.lake.tables import BATCH_COMPLETIONS, BATCHES


@dataclass(frozen=True)
class PendingBatch:
    ref: BatchRef
    fingerprint: str
    seen_before: bool  # a delivery of this batch was recorded already (so this one changed)


def pending_batches(landing: LandingZone, store: DeltaStore) -> list[PendingBatch]:
    """Ready batches whose current listing has no completed batch job.

    Costs one directory walk and two small Delta reads, however many objects the lake holds.
    """
    recorded, refused = _deliveries(store)
    # A refused delivery has nothing after ingestion to finish; it counts as complete.
    completed = _completions(store)
    for key, fps in refused.items():
        completed.setdefault(key, set()).update(fps)
    out = []
    for ref in landing.batches(ready_only=True):
        fp = landing.listing_fingerprint(ref)
        key = (ref.team, ref.dataset, ref.batch)
        if fp not in completed.get(key, set()):
            seen = recorded.get(key)
            # An interrupted delivery is run again under its own fingerprint: ingestion finds it
            # unchanged and the steps after it redo their slice (replace-where, same object paths).
            out.append(PendingBatch(ref, fp, seen is not None and fp not in seen))
    return out


Key = tuple[str, str, str]


def _deliveries(store: DeltaStore) -> tuple[dict[Key, set[str]], dict[Key, set[str]]]:
    """(every recorded listing fingerprint, the refused ones) per batch, from one read."""
    recorded: dict[Key, set[str]] = {}
    refused: dict[Key, set[str]] = {}
    ds = store.dataset(BATCHES)
    if ds is not None:
        t = ds.to_table(columns=["team", "dataset", "batch", "listing_fingerprint", "status"])
        for team, dataset, batch, fp, status in zip(*(t.column(i).to_pylist() for i in range(5))):
            recorded.setdefault((team, dataset, batch), set()).add(fp)
            if status == "refused":
                refused.setdefault((team, dataset, batch), set()).add(fp)
    return recorded, refused


def _completions(store: DeltaStore) -> dict[Key, set[str]]:
    found: dict[Key, set[str]] = {}
    ds = store.dataset(BATCH_COMPLETIONS)
    if ds is not None:
        t = ds.to_table(columns=["team", "dataset", "batch", "listing_fingerprint"])
        for team, dataset, batch, fp in zip(*(t.column(i).to_pylist() for i in range(4))):
            found.setdefault((team, dataset, batch), set()).add(fp)
    return found


def was_ingested(store: DeltaStore, ref: BatchRef) -> bool:
    """Whether a delivery of the batch was catalogued; a batch refused as a whole (an unknown team or
    dataset, files outside images/ and annotations/) has nothing for the steps after ingestion."""
    return store.count(BATCHES, where={"team": ref.team, "dataset": ref.dataset, "batch": ref.batch,
                                       "status": "ingested"}) > 0


def record_completion(store: DeltaStore, ref: BatchRef, now: dt.datetime | None = None) -> None:
    """The batch job's last step calls this: its latest delivery is done."""
    ds = store.dataset(BATCHES)
    if ds is None:
        return
    t = ds.to_table(columns=["listing_fingerprint", "ingested_at"],
                    filter=(pads.field("team") == ref.team) & (pads.field("dataset") == ref.dataset)
                    & (pads.field("batch") == ref.batch)).to_pylist()
    if not t:
        return
    latest = max(t, key=lambda r: r["ingested_at"])["listing_fingerprint"]
    row = {"team": ref.team, "dataset": ref.dataset, "batch": ref.batch, "listing_fingerprint": latest,
           "completed_at": now or dt.datetime.now(dt.timezone.utc)}
    store.merge(BATCH_COMPLETIONS, [row], {"team": ref.team, "dataset": ref.dataset, "batch": ref.batch})
