"""Files below a zone root that is a local folder or an s3:// prefix.

Most of medlake works on files (DICOM parsing with offsets, TIFF rewriting, the checker), so a remote
root is used through a local cache: work happens on `path(rel)`, `upload(rels)` sends the results,
`fetch(rel)` brings a file down once when this machine has not seen it. For a local root all of this
is the identity: `path(rel)` is the file itself, and uploads and fetches do nothing.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from functools import lru_cache

import pyarrow.fs as pafs


class StorageError(OSError):
    """The object store could not be reached or refused an operation, after the client's retries;
    the message names the URI."""


def _unreachable(what: str, uri: str, e: OSError) -> StorageError:
    return StorageError(f"cannot {what} {uri} (after retrying): {e}")


def s3_filesystem(options: dict[str, str] | None = None, allow_bucket_creation: bool = False) -> pafs.S3FileSystem:
    """pyarrow's S3 client from the usual AWS_* variables (AWS_ENDPOINT_URL for a non-AWS store)."""
    env = {**os.environ, **(options or {})}
    endpoint = env.get("AWS_ENDPOINT_URL", "")
    scheme = "https"
    if endpoint.startswith("http://"):
        scheme, endpoint = "http", endpoint[len("http://"):]
    elif endpoint.startswith("https://"):
        endpoint = endpoint[len("https://"):]
    kwargs = {"region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1", "scheme": scheme,
              # Transient failures (a restarting server) are retried before anything is reported.
              "retry_strategy": pafs.AwsStandardS3RetryStrategy(max_attempts=int(env.get("MEDLAKE_S3_ATTEMPTS", "5"))),
              "connect_timeout": 5, "request_timeout": 60, "allow_bucket_creation": allow_bucket_creation}
    if endpoint:
        kwargs["endpoint_override"] = endpoint
    if env.get("AWS_ACCESS_KEY_ID"):
        kwargs["access_key"] = env["AWS_ACCESS_KEY_ID"]
        kwargs["secret_key"] = env.get("AWS_SECRET_ACCESS_KEY", "")
        if env.get("AWS_SESSION_TOKEN"):
            kwargs["session_token"] = env["AWS_SESSION_TOKEN"]
    return pafs.S3FileSystem(**kwargs)


def cache_root() -> Path:
    return Path(os.environ.get("MEDLAKE_CACHE") or Path(tempfile.gettempdir()) / "medlake-cache")


