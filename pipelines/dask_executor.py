"""dagster-dask's executor (config, cluster choice, the function a worker runs a step with), with
three defects of dagster-dask 0.29.27 on distributed 2026.8 fixed, each seen here on this job:

1. A step's dask task is keyed `<job>.<step>`, so two runs of one job on one scheduler at once (a
   backfill of several batches) share keys: dask hands the second run the first run's results, and
   the second run is reported successful with its batch never processed (dagster-io/dagster#21418,
   closed without a fix). Here the key carries the run id.
2. dask walks the tuples among a task's arguments looking for futures; the DagsterRun of a job whose
   assets use pools holds a record that refuses iteration, so every such run failed before its
   first step ("Iteration is not allowed on `@record` RunOpConcurrency"). Here the arguments are
   bound in a partial, which dask does not walk.
3. The whole plan is submitted at once and dask starts a step when the steps before it have ended,
   failed or not: a batch whose blocking identifier check failed still reached the steps after it.
   Here a step whose upstream step failed or was not run is not run, as in Dagster's own executors.

Also, a cluster the run started is closed when the run ends (upstream leaves it to the garbage
collector). Step retries stay off, as upstream has them (RetryMode.DISABLED), and pools are not
enforced: the number of dask workers bounds concurrency. Imported only when MEDLAKE_EXECUTOR=dask,
because importing dask.distributed costs about a second on every load of the code location.
"""

from __future__ import annotations

import importlib
import os
from contextlib import nullcontext
from functools import partial

import dagster as dg
import dask.distributed
from dagster._core.events import DagsterEvent
from dagster._core.errors import raise_execution_interrupts
from dagster._utils import iterate_with_context
from dagster_dask import dask_executor as upstream
from dagster_dask.executor import DaskExecutor, get_dask_resource_requirements, query_on_dask_worker

SCHEDULER_ENV = "MEDLAKE_DASK_SCHEDULER"

# The cluster managers upstream's config accepts besides `existing` and `local` (each needs its own
# package: dask-kubernetes, dask-jobqueue, dask-yarn).
_MANAGERS = {
    "yarn": "dask_yarn.YarnCluster", "ssh": "dask.distributed.SSHCluster", "kube": "dask_kubernetes.KubeCluster",
    **{k: f"dask_jobqueue.{k.upper()}Cluster" for k in ("pbs", "sge", "lsf", "slurm", "oar")},
    "moab": "dask_jobqueue.MoabCluster",
}


def _run_step(before: list[list[DagsterEvent]], **step) -> list[DagsterEvent]:
    """On a worker: the step, unless a step it depends on failed or was not run (no events)."""
    if any(not events or any(e.is_step_failure for e in events) for events in before):
        return []
    return query_on_dask_worker(before, **step)


class RunScopedDaskExecutor(DaskExecutor):
    def _cluster(self, job_name: str):
        if self.cluster_type == "existing":
            return self.cluster_configuration["address"]
        if self.cluster_type == "local":
            return dask.distributed.LocalCluster(**self.build_dict(job_name))
        module, _, name = _MANAGERS[self.cluster_type].rpartition(".")
        return getattr(importlib.import_module(module), name)(**self.build_dict(job_name))

    def execute(self, plan_context, execution_plan):
        dg._check.invariant(plan_context.instance.is_persistent,
                            "Dask execution requires a persistent DagsterInstance")
        job_name, run = plan_context.job_name, plan_context.dagster_run
        cluster = self._cluster(job_name)
        with (nullcontext() if isinstance(cluster, str) else cluster), dask.distributed.Client(cluster) as client:
            futures = {}
            for level in execution_plan.get_steps_to_execute_by_level():
                for step in level:
                    # Passing the upstream steps' futures makes dask run this step after them.
                    deps = [futures[k] for step_input in step.step_inputs for k in step_input.dependency_keys]
                    work = partial(_run_step, recon_job=plan_context.reconstructable_job,
                                   dagster_run=run, run_config=plan_context.run_config, step_keys=[step.key],
                                   instance_ref=plan_context.instance.get_ref(),
                                   known_state=execution_plan.known_state)
                    futures[step.key] = client.submit(work, deps, key=f"{job_name}.{step.key}-{run.run_id}",
                                                      resources=get_dask_resource_requirements(step.tags))
            done = dask.distributed.as_completed(list(futures.values()), with_results=True)
            keys = {future.key: step_key for step_key, future in futures.items()}
            for future, events in iterate_with_context(raise_execution_interrupts, done):
                if not events:
                    plan_context.log.error(f"Dependencies for step {keys[future.key]} failed or were not "
                                           "executed. Not executing.")
                yield from events


_CLUSTER = upstream.config_schema.config_type.fields["cluster"].config_type


@dg.executor(
    name="dask",
    config_schema={"cluster": dg.Field(_CLUSTER, is_required=False,
                                       description=f"Upstream's cluster choice; default: the scheduler at ${SCHEDULER_ENV}.")},
    requirements=dg.multiple_process_executor_requirements(),
)
def dask_executor(init_context) -> RunScopedDaskExecutor:
    """Each step of a run is a dask task on the cluster that the run config names, or, when it names
    none (runs from sensors, schedules and the UI's backfills), on the scheduler at
    MEDLAKE_DASK_SCHEDULER."""
    cluster = init_context.executor_config.get("cluster")
    if not cluster:
        address = os.environ.get(SCHEDULER_ENV)
        if not address:
            raise dg.DagsterInvalidConfigError(
                f"MEDLAKE_EXECUTOR=dask: set {SCHEDULER_ENV} to the dask scheduler's address "
                "(tcp://host:8786) or give execution.config.cluster in the run config (deploy/dask/)", [], None)
        cluster = {"existing": {"address": address}}
    ((kind, config),) = cluster.items()
    return RunScopedDaskExecutor(kind, config)
