"""Landing-zone ingestion: catalogue every file of an export batch, refuse bad ones with a reason."""

from medlake.ingest.batch import BatchResult, ingest_batch
from medlake.ingest.pending import PendingBatch, pending_batches

__all__ = ["BatchResult", "PendingBatch", "ingest_batch", "pending_batches"]
