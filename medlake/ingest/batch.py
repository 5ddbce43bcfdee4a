"""Ingest one export batch: every file read once, hashed, classified, catalogued or quarantined.

The invariant the tests hold us to: for every batch, files landed = catalogued + quarantined +
duplicate. Writes replace the batch's slice of each table, so running a batch twice changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads

from medlake.dicom.header import DicomProblem, Header, parse_header, parse_header_from_file
from medlake.ingest.detect import WSI_SUFFIXES, KindProblem, annotation_kind, image_kind
from medlake.ingest.cases import check_cases
from medlake.ingest.duplicates import resolve_duplicates
from medlake.ingest.records import InstanceRows, LandedRecord, QuarantineLog
from medlake.ingest.slides import SlideProblem, read_slide
from medlake.lake.delta import DeltaStore
from medlake.lake.tables import BATCHES, LANDED_FILES, QUARANTINE, SOURCE_CASES, SOURCE_INSTANCES, SOURCE_SLIDES
from medlake.landing.zone import CASES_MANIFEST, CONTENT_DIRS, READY_MARKER, BatchRef, LandedFile, LandingZone
from medlake.program.registry import Registry

# Files up to this size are read into memory once (hash and parse share the buffer); larger ones
# are hashed in chunks and only their header is parsed, so memory stays bounded for 2 GiB objects.
WHOLE_READ_LIMIT = 256 * 1024 * 1024
_CHUNK = 8 * 1024 * 1024
_HEAD = 64 * 1024

Progress = Callable[[int, int], None]
Log = Callable[[str], None]


@dataclass
class BatchResult:
    """What ingesting one batch did; every figure is free of identifiers (safe for logs and metadata)."""

    team: str
    dataset: str
    batch: str
    outcome: str  # ingested | refused | unchanged
    reason_code: str | None = None
    files_landed: int = 0
    files_catalogued: int = 0
    files_quarantined: int = 0
    files_duplicate: int = 0
    dicom_objects: int = 0
    slides: int = 0
    cases: int = 0
    case_rows_rejected: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    quarantine_by_reason: dict[str, int] = field(default_factory=dict)
    kinds: dict[str, int] = field(default_factory=dict)
    table_versions: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def ingest_batch(
    landing: LandingZone,
    store: DeltaStore,
    registry: Registry,
    ref: BatchRef,
    progress: Progress | None = None,
    log: Log | None = None,
) -> BatchResult:
    """Catalogue one batch into the restricted zone; never raises for bad content, only for I/O on the lake."""
    with store.lake.dataset_lock(ref.team, ref.dataset, f"ingest {ref.key}"):
        return _ingest_batch(landing, store, registry, ref, progress, log)


def _ingest_batch(landing: LandingZone, store: DeltaStore, registry: Registry, ref: BatchRef,
                  progress: Progress | None, log: Log | None) -> BatchResult:
    started = time.perf_counter()
    now = dt.datetime.now(dt.timezone.utc)
    say = log or (lambda _m: None)
    listing = landing.files(ref)
    fingerprint = landing.listing_fingerprint(ref, listing)
    previous = _previous_deliveries(store, ref)
    if any(p["listing_fingerprint"] == fingerprint for p in previous):
        say(f"batch {ref.key}: unchanged since it was ingested; nothing to do")
        return BatchResult(ref.team, ref.dataset, ref.batch, "unchanged", files_landed=len(listing))

    quarantine = QuarantineLog(ref, now)
    refusal = _batch_refusal(registry, ref, listing)
    base = landing.batch_dir(ref)
    files: list[LandedRecord] = []
    instances = InstanceRows()
    slides: list[dict] = []
    manifest_bytes: bytes | None = None
    for n, lf in enumerate(listing):
        if progress is not None and n:
            progress(n, len(listing))
        f = LandedRecord(lf.path, lf.size)
        files.append(f)
        if lf.is_symlink:
            # A link could reach anywhere on the host; exports must contain the files themselves.
            f.status = "quarantined"
            quarantine.add(lf.path, "file", "symlink_not_followed",
                           "symbolic links are not followed; export the file itself")
            continue
        try:
            data, f.sha256, head = _read(base / lf.path, lf.size)
        except OSError as e:
            f.status = "quarantined"
            quarantine.add(lf.path, "file", "unreadable",
                           f"the file cannot be read ({type(e).__name__}, errno {getattr(e, 'errno', '?')}); "
                           "check its permissions")
        else:
            if refusal is not None:
                f.status = "quarantined"
            elif lf.path == READY_MARKER:
                f.kind = "ready_marker"
            elif lf.path == CASES_MANIFEST:
                f.kind = "cases_manifest"
                manifest_bytes = data if data is not None else (base / lf.path).read_bytes()
            else:
                _classify(f, n, base / lf.path, data, head, quarantine, instances, slides, ref)

    if progress is not None:
        progress(len(listing), len(listing))

    if refusal is not None:
        code, message = refusal
        quarantine.add("", "batch", code, message)
        for f in files:
            if f.sha256 is not None:  # unreadable files already carry their own reason
                quarantine.add(f.path, "file", "batch_refused", f"the whole batch was refused ({code})")
        result = _result(ref, "refused", files, quarantine, reason=code)
        _write_batch(store, ref, result, files, quarantine, None, None, None, now,
                     _content_digest(files), fingerprint, message, started)
        say(f"batch {ref.key}: refused ({code}): {message}")
        return result

    digest = _content_digest(files)
    ingested_before = [p for p in previous if p["status"] == "ingested"]
    if ingested_before and all(p["content_digest"] != digest for p in ingested_before):
        # The catalogue keeps the first delivery; this one is only recorded as refused.
        message = ("a batch of this name was already ingested with different content; "
                   "send corrections as a new batch")
        quarantine.add("", "batch", "batch_changed", message)
        result = _result(ref, "refused", files, quarantine, reason="batch_changed")
        result.files_catalogued = result.files_duplicate = 0
        result.files_quarantined = len(files)
        versions = result.table_versions
        versions["quarantine"] = store.merge(QUARANTINE, quarantine.rows, _slice(ref))
        result.duration_s = time.perf_counter() - started
        versions["batches"] = _write_summary(store, ref, result, digest, fingerprint, now, message)
        say(f"batch {ref.key}: refused (batch_changed): {message}")
        return result

    drop = resolve_duplicates(store, ref, instances, files, quarantine)
    instance_table = instances.rows.to_table(drop)
    slide_table = SOURCE_SLIDES.from_rows(slides)
    cases_rows, rejected = check_cases(manifest_bytes, ref, instance_table, slide_table, store, quarantine, files)
    result = _result(ref, "ingested", files, quarantine)
    result.dicom_objects = instance_table.num_rows
    result.slides = slide_table.num_rows
    result.cases, result.case_rows_rejected = len(cases_rows), rejected
    _write_batch(store, ref, result, files, quarantine, instance_table, slide_table, cases_rows, now, digest,
                 fingerprint, None, started)
    say(f"batch {ref.key}: {result.files_catalogued} catalogued, {result.files_quarantined} quarantined, "
        f"{result.files_duplicate} duplicate of {result.files_landed} files; {result.cases} cases, "
        f"{result.case_rows_rejected} case rows refused")
    return result


def _write_batch(store: DeltaStore, ref: BatchRef, result: BatchResult, files: list[LandedRecord],
                 quarantine: QuarantineLog, instance_table: pa.Table | None, slide_table: pa.Table | None,
                 cases_rows: list[dict] | None,
                 now: dt.datetime, digest: str, fingerprint: str, message: str | None, started: float) -> None:
    """Replace this batch's slice of every table; the summary row goes last, as the commit mark."""
    batch_slice = _slice(ref)
    v = result.table_versions
    if instance_table is not None:
        v["source_instances"] = store.replace(SOURCE_INSTANCES, instance_table, batch_slice)
    if slide_table is not None and (slide_table.num_rows or store.exists(SOURCE_SLIDES)):
        v["source_slides"] = store.replace(SOURCE_SLIDES, slide_table, batch_slice)
    if cases_rows is not None:
        v["source_cases"] = store.replace(SOURCE_CASES, [{**batch_slice, **r} for r in cases_rows], batch_slice)
    v["quarantine"] = store.replace(QUARANTINE, quarantine.rows, batch_slice)
    v["landed_files"] = store.replace(LANDED_FILES, _landed_table(ref, files, now), batch_slice)
    result.duration_s = time.perf_counter() - started
    v["batches"] = _write_summary(store, ref, result, digest, fingerprint, now, message)


