"""Run everything for what is landed now, in process, on the Dagster instance in DAGSTER_HOME."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from medlake.ingest.pending import pending_batches
from medlake.lake import DeltaStore, Lake
from medlake.landing import open_landing
from medlake.program import load_registry
from medlake.progress.stale import programme_stale, record_programme_inputs
from medlake.settings import Settings

_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class RunReport:
    batches_run: int = 0
    programme_refreshed: bool = False
    failed: list[str] = field(default_factory=list)  # partition keys (team/dataset/batch names, no identifiers)

    @property
    def ok(self) -> bool:
        return not self.failed


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    home = Path(settings.absolute().dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        # Dagster's default local instance (SQLite under DAGSTER_HOME), without phoning home.
        config.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)
    return dg.DagsterInstance.get()


def run_pending(
    settings: Settings,
    on_batch_start: Callable[[str, int], None] | None = None,
    on_batch_done: Callable[[str, bool], None] | None = None,
    pending: list | None = None,
) -> RunReport:
    """Ingest every pending batch (one Dagster run each), then everything downstream."""
    from pipelines.definitions import build_definitions

    settings = settings.absolute()
    load_registry(settings.program)  # fail fast, naming the file and field, before any run starts
    landing = open_landing(settings.landing)
    store = DeltaStore(Lake.from_root(settings.lake))
    report = RunReport()
    # Entered, so that Dagster's per-instance context (its definitions-state storage) is this
    # instance's for the whole run and is released when the run is over.
    with dagster_instance(settings) as instance:
        defs = build_definitions(settings)
        if pending is None:  # the CLI passes what it already found: one walk of the landing zone, not two
            pending = pending_batches(landing, store)
        known = set(instance.get_dynamic_partitions("export_batch"))
        new = sorted({p.ref.key for p in pending} - known)
        if new:
            instance.add_dynamic_partitions("export_batch", new)
        job = defs.resolve_job_def("process_export_batch")
        for p in pending:
            if on_batch_start:
                on_batch_start(p.ref.key, len(landing.files(p.ref)))
            result = job.execute_in_process(partition_key=p.ref.key, instance=instance, raise_on_error=False,
                                            run_config=_QUIET, tags={"medlake/trigger": "cli"})
            report.batches_run += 1
            if not result.success:
                report.failed.append(p.ref.key)
            if on_batch_done:
                on_batch_done(p.ref.key, result.success)
        if pending or programme_stale(store, landing):
            inputs = landing.sharing_fingerprint()  # before the run: a file landing meanwhile is seen next time
            result = defs.resolve_job_def("refresh_programme").execute_in_process(
                instance=instance, raise_on_error=False, run_config=_QUIET, tags={"medlake/trigger": "cli"})
            report.programme_refreshed = True
            if result.success:
                record_programme_inputs(store, landing, inputs)
            else:
                report.failed.append("refresh_programme")
    return report
