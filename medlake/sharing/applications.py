"""Read data-access applications (EXPORT_FORMAT.md `_applications/<id>/`) into programme tables.

Each folder holds an application.yaml, later the committee's decision.yaml and the applicant's
usage-*.yaml reports. The programme's rules are applied here, so the status a dashboard shows and the
release step acts on come from one place. A bad file is reported (folder, file, field) and never
stops the others; problem messages never quote free text (purpose, reasons, notes), because
applicants and committee members write whatever they like there.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import yaml

from medlake.landing.zone import APPLICATIONS_DIR
from medlake.program import Registry
from medlake.sharing.tables import APPLICATION_PROBLEMS, APPLICATIONS, USAGE_REPORTS

INSTITUTION_TYPES = ("academic", "government", "company")
PURPOSES_ALLOWED = ("medical_research", "public_health")
ACCESS_MODES = ("onsite", "vpn", "download")
DECISIONS = ("approved", "rejected", "revise")
CRITERIA = ("scientific_basis", "data_literacy", "reasonableness_and_security", "social_impact", "reciprocity")
REQUIRED = ("applicant", "institution", "institution_type", "purpose_category", "datasets", "access_mode",
            "submitted")
REVIEW_TIER = "review"
NOT_IN_REVIEW = "dataset_not_in_review_tier:"
# An approved, eligible application: its review-tier datasets are the ones it is granted.
APPROVED_STATUSES = ("approved_awaiting_agreement", "active", "expired")
REPORT_MONTHS = 6
APPLICATION_FILE = "application.yaml"
DECISION_FILE = "decision.yaml"

Report = Callable[[str, str, str], None]  # (file, code, message)

_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_Base):  # type: ignore[misc, valid-type]
    """Safe loader that leaves dates as strings.

    With YAML's own timestamp resolver a date like 2019-02-30 fails the whole file with a bare
    ValueError; parsing dates ourselves lets the problem name the field instead.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}


@dataclass
class ApplicationsRead:
    applications: pa.Table   # APPLICATIONS schema
    usage_reports: pa.Table  # USAGE_REPORTS schema
    problems: pa.Table       # APPLICATION_PROBLEMS schema


class _Invalid(ValueError):
    """A file's content is wrong; the message names the field only, never its value."""


def read_applications(landing_root: str | Path, registry: Registry, as_of: dt.date,
                      first_release: dict[str, dt.date] | None = None) -> ApplicationsRead:
    """Every application folder under <landing_root>/_applications/, sorted, with status as of `as_of`.

    `first_release` maps an application id to the date its first release was published; usage
    reports are only owed from then on, so an application missing from it owes none yet.
    """
    first_release = first_release or {}
    apps: list[dict] = []
    usage: list[dict] = []
    # (application_id, file, code) is the problems table's key: several faults of one kind in one
    # file become one row with the messages joined.
    problems: dict[tuple[str, str, str], dict] = {}
    root = Path(landing_root) / APPLICATIONS_DIR
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.is_dir() else []
    for folder in folders:
        app_id = folder.name

        def report(file: str, code: str, msg: str, app_id: str = app_id) -> None:
            known = problems.get((app_id, file, code))
            if known:
                known["message"] += f"; {msg}"
            else:
                problems[(app_id, file, code)] = {"application_id": app_id, "file": file, "code": code,
                                                  "message": f"{file}: {msg}"}

        usage_files = sorted(p for p in folder.glob("usage-*.yaml") if p.is_file())
        if not (folder / APPLICATION_FILE).is_file():
            if (folder / DECISION_FILE).is_file():
                report(DECISION_FILE, "decision_without_application", f"there is no {APPLICATION_FILE} in the folder")
            for p in usage_files:
                report(p.name, "usage_invalid", f"there is no {APPLICATION_FILE} in the folder")
            continue
        row, invalid = _read_application(folder / APPLICATION_FILE, app_id, registry, report)
        decision = None
        if (folder / DECISION_FILE).is_file():
            decision = _read_decision(folder / DECISION_FILE, row["submitted"], report)
        row.update(decision or {})
        row["status"] = _status(row["eligible"], invalid, decision, as_of)
        if row["status"] in APPROVED_STATUSES:
            row["released_datasets"] = [d for d in row["datasets"] if _in_review(registry, d)]
        row["as_of"] = as_of
        apps.append(row)
        # Usage files are checked in every folder, but matched to periods only once reports are owed.
        reports = [r for r in (_read_usage(p, report) for p in usage_files) if r is not None]
        if row["status"] in ("active", "expired") and app_id in first_release:
            usage += _usage_rows(row, first_release[app_id], reports, as_of, report)
    return ApplicationsRead(APPLICATIONS.from_rows(apps), USAGE_REPORTS.from_rows(usage),
                            APPLICATION_PROBLEMS.from_rows(list(problems.values())))


