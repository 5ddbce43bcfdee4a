"""The consent fold (DuckDB) against a plain per-patient reading of the rules, on random histories.

The reference below is the fold as the programme states it, one patient at a time; the table the
release gates read must agree with it on every column, whatever order the events arrive in.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import defaultdict

import pytest

from medlake.consent.status import consent_status
from medlake.lake.tables import CONSENT_EVENTS, SOURCE_CASES

EVENTS = ("notice_sent", "undelivered", "consented", "opted_out", "withdrawn", "deceased")


def pseudonym(team, pid):
    return f"PSN-{team}-{pid}"


def reference(events: list[dict], cases: list[dict], policy: dict) -> tuple[dict, set]:
    case_class: dict = {}
    for c in cases:  # the last non-empty class of the patient's cases, in row order
        key = (c["team"], c["patient_id"])
        if c["consent_class"] or key not in case_class:
            case_class[key] = c["consent_class"] or None
    history = defaultdict(list)
    for e in events:
        history[(e["team"], e["patient_id"])].append(e)
    rows, problems = {}, set()
    for key in set(history) | set(case_class):
        evs = sorted(history.get(key, []), key=lambda e: (e["event_date"], e["file"], e["line"]))
        s = {"consent_class": case_class.get(key), "has_record": bool(evs), "notified": False,
             "undelivered": False, "consented": False, "opted_out_on": None, "withdrawn_on": None,
             "deceased_on": None, "last_event_date": evs[-1]["event_date"] if evs else None,
             "in_cases": key in case_class}
        for e in evs:
            s["consent_class"] = e["consent_class"] or s["consent_class"]
            if e["event"] in ("notice_sent", "undelivered"):
                s["notified"], s["undelivered"] = e["event"] == "notice_sent", e["event"] == "undelivered"
            elif e["event"] == "consented":
                s["consented"] = True
            else:
                field = {"opted_out": "opted_out_on", "withdrawn": "withdrawn_on", "deceased": "deceased_on"}
                s[field[e["event"]]] = s[field[e["event"]]] or e["event_date"]
        rule = policy.get(s["consent_class"]) if s["consent_class"] else None
        reason = ("consent_withdrawn" if s["withdrawn_on"] else "consent_opted_out" if s["opted_out_on"]
                  else "consent_no_record" if not evs else "consent_no_class" if rule is None
                  else "consent_policy_never" if rule == "never"
                  else "consent_not_notified" if rule == "releasable_after_notice"
                  and not (s["notified"] or s["consented"]) else None)
        rows[key] = {**s, "rule": rule, "reason": reason, "releasable": reason is None,
                     "patient_pseudonym": pseudonym(*key)}
        sent = next((e["consent_class"] for e in reversed(evs) if e["consent_class"]), None)
        if evs and key not in case_class:
            problems.add((key[0], evs[0]["file"], evs[0]["line"], "consent_unknown_patient"))
        if key in case_class and sent and case_class[key] and sent != case_class[key]:
            problems.add((key[0], evs[-1]["file"], evs[-1]["line"], "consent_class_conflict"))
    return rows, problems


def random_history(rng: random.Random, patients: int):
    events, cases = [], []
    lines = iter(rng.sample(range(2, 100_000), 10 * patients))  # (file, line) is unique, as in real files
    for i in range(patients):
        # Ids repeat across teams: two hospitals' p3 are different people.
        team, pid = rng.choice(("ntu", "tmu")), f"p{i % (patients // 2)}"
        for _ in range(rng.choice((0, 1, 1, 2))):  # no case, one, or a patient with two cases
            cases.append({"team": team, "patient_id": pid, "consent_class": rng.choice(("A", "B", "C", "", None))})
        for _ in range(rng.choice((0, 1, 2, 3, 5))):
            events.append({"team": team, "file": rng.choice(("2019-01.csv", "2019-02.csv")),
                           "line": next(lines), "patient_id": pid,
                           "consent_class": rng.choice(("A", "B", "C", None)), "event": rng.choice(EVENTS),
                           # few dates: ties are decided by file and line
                           "event_date": dt.date(2019, 1, 1) + dt.timedelta(days=rng.randint(0, 3)),
                           "reference": None})
    return events, cases


@pytest.mark.parametrize("policy", [
    {"A": "releasable", "B": "releasable_after_notice", "C": "releasable_unless_opted_out"},
    {"A": "releasable_after_notice", "B": "never"},  # C has no rule: consent_no_class
])
def test_fold_agrees_with_the_rules_patient_by_patient(registry, policy):
    reg = registry.model_copy(update={"consent_policy": policy})
    rng = random.Random(7)
    for _ in range(5):
        events, cases = random_history(rng, 400)
        case_rows = [{c: r.get(c) for c in SOURCE_CASES.column_names} for r in cases]
        got = consent_status(CONSENT_EVENTS.from_rows(events), SOURCE_CASES.from_rows(case_rows), reg, pseudonym)
        want_rows, want_problems = reference(events, cases, policy)
        rows = got.table.to_pylist()
        assert [(r["team"], r["patient_id"]) for r in rows] == sorted(want_rows)
        for r in rows:
            assert {k: v for k, v in r.items() if k not in ("team", "patient_id")} == \
                want_rows[(r["team"], r["patient_id"])]
        assert {(p["team"], p["file"], p["line"], p["code"]) for p in got.problems} == want_problems
        assert len(got.problems) == len(want_problems)
        assert {p[3] for p in want_problems} == {"consent_unknown_patient", "consent_class_conflict"}
        reasons = {r["reason"] for r in rows}
        assert {"consent_withdrawn", "consent_opted_out", "consent_no_record", None} <= reasons
