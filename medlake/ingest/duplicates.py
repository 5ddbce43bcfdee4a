"""The same SOP Instance UID twice: identical bytes are one object sent again, different bytes
cannot both be right. Checked within a batch and against what earlier batches catalogued."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa
import pyarrow.dataset as pads

from medlake.ingest.records import InstanceRows, LandedRecord, QuarantineLog
from medlake.lake.delta import DeltaStore, where
from medlake.lake.tables import BATCHES, LANDED_FILES, QUARANTINE
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
    ds = store.dataset("restricted", "source_instances")
    if ds is None:
        return {}
    flt = ((pads.field("team") == ref.team) & (pads.field("dataset") == ref.dataset)
           & (pads.field("batch") != ref.batch)
           & pads.field("sop_instance_uid").isin(pa.array(list(uids), type=pa.string())))
    t = ds.to_table(columns=["sop_instance_uid", "sha256", "batch", "path"], filter=flt)
    return {r["sop_instance_uid"]: r for r in t.to_pylist()}


def _retract(store: DeltaStore, ref: BatchRef, prior: dict, now: dt.datetime) -> None:
    """Take an earlier batch's object out of the catalogue after a conflicting re-send, recording why."""
    old = BatchRef(ref.team, ref.dataset, prior["batch"])
    key = dict(team=old.team, dataset=old.dataset, batch=old.batch)
    store.delete("restricted", "source_instances", where(**key, sop_instance_uid=prior["sop_instance_uid"]))
    landed = store.read("restricted", "landed_files", filter=(
        (pads.field("team") == old.team) & (pads.field("dataset") == old.dataset)
        & (pads.field("batch") == old.batch) & (pads.field("path") == prior["path"])))
    if landed.num_rows:
        landed = landed.set_column(landed.schema.get_field_index("status"), "status",
                                   pa.array(["quarantined"] * landed.num_rows))
        store.upsert("restricted", "landed_files", landed, LANDED_FILES.keys, LANDED_FILES.partition_by)
    q = QuarantineLog(old, now)
    q.add(prior["path"], "file", "conflicting_sop_instance",
          f"batch {ref.batch} later sent different content under the same SOP Instance UID; "
          "no copy is catalogued until the hospital resends one")
    store.upsert("restricted", "quarantine", QUARANTINE.from_rows(q.rows), QUARANTINE.keys, QUARANTINE.partition_by)
    summary = store.read("restricted", "batches", filter=(
        (pads.field("team") == old.team) & (pads.field("dataset") == old.dataset)
        & (pads.field("batch") == old.batch) & (pads.field("status") == "ingested")))
    if summary.num_rows:
        rows = summary.to_pylist()
        for r in rows:
            r["files_catalogued"] -= 1
            r["files_quarantined"] += 1
            r["dicom_objects"] -= 1
        store.upsert("restricted", "batches", BATCHES.from_rows(rows), BATCHES.keys)
