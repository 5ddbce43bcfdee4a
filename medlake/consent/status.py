"""Fold consent events into one status per patient and apply the registry's policy for the class.

Events accumulate across files and are folded in date order (file and line break ties, so a
re-sent file gives the same answer). An opted_out or withdrawn event always wins, whatever came
after it: the programme treats a withdrawal as final.

The fold runs in DuckDB: one patient per row of every team, so a Python loop over patients grew
faster than the programme (sorting tuples of strings): 0.77 s at 1/10 scale against 9.0 s at full
(bench/consent.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from medlake.consent.tables import CONSENT_STATUS
from medlake.lake.delta import DeltaStore
from medlake.program import Registry
from medlake.lake.tables import CONSENT_EVENTS

WITHDRAWING_EVENTS = ("opted_out", "withdrawn")


@dataclass
class StatusResult:
    table: pa.Table
    problems: list[dict]  # team, file, line, code, message (no identifier values)


# `seq` orders each patient's events by date, then file and line. The latest event that carries a
# class sets it, else the cases.csv class (the last non-empty one of the patient's cases); the
# latest of notice_sent/undelivered decides whether the patient counts as notified.
_FOLD = """
WITH ev AS (
    SELECT *, row_number() OVER (ORDER BY team, patient_id, event_date, file, line) AS seq FROM events
), folded AS (
    SELECT team, patient_id,
           arg_max(consent_class, seq) FILTER (WHERE consent_class IS NOT NULL AND consent_class <> '')
               AS sent_class,
           arg_max(event, seq) FILTER (WHERE event IN ('notice_sent', 'undelivered')) AS last_notice,
           bool_or(event = 'consented') AS consented,
           min(event_date) FILTER (WHERE event = 'opted_out') AS opted_out_on,
           min(event_date) FILTER (WHERE event = 'withdrawn') AS withdrawn_on,
           min(event_date) FILTER (WHERE event = 'deceased') AS deceased_on,
           max(event_date) AS last_event_date,
           arg_min(file, seq) AS first_file, arg_min(line, seq) AS first_line,
           arg_max(file, seq) AS last_file, arg_max(line, seq) AS last_line
    FROM ev GROUP BY team, patient_id
), case_class AS (
    SELECT team, patient_id,
           arg_max(consent_class, row_no) FILTER (WHERE consent_class IS NOT NULL AND consent_class <> '')
               AS case_class
    FROM cases GROUP BY team, patient_id
), joined AS (
    SELECT coalesce(f.team, c.team) AS team, coalesce(f.patient_id, c.patient_id) AS patient_id,
           coalesce(f.sent_class, c.case_class) AS consent_class,
           f.team IS NOT NULL AS has_record,
           coalesce(f.last_notice = 'notice_sent', false) AS notified,
           coalesce(f.last_notice = 'undelivered', false) AS undelivered,
           coalesce(f.consented, false) AS consented,
           f.opted_out_on, f.withdrawn_on, f.deceased_on, f.last_event_date,
           c.team IS NOT NULL AS in_cases, c.case_class, f.sent_class,
           f.first_file, f.first_line, f.last_file, f.last_line
    FROM folded f FULL OUTER JOIN case_class c ON f.team = c.team AND f.patient_id = c.patient_id
), ruled AS (
    SELECT j.*, p.rule FROM joined j LEFT JOIN policy p ON j.consent_class = p.consent_class
)
-- The order of the reasons matters: a withdrawal outranks every other, and is what triggers the purge.
-- A death does not revoke consent or a notice already given; it is counted for table 7.
SELECT *, CASE
        WHEN withdrawn_on IS NOT NULL THEN 'consent_withdrawn'
        WHEN opted_out_on IS NOT NULL THEN 'consent_opted_out'
        WHEN NOT has_record THEN 'consent_no_record'
        WHEN rule IS NULL THEN 'consent_no_class'
        WHEN rule = 'never' THEN 'consent_policy_never'
        WHEN rule = 'releasable_after_notice' AND NOT (notified OR consented) THEN 'consent_not_notified'
    END AS reason
FROM ruled ORDER BY team, patient_id
"""


def consent_status(events: pa.Table, source_cases: pa.Table, registry: Registry, pseudonym) -> StatusResult:
    """`events`: restricted/consent_events rows; `source_cases`: team, patient_id, consent_class of every
    case; `pseudonym(team, patient_id)` gives the patient's pseudonym (DeidKeys.patient_pseudonym)."""
    cases = source_cases.select(["team", "patient_id", "consent_class"]).append_column(
        "row_no", pa.array(range(source_cases.num_rows), pa.int64()))
    policy = pa.table({"consent_class": list(registry.consent_policy),
                       "rule": [str(r) for r in registry.consent_policy.values()]},
                      schema=pa.schema([("consent_class", pa.string()), ("rule", pa.string())]))
    with duckdb.connect() as con:
        for name, table in (("events", events), ("cases", cases), ("policy", policy)):
            con.register(name, table)
        folded = con.sql(_FOLD).to_arrow_table()
    teams, pids = folded.column("team").to_pylist(), folded.column("patient_id").to_pylist()
    reason = folded.column("reason")
    columns = {
        "patient_pseudonym": pa.array([pseudonym(t, p) for t, p in zip(teams, pids)], pa.string()),
        "releasable": reason.is_null(),
    }
    table = pa.table({c.name: columns[c.name] if c.name in columns else folded.column(c.name)
                      for c in CONSENT_STATUS.columns})
    return StatusResult(table.cast(CONSENT_STATUS.schema), _problems(folded))


def _problems(folded: pa.Table) -> list[dict]:
    # Few rows in practice: filtered before leaving Arrow.
    has_record, in_cases = folded.column("has_record"), folded.column("in_cases")
    unknown = folded.filter(pc.and_(has_record, pc.invert(in_cases)))
    conflict = folded.filter(pc.fill_null(pc.and_(in_cases, pc.not_equal(folded.column("sent_class"),
                                                                          folded.column("case_class"))), False))
    problems = [{"team": r["team"], "file": r["first_file"], "line": r["first_line"],
                 "code": "consent_unknown_patient",
                 "message": "consent events for a patient in no cases.csv of the team (kept: they "
                            "apply once the patient's case lands)"}
                for r in unknown.select(["team", "first_file", "first_line"]).to_pylist()]
    problems += [{"team": r["team"], "file": r["last_file"], "line": r["last_line"],
                  "code": "consent_class_conflict",
                  "message": f"consent class {r['sent_class']} differs from the cases.csv class "
                             f"{r['case_class']}; the consent file's class is used"}
                 for r in conflict.select(["team", "last_file", "last_line", "sent_class", "case_class"]).to_pylist()]
    return sorted(problems, key=lambda p: (p["team"], p["file"], p["line"], p["code"]))


def withdrawn_patients(store: DeltaStore, team: str | None = None) -> dict[tuple[str, str], dict]:
    """(team, patient_pseudonym) -> the first opted_out/withdrawn event, for every patient who left."""
    ds = store.dataset(CONSENT_EVENTS)
    if ds is None:
        return {}
    flt = pads.field("event").isin(list(WITHDRAWING_EVENTS))
    if team is not None:
        flt = flt & (pads.field("team") == team)
    status = store.dataset(CONSENT_STATUS)
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
    ds = store.dataset(CONSENT_EVENTS)
    if ds is None:
        return set()
    t = ds.to_table(columns=["patient_id"], filter=(pads.field("team") == team)
                    & pads.field("event").isin(list(WITHDRAWING_EVENTS)))
    return set(t.column("patient_id").to_pylist())

