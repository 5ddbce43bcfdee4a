"""Dagster sensors: the landing zone (and later consent events and access applications)."""
