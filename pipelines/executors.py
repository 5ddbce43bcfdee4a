"""Where a run's steps execute, chosen by MEDLAKE_EXECUTOR (deploy/dask/README.md):

- unset: Dagster's default (multi_or_in_process: a process per step on this machine);
- in_process: every step in the run's own process;
- multiprocess: a process per step on this machine (run config `execution.config.max_concurrent`);
- dask: a dask task per step on a dask cluster, so that steps run on several machines.

A run of process_export_batch is one batch, and its assets form a chain, so batches run in parallel
as concurrent runs (the instance's run queue), whichever executor runs their steps.
"""

from __future__ import annotations

import os

import dagster as dg

EXECUTOR_ENV = "MEDLAKE_EXECUTOR"
CHOICES = ("in_process", "multiprocess", "dask")


def executor_from_env(env: dict[str, str] | None = None) -> dg.ExecutorDefinition | None:
    """The executor MEDLAKE_EXECUTOR names; None leaves Dagster's default."""
    choice = (os.environ if env is None else env).get(EXECUTOR_ENV, "")
    if not choice:
        return None
    if choice == "in_process":
        return dg.in_process_executor
    if choice == "multiprocess":
        return dg.multiprocess_executor
    if choice == "dask":
        from pipelines.dask_executor import dask_executor  # dask.distributed only when asked for

        return dask_executor
    raise ValueError(f"{EXECUTOR_ENV}={choice!r}: expected one of {', '.join(CHOICES)} or unset")