def active_applications(applications: pa.Table) -> list[dict]:
    """Applications whose data may be released now: what the release step needs, sorted by id."""
    keep = ("application_id", "institution", "released_datasets", "expires")
    rows = applications.select(list(keep)).to_pylist()
    status = applications.column("status").to_pylist()
    return sorted((r for r, s in zip(rows, status) if s == "active"), key=lambda r: r["application_id"])


# --- application.yaml ---------------------------------------------------------------------------

def _read_application(path: Path, app_id: str, registry: Registry, report: Report) -> tuple[dict, bool]:
    """(row, invalid). An invalid application keeps a row so it is not lost silently, with whatever
    could be read; every other column stays null."""
    row: dict[str, Any] = {c: None for c in APPLICATIONS.column_names}
    row.update(application_id=app_id, datasets=[], eligible=False, ineligible_reasons=[], pledges_signed=0,
               released_datasets=[])
    doc = _load(path, report, "application_unreadable", "application_invalid")
    if doc is None:
        return row, True
    wrong: list[str] = []
    for f in ("applicant", "institution", "institution_type", "academic_partner", "purpose_category",
              "access_mode", "submitted", "datasets"):
        try:
            row[f] = _date(doc, f) if f == "submitted" else _datasets(doc) if f == "datasets" else _text(doc, f)
        except _Invalid as e:
            report(path.name, "application_invalid", str(e))
            wrong.append(f)
    missing = [f for f in REQUIRED if row[f] in (None, []) and f not in wrong]
    if missing:
        report(path.name, "application_invalid", f"required field(s) missing: {', '.join(missing)}")
    unknown = [d for d in row["datasets"] if d not in registry.datasets_by_id]
    if unknown:
        # Dataset ids are programme vocabulary, neither identifiers nor free text: naming them is safe.
        report(path.name, "application_unknown_dataset", f"field 'datasets': unknown dataset(s) {', '.join(unknown)}")
    invalid = bool(wrong or missing or unknown)
    reasons = _ineligible_reasons(row, registry)
    row["ineligible_reasons"] = reasons
    # Datasets outside the review tier are left out of the release but do not sink the application.
    row["eligible"] = not invalid and all(r.startswith(NOT_IN_REVIEW) for r in reasons)
    return row, invalid


def _ineligible_reasons(row: dict, registry: Registry) -> list[str]:
    """The programme's rules, evaluated on whatever fields are present (a missing field adds nothing)."""
    reasons = []
    kind = row["institution_type"]
    if kind is not None and kind not in INSTITUTION_TYPES:
        reasons.append("institution_type_not_allowed")
    if kind == "company" and not row["academic_partner"]:
        reasons.append("company_without_academic_partner")
    if row["purpose_category"] is not None and row["purpose_category"] not in PURPOSES_ALLOWED:
        reasons.append("purpose_not_allowed")
    if row["access_mode"] is not None and row["access_mode"] not in ACCESS_MODES:
        reasons.append("access_mode_unknown")
    known = [d for d in row["datasets"] if d in registry.datasets_by_id]
    outside = [d for d in known if not _in_review(registry, d)]
    reasons += [f"{NOT_IN_REVIEW}{d}" for d in outside]
    if known and len(outside) == len(known):
        reasons.append("no_dataset_in_review_tier")
    return reasons


