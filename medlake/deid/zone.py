"""De-identify one catalogued export batch into the deid zone: objects, tables and the audit.

Reads the restricted zone (the batch's catalogue rows and files in the landing zone) and writes
only pseudonymous objects under `<lake>/deid/objects/<team>/<dataset>/` (no original name, folder
or UID survives in a path) plus the deid tables. Each object is handled alone, so one object that
cannot be made safe is quarantined and the batch goes on. Re-running a batch rewrites the same
paths and replaces the batch's rows, and removes files a previous run wrote that are no longer
produced.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pydicom

from medlake.consent.status import withdrawn_patient_ids
from medlake.deid.aim import deidentify_aim
from medlake.deid.context import DeidContext
from medlake.deid.deface import deface_series
from medlake.deid.errors import DeidError
from medlake.deid.files import deidentify_dataset, deidentify_file
from medlake.deid.keys import DeidKeys
from medlake.deid.masks import clean_nifti_gz, clean_png, mask_name
from medlake.deid.pixels import clean_pixels, remove_overlays_and_icons
from medlake.deid.sheets import deidentify_sheet
from medlake.deid.summaries import summarise
from medlake.deid.table import TABLE_OPTIONS, Option
from medlake.deid.vault import ensure_patients
from medlake.deid.wsi import strip_label_and_macro
from medlake.dicom.header import DicomProblem, parse_header_from_file
from medlake.ingest.pending import was_ingested
from medlake.lake.delta import DeltaStore
from medlake.lake.tables import (
    ANNOTATION_FILES,
    DEID_AUDIT,
    DEID_QUARANTINE,
    INSTANCES,
    LANDED_FILES,
    SLIDES,
    SOURCE_CASES,
    SOURCE_INSTANCES,
    SOURCE_SLIDES,
)
from medlake.landing import BatchRef, LandingZone
from medlake.program import Registry

DEFACE_MODALITIES = ("CT", "MR")
MIN_DEFACE_SLICES = 8  # fewer slices than this is not a head volume with a face in it
_UID_REF = re.compile(rb'(?:sopInstanceUid|imageReferenceUid)\s+root="([0-9.]+)"')

Log = Callable[[str], None]


@dataclass
class DeidBatchResult:
    """Counts only: safe for logs and Dagster metadata."""

    team: str
    dataset: str
    batch_ref: str
    instances: int = 0
    slides: int = 0
    annotation_files: int = 0
    quarantined: int = 0
    fast_path: int = 0
    pixels_cleaned: int = 0
    defaced: int = 0
    quarantine_by_reason: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)
    object_paths: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    table_versions: dict[str, int] = field(default_factory=dict)


class _Run:
    """State of one batch's de-identification."""

    def __init__(self, store: DeltaStore, landing: LandingZone, registry: Registry, keys: DeidKeys,
                 ref: BatchRef, log: Log):
        self.store, self.landing, self.registry, self.keys, self.ref, self.log = (
            store, landing, registry, keys, ref, log)
        self.now = dt.datetime.now(dt.timezone.utc)
        self.batch_ref = keys.batch_ref(ref.team, ref.dataset, ref.batch)
        # Objects are written at objects.path(): the lake itself, or this machine's cache of a remote
        # lake (uploaded before the tables that name them are committed).
        self.objects = store.lake.objects()
        self.rel_root = Path("deid") / "objects" / ref.team / ref.dataset
        self.source = landing.batch_dir(ref)
        opts = set(registry.deid_options(ref.dataset))
        self.table_options = frozenset(o for o in TABLE_OPTIONS if o.value in opts)
        self.clean_pixel_data = "clean_pixel_data" in opts
        self.deface = "clean_recognizable_visual_features" in opts
        self.result = DeidBatchResult(ref.team, ref.dataset, self.batch_ref)
        self.instances: list[dict] = []
        self.slides: list[dict] = []
        self.annotation_files: list[dict] = []
        self.audit: list[dict] = []
        self.quarantine: list[dict] = []

    # -- helpers -----------------------------------------------------------------------------

    def ctx(self, patient_id: str, extra: tuple[Option, ...] = ()) -> DeidContext:
        return DeidContext(team=self.ref.team, patient_id=patient_id, keys=self.keys,
                           options=self.table_options | frozenset(extra))

    def refuse(self, path: str, code: str, message: str) -> None:
        self.quarantine.append({"team": self.ref.team, "dataset": self.ref.dataset, "batch": self.ref.batch,
                                "path": path, "reason_code": code, "message": message,
                                "detected_at": self.now})

    def record(self, object_id: str, kind: str, options, actions: dict, fast: bool = False,
               cleaned: bool = False, defaced: bool = False) -> None:
        self.audit.append({
            "team": self.ref.team, "dataset": self.ref.dataset, "batch_ref": self.batch_ref,
            "object_id": object_id, "object_kind": kind, "options": sorted(str(getattr(o, "value", o)) for o in options),
            "actions": json.dumps(actions, sort_keys=True), "fast_path": fast, "pixels_cleaned": cleaned,
            "defaced": defaced, "processed_at": self.now})
        for k, v in actions.items():
            self.result.actions[k] = self.result.actions.get(k, 0) + int(v)

    def write_bytes(self, rel: Path, data: bytes) -> None:
        dst = self.objects.path(rel)
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, dst)


