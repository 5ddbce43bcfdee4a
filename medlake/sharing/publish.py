"""Publish a release folder: immutable, versioned, complete before anyone can see it.

    <root>/<dataset folder>/
        v1/ v2/ ...        finished versions, never modified
        latest -> v2       moved (atomically) only after a version is complete and checked
        .partial-*         a version being written; a crash leaves it here and the next run deletes it
    <root>/.<dataset folder>.lock   held while publishing: two runs releasing one dataset queue up

A version holds objects/ (hard links to the de-identified objects where the file system allows,
otherwise copies), tables/*.parquet, release.json, DATASET_CARD.md and MANIFEST.sha256 (every
other file). Content that has not changed makes no new version.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from medlake.checker.findings import CheckReport

MANIFEST = "MANIFEST.sha256"
RELEASE_JSON = "release.json"
CARD = "DATASET_CARD.md"
LATEST = "latest"
_VERSION = re.compile(r"^v(\d+)$")


class ReleaseRefused(RuntimeError):
    """The identifier checker found something in a release being written; nothing was published."""

    def __init__(self, report: CheckReport):
        super().__init__(f"release refused: {len(report.findings)} identifier finding(s) "
                         f"({', '.join(f'{k}: {n}' for k, n in sorted(report.by_kind.items()))})")
        self.report = report


@dataclass
class FileEntry:
    path: str                    # release-relative
    sha256: str
    size: int
    source: Path | None = None   # an existing file to link (or copy)
    data: bytes | None = None    # or the bytes to write
    checked: bool = False        # the source passed the identifier checker as it is (same bytes)


@dataclass
class Published:
    action: str          # published | unchanged
    version: str
    path: Path
    digest: str
    linked: int = 0
    copied: int = 0


def versions(folder: Path) -> list[str]:
    """Finished versions, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p.name) for p in folder.iterdir() if (m := _VERSION.match(p.name)) and p.is_dir()]
    return [name for _, name in sorted(found)]


def latest_version(folder: Path) -> str | None:
    link = folder / LATEST
    return os.readlink(link) if link.is_symlink() else None


def content_digest(entries: list[FileEntry]) -> str:
    """sha256 over the sorted 'sha256  path' lines of the content (not release.json or the card,
    which carry dates and version numbers)."""
    h = hashlib.sha256()
    for e in sorted(entries, key=lambda e: e.path):
        h.update(f"{e.sha256}  {e.path}\n".encode())
    return h.hexdigest()


@contextmanager
def publishing_lock(folder: Path) -> Iterator[None]:
    # Beside the folder, not in it: a dataset with nothing to release gets no folder at all.
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # blocks: the second run waits for the first
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def table_entry(name: str, table: pa.Table) -> FileEntry:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    data = sink.getvalue().to_pybytes()
    return FileEntry(f"tables/{name}.parquet", hashlib.sha256(data).hexdigest(), len(data), data=data)


