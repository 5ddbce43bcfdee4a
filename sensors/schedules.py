"""The daily sweep: whatever the landing sensor has not taken (it was off, a tick failed) runs at 06:00."""

import dagster as dg

from medlake.ingest.pending import pending_batches
from pipelines.jobs import INGEST_JOB
from pipelines.partitions import EXPORT_BATCHES
from pipelines.resources import LakeResource, LandingResource


@dg.schedule(job=INGEST_JOB, cron_schedule="0 6 * * *", execution_timezone="Asia/Taipei",
             default_status=dg.DefaultScheduleStatus.RUNNING)
def daily_batch_sweep(context: dg.ScheduleEvaluationContext, landing: LandingResource, lake: LakeResource):
    """Run keys match the sensor's, so a batch the sensor already took is not run again."""
    pending = pending_batches(landing.zone(), lake.store())
    known = set(context.instance.get_dynamic_partitions(EXPORT_BATCHES.name))
    new = sorted({p.ref.key for p in pending} - known)
    if new:
        context.instance.add_dynamic_partitions(EXPORT_BATCHES.name, new)
    return [dg.RunRequest(partition_key=p.ref.key, run_key=f"{p.ref.key}@{p.fingerprint}") for p in pending]
