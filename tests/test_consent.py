"""Consent status per patient and release eligibility per case and tier, on real Delta tables."""

from __future__ import annotations

import datetime as dt

import pytest

from medlake.consent.refresh import refresh_consent
from medlake.lake.tables import CASES, IDENTIFIER_CHECKS, INSTANCES, SOURCE_CASES
from medlake.sharing.eligibility import release_eligibility

from conftest import registry_with
from medlake.consent.tables import CONSENT_PROBLEMS, CONSENT_STATUS

HEADER = "patient_id,consent_class,event,event_date,reference\n"


def pseudonym(team, pid):
    return f"PSN-{team}-{pid}"


def write_cases(store, patients: dict[str, str | None], team="ntu", dataset="ccta"):
    rows = [{"team": team, "dataset": dataset, "batch": "b1", "case_id": f"c-{pid}", "patient_id": pid,
             "study_instance_uids": [f"1.2.{i}"], "label_source": "physician", "shareable": True,
             "consent_class": cls, "line": i + 2}
            for i, (pid, cls) in enumerate(patients.items())]
    rows = [{k: r.get(k) for k in SOURCE_CASES.column_names} for r in rows]
    store.replace(SOURCE_CASES, rows, {})


def consent_file(lakehouse, name, body, team="ntu"):
    folder = lakehouse.landing_root / team / "_consent"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(HEADER + body)


@pytest.fixture
def statuses(lakehouse_factory):
    def run(patients, body):
        lh = lakehouse_factory()
        write_cases(lh.store, patients)
        consent_file(lh, "2019-06-30.csv", body)
        r = refresh_consent(lh.store, lh.landing, lh.registry, pseudonym)
        rows = {s["patient_id"]: s for s in lh.store.read(CONSENT_STATUS).to_pylist()}
        problems = lh.store.read(CONSENT_PROBLEMS).to_pylist()
        return rows, problems, r
    return run


def test_policy_per_class(statuses):
    rows, problems, r = statuses(
        {"a1": "A", "b1": "B", "b2": "B", "b3": "B", "c1": "C", "c2": "C", "c3": "C", "n1": "C", "d1": "A"},
        "a1,A,consented,2019-01-02,ICF-1\n"
        "b1,B,notice_sent,2019-01-02,NTC-1\n"
        "b2,B,notice_sent,2019-01-02,NTC-2\nb2,B,undelivered,2019-01-20,RET-2\n"
        "b3,B,consented,2019-01-05,ICF-3\n"
        "c1,C,notice_sent,2019-01-02,NTC-4\n"
        "c2,C,notice_sent,2019-01-02,NTC-5\nc2,C,undelivered,2019-02-01,RET-5\n"
        "c3,C,notice_sent,2019-01-02,NTC-6\nc3,C,opted_out,2019-03-01,OPT-6\n"
        "d1,A,consented,2018-05-01,ICF-7\nd1,A,deceased,2019-04-01,DTH-7\n")
    got = {pid: (s["releasable"], s["reason"]) for pid, s in rows.items()}
    assert got == {
        "a1": (True, None),
        "b1": (True, None),
        "b2": (False, "consent_not_notified"),   # the notice came back: B is not notified
        "b3": (True, None),
        "c1": (True, None),
        "c2": (True, None),                      # C rests on the public notice, delivered or not
        "c3": (False, "consent_opted_out"),
        "n1": (False, "consent_no_record"),
        "d1": (True, None),                      # a death does not revoke consent; it is counted
    }
    assert rows["c3"]["opted_out_on"] == dt.date(2019, 3, 1)
    assert rows["d1"]["deceased_on"] == dt.date(2019, 4, 1)
    assert rows["a1"]["patient_pseudonym"] == "PSN-ntu-a1"
    assert problems == [] and r.withdrawn == 1 and r.releasable == 6


def test_withdrawal_wins_over_later_events(statuses):
    rows, _, _ = statuses({"a1": "A"}, "a1,A,consented,2019-01-02,ICF-1\na1,A,withdrawn,2019-02-01,WDR-1\n"
                                      "a1,A,consented,2019-03-01,ICF-2\n")
    assert (rows["a1"]["releasable"], rows["a1"]["reason"]) == (False, "consent_withdrawn")
    assert rows["a1"]["withdrawn_on"] == dt.date(2019, 2, 1)


def test_bad_rows_unknown_patients_and_conflicting_classes_are_reported(statuses):
    rows, problems, _ = statuses(
        {"a1": "A", "b1": "A"},
        "a1,A,consented,2019-01-02,ICF-1\n"
        "a1,A,signed_in_blood,2019-01-02,X\n"       # unknown event
        "a1,Z,consented,2019-01-02,X\n"             # unknown class
        "a1,A,consented,02/01/2019,X\n"             # not an ISO date
        "zz9,C,notice_sent,2019-01-02,NTC-9\n"      # nobody of that id in any cases.csv
        "b1,B,notice_sent,2019-01-03,NTC-2\n")      # cases.csv says A
    by_code = {}
    for p in problems:
        by_code.setdefault(p["code"], []).append(p["line"])
    assert by_code == {"consent_row_invalid": [3, 4, 5], "consent_unknown_patient": [6],
                       "consent_class_conflict": [7]}
    for p in problems:
        assert "zz9" not in p["message"] and "a1" not in p["message"] and "b1" not in p["message"]
    # The unknown patient's events are kept: they apply once the case lands.
    assert rows["zz9"]["in_cases"] is False and rows["zz9"]["has_record"] is True
    assert rows["b1"]["consent_class"] == "B" and rows["b1"]["releasable"] is True


