"""Per-team dataset releases for each tier, and the releases of approved access applications.

    $MEDLAKE_RELEASES/<tier>/<team>/<dataset>/<version>/
    $MEDLAKE_RELEASES/applications/<application_id>/<version>/<dataset>/...

Every version is checked by the identifier checker before it becomes visible; a finding refuses
it. Versions holding a patient who has since opted out or withdrawn are deleted (the new version
without them is published first), and each deletion is logged and audited.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from medlake.checker import Checker
from medlake.checker.findings import CheckReport
from medlake.checker.sources import team_index
from medlake.consent.tables import WITHDRAWAL_AUDIT
from medlake.lake.delta import DeltaStore
from medlake.program import Registry
from medlake.sharing.publish import (
    LATEST,
    MANIFEST,
    FileEntry,
    ReleaseRefused,
    latest_version,
    publish,
    publishing_lock,
    remove_version,
    table_entry,
    versions,
)
from medlake.sharing.markdown_text import inline
from medlake.sharing.remote import RemoteReleases
from medlake.sharing.selection import Selection, select_release
from medlake.sharing.tables import RELEASE_LOG


AUDIENCE = {"collaboration": "research teams collaborating with the building team",
            "review": "applicants approved by the review committee",
            "public": "anyone accepting the download terms"}


@dataclass
class ReleaseOutcome:
    kind: str                 # tier | application
    tier: str
    path: str                 # relative to the releases root
    action: str               # published | unchanged | refused | empty | purged | revoked
    version: str | None = None
    team: str | None = None
    dataset: str | None = None
    application_id: str | None = None
    recipient: str = ""
    cases: int = 0
    objects: int = 0
    bytes: int = 0
    k_min: int | None = None
    suppressed: int = 0
    digest: str = ""
    reason: str | None = None
    linked: int = 0
    copied: int = 0
    findings: dict[str, int] = field(default_factory=dict)
    patients: list[str] = field(default_factory=list)  # pseudonyms, for purges (audit only)


@dataclass
class ReleaseRun:
    """Shared state of one release run: the lake, where releases go, the withdrawn patients."""
    store: DeltaStore
    registry: Registry
    root: Path
    eligibility: pa.Table
    withdrawn: dict[tuple[str, str], dict]          # (team, pseudonym) -> event
    card: Callable[[Selection, str, dt.date], str]  # the dataset card of a selection at a version
    today: dt.date
    crash_after: int | None = None                  # tests: fail in the middle of writing
    remote: RemoteReleases | None = None            # the bucket releases are pushed to, if any
    rescan_objects: bool = False                    # read linked objects again in the release check

    def checker(self, team: str | None) -> Callable[[Path, set[tuple[int, int]]], CheckReport]:
        """The identifier checker over a release folder. The bytes of a hard link to an object whose
        batch passed its own check are that object's bytes, so unless `rescan_objects` is set only
        their names are checked again; tables, card, release.json and copies are read in full."""
        teams = [team] if team else sorted(self.registry.teams_by_id)

        def check(folder: Path, linked: set[tuple[int, int]]) -> CheckReport:
            checker = Checker(team_index(self.store, teams))
            if self.rescan_objects or not (folder / "objects").is_dir():
                return checker.check(folder)
            dev = os.stat(folder).st_dev
            return checker.check(folder, linked_inodes={ino for d, ino in linked if d == dev}, linked_dir="objects")
        return check


def release_team(run: ReleaseRun, team: str) -> list[ReleaseOutcome]:
    out = []
    for spec in run.registry.datasets_of(team):
        for tier in spec.offered_tiers:
            out += release_dataset(run, team, spec.id, tier)
    return out


def release_dataset(run: ReleaseRun, team: str, dataset: str, tier: str) -> list[ReleaseOutcome]:
    folder = run.root / tier / team / dataset
    rel = folder.relative_to(run.root).as_posix()
    base = dict(kind="tier", tier=tier, team=team, dataset=dataset, recipient=AUDIENCE[tier])
    with publishing_lock(folder):
        if run.remote:
            run.remote.pull(rel)
        sel = select_release(run.store, run.registry, run.eligibility, team, dataset, tier)
        outcomes: list[ReleaseOutcome] = []
        if sel.cases.num_rows == 0 and latest_version(folder) is None:
            outcomes.append(ReleaseOutcome(path=rel, action="empty", **base))
        else:
            lake = run.store.lake.objects()
            # Eligible cases come only from batches whose identifier check passed: their objects are checked.
            entries = [FileEntry(f.path, f.sha256, f.size, source=lake.fetch(f.source) if f.data is None else None,
                                 data=f.data, checked=f.data is None) for f in sel.files]
            entries += [table_entry(name, t) for name, t in sel.tables.items()]
            first = latest_version(folder) is None
            try:
                pub = publish(folder, entries, lambda v, d: release_json(run, sel, v, d),
                              lambda v: run.card(sel, v, run.today), run.checker(team), run.crash_after)
                outcomes.append(ReleaseOutcome(
                    path=f"{rel}/{pub.version}", action=pub.action, version=pub.version, cases=sel.cases.num_rows,
                    objects=len(sel.files), bytes=sum(f.size for f in sel.files), k_min=sel.kres.k_after,
                    suppressed=len(sel.kres.suppressed), digest=pub.digest, linked=pub.linked, copied=pub.copied,
                    reason="new" if first else "content_changed", **base))
            except ReleaseRefused as e:
                outcomes.append(ReleaseOutcome(path=rel, action="refused", reason="identifier_findings",
                                               findings=dict(e.report.by_kind), cases=sel.cases.num_rows, **base))
        outcomes += purge_withdrawn_versions(run, folder, base)
        if run.remote:
            lake = run.store.lake.objects()
            run.remote.push(rel, {f.path: lake.resolve(f.source) for f in sel.files if f.data is None})
    return outcomes


def release_json(run: ReleaseRun, sel: Selection, version: str, digest: str) -> dict:
    spec = run.registry.dataset(sel.dataset)
    by_status: dict[str, int] = {}
    for s in sel.cases.column("annotation_status").to_pylist():
        by_status[s] = by_status.get(s, 0) + 1
    return {
        "programme": run.registry.programme.id, "dataset": sel.dataset, "team": sel.team, "tier": sel.tier,
        "audience": AUDIENCE[sel.tier], "version": version, "released_on": run.today.isoformat(),
        "content_digest": digest, "delta_versions": sel.versions, "release_content": sel.content,
        "counts": {"cases": sel.cases.num_rows, "eligible_cases": sel.eligible, "by_status": by_status,
                   "instances": sel.instances.num_rows, "slides": sel.slides.num_rows,
                   "annotations": sel.annotations.num_rows if sel.content != "images_only" else 0,
                   "objects": len(sel.files), "bytes": sum(f.size for f in sel.files)},
        "deid_options": list(run.registry.deid_options(sel.dataset)),
        "k_anonymity": {"quasi_identifiers": ["age_band", "sex", "study_year", "team"], "k": sel.k,
                        "k_before": sel.kres.k_before, "k_after": sel.kres.k_after, "level": sel.kres.level,
                        "suppressed": len(sel.kres.suppressed)},
        "consent_policy": dict(run.registry.consent_policy),
        "release_without_consent_record": spec.release_without_consent_record,
    }


def _version_patients(version_dir: Path) -> set[str]:
    """Patient pseudonyms in one version (its cases table, or each dataset's in an application)."""
    found: set[str] = set()
    for tables in _table_dirs(version_dir):
        found |= set(pq.read_table(tables / "cases.parquet", columns=["patient_pseudonym"]).column(0).to_pylist())
    return found


def _table_dirs(version_dir: Path) -> list[Path]:
    # A tier release has tables/ at its top, an application release one per dataset folder.
    return [d for d in (version_dir / "tables", *version_dir.glob("*/tables")) if (d / "cases.parquet").is_file()]


def _patient_files(version_dir: Path, patients: set[str]) -> list[str]:
    """Release paths of the objects of `patients` in one version, from its own tables."""
    out: list[str] = []
    for tables in _table_dirs(version_dir):
        prefix = tables.parent.relative_to(version_dir).as_posix()
        prefix = "" if prefix == "." else prefix + "/"
        cases = pq.read_table(tables / "cases.parquet", columns=["patient_pseudonym", "case_pseudonym",
                                                                 "study_instance_uids"]).to_pylist()
        mine = [c for c in cases if c["patient_pseudonym"] in patients]
        studies = {s for c in mine for s in c["study_instance_uids"]}
        ids = studies | {c["case_pseudonym"] for c in mine}
        for name, column in (("instances", "study_instance_uid"), ("slides", "study_instance_uid")):
            if (tables / f"{name}.parquet").is_file():
                for r in pq.read_table(tables / f"{name}.parquet", columns=[column, "path"]).to_pylist():
                    if r[column] in studies:
                        out.append(prefix + r["path"])
        if (tables / "annotation_files.parquet").is_file():
            for r in pq.read_table(tables / "annotation_files.parquet", columns=["targets", "path"]).to_pylist():
                if set(r["targets"] or []) & ids:
                    out.append(prefix + r["path"])
    return out


def purge_withdrawn_versions(run: ReleaseRun, folder: Path, base: dict) -> list[ReleaseOutcome]:
    """Delete every version that holds a withdrawn patient of the team(s) concerned; when that is the
    latest (its replacement was refused), `latest` goes too: nothing is better than a withdrawn patient."""
    gone = {p for (_, p) in run.withdrawn}
    out = []
    for version in versions(folder):
        hit = _version_patients(folder / version) & gone
        if not hit:
            continue
        if latest_version(folder) == version:
            (folder / LATEST).unlink()
        size = remove_version(folder, version, _patient_files(folder / version, hit))
        out.append(ReleaseOutcome(path=f"{folder.relative_to(run.root).as_posix()}/{version}", action="purged",
                                  version=version, reason="withdrawal", bytes=size, patients=sorted(hit), **base))
    return out


# -- applications ---------------------------------------------------------------------------------

def release_application(run: ReleaseRun, app: dict) -> list[ReleaseOutcome]:
    """An active application's own release: its approved datasets, each as the review tier's latest
    version (hard links of it), under applications/<id>/<version>/<dataset>/."""
    app_id = app["application_id"]
    folder = run.root / "applications" / app_id
    rel = folder.relative_to(run.root).as_posix()
    base = dict(kind="application", tier="review", application_id=app_id,
                recipient=app.get("institution") or app_id)
    with publishing_lock(folder):
        if run.remote:
            run.remote.pull(rel)
        entries: list[FileEntry] = []
        sources: dict[str, dict] = {}
        copies: dict[str, tuple] = {}
        for dataset in sorted(app["released_datasets"]):
            spec = run.registry.datasets_by_id.get(dataset)
            if spec is None:
                continue
            src_folder = run.root / "review" / spec.team / dataset
            src_rel = f"review/{spec.team}/{dataset}"
            if run.remote:
                run.remote.pull(src_rel)
            version = latest_version(src_folder)
            if version is None:
                continue
            if run.remote:
                run.remote.fetch_version(src_rel, version)
                copies.update({f"{dataset}/{p.relative_to(src_folder / version).as_posix()}":
                               (run.remote.store, f"{src_rel}/{version}/{p.relative_to(src_folder / version).as_posix()}")
                               for p in (src_folder / version).rglob("*") if p.is_file()})
            src = src_folder / version
            meta = json.loads((src / "release.json").read_text(encoding="utf-8"))
            sources[dataset] = {"team": spec.team, "version": version, "content_digest": meta["content_digest"],
                                "cases": meta["counts"]["cases"]}
            entries += _entries_of(src, prefix=f"{dataset}/")
        outcomes: list[ReleaseOutcome] = []
        if not entries and latest_version(folder) is None:
            outcomes.append(ReleaseOutcome(path=rel, action="empty", **base))
        else:
            first = latest_version(folder) is None
            doc = lambda v, d: {"application_id": app_id, "recipient": base["recipient"], "tier": "review",  # noqa: E731
                                "version": v, "released_on": run.today.isoformat(), "content_digest": d,
                                "expires": str(app.get("expires") or ""), "datasets": sources}
            card = lambda v: _application_card(app_id, base["recipient"], v, sources, app)  # noqa: E731
            try:
                pub = publish(folder, entries, doc, card, run.checker(None), run.crash_after)
                outcomes.append(ReleaseOutcome(
                    path=f"{rel}/{pub.version}", action=pub.action, version=pub.version,
                    cases=sum(s["cases"] for s in sources.values()), objects=len(entries),
                    bytes=sum(e.size for e in entries), digest=pub.digest, linked=pub.linked, copied=pub.copied,
                    reason="new" if first else "content_changed", **base))
            except ReleaseRefused as e:
                outcomes.append(ReleaseOutcome(path=rel, action="refused", reason="identifier_findings",
                                               findings=dict(e.report.by_kind), **base))
        outcomes += purge_withdrawn_versions(run, folder, base)
        if run.remote:
            run.remote.push(rel, copies)
    return outcomes


def revoke_application(run: ReleaseRun, app_id: str, reason: str) -> list[ReleaseOutcome]:
    """Access ended (expired): the application's folder goes, every version of it."""
    folder = run.root / "applications" / app_id
    out = []
    if run.remote:
        run.remote.pull(f"applications/{app_id}")
    if not folder.is_dir():
        return out
    with publishing_lock(folder):
        if (folder / LATEST).is_symlink():
            (folder / LATEST).unlink()
        for version in versions(folder):
            size = remove_version(folder, version)
            out.append(ReleaseOutcome(kind="application", tier="review", application_id=app_id, recipient=app_id,
                                      path=f"applications/{app_id}/{version}", action="revoked", version=version,
                                      reason=reason, bytes=size))
        if run.remote:
            run.remote.push(f"applications/{app_id}", {})
    return out


def _entries_of(version_dir: Path, prefix: str) -> list[FileEntry]:
    """Every file of a finished version, with hashes from its manifest (nothing is read twice)."""
    sums = {}
    for line in (version_dir / MANIFEST).read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, path = line.split("  ", 1)
            sums[path] = digest
    out = []
    for path, digest in sorted(sums.items()):
        f = version_dir / path
        # Objects of a published version were checked when it was published; tables and texts again.
        out.append(FileEntry(prefix + path, digest, f.stat().st_size, source=f, checked=path.startswith("objects/")))
    manifest = (version_dir / MANIFEST).read_bytes()
    out.append(FileEntry(prefix + MANIFEST, hashlib.sha256(manifest).hexdigest(), len(manifest),
                         source=version_dir / MANIFEST))
    return out


def _application_card(app_id: str, recipient: str, version: str, sources: dict[str, dict], app: dict) -> str:
    # The folder name and the application's fields are the applicant's text: escaped as in a dataset card.
    access_mode = inline(app.get("access_mode") or "unspecified")
    expires = inline(app.get("expires") or "the date in the agreement")
    lines = [f"# Release for application {inline(app_id)}", "",
             f"Recipient: {inline(recipient)}. Version {inline(version)}. Access mode: {access_mode}; "
             f"access ends on {expires}.", "",
             "Each folder below is the review tier's release of one approved dataset, with its own "
             "DATASET_CARD.md (purpose, source, counts, annotation, de-identification, consent, "
             "re-identification assessment, limitations, how to cite).", "",
             "| dataset | team | source version | cases |", "|---|---|---|---:|"]
    lines += [f"| {inline(d)} | {inline(s['team'])} | {inline(s['version'])} | {s['cases']:,} |"
              for d, s in sorted(sources.items())]
    lines += ["", "Usage reports are due every six months from the first release; publications must state "
              "that the data come from the programme and name the building team.", ""]
    return "\n".join(lines)


# -- logs -----------------------------------------------------------------------------------------

def log_rows(outcomes: list[ReleaseOutcome], now: dt.datetime, today: dt.date) -> pa.Table:
    rows = [{"logged_at": now, "released_on": today, "action": o.action, "kind": o.kind, "tier": o.tier, "team": o.team,
             "dataset": o.dataset, "application_id": o.application_id, "recipient": o.recipient,
             "version": o.version or "", "path": o.path, "reason": o.reason, "cases": o.cases,
             "objects": o.objects, "bytes": o.bytes, "k_min": o.k_min, "suppressed": o.suppressed,
             "content_digest": o.digest}
            for o in outcomes if o.action in ("published", "refused", "purged", "revoked")]
    return RELEASE_LOG.from_rows(rows)


def audit_rows(run: ReleaseRun, outcomes: list[ReleaseOutcome], now: dt.datetime) -> pa.Table:
    rows = []
    for o in outcomes:
        if o.action != "purged":
            continue
        for pseudonym in o.patients:
            team = next((t for (t, p) in run.withdrawn if p == pseudonym), o.team or "")
            e = run.withdrawn[(team, pseudonym)]
            rows.append({"team": team, "patient_pseudonym": pseudonym, "event": e["event"],
                         "event_date": e["event_date"], "event_file": e["event_file"], "event_line": e["event_line"],
                         "scope": "release" if o.kind == "tier" else "application_release", "target": o.path,
                         "removed_rows": 0, "removed_objects": o.objects, "removed_bytes": o.bytes,
                         "removed_at": now})
    return WITHDRAWAL_AUDIT.from_rows(rows)
