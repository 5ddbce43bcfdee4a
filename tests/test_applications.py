"""Data-access applications: programme rules, committee decisions, statuses, usage reports, problems."""

import datetime as dt
import hashlib

import pytest
import yaml

from medlake.sharing.applications import active_applications, add_months, read_applications
from medlake.sharing.tables import APPLICATION_PROBLEMS, APPLICATIONS, USAGE_REPORTS
from medlake.synth.applications import write_applications

D = dt.date
AS_OF = D(2019, 9, 15)
# Free text planted in every free-text field; none of it may reach a problem message.
SECRET = "FREETEXT-7731"

APP = {
    "applicant": f"Researcher {SECRET}", "institution": f"University {SECRET}", "institution_type": "academic",
    "purpose": f"Purpose {SECRET}", "purpose_category": "medical_research", "datasets": ["ccta", "aneurysm-mra"],
    "access_mode": "vpn", "submitted": D(2019, 1, 10),
}
SCORES = {"scientific_basis": 4, "data_literacy": 3, "reasonableness_and_security": 5, "social_impact": 2,
          "reciprocity": 1}
DECISION = {
    "decision": "approved", "decided": D(2019, 2, 1), "reasons": f"Reasons {SECRET}", "scores": SCORES,
    "agreement_signed": D(2019, 3, 1), "pledges_signed": ["Pledger One", "Pledger Two", "Pledger One"],
    "expires": D(2020, 12, 31),
}


def write(root, app_id, **files):
    """files: name (dots as '_', e.g. decision_yaml) -> dict (dumped as YAML) or str (raw text)."""
    folder = root / "_applications" / app_id
    folder.mkdir(parents=True, exist_ok=True)
    for name, doc in files.items():
        text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
        (folder / name.replace("_yaml", ".yaml")).write_text(text, encoding="utf-8")
    return folder


def read(root, registry, as_of=AS_OF, first_release=None):
    res = read_applications(root, registry, as_of, first_release)
    assert res.applications.schema == APPLICATIONS.schema
    assert res.usage_reports.schema == USAGE_REPORTS.schema
    assert res.problems.schema == APPLICATION_PROBLEMS.schema
    return res


def rows(res):
    return {r["application_id"]: r for r in res.applications.to_pylist()}


def problems(res):
    return [(p["application_id"], p["file"], p["code"]) for p in res.problems.to_pylist()]


def messages(res):
    return [p["message"] for p in res.problems.to_pylist()]


def one(tmp_path, registry, app=None, decision=None, as_of=AS_OF, **extra):
    files = {"application_yaml": APP if app is None else app, **extra}
    if decision is not None:
        files["decision_yaml"] = decision
    write(tmp_path, "a1", **files)
    res = read(tmp_path, registry, as_of)
    return rows(res)["a1"], res


# --- statuses -----------------------------------------------------------------------------------

def test_active_application_row(tmp_path, registry):
    row, res = one(tmp_path, registry, decision=DECISION)
    assert row["status"] == "active" and row["eligible"] and row["ineligible_reasons"] == []
    assert row["released_datasets"] == ["ccta", "aneurysm-mra"]
    assert row["pledges_signed"] == 2  # names are counted once, not stored
    assert [row[f"score_{c}"] for c in SCORES] == list(SCORES.values())
    assert (row["decided"], row["agreement_signed"], row["expires"]) == (D(2019, 2, 1), D(2019, 3, 1), D(2020, 12, 31))
    assert row["submitted"] == D(2019, 1, 10) and row["as_of"] == AS_OF
    assert row["institution"] == f"University {SECRET}" and row["access_mode"] == "vpn"
    assert problems(res) == []
    assert active_applications(res.applications) == [
        {"application_id": "a1", "institution": f"University {SECRET}", "released_datasets": ["ccta", "aneurysm-mra"],
         "expires": D(2020, 12, 31)}]


