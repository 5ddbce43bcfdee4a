"""Summaries for people: the terminal status and the demo's closing table."""

from medlake.reports.ingestion import ingestion_summary

__all__ = ["ingestion_summary"]
