"""Landing-zone ingestion: catalogue every file of an export batch, refuse bad ones with a reason.

`medlake.ingest.batch.ingest_batch` does the work; `medlake.ingest.pending.pending_batches` says what
is new. They are imported from their modules so that a check for new work stays cheap to start.
"""
