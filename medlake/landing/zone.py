"""Discover export batches under a landing root without reading any file's content.

Everything here works from directory listings and stat results, so the landing sensor and a re-run
with nothing new stay cheap however large the lake grows.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

READY_MARKER = "_READY"
CASES_MANIFEST = "cases.csv"
CONSENT_DIR = "_consent"
APPLICATIONS_DIR = "_applications"
CONTENT_DIRS = ("images", "annotations")


@dataclass(frozen=True, order=True)
class BatchRef:
    team: str
    dataset: str
    batch: str

    @property
    def key(self) -> str:
        """The Dagster partition key: team/dataset/batch."""
        return f"{self.team}/{self.dataset}/{self.batch}"

    @classmethod
    def from_key(cls, key: str) -> BatchRef:
        parts = key.split("/")
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"a batch key is team/dataset/batch, not {key!r}")
        return cls(*parts)


@dataclass(frozen=True)
class LandedFile:
    path: str  # relative to the batch folder, '/'-separated
    size: int
    mtime_ns: int
    is_symlink: bool = False


class LandingZone:
    """A local landing root laid out as EXPORT_FORMAT.md describes."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def batch_dir(self, ref: BatchRef) -> Path:
        return self.root / ref.team / ref.dataset / ref.batch

    def batches(self, ready_only: bool = True) -> list[BatchRef]:
        """Every batch folder, sorted; by default only those whose exporter has written _READY."""
        found: list[BatchRef] = []
        for team in _subdirs(self.root):
            if team.name.startswith("_"):
                continue  # _applications and tool folders, not teams
            for dataset in _subdirs(team):
                if dataset.name == CONSENT_DIR:
                    continue
                for batch in _subdirs(dataset):
                    if not ready_only or (batch / READY_MARKER).is_file():
                        found.append(BatchRef(team.name, dataset.name, batch.name))
        return sorted(found)

    def files(self, ref: BatchRef) -> list[LandedFile]:
        """Every regular file of a batch (any depth), sorted by relative path."""
        return [LandedFile(*e) for e in _entries(self.batch_dir(ref))]

    def listing_fingerprint(self, ref: BatchRef, files: list[LandedFile] | None = None) -> str:
        """A digest of the batch's listing (paths, sizes, mtimes): changes when any file does.

        This runs for every ready batch on every sensor tick and `medlake run`, so it works on
        plain tuples and hashes one joined string.
        """
        entries = ([(f.path, f.size, f.mtime_ns) for f in files] if files is not None
                   else _entries(self.batch_dir(ref)))
        return listing_digest(entries)

    def consent_files(self, team: str) -> list[Path]:
        d = self.root / team / CONSENT_DIR
        return sorted(p for p in d.glob("*.csv") if p.is_file()) if d.is_dir() else []

    def sharing_fingerprint(self) -> str:
        """A digest of every consent file and application folder (names, sizes, mtimes): what the
        consent sensor watches, so a new event or decision starts a release run."""
        entries: list[tuple] = []
        for team in self.teams():
            entries += [(f"{team}/{CONSENT_DIR}/{p.name}", *_stat(p)) for p in self.consent_files(team)]
        apps = self.root / APPLICATIONS_DIR
        if apps.is_dir():
            entries += [(f"{APPLICATIONS_DIR}/{e[0]}", e[1], e[2]) for e in _entries(apps)]
        return listing_digest(sorted(entries))

    def teams(self) -> list[str]:
        return [d.name for d in _subdirs(self.root) if not d.name.startswith("_")]

    def applications_root(self) -> Path:
        """The folder holding _applications/ on this machine."""
        return self.root


def listing_digest(entries) -> str:
    """sha256 over (path, size, mtime) entries, hashed as one joined string (it runs on every tick)."""
    text = "".join(f"{e[0]}\0{e[1]}\0{e[2]}\n" for e in entries)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def _stat(p: Path) -> tuple[int, int]:
    st = p.stat()
    return st.st_size, st.st_mtime_ns


def _subdirs(path: Path) -> Iterator[Path]:
    # Team, dataset and batch folders may be symbolic links (exports staged on another volume);
    # inside a batch, links are listed and refused instead (see _entries).
    try:
        with os.scandir(path) as it:
            entries = sorted((e for e in it if e.is_dir()), key=lambda e: e.name)
    except FileNotFoundError:
        return
    for e in entries:
        yield Path(e.path)


