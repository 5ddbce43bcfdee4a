"""Consent events from the landing zone (EXPORT_FORMAT.md, <team>/_consent/*.csv)."""