@pytest.mark.parametrize("change, as_of, status", [
    ({"decision": "rejected"}, AS_OF, "rejected"),
    ({"decision": "revise"}, AS_OF, "revise"),
    ({"agreement_signed": None}, AS_OF, "approved_awaiting_agreement"),
    ({"agreement_signed": D(2019, 9, 16)}, AS_OF, "approved_awaiting_agreement"),
    ({"pledges_signed": []}, AS_OF, "approved_awaiting_agreement"),
    ({"agreement_signed": D(2019, 9, 15)}, AS_OF, "active"),
    ({}, D(2020, 12, 31), "active"),        # access lasts through its expiry day
    ({}, D(2021, 1, 1), "expired"),
    ({"agreement_signed": None}, D(2021, 1, 1), "expired"),
])
def test_decision_statuses(tmp_path, registry, change, as_of, status):
    decision = {k: v for k, v in {**DECISION, **change}.items() if v is not None}
    row, res = one(tmp_path, registry, decision=decision, as_of=as_of)
    assert row["status"] == status
    assert problems(res) == []
    approved = status in ("approved_awaiting_agreement", "active", "expired")
    assert row["released_datasets"] == (["ccta", "aneurysm-mra"] if approved else [])
    active = [r["application_id"] for r in active_applications(res.applications)]
    assert active == (["a1"] if status == "active" else [])


def test_no_decision_is_under_review(tmp_path, registry):
    row, res = one(tmp_path, registry)
    assert row["status"] == "under_review" and row["eligible"]
    assert row["decision"] is None and row["pledges_signed"] == 0 and row["released_datasets"] == []
    assert problems(res) == []


@pytest.mark.parametrize("change, reasons", [
    ({"institution_type": "individual"}, ["institution_type_not_allowed"]),
    ({"institution_type": "company"}, ["company_without_academic_partner"]),
    ({"institution_type": "company", "academic_partner": "  "}, ["company_without_academic_partner"]),
    ({"purpose_category": "other"}, ["purpose_not_allowed"]),
    ({"access_mode": "email"}, ["access_mode_unknown"]),
    ({"datasets": ["lung-ct", "ivus"]},
     ["dataset_not_in_review_tier:lung-ct", "dataset_not_in_review_tier:ivus", "no_dataset_in_review_tier"]),
    ({"institution_type": "company", "purpose_category": "marketing"},
     ["company_without_academic_partner", "purpose_not_allowed"]),
])
def test_programme_rules_make_an_application_ineligible(tmp_path, registry, change, reasons):
    # The committee approved it anyway: the rules win and nothing is released.
    row, res = one(tmp_path, registry, app={**APP, **change}, decision=DECISION)
    assert row["status"] == "ineligible" and not row["eligible"]
    assert row["ineligible_reasons"] == reasons
    assert row["decision"] == "approved" and row["released_datasets"] == []
    assert problems(res) == [] and active_applications(res.applications) == []


def test_company_with_academic_partner_and_government_are_eligible(tmp_path, registry):
    write(tmp_path, "co", application_yaml={**APP, "institution_type": "company", "academic_partner": "Uni X",
                                            "purpose_category": "public_health"})
    write(tmp_path, "gov", application_yaml={**APP, "institution_type": "government"})
    got = rows(read(tmp_path, registry))
    assert {k: (r["status"], r["eligible"]) for k, r in got.items()} == {
        "co": ("under_review", True), "gov": ("under_review", True)}
    assert got["co"]["academic_partner"] == "Uni X"


def test_datasets_outside_the_review_tier_are_left_out_of_the_release(tmp_path, registry):
    row, res = one(tmp_path, registry, app={**APP, "datasets": ["lung-ct", "ccta", "chest-xray"]}, decision=DECISION)
    assert row["status"] == "active" and row["eligible"]
    assert row["ineligible_reasons"] == ["dataset_not_in_review_tier:lung-ct", "dataset_not_in_review_tier:chest-xray"]
    assert row["datasets"] == ["lung-ct", "ccta", "chest-xray"]
    assert row["released_datasets"] == ["ccta"]


# --- invalid applications -----------------------------------------------------------------------

@pytest.mark.parametrize("field", ["applicant", "institution", "institution_type", "purpose_category", "datasets",
                                   "access_mode", "submitted"])
def test_missing_required_field_keeps_an_invalid_row(tmp_path, registry, field):
    app = {k: v for k, v in APP.items() if k != field}
    row, res = one(tmp_path, registry, app=app, decision=DECISION)
    assert row["status"] == "invalid" and not row["eligible"] and row["released_datasets"] == []
    assert row[field] in (None, [])
    assert problems(res) == [("a1", "application.yaml", "application_invalid")]
    assert field in messages(res)[0] and "application.yaml" in messages(res)[0]