def _in_review(registry: Registry, dataset_id: str) -> bool:
    d = registry.datasets_by_id.get(dataset_id)
    return d is not None and REVIEW_TIER in d.offered_tiers


# --- decision.yaml ------------------------------------------------------------------------------

def _read_decision(path: Path, submitted: dt.date | None, report: Report) -> dict | None:
    """The decision's columns, or None (reported as decision_invalid) when any part of it is wrong:
    a half-valid decision must not release data."""
    doc = _load(path, report, "decision_invalid", "decision_invalid")
    if doc is None:
        return None
    try:
        decision = doc.get("decision")
        if decision not in DECISIONS:
            raise _Invalid(f"field 'decision' must be one of {', '.join(DECISIONS)}")
        decided = _date(doc, "decided")
        if decided is None:
            raise _Invalid("field 'decided' is required")
        if submitted is not None and decided < submitted:
            raise _Invalid("field 'decided' is before the application's submitted date")
        scores = doc.get("scores") or {}
        if not isinstance(scores, dict):
            raise _Invalid("field 'scores' must be a mapping of criterion to score")
        if any(k not in CRITERIA for k in scores):
            # The key is not quoted: it is whatever someone typed.
            raise _Invalid(f"field 'scores' has a criterion other than {', '.join(CRITERIA)}")
        for c in CRITERIA:
            s = scores.get(c)
            if s is not None and (isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= 5):
                raise _Invalid(f"field 'scores.{c}' must be an integer from 1 to 5")
        pledges = doc.get("pledges_signed") or []
        if not isinstance(pledges, list) or not all(isinstance(n, str) and n.strip() for n in pledges):
            raise _Invalid("field 'pledges_signed' must be a list of names")
        expires = _date(doc, "expires")
        if decision == "approved" and expires is None:
            raise _Invalid("field 'expires' is required for an approved decision")  # access must end
        if expires is not None and expires <= decided:
            raise _Invalid("field 'expires' is not after 'decided'")
        agreement = _date(doc, "agreement_signed")
    except _Invalid as e:
        report(path.name, "decision_invalid", str(e))
        return None
    return {"decision": decision, "decided": decided, "agreement_signed": agreement, "expires": expires,
            # Only the number of people is kept: their names are of no use to the programme's tables.
            "pledges_signed": len({n.strip() for n in pledges}),
            **{f"score_{c}": scores.get(c) for c in CRITERIA}}


def _status(eligible: bool, invalid: bool, decision: dict | None, as_of: dt.date) -> str:
    if invalid:
        return "invalid"
    if not eligible:
        # The programme's rules win over the committee: an approved decision for an ineligible
        # application releases nothing and the application stays ineligible.
        return "ineligible"
    if decision is None:
        return "under_review"
    if decision["decision"] != "approved":
        return decision["decision"]
    if decision["expires"] < as_of:
        return "expired"  # access ended, whether or not it ever began
    signed = decision["agreement_signed"]
    if signed is None or signed > as_of or decision["pledges_signed"] == 0:
        return "approved_awaiting_agreement"
    return "active"


# --- usage-*.yaml -------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Usage:
    file: str
    period: int | tuple[dt.date, dt.date]
    publications: int | None


def _read_usage(path: Path, report: Report) -> _Usage | None:
    doc = _load(path, report, "usage_invalid", "usage_invalid")
    if doc is None:
        return None
    try:
        period = _period(doc.get("period"))
        pubs = doc.get("publications")
        if pubs is not None and not isinstance(pubs, list):
            raise _Invalid("field 'publications' must be a list")
    except _Invalid as e:
        report(path.name, "usage_invalid", str(e))
        return None
    return _Usage(path.name, period, None if pubs is None else len(pubs))


