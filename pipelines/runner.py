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
from medlake.lake.migrate import ensure_current
from medlake.lake.zones import owner_only_folder
from medlake.landing import open_landing
from medlake.program import load_registry
from medlake.progress.stale import programme_stale, record_programme_inputs
from medlake.settings import Settings
from pipelines.interrupts import Interrupts

_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
PROGRAMME_JOB = "refresh_programme"


@dataclass(frozen=True)
class RunOutcome:
    """One Dagster run: what it was for (a partition key, or the programme job), how it ended."""

    name: str
    run_id: str
    ok: bool
    failed_steps: tuple[str, ...] = ()


@dataclass
class RunReport:
    batches: list[RunOutcome] = field(default_factory=list)
    programme: RunOutcome | None = None  # None: not needed (nothing new) or not reached
    interrupted_by: int | None = None    # the signal that stopped the run

    @property
    def failed(self) -> list[RunOutcome]:
        return [r for r in [*self.batches, self.programme] if r is not None and not r.ok]

    @property
    def ok(self) -> bool:
        return not self.failed and self.interrupted_by is None


def dagster_instance(settings: Settings) -> dg.DagsterInstance:
    # Dagster's databases hold run logs and configuration: owner-only, like the restricted zone.
    home = owner_only_folder(Path(settings.absolute().dagster_home))
    config = home / "dagster.yaml"
    if not config.exists():
        # Dagster's default local instance (SQLite under DAGSTER_HOME), without phoning home.
        config.write_text("telemetry:\n  enabled: false\n")
    os.environ["DAGSTER_HOME"] = str(home)
    silence_known_warnings()
    return dg.DagsterInstance.get()


def silence_known_warnings() -> None:
    """Dagster's notices about features medlake uses on purpose (partitioned asset checks are a
    preview, pools are beta): known, and printed on every run otherwise."""
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)


def _outcome(name: str, result) -> RunOutcome:
    failed = tuple(sorted({e.step_key for e in result.all_events if e.is_step_failure and e.step_key}))
    return RunOutcome(name, result.run_id, result.success, failed)


def run_pending(
    settings: Settings,
    on_batch_start: Callable[[str, int], None] | None = None,
    on_batch_done: Callable[[RunOutcome], None] | None = None,
    pending: list | None = None,
    interrupts: Interrupts | None = None,
) -> RunReport:
    """Ingest every pending batch (one Dagster run each), then everything downstream. With
    `interrupts`, a SIGTERM or SIGINT during a run stops after that run instead of going on."""
    silence_known_warnings()  # before the definitions are imported: their checks warn when built
    from pipelines.definitions import build_definitions

    settings = settings.absolute()
    load_registry(settings.program)  # fail fast, naming the file and field, before any run starts
    landing = open_landing(settings.landing)
    store = DeltaStore(Lake.from_root(settings.lake))
    store.lake.secure_restricted_zone()
    ensure_current(store)
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
            outcome = _outcome(p.ref.key, result)
            report.batches.append(outcome)
            if on_batch_done:
                on_batch_done(outcome)
            if interrupts is not None and interrupts.received():
                report.interrupted_by = interrupts.received()
                return report
        if pending or programme_stale(store, landing):
            inputs = landing.sharing_fingerprint()  # before the run: a file landing meanwhile is seen next time
            result = defs.resolve_job_def(PROGRAMME_JOB).execute_in_process(
                instance=instance, raise_on_error=False, run_config=_QUIET, tags={"medlake/trigger": "cli"})
            report.programme = _outcome(PROGRAMME_JOB, result)
            if interrupts is not None and interrupts.received():
                report.interrupted_by = interrupts.received()
            elif result.success:
                record_programme_inputs(store, landing, inputs)
    return report