def publish(folder: Path, entries: list[FileEntry], release_json: Callable[[str, str], dict],
            card: Callable[[str], str], check: Callable[[Path, set[tuple[int, int]]], CheckReport],
            crash_after: int | None = None) -> Published:
    """Write a new version of `folder` unless its latest version has the same content.

    `release_json(version, digest)` and `card(version)` make the two descriptive files; `check(dir,
    linked)` runs the identifier checker over the finished folder before it becomes visible, where
    `linked` holds the (device, inode) of files that are hard links to checked objects. The caller
    holds the publishing lock. `crash_after` (tests only) raises after that many files, as a crash
    in the middle of writing would.
    """
    for stale in (folder.glob(".partial-*") if folder.is_dir() else ()):
        shutil.rmtree(stale, ignore_errors=True)
    sweep_purged(folder)
    digest = content_digest(entries)
    current = latest_version(folder)
    if current and _digest_of(folder / current) == digest:
        return Published("unchanged", current, folder / current, digest)
    done = versions(folder)
    version = f"v{int(_VERSION.match(done[-1]).group(1)) + 1 if done else 1}"
    partial = folder / f".partial-{version}-{os.getpid()}"
    partial.mkdir(parents=True)  # makes the dataset folder on its first version
    out = Published("published", version, folder / version, digest)
    made_dirs: set[Path] = set()
    linked: set[tuple[int, int]] = set()
    for n, e in enumerate(entries):
        if crash_after is not None and n >= crash_after:
            raise RuntimeError("simulated crash while writing a release")
        dst = partial / e.path
        if dst.parent not in made_dirs:
            dst.parent.mkdir(parents=True, exist_ok=True)
            made_dirs.add(dst.parent)
        if e.data is not None:
            dst.write_bytes(e.data)
            out.copied += 1
        elif _link(e.source, dst):
            out.linked += 1
            if e.checked:
                st = os.stat(dst)
                linked.add((st.st_dev, st.st_ino))
        else:
            out.copied += 1
    (partial / RELEASE_JSON).write_text(json.dumps(release_json(version, digest), indent=2, sort_keys=True,
                                                   default=str) + "\n", encoding="utf-8")
    (partial / CARD).write_text(card(version), encoding="utf-8")
    lines = [f"{e.sha256}  {e.path}" for e in entries]
    for name in (RELEASE_JSON, CARD):
        lines.append(f"{hashlib.sha256((partial / name).read_bytes()).hexdigest()}  {name}")
    (partial / MANIFEST).write_text("\n".join(sorted(lines, key=lambda x: x[66:])) + "\n", encoding="utf-8")
    report = check(partial, linked)
    if not report.clean:
        shutil.rmtree(partial, ignore_errors=True)
        raise ReleaseRefused(report)
    os.rename(partial, folder / version)
    point_latest(folder, version)
    return out


def point_latest(folder: Path, version: str) -> None:
    """Swap the `latest` link in one rename, so a reader sees the old version or the new, never none."""
    tmp = folder / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    os.symlink(version, tmp)
    os.replace(tmp, folder / LATEST)
    _fsync_dir(folder)


def _link(src: Path, dst: Path) -> bool:
    """Hard link when the release and the lake share a file system; else a copy (reported)."""
    try:
        os.link(src, dst)
        return True
    except OSError:
        shutil.copyfile(src, dst)
        return False


def _digest_of(version_dir: Path) -> str | None:
    try:
        return json.loads((version_dir / RELEASE_JSON).read_text(encoding="utf-8")).get("content_digest")
    except (OSError, ValueError):
        return None


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_version(folder: Path, version: str, doomed: Iterable[str] = ()) -> int:
    """Take a finished version out of the release (one rename: it is gone for every reader at once),
    delete `doomed` files (release paths, e.g. a withdrawn patient's objects) right away, and leave
    the rest of the folder to a background `rm -rf`: hard links whose bytes live on in the lake and
    in the next version, whose deletion (a directory per series) takes longer than the release
    itself. A leftover `.purging-*` folder is removed by the next publication. Returns the bytes of
    the version's objects, from its release.json."""
    path = folder / version
    try:
        size = int(json.loads((path / RELEASE_JSON).read_text(encoding="utf-8"))["counts"]["bytes"])
    except (OSError, ValueError, KeyError, TypeError):
        size = 0
    trash = folder / f".purging-{version}-{os.getpid()}"
    os.rename(path, trash)
    for rel in doomed:
        (trash / rel).unlink(missing_ok=True)
    subprocess.Popen(["rm", "-rf", str(trash)], start_new_session=True, stdout=subprocess.DEVNULL,
                     stderr=subprocess.DEVNULL)
    return size


def sweep_purged(folder: Path) -> None:
    """Finish deleting versions an earlier run took out (its background deletion was cut short)."""
    if folder.is_dir():
        for stale in folder.glob(".purging-*"):
            shutil.rmtree(stale, ignore_errors=True)
