"""The landing sensor: registers each ready export batch as a partition and requests its ingestion."""


import dagster as dg

from medlake.ingest.pending import pending_batches
from pipelines.jobs import INGEST_JOB
from pipelines.partitions import EXPORT_BATCHES
from pipelines.resources import LakeResource, LandingResource


@dg.sensor(job=INGEST_JOB, minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING)
def landing_sensor(context: dg.SensorEvaluationContext, landing: LandingResource, lake: LakeResource):
    """A batch is taken once its exporter has written _READY. The run key includes the listing
    fingerprint, so two ticks racing on one batch make one run, and a finished batch whose files
    change gets exactly one more run (which records the refusal)."""
    pending = pending_batches(landing.zone(), lake.store())
    known = set(context.instance.get_dynamic_partitions(EXPORT_BATCHES.name))
    new_keys = sorted({p.ref.key for p in pending} - known)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=p.ref.key, run_key=f"{p.ref.key}@{p.fingerprint}")
                      for p in pending],
        dynamic_partitions_requests=[EXPORT_BATCHES.build_add_request(new_keys)] if new_keys else [],
    )
