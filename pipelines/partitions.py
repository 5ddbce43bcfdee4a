"""Partitions: one dynamic partition per export batch, keyed team/dataset/batch."""

import dagster as dg

EXPORT_BATCHES = dg.DynamicPartitionsDefinition(name="export_batch")
