"""The lakehouse: zones, Delta tables and their schemas."""

from medlake.lake.delta import DeltaStore, sql_literal
from medlake.lake.zones import ZONES, Lake

__all__ = ["ZONES", "DeltaStore", "Lake", "sql_literal"]
