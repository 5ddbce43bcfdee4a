"""Whether the programme run is due when no batch is new (kept free of Dagster imports: `medlake
run` asks it before deciding to start anything)."""

from __future__ import annotations

from pathlib import Path

from medlake.lake.delta import DeltaStore
from medlake.landing import LandingZone

_INPUTS = "sharing_inputs.fingerprint"


def _marker(store: DeltaStore) -> Path:
    return Path(store.lake.root) / "program" / _INPUTS


def programme_stale(store: DeltaStore, landing: LandingZone) -> bool:
    """Never computed, or a consent file or an application folder changed since the last good run."""
    if not store.exists("program", "progress_by_team"):
        return True
    marker = _marker(store)
    return not marker.is_file() or marker.read_text().strip() != landing.sharing_fingerprint()


def record_programme_inputs(store: DeltaStore, landing: LandingZone, fingerprint: str) -> None:
    """After a successful programme run: the consent and application files it acted on."""
    marker = _marker(store)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(fingerprint + "\n")