def _period(value: object) -> int | tuple[dt.date, dt.date]:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
        return value
    if isinstance(value, str) and value.count("..") == 1:
        start, end = (s.strip() for s in value.split(".."))
        try:
            a, b = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
        except ValueError:
            a = b = None
        if a is not None and b is not None and a <= b:
            return a, b
    raise _Invalid("field 'period' must be a period number (1, 2, ...) or a date range YYYY-MM-DD..YYYY-MM-DD")


def add_months(d: dt.date, months: int) -> dt.date:
    """Calendar months later, the day clamped to the month's end (31 Aug + 6 months = 29 Feb)."""
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    return dt.date(year, month, min(d.day, calendar.monthrange(year, month)[1]))


def _usage_rows(app: dict, first: dt.date, reports: list[_Usage], as_of: dt.date, report: Report) -> list[dict]:
    """Reports owed: every due date up to min(as_of, expires), plus the next one while active.

    Period k is due at first + 6k months, each counted from the first release so clamped month ends
    do not drift. Nothing is owed after `expires`, even as the next upcoming report of an active
    application (access has ended by then). A date-range report covers the one period in whose
    window (previous due date, due date] its end date falls; period 1's window starts at the first
    release, inclusive. When two reports cover a period, the first by file name counts.
    """
    expires = app["expires"]
    dues: list[dt.date] = []
    k = 1
    while (due := add_months(first, REPORT_MONTHS * k)) <= expires:
        if due > as_of:
            if app["status"] == "active":
                dues.append(due)
            break
        dues.append(due)
        k += 1
    covered: dict[int, _Usage] = {}
    for u in reports:
        k = u.period if isinstance(u.period, int) else _period_of(u.period[1], first, dues)
        if k is None or k > len(dues):
            report(u.file, "usage_invalid", "field 'period' matches no report owed")
            continue
        covered.setdefault(k, u)
    rows = []
    for k, due in enumerate(dues, start=1):
        u = covered.get(k)
        status = "received" if u else "overdue" if due < as_of else "due"
        rows.append({"application_id": app["application_id"], "period": k, "due": due,
                     "received_file": u.file if u else None, "publications": u.publications if u else None,
                     "status": status, "as_of": as_of})
    return rows


def _period_of(end: dt.date, first: dt.date, dues: list[dt.date]) -> int | None:
    previous = first - dt.timedelta(days=1)  # period 1 includes the release day itself
    for k, due in enumerate(dues, start=1):
        if previous < end <= due:
            return k
        previous = due
    return None


# --- helpers ------------------------------------------------------------------------------------

def _load(path: Path, report: Report, unreadable: str, invalid: str) -> dict | None:
    try:
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        # The parser's own message can quote the offending text, so only the line is reported.
        report(path.name, unreadable, "not valid YAML" + (f" (line {mark.line + 1})" if mark else ""))
        return None
    except (OSError, UnicodeDecodeError) as e:
        report(path.name, unreadable, f"cannot be read ({type(e).__name__})")
        return None
    if not isinstance(doc, dict):
        report(path.name, invalid, "must be a mapping of field to value")
        return None
    return doc


def _text(doc: dict, field: str) -> str | None:
    v = doc.get(field)
    if v is None or (isinstance(v, str) and not v.strip()):
        return None
    if not isinstance(v, str):
        raise _Invalid(f"field {field!r} must be text")
    return v.strip()


def _date(doc: dict, field: str) -> dt.date | None:
    v = doc.get(field)
    if v is None:
        return None
    try:
        if isinstance(v, str):
            return dt.date.fromisoformat(v.strip())
    except ValueError:
        pass
    raise _Invalid(f"field {field!r} must be a date YYYY-MM-DD")


def _datasets(doc: dict) -> list[str]:
    v = doc.get("datasets")
    if v is None:
        return []
    if not isinstance(v, list) or not v or not all(isinstance(d, str) and d.strip() for d in v):
        raise _Invalid("field 'datasets' must be a non-empty list of dataset ids")
    return list(dict.fromkeys(d.strip() for d in v))