class ObjectStore:
    """The files of one root (a zone's folder, the landing zone, the releases)."""

    def __init__(self, root: str, storage_options: dict[str, str] | None = None):
        self.root = root.rstrip("/")
        self.options = dict(storage_options or {})
        self.is_local = "://" not in self.root
        if self.is_local:
            self.fs = None
            self.base = Path(self.root)
            self.cache = self.base
        else:
            if not self.root.startswith("s3://"):
                raise ValueError(f"unsupported storage {self.root!r}: a local path or an s3:// URI")
            self.fs = s3_filesystem(storage_options)
            self.base = None
            # One cache per root, so two lakes on one machine never share files.
            self.cache = cache_root() / hashlib.sha256(self.root.encode()).hexdigest()[:16]

    def key(self, rel: str) -> str:
        return f"{self.root[len('s3://'):]}/{rel}" if not self.is_local else str(self.base / rel)

    def uri(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def path(self, rel: str | Path) -> Path:
        """Where to read or write the file on this machine."""
        return self.cache / rel

    def fetch(self, rel: str | Path, size: int | None = None) -> Path:
        """The file on this machine, downloaded first when the root is remote and the cache lacks it
        (or holds another size of it: consent files grow)."""
        local = self.cache / rel
        if self.is_local or (local.is_file() and (size is None or local.stat().st_size == size)):
            return local
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(local.name + f".part-{os.getpid()}")
        try:
            with self.fs.open_input_stream(self.key(str(rel))) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except FileNotFoundError:
            raise
        except OSError as e:
            tmp.unlink(missing_ok=True)
            raise _unreachable("read", self.uri(str(rel)), e) from e
        os.replace(tmp, local)
        return local

    def upload(self, rels: Iterable[str | Path]) -> int:
        """Send files written under path(rel) to the remote root; returns how many."""
        if self.is_local:
            return 0
        n = 0
        for rel in rels:
            try:
                with open(self.cache / rel, "rb") as src, self.fs.open_output_stream(self.key(str(rel))) as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except OSError as e:
                raise _unreachable("write", self.uri(str(rel)), e) from e
            n += 1
        return n

    def write_bytes(self, rel: str, data: bytes) -> None:
        local = self.path(rel)
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = local.with_name(local.name + f".part-{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, local)
        self.upload([rel])

    def read_bytes(self, rel: str) -> bytes:
        if self.is_local:
            return (self.base / rel).read_bytes()
        with self.fs.open_input_stream(self.key(rel)) as f:
            return f.read()

    def put_remote(self, rel: str, data: bytes) -> None:
        """Write a small object to the remote root only (a pointer such as a release's `latest`)."""
        with self.fs.open_output_stream(self.key(rel)) as out:
            out.write(data)

    def delete_remote(self, rel: str) -> None:
        """Remove the remote object only, leaving this machine's copy alone."""
        try:
            self.fs.delete_file(self.key(rel))
        except FileNotFoundError:
            pass

    def delete(self, rel: str | Path, prune_below: str | None = None) -> bool:
        """Remove the file here and remotely; False when it was not there. With `prune_below`, the
        folders it leaves empty go too, up to (not including) that folder: de-identified objects
        live in folders named after keyed UIDs, which must not outlive the patient's withdrawal."""
        gone = False
        local = self.cache / rel
        if local.is_file():
            local.unlink()
            gone = True
        if prune_below is not None:
            stop = (self.cache / prune_below).resolve()
            parent = local.parent.resolve()
            while parent != stop and stop in parent.parents:
                try:
                    parent.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:  # not empty: the folders above are not empty either
                    break
                parent = parent.parent
        if not self.is_local:
            try:
                self.fs.delete_file(self.key(str(rel)))
                gone = True
            except FileNotFoundError:
                pass
        return gone

    def exists(self, rel: str | Path) -> bool:
        if self.is_local:
            return (self.base / rel).exists()
        return self.fs.get_file_info(self.key(str(rel))).type != pafs.FileType.NotFound

    def listing(self, prefix: str = "") -> list[tuple[str, int, int]]:
        """(path relative to prefix, size, mtime_ns) of every file below prefix, sorted."""
        if self.is_local:
            base = self.base / prefix
            out = []
            for d, _, files in os.walk(base):
                for f in files:
                    st = os.stat(os.path.join(d, f))
                    out.append((os.path.relpath(os.path.join(d, f), base).replace(os.sep, "/"), st.st_size,
                                st.st_mtime_ns))
            return sorted(out)
        key = self.key(prefix).rstrip("/")
        try:
            infos = self.fs.get_file_info(pafs.FileSelector(key, recursive=True, allow_not_found=True))
        except FileNotFoundError:
            return []
        except OSError as e:
            raise _unreachable("list", self.uri(prefix) if prefix else self.root, e) from e
        return sorted((i.path[len(key) + 1:], i.size, i.mtime_ns or 0) for i in infos
                      if i.type == pafs.FileType.File)

    def sync_up(self, prefix: str) -> int:
        """Make the remote prefix hold exactly what the cache holds below it (a re-exported catalogue,
        the dataset cards); returns files uploaded."""
        if self.is_local:
            return 0
        def under(p: str) -> str:
            return f"{prefix}/{p}" if prefix else p

        local = {p for p, _, _ in ObjectStore(str(self.cache)).listing(prefix)}
        for gone in {p for p, _, _ in self.listing(prefix)} - local:
            self.fs.delete_file(self.key(under(gone)))
        return self.upload(under(p) for p in sorted(local))

    def copy(self, src: "ObjectStore", src_rel: str, rel: str) -> None:
        """Copy a file from another store: server-side when both are on the same S3 service and
        reached with the same credentials (a bucket of its own credentials may not read the other)."""
        if not self.is_local and not src.is_local and _same_service(self.options, src.options):
            self.fs.copy_file(src.key(src_rel), self.key(rel))
            return
        data = src.fetch(src_rel)
        if self.is_local:
            dst = self.path(rel)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(data, dst)
        else:
            with open(data, "rb") as f, self.fs.open_output_stream(self.key(rel)) as out:
                shutil.copyfileobj(f, out, 1 << 20)


def _same_service(a: dict[str, str], b: dict[str, str]) -> bool:
    keys = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    merged_a, merged_b = {**os.environ, **a}, {**os.environ, **b}
    return all(merged_a.get(k) == merged_b.get(k) for k in keys)


@lru_cache(maxsize=32)
def object_store(root: str, options: tuple[tuple[str, str], ...] = ()) -> ObjectStore:
    """One ObjectStore (one S3 client) per root and options in a process."""
    return ObjectStore(root, dict(options))


class LakeFiles:
    """The lake's files addressed as `<zone>/<path>`, each zone on its own root (medlake.lake.zones):
    the same calls as an ObjectStore, routed by the first part of the path."""

    def __init__(self, zones: dict[str, tuple[str, tuple[tuple[str, str], ...]]]):
        self._zones = {z: object_store(root, options) for z, (root, options) in zones.items()}

    def resolve(self, rel: str | Path) -> tuple[ObjectStore, str]:
        """The zone's store and the path within it."""
        zone, _, rest = str(rel).partition("/")
        try:
            return self._zones[zone], rest
        except KeyError:
            raise ValueError(f"{rel}: a lake path starts with a zone ({', '.join(self._zones)})") from None

    def zone(self, name: str) -> ObjectStore:
        return self._zones[name]

    def path(self, rel: str | Path) -> Path:
        store, rest = self.resolve(rel)
        return store.path(rest)

    def uri(self, rel: str) -> str:
        store, rest = self.resolve(rel)
        return store.uri(rest)

    def fetch(self, rel: str | Path, size: int | None = None) -> Path:
        store, rest = self.resolve(rel)
        return store.fetch(rest, size)

    def upload(self, rels: Iterable[str | Path]) -> int:
        n = 0
        for rel in rels:
            store, rest = self.resolve(rel)
            n += store.upload([rest])
        return n

    def write_bytes(self, rel: str, data: bytes) -> None:
        from medlake.lake.zones import writing_to

        store, rest = self.resolve(rel)
        with writing_to(str(rel).partition("/")[0]):
            store.write_bytes(rest, data)

    def read_bytes(self, rel: str) -> bytes:
        store, rest = self.resolve(rel)
        return store.read_bytes(rest)

    def delete(self, rel: str | Path, prune_below: str | None = None) -> bool:
        store, rest = self.resolve(rel)
        below = None
        if prune_below is not None:
            zone_of_stop, stop = self.resolve(prune_below)
            below = stop if zone_of_stop is store else None
        return store.delete(rest, prune_below=below)

    def exists(self, rel: str | Path) -> bool:
        store, rest = self.resolve(rel)
        return store.exists(rest)

    def listing(self, prefix: str) -> list[tuple[str, int, int]]:
        store, rest = self.resolve(prefix)
        return store.listing(rest)

    def sync_up(self, prefix: str) -> int:
        store, rest = self.resolve(prefix)
        return store.sync_up(rest)
