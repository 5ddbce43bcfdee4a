"""Named locks kept in the lake, so that every process writing it (two operators' `medlake run`,
the Dagster daemon's runs, cron, a dask worker on another machine) agrees on who holds what.

- On a local or network file system a lock is an advisory `flock` on `<root>/<name>.lock`: the
  kernel releases it when the holding process dies, however it dies, so a killed run never leaves a
  stale lock behind. The holder writes who it is into the file, for the message the next one gets.
- On `s3://` a lock is a lease: generation objects `<root>/<name>/<n>.json` created with a
  conditional write (If-None-Match: *), which exactly one writer wins. The holder renews the lease
  in the background; a lease that is neither renewed nor released expires, and a holder on the same
  host whose process is gone is treated as released at once.

Locks are re-entrant within a process, so a step that holds a dataset's lock can call code that
takes it again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LEASE_SECONDS = float(os.environ.get("MEDLAKE_LOCK_LEASE_S", "120"))
_POLL_SECONDS = 0.5
_PLAIN = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _stored_name(name: str) -> str:
    """The lock's path below the root: folder names from a landing zone can be anything (long,
    any script), so a part that is not plain is stored as a digest of itself."""
    parts = []
    for part in name.split("/"):
        plain = _PLAIN.fullmatch(part) and part not in (".", "..")
        parts.append(part if plain else "h-" + hashlib.sha256(part.encode("utf-8", "surrogateescape")).hexdigest()[:32])
    return "/".join(parts)


class LockBusy(RuntimeError):
    """The lock is held by someone else; `holder` says who (host, pid, since when, doing what)."""

    def __init__(self, name: str, holder: dict | None):
        self.name, self.holder = name, holder or {}
        who = (f"process {self.holder.get('pid')} on {self.holder.get('host')} since {self.holder.get('since')}"
               f" ({self.holder.get('purpose')})" if self.holder else "another process")
        super().__init__(f"lock {name} is held by {who}")


def _me(purpose: str) -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid(), "purpose": purpose,
            "since": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}


def _alive_here(holder: dict) -> bool:
    """False when the holder ran on this host and its process is gone."""
    if holder.get("host") != socket.gethostname():
        return True
    try:
        os.kill(int(holder.get("pid", 0)), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        pass
    return True


@dataclass
class _Held:
    count: int
    release: object  # callable: frees the lock across processes
    owner: int       # thread that holds it


class LakeLocks:
    """The locks of one lake (`root`: a folder or an s3:// prefix in the restricted zone)."""

    def __init__(self, root: str, storage_options: dict[str, str] | None = None):
        self.root = root.rstrip("/")
        self.options = dict(storage_options or {})
        self._backend = _S3Leases(self.root, self.options) if self.root.startswith("s3://") else _Flocks(Path(self.root))

    def holder(self, name: str) -> dict | None:
        """Who holds the lock now, or None when it is free."""
        return self._backend.holder(_stored_name(name))

    @contextlib.contextmanager
    def hold(self, name: str, purpose: str, wait: float | None = None) -> Iterator[None]:
        """Hold `name` for the block. `wait`: seconds to wait for it (None: as long as it takes;
        0: not at all); LockBusy when it is still held by another process after that."""
        key = (self.root, name)
        me = threading.get_ident()
        with _REGISTRY_GUARD:
            held = _REGISTRY.get(key)
            if held is not None and held.owner == me:
                held.count += 1
                reentered = True
            else:
                reentered = False
        if not reentered:
            guard = _thread_guard(key)
            deadline = None if wait is None else time.monotonic() + wait
            if not guard.acquire(timeout=-1 if wait is None else max(wait, 0)):
                raise LockBusy(name, self.holder(name))
            try:
                release = self._backend.acquire(_stored_name(name), _me(purpose), deadline)
            except LockBusy as e:
                guard.release()
                raise LockBusy(name, e.holder) from None
            except BaseException:
                guard.release()
                raise
            with _REGISTRY_GUARD:
                _REGISTRY[key] = _Held(1, release, me)
        try:
            yield
        finally:
            with _REGISTRY_GUARD:
                held = _REGISTRY[key]
                held.count -= 1
                done = held.count == 0
                if done:
                    del _REGISTRY[key]
            if done:
                try:
                    held.release()
                finally:
                    _thread_guard(key).release()


_REGISTRY: dict[tuple[str, str], _Held] = {}
_REGISTRY_GUARD = threading.Lock()
_THREAD_GUARDS: dict[tuple[str, str], threading.Lock] = {}


def _thread_guard(key: tuple[str, str]) -> threading.Lock:
    """One lock per name among the threads of this process (flock does not tell threads apart)."""
    with _REGISTRY_GUARD:
        return _THREAD_GUARDS.setdefault(key, threading.Lock())


class _Flocks:
    def __init__(self, root: Path):
        self.root = root

    def _path(self, name: str) -> Path:
        return self.root / f"{name}.lock"

    def holder(self, name: str) -> dict | None:
        path = self._path(name)
        if not path.exists():
            return None
        with open(path, "a+") as fh:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read_holder(path)
            fcntl.flock(fh, fcntl.LOCK_UN)
        return None

    def acquire(self, name: str, me: dict, deadline: float | None):
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if deadline is not None and time.monotonic() >= deadline:
                        raise LockBusy(name, _read_holder(path)) from None
                    time.sleep(_POLL_SECONDS)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
        except BaseException:
            os.close(fd)
            raise

        def release() -> None:
            try:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
            finally:
                os.close(fd)

        return release


def _read_holder(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None


class _S3Leases:
    """Leases as generation objects: `<name>/<n>.json` (created by the holder of generation n),
    `<n>.beat` (its renewals), `<n>.released`. Only If-None-Match on PUT is needed, which AWS S3,
    MinIO and moto honour."""

    def __init__(self, root: str, options: dict[str, str]):
        bucket, _, prefix = root[len("s3://"):].partition("/")
        self.bucket, self.prefix = bucket, prefix.strip("/")
        self.options = options

    def _client(self):
        import boto3  # only for a lake on object storage

        env = {**os.environ, **self.options}
        return boto3.client(
            "s3", endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
            region_name=env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            aws_access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
            aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            aws_session_token=env.get("AWS_SESSION_TOKEN") or None)

    def _key(self, name: str, leaf: str = "") -> str:
        return "/".join(p for p in (self.prefix, name, leaf) if p)

    def _state(self, s3, name: str) -> tuple[int, dict | None]:
        """(latest generation, its holder if the lease is live, else None)."""
        listed = s3.list_objects_v2(Bucket=self.bucket, Prefix=self._key(name) + "/")
        names = {o["Key"].rsplit("/", 1)[-1] for o in listed.get("Contents", [])}
        gens = sorted(int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit())
        if not gens:
            return 0, None
        top = gens[-1]
        if f"{top}.released" in names:
            return top, None
        holder = self._get(s3, name, f"{top}.json") or {}
        beat = self._get(s3, name, f"{top}.beat") if f"{top}.beat" in names else None
        until = max(float(holder.get("lease_until", 0)), float((beat or {}).get("lease_until", 0)))
        if until < time.time() or not _alive_here(holder):
            return top, None
        return top, holder

    def _get(self, s3, name: str, leaf: str) -> dict | None:
        try:
            return json.loads(s3.get_object(Bucket=self.bucket, Key=self._key(name, leaf))["Body"].read())
        except s3.exceptions.NoSuchKey:
            return None

    def holder(self, name: str) -> dict | None:
        return self._state(self._client(), name)[1]

    def acquire(self, name: str, me: dict, deadline: float | None):
        from botocore.exceptions import ClientError

        s3 = self._client()
        while True:
            top, holder = self._state(s3, name)
            if holder is None:
                gen = top + 1
                body = json.dumps({**me, "lease_until": time.time() + LEASE_SECONDS}).encode()
                try:
                    s3.put_object(Bucket=self.bucket, Key=self._key(name, f"{gen}.json"), Body=body, IfNoneMatch="*")
                    break
                except ClientError as e:
                    if e.response.get("Error", {}).get("Code") not in ("PreconditionFailed", "ConditionalRequestConflict"):
                        raise
                    continue  # another writer took this generation first
            if deadline is not None and time.monotonic() >= deadline:
                raise LockBusy(name, holder)
            time.sleep(_POLL_SECONDS)
        for old in range(max(1, top - 1), top):
            for leaf in (f"{old}.json", f"{old}.beat", f"{old}.released"):
                s3.delete_object(Bucket=self.bucket, Key=self._key(name, leaf))
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(LEASE_SECONDS / 4):
                with contextlib.suppress(Exception):  # a missed renewal is retried; the lease is long
                    s3.put_object(Bucket=self.bucket, Key=self._key(name, f"{gen}.beat"),
                                  Body=json.dumps({"lease_until": time.time() + LEASE_SECONDS}).encode())

        beat = threading.Thread(target=renew, name=f"medlake-lease-{name}", daemon=True)
        beat.start()

        def release() -> None:
            stop.set()
            beat.join(timeout=5)
            s3.put_object(Bucket=self.bucket, Key=self._key(name, f"{gen}.released"), Body=b"{}")

        return release
