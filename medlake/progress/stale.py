"""Whether the programme run is due when no batch is new (kept free of Dagster imports: `medlake
run` asks it before deciding to start anything)."""

from __future__ import annotations


from medlake.lake.delta import DeltaStore
from medlake.landing import LandingZone
from medlake.lake.tables import PROGRESS_BY_TEAM

_INPUTS = "sharing_inputs.fingerprint"


_MARKER = f"program/{_INPUTS}"


def programme_stale(store: DeltaStore, landing: LandingZone) -> bool:
    """Never computed, or a consent file or an application folder changed since the last good run."""
    if not store.exists(PROGRESS_BY_TEAM):
        return True
    try:
        recorded = store.lake.objects().read_bytes(_MARKER).decode().strip()
    except FileNotFoundError:
        return True
    return recorded != landing.sharing_fingerprint()


def record_programme_inputs(store: DeltaStore, landing: LandingZone, fingerprint: str) -> None:
    """After a successful programme run: the consent and application files it acted on."""
    store.lake.objects().write_bytes(_MARKER, (fingerprint + "\n").encode())