_TEMP = re.compile(r"^\..+\.(\d+)\.tmp$")


def sweep_abandoned_temp_files(folder: Path) -> int:
    """Delete half-written files (`.<name>.<pid>.tmp`) whose writer is gone: a killed run leaves them
    and nothing names them. A live writer's file (a batch of the same dataset running now) stays."""
    removed = 0
    for d, _, files in os.walk(folder):
        for name in files:
            m = _TEMP.match(name)
            if not m:
                continue
            try:
                os.kill(int(m.group(1)), 0)
                continue
            except ProcessLookupError:
                pass
            except PermissionError:
                continue
            Path(d, name).unlink(missing_ok=True)
            removed += 1
    return removed


def deidentify_batch(store: DeltaStore, landing: LandingZone, registry: Registry, keys: DeidKeys, ref: BatchRef,
                     log: Log | None = None) -> DeidBatchResult:
    """De-identify one catalogued batch into the deid zone, and summarise its dataset's series and
    studies from the result."""
    if not was_ingested(store, ref):
        (log or (lambda _m: None))(f"batch {ref.key}: refused at ingestion; nothing to de-identify")
        return DeidBatchResult(ref.team, ref.dataset, keys.batch_ref(ref.team, ref.dataset, ref.batch))
    with store.lake.dataset_lock(ref.team, ref.dataset, f"de-identify {ref.key}"):
        result = _deidentify_batch(store, landing, registry, keys, ref, log)
        result.table_versions.update(summarise(store, ref.team, ref.dataset))
        return result


def _deidentify_batch(store: DeltaStore, landing: LandingZone, registry: Registry, keys: DeidKeys, ref: BatchRef,
                      log: Log | None) -> DeidBatchResult:
    started = time.perf_counter()
    run = _Run(store, landing, registry, keys, ref, log or (lambda _m: None))
    sweep_abandoned_temp_files(run.objects.path(run.rel_root))
    in_dataset = {"team": ref.team, "dataset": ref.dataset}
    in_batch = {**in_dataset, "batch": ref.batch}
    instances = store.read(SOURCE_INSTANCES, where=in_batch)
    slides = store.read(SOURCE_SLIDES, where=in_batch)
    landed = store.read(LANDED_FILES, where=in_batch)
    cases = store.read(SOURCE_CASES, where=in_dataset)
    all_instances = store.read(SOURCE_INSTANCES, ["patient_id", "study_instance_uid", "series_instance_uid",
                                                  "sop_instance_uid"], where=in_dataset)

    # A patient who has already opted out or withdrawn is never de-identified again; the files stay
    # in the restricted zone, recorded, and nothing of theirs reaches the deid zone.
    withdrawn = withdrawn_patient_ids(store, ref.team)
    if withdrawn and instances.num_rows:
        gone = pc.is_in(instances["patient_id"], pa.array(sorted(withdrawn)))
        for path in instances.filter(gone).column("path").to_pylist():
            run.refuse(path, "consent_withdrawn", "the patient has opted out or withdrawn")
        instances = instances.filter(pc.invert(gone))
    patients = set(instances.column("patient_id").to_pylist()) if instances.num_rows else set()
    patients |= set(cases.filter(pads.field("batch") == ref.batch).column("patient_id").to_pylist()) \
        if cases.num_rows else set()
    ensure_patients(store, keys, ref.team, patients, ref.batch)
    patient_of = _PatientIndex(all_instances, cases)

    _dicom(run, instances)
    if withdrawn and slides.num_rows:
        keep = []
        for row in slides.to_pylist():
            if patient_of.target("study_instance_uid", row["study_instance_uid"] or "") in withdrawn:
                run.refuse(row["path"], "consent_withdrawn", "the patient has opted out or withdrawn")
            else:
                keep.append(row)
        slides = pa.Table.from_pylist(keep, schema=slides.schema)
    _slides(run, slides, patient_of)
    _annotation_files(run, landed, patient_of)
    _write(run)
    run.result.duration_s = time.perf_counter() - started
    run.log(f"batch {run.batch_ref}: {run.result.instances} objects, {run.result.slides} slides, "
            f"{run.result.annotation_files} annotation files de-identified; {run.result.quarantined} quarantined")
    return run.result


