"""Releases in an S3-compatible bucket.

A bucket has no rename, no symbolic link and no lock, so a release is built exactly as on a local
disk, in this machine's cache of the bucket (versions, checks, `latest` and the publishing lock all
work there), and then pushed: every file of a new version (objects by server-side copy from the
lake's bucket, nothing downloaded), `release.json` last, then the `latest` object naming the
version. A version without `release.json` in the bucket is incomplete (a crash while pushing) and is
deleted by the next pull; readers follow `latest`, which only ever names complete versions.
Across machines, the `releases` concurrency pool keeps two runs off one dataset.
"""

from __future__ import annotations

from pathlib import Path

from medlake.lake.objects import ObjectStore
from medlake.lake.zones import s3_options
from medlake.sharing.publish import LATEST, MANIFEST, RELEASE_JSON, latest_version, point_latest, versions

REMOTE_ONLY = ".remote-only"   # a version known from the bucket whose objects are not on this machine


class RemoteReleases:
    def __init__(self, uri: str):
        # Credentials of its own when MEDLAKE_RELEASES_AWS_* are set (recipients' bucket).
        self.store = ObjectStore(uri, s3_options(uri, "MEDLAKE_RELEASES_"))
        self.local = self.store.cache

    def _versions(self, folder: str) -> tuple[set[str], set[str]]:
        """(complete, incomplete) version names in the bucket."""
        files: dict[str, set[str]] = {}
        for path, _, _ in self.store.listing(folder):
            version, _, rest = path.partition("/")
            if rest:
                files.setdefault(version, set()).add(rest)
        complete = {v for v, f in files.items() if RELEASE_JSON in f}
        return complete, set(files) - complete

    def pull(self, folder: str) -> None:
        """Mirror the bucket's versions (their descriptions and case lists) and `latest` here."""
        complete, incomplete = self._versions(folder)
        for version in incomplete:
            for path, _, _ in self.store.listing(f"{folder}/{version}"):
                self.store.delete_remote(f"{folder}/{version}/{path}")
        local = self.local / folder
        for version in complete - set(versions(local)):
            for name in (RELEASE_JSON, MANIFEST, "tables/cases.parquet"):
                if self.store.exists(f"{folder}/{version}/{name}"):
                    self.store.fetch(f"{folder}/{version}/{name}")
            (local / version / REMOTE_ONLY).touch()
        try:
            name = self.store.read_bytes(f"{folder}/{LATEST}").decode().strip()
        except FileNotFoundError:
            name = None
        if name and name in complete and latest_version(local) != name:
            point_latest(local, name)

    def fetch_version(self, folder: str, version: str) -> None:
        """Every file of a version on this machine (an application release links them)."""
        marker = self.local / folder / version / REMOTE_ONLY
        if marker.exists():
            for path, size, _ in self.store.listing(f"{folder}/{version}"):
                self.store.fetch(f"{folder}/{version}/{path}", size)
            marker.unlink()

    def push(self, folder: str, copies: dict[str, tuple[ObjectStore, str]]) -> int:
        """Send versions built here to the bucket and drop the ones deleted here; returns files sent.

        `copies` maps a release path (relative to the version) to the store and key it was linked
        from, so the bucket copies it server-side instead of receiving it again."""
        local = self.local / folder
        complete, _ = self._versions(folder)
        here = set(versions(local))
        sent = 0
        for version in sorted(here - complete):
            root = local / version
            if (root / REMOTE_ONLY).exists():
                continue
            files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
            for rel in [f for f in files if f != RELEASE_JSON] + [RELEASE_JSON]:
                key = f"{folder}/{version}/{rel}"
                src = copies.get(rel)
                if src is not None and not src[0].is_local:
                    self.store.copy(src[0], src[1], key)
                else:
                    self.store.upload([key])
                sent += 1
        latest = latest_version(local)
        if latest:
            self.store.put_remote(f"{folder}/{LATEST}", (latest + "\n").encode())
        else:
            self.store.delete_remote(f"{folder}/{LATEST}")
        # Only after `latest` has moved away from them: versions deleted here go from the bucket too.
        for version in complete - here:
            for path, _, _ in self.store.listing(f"{folder}/{version}"):
                self.store.delete_remote(f"{folder}/{version}/{path}")
        return sent


def local_root(uri: str | Path) -> tuple[Path, RemoteReleases | None]:
    """Where releases are built on this machine, and the bucket they are pushed to (if any)."""
    if str(uri).startswith("s3://"):
        remote = RemoteReleases(str(uri))
        return remote.local, remote
    return Path(uri), None
