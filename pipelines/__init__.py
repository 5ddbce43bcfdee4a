"""Dagster wiring (definitions, jobs, resources, partitions) and the `medlake` CLI."""
