"""The landing zone (shared/EXPORT_FORMAT.md): find export batches and list their files."""

from medlake.landing.zone import BatchRef, LandingZone, READY_MARKER, open_landing

__all__ = ["BatchRef", "LandingZone", "READY_MARKER", "open_landing"]