def _result(ref: BatchRef, outcome: str, files: list[LandedRecord], quarantine: QuarantineLog,
            reason: str | None = None) -> BatchResult:
    status = Counter(f.status for f in files)
    return BatchResult(
        ref.team, ref.dataset, ref.batch, outcome, reason_code=reason,
        files_landed=len(files),
        files_catalogued=status["catalogued"],
        files_quarantined=status["quarantined"],
        files_duplicate=status["duplicate"],
        bytes=sum(f.size for f in files),
        quarantine_by_reason=dict(Counter(r["reason_code"] for r in quarantine.rows)),
        kinds=dict(Counter(f.kind for f in files if f.status == "catalogued")),
    )


def _read(path: Path, size: int) -> tuple[bytes | None, str, bytes]:
    """(whole content, or None when too large to hold; sha256 hex; first bytes)."""
    with open(path, "rb") as fh:
        if size <= WHOLE_READ_LIMIT:
            data = fh.read()
            return data, hashlib.sha256(data).hexdigest(), data[:_HEAD]
        h = hashlib.sha256()
        head = b""
        while chunk := fh.read(_CHUNK):
            head = head or chunk[:_HEAD]
            h.update(chunk)
        return None, h.hexdigest(), head


def _batch_refusal(registry: Registry, ref: BatchRef, listing: list[LandedFile]) -> tuple[str, str] | None:
    if ref.team not in registry.teams_by_id:
        return "unknown_team", "the team folder is not a team of the programme registry"
    if ref.dataset not in registry.datasets_by_id:
        return "unknown_dataset", "the dataset folder is not a dataset of the programme registry"
    if not registry.owns(ref.team, ref.dataset):
        return "dataset_of_other_team", "the programme registry assigns this dataset to another team"

    def allowed(path: str) -> bool:
        top, _, rest = path.partition("/")
        return path in (READY_MARKER, CASES_MANIFEST) or (top in CONTENT_DIRS and bool(rest))

    stray = sum(1 for f in listing if not allowed(f.path))
    if stray:
        return "files_outside_content_dirs", (
            f"{stray} file(s) lie outside images/ and annotations/; only _READY and cases.csv may stand "
            "at the batch root")
    return None


