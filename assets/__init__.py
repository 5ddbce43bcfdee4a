"""Dagster assets, one module per stage; each asset calls into medlake and reports metadata."""