@pytest.mark.parametrize("data, code", [
    (b"applicant: [unclosed\n", "application_unreadable"),
    (f"applicant: {SECRET}\n\tpurpose: {SECRET}\n".encode(), "application_unreadable"),
    (b"applicant: \xff\xfe\n", "application_unreadable"),   # not UTF-8
    (b"- just\n- a list\n", "application_invalid"),
    (b"", "application_invalid"),
])
def test_unreadable_application_keeps_an_invalid_row(tmp_path, registry, data, code):
    (write(tmp_path, "a1") / "application.yaml").write_bytes(data)
    res = read(tmp_path, registry)
    row = rows(res)["a1"]
    assert row["status"] == "invalid" and row["datasets"] == [] and row["applicant"] is None
    assert problems(res) == [("a1", "application.yaml", code)]


@pytest.mark.parametrize("change, field", [
    ({"submitted": "2019-02-30"}, "submitted"),
    ({"submitted": "last spring"}, "submitted"),
    ({"datasets": "ccta"}, "datasets"),
    ({"datasets": []}, "datasets"),
    ({"datasets": ["ccta", 7]}, "datasets"),
    ({"institution": ["a", "b"]}, "institution"),
])
def test_wrongly_typed_fields_are_invalid(tmp_path, registry, change, field):
    row, res = one(tmp_path, registry, app={**APP, **change})
    assert row["status"] == "invalid"
    assert [c for _, _, c in problems(res)] == ["application_invalid"]
    assert f"'{field}'" in messages(res)[0]


def test_several_faults_in_one_file_make_one_problem_row_per_code(tmp_path, registry):
    app = {k: v for k, v in APP.items() if k != "submitted"}
    row, res = one(tmp_path, registry, app={**app, "institution": 5, "datasets": ["ccta", "knee-mri"]})
    assert row["status"] == "invalid"
    assert problems(res) == [("a1", "application.yaml", "application_invalid"),
                             ("a1", "application.yaml", "application_unknown_dataset")]
    assert "'institution'" in messages(res)[0] and "submitted" in messages(res)[0]


def test_unknown_dataset_is_named_and_the_application_invalid(tmp_path, registry):
    row, res = one(tmp_path, registry, app={**APP, "datasets": ["ccta", "knee-mri", "toe-ct"]}, decision=DECISION)
    assert row["status"] == "invalid" and row["released_datasets"] == []
    assert row["datasets"] == ["ccta", "knee-mri", "toe-ct"]
    assert problems(res) == [("a1", "application.yaml", "application_unknown_dataset")]
    assert "knee-mri" in messages(res)[0] and "toe-ct" in messages(res)[0] and "ccta" not in messages(res)[0]


def test_decision_without_application_and_orphan_usage(tmp_path, registry):
    write(tmp_path, "orphan", decision_yaml=DECISION, **{"usage-1_yaml": {"period": 1}})
    write(tmp_path, "empty")
    (tmp_path / "_applications" / "README.txt").write_text("not a folder")
    res = read(tmp_path, registry)
    assert res.applications.num_rows == 0
    assert problems(res) == [("orphan", "decision.yaml", "decision_without_application"),
                             ("orphan", "usage-1.yaml", "usage_invalid")]


def test_no_applications_folder_gives_empty_tables(tmp_path, registry):
    res = read(tmp_path, registry)
    assert (res.applications.num_rows, res.usage_reports.num_rows, res.problems.num_rows) == (0, 0, 0)


def test_folders_are_read_in_sorted_order(tmp_path, registry):
    for name in ("c", "a", "b"):
        write(tmp_path, name, application_yaml=APP)
    assert res_ids(read(tmp_path, registry)) == ["a", "b", "c"]


def res_ids(res):
    return res.applications.column("application_id").to_pylist()


# --- invalid decisions --------------------------------------------------------------------------

