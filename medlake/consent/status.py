"""Fold consent events into one status per patient and apply the registry's policy for the class.

Events accumulate across files and are folded in date order (file and line break ties, so a
re-sent file gives the same answer). An opted_out or withdrawn event always wins, whatever came
after it: the programme treats a withdrawal as final.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.dataset as pads

from medlake.consent.tables import CONSENT_STATUS
from medlake.lake.delta import DeltaStore
from medlake.program import Registry

WITHDRAWING_EVENTS = ("opted_out", "withdrawn")


@dataclass
class StatusResult:
    table: pa.Table
    problems: list[dict]  # team, file, line, code, message (no identifier values)


def consent_status(events: pa.Table, source_cases: pa.Table, registry: Registry, pseudonym) -> StatusResult:
    """`events`: restricted/consent_events rows; `source_cases`: team, patient_id, consent_class of every
    case; `pseudonym(team, patient_id)` gives the patient's pseudonym (DeidKeys.patient_pseudonym)."""
    case_class: dict[tuple[str, str], str | None] = {}
    for team, pid, cls in zip(*(source_cases.column(c).to_pylist() for c in ("team", "patient_id", "consent_class"))):
        if cls or (team, pid) not in case_class:
            case_class[(team, pid)] = cls or None

    history: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for e in events.to_pylist():
        history[(e["team"], e["patient_id"])].append(e)

    problems: list[dict] = []
    rows = []
    for key in sorted(set(history) | set(case_class)):
        team, pid = key
        evs = sorted(history.get(key, []), key=lambda e: (e["event_date"], e["file"], e["line"]))
        known = key in case_class
        if evs and not known:
            first = evs[0]
            problems.append({"team": team, "file": first["file"], "line": first["line"],
                             "code": "consent_unknown_patient",
                             "message": "consent events for a patient in no cases.csv of the team (kept: they "
                                        "apply once the patient's case lands)"})
        row = _fold(evs, case_class.get(key))
        sent_class = next((e["consent_class"] for e in reversed(evs) if e["consent_class"]), None)
        if known and sent_class and case_class[key] and sent_class != case_class[key]:
            last = evs[-1]
            problems.append({"team": team, "file": last["file"], "line": last["line"],
                             "code": "consent_class_conflict",
                             "message": f"consent class {sent_class} differs from the cases.csv class "
                                        f"{case_class[key]}; the consent file's class is used"})
        rule = registry.consent_policy.get(row["consent_class"]) if row["consent_class"] else None
        releasable, reason = _apply(rule, row)
        rows.append({"team": team, "patient_id": pid, "patient_pseudonym": pseudonym(team, pid), **row,
                     "rule": rule, "releasable": releasable, "reason": reason, "in_cases": known})
    return StatusResult(CONSENT_STATUS.from_rows(rows), problems)


def _fold(events: list[dict], case_class: str | None) -> dict:
    s = {"consent_class": case_class, "has_record": bool(events), "notified": False, "undelivered": False,
         "consented": False, "opted_out_on": None, "withdrawn_on": None, "deceased_on": None,
         "last_event_date": events[-1]["event_date"] if events else None}
    for e in events:
        if e["consent_class"]:
            s["consent_class"] = e["consent_class"]
        kind = e["event"]
        if kind == "notice_sent":
            s["notified"], s["undelivered"] = True, False
        elif kind == "undelivered":
            s["notified"], s["undelivered"] = False, True
        elif kind == "consented":
            s["consented"] = True
        elif kind == "opted_out":
            s["opted_out_on"] = s["opted_out_on"] or e["event_date"]
        elif kind == "withdrawn":
            s["withdrawn_on"] = s["withdrawn_on"] or e["event_date"]
        elif kind == "deceased":
            s["deceased_on"] = s["deceased_on"] or e["event_date"]
    return s


def _apply(rule: str | None, s: dict) -> tuple[bool, str | None]:
    # Order matters: a withdrawal outranks every other reason, and is what triggers the purge.
    if s["withdrawn_on"]:
        return False, "consent_withdrawn"
    if s["opted_out_on"]:
        return False, "consent_opted_out"
    if not s["has_record"]:
        return False, "consent_no_record"
    if rule is None:
        return False, "consent_no_class"
    if rule == "never":
        return False, "consent_policy_never"
    if rule == "releasable_after_notice" and not (s["notified"] or s["consented"]):
        return False, "consent_not_notified"
    # A death does not revoke consent or a notice already given; it is counted for table 7.
    return True, None


def withdrawn_patients(store: DeltaStore, team: str | None = None) -> dict[tuple[str, str], dict]:
    """(team, patient_pseudonym) -> the first opted_out/withdrawn event, for every patient who left."""
    ds = store.dataset("restricted", "consent_events")
    if ds is None:
        return {}
    flt = pads.field("event").isin(list(WITHDRAWING_EVENTS))
    if team is not None:
        flt = flt & (pads.field("team") == team)
    status = store.dataset("restricted", "consent_status")
    out: dict[tuple[str, str], dict] = {}
    events = sorted(ds.to_table(filter=flt).to_pylist(), key=lambda e: (e["event_date"], e["file"], e["line"]))
    pseudonym_of = {}
    if status is not None:
        t = status.to_table(columns=["team", "patient_id", "patient_pseudonym"],
                            filter=None if team is None else pads.field("team") == team)
        pseudonym_of = {(a, b): c for a, b, c in zip(*(t.column(i).to_pylist() for i in range(3)))}
    for e in events:
        p = pseudonym_of.get((e["team"], e["patient_id"]))
        if p is not None and (e["team"], p) not in out:
            out[(e["team"], p)] = {"event": e["event"], "event_date": e["event_date"], "event_file": e["file"],
                                   "event_line": e["line"], "patient_id": e["patient_id"]}
    return out


def withdrawn_patient_ids(store: DeltaStore, team: str) -> set[str]:
    """Hospital patient ids of the team's patients who opted out or withdrew (for the deid step)."""
    ds = store.dataset("restricted", "consent_events")
    if ds is None:
        return set()
    t = ds.to_table(columns=["patient_id"], filter=(pads.field("team") == team)
                    & pads.field("event").isin(list(WITHDRAWING_EVENTS)))
    return set(t.column("patient_id").to_pylist())