class _PatientIndex:
    """Original UID or case id -> patient id, for objects that carry no PatientID of their own."""

    def __init__(self, instances: pa.Table, cases: pa.Table):
        self.by_uid: dict[str, str] = {}
        if instances.num_rows:
            pids = instances.column("patient_id").to_pylist()
            for col in ("study_instance_uid", "series_instance_uid", "sop_instance_uid"):
                self.by_uid.update(zip(instances.column(col).to_pylist(), pids))
        self.by_case: dict[str, str] = {}
        if cases.num_rows:
            for case, pid, studies in zip(cases.column("case_id").to_pylist(), cases.column("patient_id").to_pylist(),
                                          cases.column("study_instance_uids").to_pylist()):
                self.by_case[case] = pid
                for s in studies:
                    self.by_uid.setdefault(s, pid)

    def target(self, column: str, value: str) -> str | None:
        return self.by_case.get(value) if column == "case_id" else self.by_uid.get(value)


# -- DICOM -------------------------------------------------------------------------------------

def _dicom(run: _Run, instances: pa.Table) -> None:
    if not instances.num_rows:
        return
    series: dict[str, list[dict]] = defaultdict(list)
    for row in instances.to_pylist():
        series[row["series_instance_uid"]].append(row)
    for rows in series.values():
        head = rows[0]
        if (run.deface and head["kind"] == "dicom_image" and (head["modality"] or "").upper() in DEFACE_MODALITIES
                and len(rows) >= MIN_DEFACE_SLICES):
            _defaced_series(run, rows)
        else:
            for row in rows:
                _one_object(run, row)


def _dst(run: _Run, row: dict) -> Path:
    k = run.keys
    folder = run.rel_root / k.uid(row["study_instance_uid"]) / k.uid(row["series_instance_uid"])
    (run.objects.path(folder)).mkdir(parents=True, exist_ok=True)
    return folder / f"{k.uid(row['sop_instance_uid'])}.dcm"


def _one_object(run: _Run, row: dict) -> None:
    src = run.source / row["path"]
    ctx = run.ctx(row["patient_id"])
    rel = _dst(run, row)
    try:
        needs_pixels = run.clean_pixel_data and row["kind"] == "dicom_image"
        if needs_pixels:
            ds = pydicom.dcmread(src)
            overlay = remove_overlays_and_icons(ds)
            cleaned = clean_pixels(ds, row["modality"] or "")
            extra = (Option.CLEAN_PIXEL_DATA,) if cleaned.cleaned else ()
            ctx = run.ctx(row["patient_id"], extra)
            report = deidentify_dataset(ds, run.objects.path(rel), ctx)
            actions = {**report.counts, **{f"pixels_{k}": v for k, v in overlay.items() if v}}
            _catalogue(run, rel, row, ctx, actions, fast=False, cleaned=cleaned.cleaned)
        else:
            report = deidentify_file(src, run.objects.path(rel), ctx, row["pixel_data_offset"])
            _catalogue(run, rel, row, ctx, dict(report.counts), fast=bool(report.fast_path))
    except DeidError as e:
        run.refuse(row["path"], e.code, e.message)
    except Exception as e:  # noqa: BLE001 - one object must never stop the batch
        run.refuse(row["path"], "deid_failed", f"de-identification failed ({type(e).__name__})")


def _defaced_series(run: _Run, rows: list[dict]) -> None:
    try:
        datasets = [pydicom.dcmread(run.source / r["path"]) for r in rows]
        deface_series(datasets)
    except DeidError as e:
        for r in rows:
            run.refuse(r["path"], e.code, f"the series could not be defaced and is not shipped: {e.message}")
        return
    except Exception as e:  # noqa: BLE001
        for r in rows:
            run.refuse(r["path"], "deface_failed", f"defacing failed ({type(e).__name__})")
        return
    for row, ds in zip(rows, datasets):
        ctx = run.ctx(row["patient_id"], (Option.CLEAN_RECOGNIZABLE_VISUAL_FEATURES,))
        rel = _dst(run, row)
        try:
            report = deidentify_dataset(ds, run.objects.path(rel), ctx)
            _catalogue(run, rel, row, ctx, dict(report.counts), fast=False, defaced=True)
        except DeidError as e:
            run.refuse(row["path"], e.code, e.message)