@pytest.mark.parametrize("change, field", [
    ({"decision": "maybe"}, "decision"),
    ({"decision": None}, "decision"),
    ({"scores": {**SCORES, "social_impact": 6}}, "social_impact"),
    ({"scores": {**SCORES, "reciprocity": 0}}, "reciprocity"),
    ({"scores": {**SCORES, "data_literacy": "4"}}, "data_literacy"),
    ({"scores": {**SCORES, "data_literacy": True}}, "data_literacy"),
    ({"scores": {**SCORES, "data_literacy": 3.5}}, "data_literacy"),
    ({"scores": {**SCORES, "charisma": 5}}, "scores"),
    ({"scores": [4, 4, 4, 4, 4]}, "scores"),
    ({"decided": "2019-02-30"}, "decided"),
    ({"decided": None}, "decided"),
    ({"decided": D(2018, 12, 1)}, "decided"),          # before the application was submitted
    ({"agreement_signed": "soon"}, "agreement_signed"),
    ({"expires": "2020-13-01"}, "expires"),
    ({"expires": None}, "expires"),                     # an approval must end
    ({"expires": D(2019, 1, 31)}, "expires"),           # before the decision
    ({"pledges_signed": 3}, "pledges_signed"),
    ({"pledges_signed": ["ok", None]}, "pledges_signed"),
])
def test_invalid_decision_is_ignored(tmp_path, registry, change, field):
    decision = {k: v for k, v in {**DECISION, **change}.items() if v is not None}
    row, res = one(tmp_path, registry, decision=decision)
    assert row["status"] == "under_review"
    assert row["decision"] is None and row["expires"] is None and row["score_reciprocity"] is None
    assert row["pledges_signed"] == 0 and row["released_datasets"] == []
    assert problems(res) == [("a1", "decision.yaml", "decision_invalid")]
    assert field in messages(res)[0] and messages(res)[0].startswith("decision.yaml: ")


def test_unreadable_decision_is_ignored(tmp_path, registry):
    row, res = one(tmp_path, registry, decision=f"decision: approved\nreasons: [{SECRET}\n")
    assert row["status"] == "under_review"
    assert problems(res) == [("a1", "decision.yaml", "decision_invalid")]


def test_rejection_without_scores_or_expiry_is_valid(tmp_path, registry):
    row, res = one(tmp_path, registry, decision={"decision": "rejected", "decided": D(2019, 2, 1)})
    assert row["status"] == "rejected" and row["score_scientific_basis"] is None and problems(res) == []


def test_invalid_application_keeps_its_decision_columns_but_stays_invalid(tmp_path, registry):
    row, res = one(tmp_path, registry, app={**APP, "datasets": ["knee-mri"]}, decision=DECISION)
    assert row["status"] == "invalid" and row["decision"] == "approved" and row["released_datasets"] == []


# --- usage reports ------------------------------------------------------------------------------

def usage(tmp_path, registry, reports, first=D(2019, 3, 1), as_of=AS_OF, decision=DECISION):
    files = {f"usage-{name}_yaml": doc for name, doc in reports.items()}
    write(tmp_path, "a1", application_yaml=APP, decision_yaml=decision, **files)
    res = read(tmp_path, registry, as_of, {"a1": first})
    return [(u["period"], u["due"], u["status"], u["received_file"], u["publications"])
            for u in res.usage_reports.to_pylist()], res


def test_usage_received_due_and_overdue(tmp_path, registry):
    got, res = usage(tmp_path, registry, {"2": {"period": 2, "publications": ["p1", "p2"], "notes": SECRET}},
                     as_of=D(2020, 9, 15))
    assert got == [
        (1, D(2019, 9, 1), "overdue", None, None),
        (2, D(2020, 3, 1), "received", "usage-2.yaml", 2),
        (3, D(2020, 9, 1), "overdue", None, None),
    ]
    # The next report would fall due 2021-03-01, after access ends on 2020-12-31: not owed.
    assert all(u["as_of"] == D(2020, 9, 15) for u in res.usage_reports.to_pylist())
    assert problems(res) == []