def test_a_file_without_the_required_columns_is_reported_whole(lakehouse_factory):
    lh = lakehouse_factory()
    write_cases(lh.store, {"a1": "A"})
    folder = lh.landing_root / "ntu" / "_consent"
    folder.mkdir(parents=True)
    (folder / "bad.csv").write_text("patient,what\na1,consented\n")
    r = refresh_consent(lh.store, lh.landing, lh.registry, pseudonym)
    assert r.problems == {"consent_file_columns": 1}
    [row] = lh.store.read(CONSENT_STATUS).to_pylist()
    assert row["reason"] == "consent_no_record"


# -- eligibility ----------------------------------------------------------------------------------

def _lake_with_cases(lh, checks):
    """ccta cases for patients a1 (consented), n1 (no record), w1 (withheld), x1 (failed check)."""
    write_cases(lh.store, {"a1": "A", "n1": "A", "w1": "A", "x1": "A"})
    consent_file(lh, "c.csv", "a1,A,consented,2019-01-02,I\nw1,A,consented,2019-01-02,I\nx1,A,consented,2019-01-02,I\n")
    refresh_consent(lh.store, lh.landing, lh.registry, pseudonym)
    cases, instances = [], []
    for i, pid in enumerate(("a1", "n1", "w1", "x1")):
        cases.append({"team": "ntu", "dataset": "ccta", "case_pseudonym": f"CASE-{pid}",
                      "patient_pseudonym": pseudonym("ntu", pid), "part": "shared",
                      "study_instance_uids": [f"2.25.{i}"], "instances": 1, "frames": 1, "slides": 0,
                      "modalities": ["CT"], "annotation_kinds": [], "annotation_status": "image_only",
                      "label_source": "physician", "shareable": pid != "w1", "consent_class": "A"})
        instances.append({c.name: None for c in INSTANCES.columns} | {
            "team": "ntu", "dataset": "ccta", "batch_ref": "BATCH-BAD" if pid == "x1" else "BATCH-OK",
            "patient_pseudonym": pseudonym("ntu", pid), "study_instance_uid": f"2.25.{i}",
            "series_instance_uid": f"2.25.{i}.1", "sop_instance_uid": f"2.25.{i}.1.1", "sop_class_uid": "1.2",
            "kind": "dicom_image", "transfer_syntax_uid": "1.2.840.10008.1.2.1", "pixels_cleaned": False,
            "defaced": False, "object_path": f"deid/objects/{pid}.dcm", "sha256": "0" * 64, "size": 1})
    lh.store.replace(CASES, cases, {})
    lh.store.replace(INSTANCES, instances, {})
    now = dt.datetime(2019, 9, 1, tzinfo=dt.timezone.utc)
    rows = [{"team": "ntu", "dataset": "ccta", "batch_ref": ref, "passed": ok, "objects_scanned": 1,
             "findings": 0 if ok else 1, "by_kind": "{}", "checked_at": now} for ref, ok in checks]
    lh.store.append(IDENTIFIER_CHECKS, rows)


def test_eligibility_reasons(lakehouse_factory):
    lh = lakehouse_factory()
    _lake_with_cases(lh, [("BATCH-OK", True), ("BATCH-BAD", False)])
    table = release_eligibility(lh.store, lh.registry)
    got = {(r["case_pseudonym"], r["tier"]): (r["eligible"], r["reasons"]) for r in table.to_pylist()}
    assert got[("CASE-a1", "collaboration")] == (True, [])
    assert got[("CASE-a1", "review")] == (True, [])
    assert got[("CASE-a1", "public")] == (False, ["tier_not_offered"])
    assert got[("CASE-n1", "collaboration")] == (False, ["consent_no_record"])
    assert got[("CASE-w1", "collaboration")] == (False, ["hospital_withheld"])
    assert got[("CASE-x1", "collaboration")] == (False, ["identifier_check_failed"])


def test_a_dataset_may_release_patients_without_a_record_and_a_later_check_counts(lakehouse_factory):
    lh = lakehouse_factory()
    lh.registry = registry_with(lh.registry, "ccta", release_without_consent_record=True)
    later = dt.datetime(2019, 9, 2, tzinfo=dt.timezone.utc)
    _lake_with_cases(lh, [("BATCH-OK", True), ("BATCH-BAD", False)])
    # The failed batch was fixed and checked again: the latest check is what counts.
    lh.store.append(IDENTIFIER_CHECKS, IDENTIFIER_CHECKS.from_rows([{
        "team": "ntu", "dataset": "ccta", "batch_ref": "BATCH-BAD", "passed": True, "objects_scanned": 1,
        "findings": 0, "by_kind": "{}", "checked_at": later}]))
    got = {(r["case_pseudonym"], r["tier"]): r["eligible"] for r in release_eligibility(lh.store, lh.registry).to_pylist()}
    assert (got[("CASE-n1", "collaboration")], got[("CASE-x1", "collaboration")]) == (True, True)
