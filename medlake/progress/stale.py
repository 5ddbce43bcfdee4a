"""Whether the programme tables need recomputing when no batch is new (kept free of Dagster imports:
`medlake run` asks it before deciding to start anything)."""

from __future__ import annotations

from medlake.consent.events import consent_changed
from medlake.lake.delta import DeltaStore
from medlake.landing import LandingZone
from medlake.program import Registry


def programme_stale(store: DeltaStore, landing: LandingZone, registry: Registry) -> bool:
    """Never computed, or consent files hold events the lake has not read."""
    return not store.exists("program", "progress_by_team") or consent_changed(landing, registry, store)
