"""Resources: where the landing zone, the lake and the registry are. Defaults come from the
environment variables of DESIGN.md (medlake.settings), so tests can point them at tmp_path."""

from __future__ import annotations

from functools import lru_cache

import dagster as dg

from medlake.lake import DeltaStore, Lake
from medlake.lake.migrate import ensure_current
from medlake.landing import LandingZone, open_landing
from medlake.program import Registry, load_registry
from medlake.settings import Settings


class LandingResource(dg.ConfigurableResource):
    """The hospitals' landing zone (read only)."""

    root: str

    def zone(self) -> LandingZone:
        return open_landing(self.root)


class LakeResource(dg.ConfigurableResource):
    """The lake root: restricted/, deid/, program/ and catalog/ below it; a path or an s3:// URI."""

    root: str

    def store(self) -> DeltaStore:
        store = DeltaStore(Lake.from_root(self.root))
        store.lake.secure_restricted_zone()
        ensure_current(store)  # once per process: a lake written by an older medlake is brought up to date
        return store


class ReleasesResource(dg.ConfigurableResource):
    """Where releases are published (MEDLAKE_RELEASES): <tier>/<team>/<dataset>/<version>/ and
    applications/<id>/<version>/."""

    root: str


class RegistryResource(dg.ConfigurableResource):
    """The programme registry file (config/program.yaml or MEDLAKE_PROGRAM)."""

    path: str

    def load(self) -> Registry:
        return _load(self.path)


@lru_cache(maxsize=8)
def _load(path: str) -> Registry:
    return load_registry(path)


def resources_from(settings: Settings) -> dict[str, dg.ConfigurableResource]:
    from pipelines.keys import SecretKeyResource

    s = settings.absolute()
    return {
        "secret": SecretKeyResource(),
        "landing": LandingResource(root=s.landing),
        "lake": LakeResource(root=s.lake),
        "registry": RegistryResource(path=s.program),
        "releases": ReleasesResource(root=s.releases),
    }