def _classify(f: LandedRecord, file_index: int, path: Path, data: bytes | None, head: bytes,
              quarantine: QuarantineLog, instances: InstanceRows, slides: list[dict], ref: BatchRef) -> None:
    folder = f.path.split("/", 1)[0]
    name = f.path.rsplit("/", 1)[-1]
    try:
        if f.size == 0:
            raise KindProblem("empty_file", "the file is empty (0 bytes)")
        is_dicom = head[128:132] == b"DICM"
        if is_dicom or (folder == "images" and not name.lower().endswith(WSI_SUFFIXES)):
            header = _parse_dicom(path, data, f.size)
            f.kind = header.kind
            row = {k: getattr(header, k) for k in SOURCE_INSTANCES.column_names if hasattr(header, k)}
            row.update(team=ref.team, dataset=ref.dataset, batch=ref.batch, path=f.path, sha256=f.sha256,
                       size=f.size)
            instances.add(file_index, row)
        elif folder == "images":
            f.kind = image_kind(name, head)
            info = read_slide(data, path)
            slides.append({
                "team": ref.team, "dataset": ref.dataset, "batch": ref.batch, "path": f.path,
                "sha256": f.sha256, "size": f.size, "study_instance_uid": info.study_instance_uid,
                "width": info.width, "height": info.height, "levels": info.levels,
                "has_label": info.has_label, "has_macro": info.has_macro,
            })
        else:
            f.kind = annotation_kind(name, head)
    except (DicomProblem, KindProblem, SlideProblem) as e:
        f.status = "quarantined"
        quarantine.add(f.path, "file", e.code, str(e))
    except Exception as e:  # noqa: BLE001 - one bad file must never stop the batch
        f.status = "quarantined"
        quarantine.add(f.path, "file", "unreadable_dicom", f"the DICOM file could not be parsed ({type(e).__name__})")


def _parse_dicom(path: Path, data: bytes | None, size: int) -> Header:
    return parse_header(data) if data is not None else parse_header_from_file(path, size)


def _content_digest(files: list[LandedRecord]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.path}\0{f.sha256}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _previous_deliveries(store: DeltaStore, ref: BatchRef) -> list[dict]:
    ds = store.dataset(BATCHES)
    if ds is None:
        return []
    t = ds.to_table(
        columns=["content_digest", "listing_fingerprint", "status"],
        filter=(pads.field("team") == ref.team) & (pads.field("dataset") == ref.dataset)
        & (pads.field("batch") == ref.batch))
    return t.to_pylist()


def _landed_table(ref: BatchRef, files: list[LandedRecord], now: dt.datetime) -> pa.Table:
    n = len(files)
    return pa.table({
        "team": pa.array([ref.team] * n, pa.string()),
        "dataset": pa.array([ref.dataset] * n, pa.string()),
        "batch": pa.array([ref.batch] * n, pa.string()),
        "path": pa.array([f.path for f in files], pa.string()),
        "size": pa.array([f.size for f in files], pa.int64()),
        "sha256": pa.array([f.sha256 for f in files], pa.string()),
        "kind": pa.array([f.kind for f in files], pa.string()),
        "status": pa.array([f.status for f in files], pa.string()),
        "ingested_at": pa.array([now] * n, LANDED_FILES.schema.field("ingested_at").type),
    }, schema=LANDED_FILES.schema)


def _write_summary(store: DeltaStore, ref: BatchRef, r: BatchResult, digest: str, fingerprint: str,
                   now: dt.datetime, message: str | None) -> int:
    row = {
        "team": ref.team, "dataset": ref.dataset, "batch": ref.batch,
        "content_digest": digest, "listing_fingerprint": fingerprint,
        "status": r.outcome, "reason_code": r.reason_code, "message": message,
        "files_landed": r.files_landed, "files_catalogued": r.files_catalogued,
        "files_quarantined": r.files_quarantined, "files_duplicate": r.files_duplicate,
        "dicom_objects": r.dicom_objects, "slides": r.slides, "cases": r.cases, "case_rows_rejected": r.case_rows_rejected,
        "bytes": r.bytes, "ingested_at": now, "duration_s": r.duration_s,
    }
    return store.merge(BATCHES, [row], _slice(ref))


def _slice(ref: BatchRef) -> dict[str, str]:
    """The batch's rows in every restricted table (folder names: they stay in the restricted zone)."""
    return {"team": ref.team, "dataset": ref.dataset, "batch": ref.batch}


__all__ = ["BatchResult", "ingest_batch"]