def _catalogue(run: _Run, rel: Path, row: dict, ctx: DeidContext, actions: dict, fast: bool,
               cleaned: bool = False, defaced: bool = False) -> None:
    """Read the de-identified file back: the table describes what was written, not what was meant."""
    path = run.objects.path(rel)
    size = path.stat().st_size
    try:
        h = parse_header_from_file(path, size)
    except DicomProblem as e:
        path.unlink(missing_ok=True)
        run.refuse(row["path"], "deid_output_invalid", f"the de-identified file does not parse ({e.code})")
        return
    with open(path, "rb") as fh:
        digest = hashlib.file_digest(fh, "sha256").hexdigest()
    run.instances.append({
        "team": run.ref.team, "dataset": run.ref.dataset, "batch_ref": run.batch_ref,
        "patient_pseudonym": h.patient_id, "study_instance_uid": h.study_instance_uid,
        "series_instance_uid": h.series_instance_uid, "sop_instance_uid": h.sop_instance_uid,
        "sop_class_uid": h.sop_class_uid, "kind": h.kind, "modality": h.modality,
        "transfer_syntax_uid": h.transfer_syntax_uid, "rows": h.rows, "columns": h.columns,
        "number_of_frames": h.number_of_frames, "study_date": h.study_date, "patient_sex": h.patient_sex,
        "patient_age": h.patient_age, "manufacturer": h.manufacturer,
        "manufacturer_model_name": h.manufacturer_model_name, "body_part_examined": h.body_part_examined,
        "pixel_spacing_row": h.pixel_spacing_row, "pixel_spacing_col": h.pixel_spacing_col,
        "slice_thickness": h.slice_thickness, "burned_in_annotation": h.burned_in_annotation,
        "frame_of_reference_uid": h.frame_of_reference_uid, "pixels_cleaned": cleaned, "defaced": defaced,
        "object_path": rel.as_posix(), "sha256": digest, "size": size,
    })
    run.record(h.sop_instance_uid, row["kind"], ctx.options, actions, fast=fast, cleaned=cleaned, defaced=defaced)
    run.result.instances += 1
    run.result.fast_path += int(fast)
    run.result.pixels_cleaned += int(cleaned)
    run.result.defaced += int(defaced)


# -- whole-slide images ------------------------------------------------------------------------