def test_usage_upcoming_report_is_due_and_one_due_today_is_not_late(tmp_path, registry):
    got, _ = usage(tmp_path, registry, {}, as_of=D(2019, 8, 31))
    assert got == [(1, D(2019, 9, 1), "due", None, None)]
    got, _ = usage(tmp_path, registry, {}, as_of=D(2019, 9, 1))
    assert got == [(1, D(2019, 9, 1), "due", None, None), (2, D(2020, 3, 1), "due", None, None)]
    got, _ = usage(tmp_path, registry, {}, as_of=D(2019, 9, 2))
    assert got == [(1, D(2019, 9, 1), "overdue", None, None), (2, D(2020, 3, 1), "due", None, None)]


def test_usage_report_for_a_future_period_is_received_early(tmp_path, registry):
    got, _ = usage(tmp_path, registry, {"a": {"period": 1, "publications": []}}, as_of=D(2019, 4, 1))
    assert got == [(1, D(2019, 9, 1), "received", "usage-a.yaml", 0)]


@pytest.mark.parametrize("period, expected", [
    ("2019-03-01..2019-08-31", 1),
    ("2019-03-01..2019-09-01", 1),    # ending on the due date: that period
    ("2019-03-01..2019-09-02", 2),    # a day later: the next period's window
    ("2019-03-01..2019-03-01", 1),    # the release day itself belongs to period 1
    ("2019-09-02..2020-03-01", 2),
])
def test_usage_date_range_covers_the_period_its_end_falls_in(tmp_path, registry, period, expected):
    got, res = usage(tmp_path, registry, {"r": {"period": period, "publications": ["x"]}}, as_of=D(2020, 3, 15))
    assert [p for p, _, status, *_ in got if status == "received"] == [expected]
    assert problems(res) == []


def test_usage_due_dates_use_calendar_months_clamped_without_drift(tmp_path, registry):
    assert add_months(D(2019, 8, 31), 6) == D(2020, 2, 29)
    assert add_months(D(2019, 8, 31), 12) == D(2020, 8, 31)
    assert add_months(D(2019, 12, 15), 1) == D(2020, 1, 15)
    got, _ = usage(tmp_path, registry, {}, first=D(2018, 8, 31), as_of=D(2019, 9, 15))
    assert [due for _, due, *_ in got] == [D(2019, 2, 28), D(2019, 8, 31), D(2020, 2, 29)]


def test_expired_application_owes_reports_up_to_expiry_only(tmp_path, registry):
    got, _ = usage(tmp_path, registry, {}, as_of=D(2021, 6, 1))
    assert [(p, s) for p, _, s, *_ in got] == [(1, "overdue"), (2, "overdue"), (3, "overdue")]
    assert got[-1][1] == D(2020, 9, 1)


def test_first_of_two_reports_for_a_period_counts(tmp_path, registry):
    got, res = usage(tmp_path, registry, {"b": {"period": 1, "publications": ["x"]},
                                          "a": {"period": "2019-03-01..2019-08-31", "publications": []}})
    assert got[0] == (1, D(2019, 9, 1), "received", "usage-a.yaml", 0)
    assert problems(res) == []


def test_no_usage_rows_without_a_first_release_or_before_activity(tmp_path, registry):
    write(tmp_path, "a1", application_yaml=APP, decision_yaml=DECISION, **{"usage-1_yaml": {"period": 1}})
    write(tmp_path, "a2", application_yaml=APP, decision_yaml={**DECISION, "agreement_signed": D(2020, 1, 1)})
    res = read(tmp_path, registry, AS_OF, {"a2": D(2019, 3, 1)})
    assert res.usage_reports.num_rows == 0
    assert rows(res)["a2"]["status"] == "approved_awaiting_agreement"
    assert problems(res) == []


@pytest.mark.parametrize("doc", [
    {"period": 0},
    {"period": "first half"},
    {"period": "2019-08-31..2019-03-01"},
    {"period": "2019-02-30..2019-08-31"},
    {"period": True},
    {"publications": []},
    {"period": 1, "publications": "one paper"},
    {"period": 9},                                   # no such report owed
    {"period": "2018-01-01..2018-06-30"},            # ends before the first release
    f"period: 1\nnotes: [{SECRET}\n",
    ["period", 1],
])
def test_invalid_usage_reports(tmp_path, registry, doc):
    got, res = usage(tmp_path, registry, {"bad": doc})
    assert problems(res) == [("a1", "usage-bad.yaml", "usage_invalid")]
    assert all(status != "received" for _, _, status, *_ in got)
    assert rows(res)["a1"]["status"] == "active"


