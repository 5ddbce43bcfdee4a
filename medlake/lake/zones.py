"""Zones of the lake (DESIGN.md "Zones"): each is a root that could live in its own bucket."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from medlake.lake.locks import LakeLocks
    from medlake.lake.objects import ObjectStore

ZONES = ("restricted", "deid", "program", "catalog")

# Environment variables deltalake's object-store backend understands, passed through so that an
# `s3://` lake works with the same credentials the rest of the site's tooling uses.
_S3_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ALLOW_HTTP",
    "AWS_S3_ALLOW_UNSAFE_RENAME",
)


@dataclass(frozen=True)
class Lake:
    """A lake root (local path or s3:// URI) and the storage options for reaching it."""

    root: str
    storage_options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_root(cls, root: str) -> Lake:
        options: dict[str, str] = {}
        if root.startswith("s3://"):
            options = {k: os.environ[k] for k in _S3_ENV if os.environ.get(k)}
        return cls(root=root.rstrip("/"), storage_options=options)

    def objects(self) -> "ObjectStore":
        """The lake's files (de-identified objects, catalogue, dashboard) as an ObjectStore."""
        from medlake.lake.objects import object_store

        return object_store(self.root, tuple(sorted(self.storage_options.items())))

    def locks(self) -> "LakeLocks":
        """The lake's named locks, kept in the restricted zone (every writer of the lake reads it)."""
        from medlake.lake.locks import LakeLocks

        return LakeLocks(f"{self.root}/restricted/_locks", self.storage_options)

    def dataset_lock(self, team: str, dataset: str, purpose: str):
        """Held by everything that writes a dataset's slices (a batch's steps, a withdrawal's purge),
        so that a table derived from another (series from instances, cases from both) is never
        computed from rows another writer is changing."""
        return self.locks().hold(f"dataset/{team}/{dataset}", purpose)

    @property
    def is_local(self) -> bool:
        return "://" not in self.root

    def uri(self, zone: str, table: str) -> str:
        if zone not in ZONES:
            raise ValueError(f"unknown zone {zone!r}; zones are {', '.join(ZONES)}")
        return f"{self.root}/{zone}/{table}"