def _entries(base: Path) -> list[tuple[str, int, int, bool]]:
    """(relative path, size, mtime_ns, is_symlink) of every file below `base`, sorted by path.

    Symbolic links are listed (ingestion refuses them rather than follows them); a folder that
    cannot be listed is listed itself, so ingestion records it instead of missing what is inside.
    """
    out: list[tuple[str, int, int, bool]] = []
    stack = [(str(base), "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            it = os.scandir(folder)
        except FileNotFoundError:
            continue
        with it:
            for e in it:
                rel = prefix + e.name
                if e.is_dir(follow_symlinks=False):
                    if os.access(e.path, os.R_OK | os.X_OK):
                        stack.append((e.path, rel + "/"))
                        continue
                    rel += "/"
                elif not (e.is_file(follow_symlinks=False) or e.is_symlink()):
                    continue  # sockets, FIFOs: not exportable content
                st = e.stat(follow_symlinks=False)
                out.append((rel, st.st_size, st.st_mtime_ns, e.is_symlink()))
    out.sort()
    return out


class RemoteLandingZone(LandingZone):
    """A landing zone in an S3-compatible bucket. Listings come from the store; a batch's files are
    downloaded once into the local cache when something needs to read them (ingestion reads each
    downloaded file once more, from the page cache)."""

    def __init__(self, root: str):
        from medlake.lake.objects import ObjectStore
        from medlake.lake.zones import s3_options

        self.uri = root.rstrip("/")
        # Credentials of its own when MEDLAKE_LANDING_AWS_* are set (ingestion only needs to read it).
        self.store = ObjectStore(self.uri, s3_options(self.uri, "MEDLAKE_LANDING_"))
        self.root = self.store.cache  # where staged files live on this machine

    def _all(self) -> list[tuple[str, int, int]]:
        return self.store.listing()

    def batches(self, ready_only: bool = True) -> list[BatchRef]:
        found: dict[BatchRef, bool] = {}
        for path, _, _ in self._all():
            parts = path.split("/")
            if len(parts) < 4 or parts[0].startswith("_") or parts[1] == CONSENT_DIR:
                continue
            ref = BatchRef(*parts[:3])
            found[ref] = found.get(ref, False) or (len(parts) == 4 and parts[3] == READY_MARKER)
        return sorted(r for r, ready in found.items() if ready or not ready_only)

    def files(self, ref: BatchRef) -> list[LandedFile]:
        return [LandedFile(p, size, mtime) for p, size, mtime in self.store.listing(ref.key)]

    def batch_dir(self, ref: BatchRef) -> Path:
        for f in self.files(ref):
            self.store.fetch(f"{ref.key}/{f.path}", f.size)
        return self.root / ref.team / ref.dataset / ref.batch

    def listing_fingerprint(self, ref: BatchRef, files: list[LandedFile] | None = None) -> str:
        return super().listing_fingerprint(ref, files if files is not None else self.files(ref))

    def consent_files(self, team: str) -> list[Path]:
        prefix = f"{team}/{CONSENT_DIR}"
        return [self.store.fetch(f"{prefix}/{p}", size) for p, size, _ in self.store.listing(prefix)
                if p.endswith(".csv") and "/" not in p]

    def teams(self) -> list[str]:
        return sorted({p.split("/", 1)[0] for p, _, _ in self._all() if "/" in p and not p.startswith("_")})

    def sharing_fingerprint(self) -> str:
        entries = [e for e in self._all() if e[0].startswith(APPLICATIONS_DIR + "/")
                   or e[0].split("/")[1:2] == [CONSENT_DIR]]
        return listing_digest(entries)

    def applications_root(self) -> Path:
        for p, size, _ in self.store.listing(APPLICATIONS_DIR):
            self.store.fetch(f"{APPLICATIONS_DIR}/{p}", size)
        return self.root


def open_landing(root: str | Path) -> LandingZone:
    """The landing zone at a local path or an s3:// URI."""
    return RemoteLandingZone(str(root)) if str(root).startswith("s3://") else LandingZone(root)
