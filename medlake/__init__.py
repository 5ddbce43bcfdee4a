"""medlake: the domain library of the medical-imaging data platform (no Dagster in here)."""

__version__ = "0.1.0"