# --- free text never reaches a problem message --------------------------------------------------

def test_no_free_text_in_any_problem_message(tmp_path, registry):
    secret_app = {**APP, "academic_partner": f"Partner {SECRET}"}
    write(tmp_path, "bad-app", application_yaml={**secret_app, "submitted": f"when {SECRET}"})
    write(tmp_path, "bad-types", application_yaml={**secret_app, "institution": [SECRET], "datasets": [SECRET, 3]})
    write(tmp_path, "bad-yaml", application_yaml=f"purpose: {SECRET}\n  applicant: : {SECRET}\n")
    write(tmp_path, "bad-dec", application_yaml=secret_app,
          decision_yaml={**DECISION, "decision": SECRET, "reasons": SECRET})
    write(tmp_path, "bad-dec2", application_yaml=secret_app, decision_yaml={**DECISION, "expires": SECRET,
                                                                               "scores": {SECRET: 9}})
    write(tmp_path, "bad-use", application_yaml=secret_app, decision_yaml=DECISION,
          **{"usage-1_yaml": {"period": SECRET, "notes": SECRET, "publications": [SECRET]},
             "usage-2_yaml": {"period": 1, "notes": SECRET, "publications": SECRET},
             "usage-3_yaml": f"notes: {SECRET}\n\t{SECRET}"})
    write(tmp_path, "orphan", decision_yaml={"reasons": SECRET})
    res = read(tmp_path, registry, AS_OF, {"bad-use": D(2019, 3, 1)})
    codes = {c for _, _, c in problems(res)}
    assert codes == {"application_invalid", "application_unreadable", "decision_invalid", "usage_invalid",
                     "decision_without_application"}
    assert res.problems.num_rows >= 9
    assert not [m for m in messages(res) if SECRET in m]


# --- synthetic folders --------------------------------------------------------------------------

def test_synth_applications_read_back_with_their_expected_statuses(tmp_path, registry):
    described = write_applications(tmp_path, registry)
    first = {d["application_id"]: D.fromisoformat(d["first_release"]) for d in described if "first_release" in d}
    res = read(tmp_path, registry, AS_OF, first)
    got = rows(res)
    expected_statuses = {d["application_id"]: d["expected_status"] for d in described}
    assert {k: r["status"] for k, r in got.items()} == {k: s for k, s in expected_statuses.items() if s}
    assert set(expected_statuses.values()) >= {"active", "ineligible", "under_review", "invalid", "expired",
                                               None}
    for d in described:
        app_id = d["application_id"]
        assert sorted(c for a, _, c in problems(res) if a == app_id) == sorted(d["expected_problems"])
        if d["expected_status"]:
            assert got[app_id]["released_datasets"] == d["released_datasets"]
            assert got[app_id]["ineligible_reasons"] == d["ineligible_reasons"]
        owed = [{"period": u["period"], "due": u["due"].isoformat(), "status": u["status"]}
                for u in res.usage_reports.to_pylist() if u["application_id"] == app_id]
        assert owed == d.get("expected_usage", [])
    # The active one: two review-tier datasets of two teams, one report in for the first period.
    active = [r for r in got.values() if r["status"] == "active"]
    assert len(active) == 1
    assert len({registry.dataset(x).team for x in active[0]["released_datasets"]}) == 2
    assert [a["application_id"] for a in active_applications(res.applications)] == [active[0]["application_id"]]
    assert not [m for m in messages(res) if "Free text" in m]


def test_synth_statuses_hold_through_the_programme_end(tmp_path, registry):
    described = write_applications(tmp_path, registry)
    got = rows(read(tmp_path, registry, D(2020, 11, 30)))
    assert {k: r["status"] for k, r in got.items()} == {
        d["application_id"]: d["expected_status"] for d in described if d["expected_status"]}


def test_synth_applications_are_deterministic(tmp_path, registry):
    def digest(root):
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}
    a, b = tmp_path / "a", tmp_path / "b"
    assert write_applications(a, registry) == write_applications(b, registry)
    assert digest(a) == digest(b) and len(digest(a)) >= 10
