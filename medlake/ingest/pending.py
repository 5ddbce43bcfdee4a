"""Which ready batches need ingesting: new ones, and finished ones whose files changed since."""

from __future__ import annotations

from dataclasses import dataclass

from medlake.lake.delta import DeltaStore
from medlake.landing.zone import BatchRef, LandingZone


@dataclass(frozen=True)
class PendingBatch:
    ref: BatchRef
    fingerprint: str
    seen_before: bool  # a delivery of this batch was recorded already (so this one changed)


def pending_batches(landing: LandingZone, store: DeltaStore) -> list[PendingBatch]:
    """Ready batches whose current listing has not been recorded in the `batches` table.

    Costs one directory walk and one small Delta read, however many objects the lake holds.
    """
    recorded: dict[tuple[str, str, str], set[str]] = {}
    ds = store.dataset("restricted", "batches")
    if ds is not None:
        t = ds.to_table(columns=["team", "dataset", "batch", "listing_fingerprint"])
        for team, dataset, batch, fp in zip(*(t.column(i).to_pylist() for i in range(4))):
            recorded.setdefault((team, dataset, batch), set()).add(fp)
    out = []
    for ref in landing.batches(ready_only=True):
        fp = landing.listing_fingerprint(ref)
        seen = recorded.get((ref.team, ref.dataset, ref.batch))
        if seen is None or fp not in seen:
            out.append(PendingBatch(ref, fp, seen is not None))
    return out