def _slides(run: _Run, slides: pa.Table, patient_of: _PatientIndex) -> None:
    for row in slides.to_pylist() if slides.num_rows else []:
        slide_id = run.keys.opaque_id("slide", run.ref.team, run.ref.dataset, row["sha256"])
        rel = run.rel_root / "slides" / f"{slide_id}.tif"
        dst = run.objects.path(rel)
        dst.parent.mkdir(parents=True, exist_ok=True)
        try:
            result = strip_label_and_macro(run.source / row["path"], dst)
        except Exception as e:  # noqa: BLE001 - the slide is refused, the batch goes on
            dst.unlink(missing_ok=True)
            code, message = (e.code, e.message) if isinstance(e, DeidError) else (
                "wsi_deid_failed", f"the slide could not be rewritten ({type(e).__name__})")
            run.refuse(row["path"], code, message)
            continue
        with open(dst, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        study = row["study_instance_uid"]
        run.slides.append({
            "team": run.ref.team, "dataset": run.ref.dataset, "batch_ref": run.batch_ref, "slide_id": slide_id,
            "study_instance_uid": run.keys.uid(study) if study else None,
            "levels": len(result.levels),
            "object_path": rel.as_posix(), "sha256": digest, "size": dst.stat().st_size,
        })
        run.record(slide_id, "wsi", (Option.CLEAN_PIXEL_DATA,),
                   {"pages_dropped": len(result.dropped), "tags_removed": result.tags_removed})
        run.result.slides += 1


# -- AIM, masks, label sheets ------------------------------------------------------------------

def _annotation_files(run: _Run, landed: pa.Table, patient_of: _PatientIndex) -> None:
    if not landed.num_rows:
        return
    rows = [r for r in landed.to_pylist()
            if r["status"] == "catalogued" and r["kind"] in ("aim", "mask_image", "label_sheet")]
    for row in rows:
        src = run.source / row["path"]
        name = row["path"].rsplit("/", 1)[-1]
        try:
            data = src.read_bytes()
            if row["kind"] == "aim":
                rel, out, targets, actions = _aim(run, data, row, patient_of)
            elif row["kind"] == "mask_image":
                new_name, target = mask_name(name, run.keys.uid)
                out = clean_png(data)[0] if new_name.endswith(".png") else clean_nifti_gz(data)
                rel, targets, actions = run.rel_root / "annotations" / "masks" / new_name, [target], {"renamed": 1}
            else:
                rel, out, targets, actions = _sheet(run, data, row, name, patient_of)
        except DeidError as e:
            run.refuse(row["path"], e.code, e.message)
            continue
        except Exception as e:  # noqa: BLE001
            run.refuse(row["path"], "deid_failed", f"de-identification failed ({type(e).__name__})")
            continue
        run.write_bytes(rel, out)
        run.annotation_files.append({
            "team": run.ref.team, "dataset": run.ref.dataset, "batch_ref": run.batch_ref, "kind": row["kind"],
            "targets": sorted(set(targets)), "object_path": rel.as_posix(),
            "sha256": hashlib.sha256(out).hexdigest(), "size": len(out)})
        run.record(rel.name, row["kind"], run.table_options, actions)
        run.result.annotation_files += 1


def _aim(run: _Run, data: bytes, row: dict, patient_of: _PatientIndex):
    refs = [m.decode() for m in _UID_REF.findall(data)]
    patients = {patient_of.by_uid.get(u) for u in refs} - {None}
    if len(patients) != 1:
        raise DeidError("annotation_target_unknown" if not patients else "annotation_spans_patients",
                        "the AIM file's image references do not resolve to exactly one catalogued patient")
    shift = run.keys.date_shift_days(run.ref.team, patients.pop())
    res = deidentify_aim(data, run.keys.uid, shift)
    file_id = run.keys.opaque_id("file", run.ref.team, run.ref.dataset, row["sha256"])
    return run.rel_root / "annotations" / "aim" / f"{file_id}.xml", res.data, res.referenced_uids, res.actions


def _sheet(run: _Run, data: bytes, row: dict, name: str, patient_of: _PatientIndex):
    team, dataset, keys = run.ref.team, run.ref.dataset, run.keys

    def target(column: str, value: str) -> str:
        return keys.case_id(team, dataset, value) if column == "case_id" else keys.uid(value)

    def shift(column: str, value: str) -> int | None:
        pid = patient_of.target(column, value)
        return None if pid is None else keys.date_shift_days(team, pid)

    suffix = ".xlsx" if name.lower().endswith(".xlsx") else ".csv"
    res = deidentify_sheet(data, suffix, target=target, reader=lambda r: keys.opaque_id("reader", team, r),
                           shift_days_for=shift)
    file_id = keys.opaque_id("file", team, dataset, row["sha256"])
    actions = {"rows": res.rows, "columns_dropped": res.dropped_columns}
    return run.rel_root / "annotations" / "labels" / f"{file_id}.csv", res.data, res.targets, actions


# -- tables --------------------------------------------------------------------------------------

def _write(run: _Run) -> None:
    store, ref = run.store, run.ref
    slice_ = {"team": ref.team, "dataset": ref.dataset, "batch_ref": run.batch_ref}
    before = set(batch_object_paths(store, ref.team, ref.dataset, run.batch_ref))
    now_paths = {r["object_path"] for rows in (run.instances, run.slides, run.annotation_files) for r in rows}
    run.objects.upload(sorted(now_paths))
    v = run.result.table_versions
    for table, rows in ((INSTANCES, run.instances), (SLIDES, run.slides),
                        (ANNOTATION_FILES, run.annotation_files), (DEID_AUDIT, run.audit)):
        if rows or store.exists(table):
            v[table.name] = store.replace(table, rows, slice_)
    v["deid_quarantine"] = store.replace(DEID_QUARANTINE, run.quarantine,
                                         {"team": ref.team, "dataset": ref.dataset, "batch": ref.batch})
    for stale in before - now_paths:
        run.objects.delete(stale)
    run.result.object_paths = sorted(now_paths)
    run.result.quarantined = len(run.quarantine)
    run.result.quarantine_by_reason = dict(Counter(q["reason_code"] for q in run.quarantine))


def batch_object_paths(store: DeltaStore, team: str, dataset: str, batch_ref: str) -> list[str]:
    """Every de-identified object a batch wrote (paths relative to the lake root), from the deid tables."""
    paths: list[str] = []
    for table in (INSTANCES, SLIDES, ANNOTATION_FILES):
        paths += store.read(table, ["object_path"], where={"team": team, "dataset": dataset, "batch_ref": batch_ref}
                            ).column(0).to_pylist()
    return paths
