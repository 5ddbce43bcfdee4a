"""The release steps as the assets run them: tier releases per team, application releases, and
the programme zone's dataset cards. Each returns what it did, for logs and metadata."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from medlake.consent.status import withdrawn_patients
from medlake.consent.tables import WITHDRAWAL_AUDIT
from medlake.lake.delta import DeltaStore
from medlake.program import Registry
from medlake.sharing.applications import active_applications, read_applications
from medlake.sharing.cardfacts import consent_figures, programme_card, release_card
from medlake.sharing.remote import local_root
from medlake.sharing.releases import (
    ReleaseOutcome,
    ReleaseRun,
    audit_rows,
    log_rows,
    release_application,
    release_team,
    revoke_application,
)
from medlake.sharing.tables import APPLICATION_PROBLEMS, APPLICATIONS, RELEASE_ELIGIBILITY, RELEASE_LOG, USAGE_REPORTS


def release_run(store: DeltaStore, registry: Registry, releases_root: str | Path, today: dt.date,
                crash_after: int | None = None) -> ReleaseRun:
    eligibility = store.read(RELEASE_ELIGIBILITY)
    figures = consent_figures(store)
    classes = dict(zip(eligibility.column("case_pseudonym").to_pylist(),
                       eligibility.column("consent_class").to_pylist()))

    def card(sel, version, day):
        return release_card(registry, figures, classes, store, sel, version, day)

    root, remote = local_root(releases_root)
    return ReleaseRun(store, registry, root, eligibility, withdrawn_patients(store), card, today, crash_after,
                      remote=remote)


def publish_team(store: DeltaStore, registry: Registry, releases_root: str | Path, team: str, today: dt.date,
                 now: dt.datetime | None = None, crash_after: int | None = None) -> list[ReleaseOutcome]:
    now = now or dt.datetime.now(dt.timezone.utc)
    run = release_run(store, registry, releases_root, today, crash_after)
    outcomes = release_team(run, team)
    _record(store, run, outcomes, now)
    return outcomes


@dataclass
class ApplicationsRun:
    applications: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    problems: int = 0
    overdue_reports: int = 0
    outcomes: list[ReleaseOutcome] = field(default_factory=list)


def process_applications(store: DeltaStore, registry: Registry, landing_root: str | Path,
                         releases_root: str | Path, today: dt.date, now: dt.datetime | None = None
                         ) -> ApplicationsRun:
    """Read the applications, release to the active ones, revoke the expired ones, then record
    applications, usage reports (due from each first release) and problems."""
    now = now or dt.datetime.now(dt.timezone.utc)
    read = read_applications(landing_root, registry, today)
    run = release_run(store, registry, releases_root, today)
    outcomes: list[ReleaseOutcome] = []
    for app in active_applications(read.applications):
        outcomes += release_application(run, app)
    for app_id, status in zip(read.applications.column("application_id").to_pylist(),
                              read.applications.column("status").to_pylist()):
        if status == "expired":
            outcomes += revoke_application(run, app_id, "expired")
    _record(store, run, outcomes, now)
    read = read_applications(landing_root, registry, today, first_releases(store, read.applications))
    for tdef, table in ((APPLICATIONS, read.applications), (USAGE_REPORTS, read.usage_reports),
                        (APPLICATION_PROBLEMS, read.problems)):
        store.replace(tdef, table, {})
    statuses = read.applications.column("status").to_pylist()
    return ApplicationsRun(applications=len(statuses), by_status={s: statuses.count(s) for s in set(statuses)},
                           problems=read.problems.num_rows,
                           overdue_reports=read.usage_reports.column("status").to_pylist().count("overdue"),
                           outcomes=outcomes)


def first_releases(store: DeltaStore, applications: pa.Table) -> dict[str, dt.date]:
    """application id -> when its access began: its first published release, or the signing of its
    agreement when that came first (access granted before medlake published anything for it)."""
    log = store.read(RELEASE_LOG, ["application_id", "action", "released_on"])
    log = log.filter(pc.and_(pc.equal(log["action"], "published"), pc.is_valid(log["application_id"])))
    out: dict[str, dt.date] = {}
    for app, day in zip(log.column("application_id").to_pylist(), log.column("released_on").to_pylist()):
        out[app] = min(out.get(app, day), day)
    for app, signed in zip(applications.column("application_id").to_pylist(),
                           applications.column("agreement_signed").to_pylist()):
        if signed is not None:  # only active and expired applications owe reports (read_applications)
            out[app] = min(out.get(app, signed), signed)
    return out


def _record(store: DeltaStore, run: ReleaseRun, outcomes: list[ReleaseOutcome], now: dt.datetime) -> None:
    log = log_rows(outcomes, now, run.today)
    if log.num_rows:
        store.append(RELEASE_LOG, log)
    audit = audit_rows(run, outcomes, now)
    if audit.num_rows:
        store.append(WITHDRAWAL_AUDIT, audit)


def write_programme_cards(store: DeltaStore, registry: Registry, folder: Path, today: dt.date) -> list[Path]:
    """DATASET_CARD for every dataset of the registry, shared or not, into the programme zone."""
    folder.mkdir(parents=True, exist_ok=True)
    figures = consent_figures(store)
    out = []
    for spec in registry.datasets:
        path = folder / f"{spec.id}.md"
        tmp = path.with_suffix(".md.tmp")
        tmp.write_text(programme_card(registry, figures, store, spec.id, today), encoding="utf-8")
        tmp.replace(path)
        out.append(path)
    return out

