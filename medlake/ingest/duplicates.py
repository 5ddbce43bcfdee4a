"""The same SOP Instance UID twice: identical bytes are one object sent again, different bytes
cannot both be right. Checked within a batch and against what earlier batches catalogued."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from medlake.ingest.records import InstanceRows, LandedRecord, QuarantineLog
from medlake.lake.delta import DeltaStore
from medlake.lake.tables import BATCHES, LANDED_FILES, QUARANTINE, SOURCE_INSTANCES
from medlake.landing.zone import BatchRef


def resolve_duplicates(store: DeltaStore, ref: BatchRef, instances: InstanceRows, files: list[LandedRecord],
                        quarantine: QuarantineLog) -> set[int]:
    """Deduplicate identical re-sends and quarantine conflicting ones; returns instance rows to drop.

    Identical bytes under one SOP Instance UID are the same object sent twice: keep one, count the
    rest. Different bytes under one UID cannot both be right, so no copy stays catalogued, including
    one an earlier batch brought.
    """
    drop: set[int] = set()
    earlier = _catalogued_elsewhere(store, ref, instances.by_uid.keys())
    retract: list[dict] = []
    for uid, idxs in instances.by_uid.items():
        prior = earlier.get(uid)
        shas = {instances.sha[i] for i in idxs} | ({prior["sha256"]} if prior else set())
        if len(shas) == 1:
            for i in idxs[1:] if prior is None else idxs:
                drop.add(i)
                files[instances.file_index[i]].status = "duplicate"
            continue
        where_else = f"batch {prior['batch']}" if prior is not None else "this batch"
        for i in idxs:
            drop.add(i)
            f = files[instances.file_index[i]]
            f.status = "quarantined"
            quarantine.add(f.path, "file", "conflicting_sop_instance",
                           f"another file with the same SOP Instance UID but different content is in {where_else}; "
                           "no copy is catalogued until the hospital resends one")
        if prior is not None:
            retract.append(prior)
    for prior in retract:
        _retract(store, ref, prior, quarantine.now)
    return drop


def _catalogued_elsewhere(store: DeltaStore, ref: BatchRef, uids) -> dict[str, dict]:
    """Objects of the same team and dataset that other batches catalogued, by SOP Instance UID."""
    ds = store.dataset(SOURCE_INSTANCES)
    if ds is None:
        return {}
    flt = ((pads.field("team") == ref.team) & (pads.field("dataset") == ref.dataset)
           & (pads.field("batch") != ref.batch)
           & pads.field("sop_instance_uid").isin(pa.array(list(uids), type=pa.string())))
    t = ds.to_table(columns=["sop_instance_uid", "sha256", "batch", "path"], filter=flt)
    return {r["sop_instance_uid"]: r for r in t.to_pylist()}


def _retract(store: DeltaStore, ref: BatchRef, prior: dict, now: dt.datetime) -> None:
    """Take an earlier batch's object out of the catalogue after a conflicting re-send, recording why.

    Each table's slice of the earlier batch is rewritten from what it holds when the commit goes in,
    and its summary is recounted from its files, so a batch ingested meanwhile loses nothing and a
    retraction repeated after a crash counts once."""
    old = {"team": ref.team, "dataset": ref.dataset, "batch": prior["batch"]}
    store.delete(SOURCE_INSTANCES, old, pads.field("sop_instance_uid") == prior["sop_instance_uid"])

    def quarantined(landed: pa.Table) -> pa.Table:
        status = pc.if_else(pc.equal(landed.column("path"), prior["path"]), "quarantined", landed.column("status"))
        return landed.set_column(landed.schema.get_field_index("status"), "status", status)

    store.rewrite(LANDED_FILES, old, quarantined)
    q = QuarantineLog(BatchRef(**old), now)
    q.add(prior["path"], "file", "conflicting_sop_instance",
          f"batch {ref.batch} later sent different content under the same SOP Instance UID; "
          "no copy is catalogued until the hospital resends one")
    store.merge(QUARANTINE, q.rows, old)
    statuses = Counter(store.read(LANDED_FILES, ["status"], where=old).column("status").to_pylist())
    objects = store.count(SOURCE_INSTANCES, where=old)

    def recounted(summary: pa.Table) -> pa.Table:
        rows = summary.to_pylist()
        for r in rows:
            if r["status"] == "ingested":
                r.update(files_catalogued=statuses["catalogued"], files_quarantined=statuses["quarantined"],
                         dicom_objects=objects)
        return BATCHES.from_rows(rows)

    store.rewrite(BATCHES, old, recounted)
