"""Zones of the lake (DESIGN.md "Zones"): each is a root that can live in its own bucket, with its
own credentials.

By default every zone is a folder below the lake root (`$MEDLAKE_LAKE/<zone>`) reached with the
usual AWS_* variables. `MEDLAKE_LAKE_<ZONE>` (RESTRICTED, DEID, PROGRAM, CATALOG) puts a zone at a
root of its own, and `MEDLAKE_<ZONE>_AWS_ACCESS_KEY_ID` (and the other AWS_* names with that prefix)
gives it credentials of its own, so that the restricted zone's bucket can be one the deid zone's
credentials cannot read.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medlake.lake.locks import LakeLocks
    from medlake.lake.objects import LakeFiles

ZONES = ("restricted", "deid", "program", "catalog")

# Environment variables deltalake's object-store backend understands, passed through so that an
# `s3://` lake works with the same credentials the rest of the site's tooling uses.
S3_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ALLOW_HTTP",
    "AWS_S3_ALLOW_UNSAFE_RENAME",
)


def s3_options(root: str, prefix: str = "", env: dict[str, str] | None = None) -> dict[str, str]:
    """The storage options for a root: the AWS_* variables, each overridden by `<prefix>AWS_*`."""
    if not root.startswith("s3://"):
        return {}
    env = os.environ if env is None else env
    out = {k: env[k] for k in S3_ENV if env.get(k)}
    if prefix:
        out.update({k: env[prefix + k] for k in S3_ENV if env.get(prefix + k)})
    return out


@dataclass(frozen=True)
class Lake:
    """A lake: the root of each zone (a local path or an s3:// URI) and the options for reaching it."""

    root: str
    zone_roots: dict[str, str] = field(default_factory=dict)
    zone_options: dict[str, dict[str, str]] = field(default_factory=dict)

    @classmethod
    def from_root(cls, root: str, env: dict[str, str] | None = None) -> Lake:
        env = dict(os.environ if env is None else env)
        root = root.rstrip("/")
        roots = {z: (env.get(f"MEDLAKE_LAKE_{z.upper()}") or f"{root}/{z}").rstrip("/") for z in ZONES}
        options = {z: s3_options(roots[z], f"MEDLAKE_{z.upper()}_", env) for z in ZONES}
        return cls(root=root, zone_roots=roots, zone_options=options)

    def zone_root(self, zone: str) -> str:
        if zone not in ZONES:
            raise ValueError(f"unknown zone {zone!r}; zones are {', '.join(ZONES)}")
        return self.zone_roots.get(zone) or f"{self.root}/{zone}"

    def options(self, zone: str) -> dict[str, str]:
        """Storage options (credentials, endpoint) for the zone's root; empty for a local one."""
        self.zone_root(zone)
        return dict(self.zone_options.get(zone) or {})

    def uri(self, zone: str, table: str) -> str:
        return f"{self.zone_root(zone)}/{table}"

    def is_local(self, zone: str) -> bool:
        return "://" not in self.zone_root(zone)

    def objects(self) -> "LakeFiles":
        """The lake's files (de-identified objects, catalogue, dashboard), addressed as
        `<zone>/<path>` whichever root each zone has."""
        from medlake.lake.objects import LakeFiles

        return LakeFiles({z: (self.zone_root(z), tuple(sorted(self.options(z).items()))) for z in ZONES})

    def locks(self) -> "LakeLocks":
        """The lake's named locks, kept in the restricted zone (every writer of the lake reads it)."""
        from medlake.lake.locks import LakeLocks

        return LakeLocks(f"{self.zone_root('restricted')}/_locks", self.options("restricted"))

    def dataset_lock(self, team: str, dataset: str, purpose: str):
        """Held by everything that writes a dataset's slices (a batch's steps, a withdrawal's purge),
        so that a table derived from another (series from instances, cases from both) is never
        computed from rows another writer is changing."""
        return self.locks().hold(f"dataset/{team}/{dataset}", purpose)

    def secure_restricted_zone(self) -> None:
        """A local restricted zone is readable by its owner only (0700), whatever the umask: it holds
        names, chart numbers and the pseudonym vault. An object-store zone gets its access from the
        bucket's policy and credentials instead."""
        if self.is_local("restricted"):
            owner_only_folder(Path(self.zone_root("restricted")))


_UMASK_GUARD = threading.RLock()


@contextlib.contextmanager
def owner_only() -> Iterator[None]:
    """Files and folders created in the block are 0600 and 0700, whatever the process's umask
    (the umask is the process's: threads creating files meanwhile wait for the block)."""
    with _UMASK_GUARD:
        previous = os.umask(0o077)
        try:
            yield
        finally:
            os.umask(previous)


def writing_to(zone: str):
    """The context a write to `zone` runs in: owner-only for the restricted zone."""
    return owner_only() if zone == "restricted" else contextlib.nullcontext()


def owner_only_folder(path: Path) -> Path:
    """`path` created if needed and made 0700 (its parents are left as they are)."""
    path.mkdir(parents=True, exist_ok=True)
    if stat.S_IMODE(path.stat().st_mode) != 0o700:
        path.chmod(0o700)
    return path
