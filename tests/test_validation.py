"""Data-quality suites (expectations/*.json): each passes on a correct table and names the
expectation a corrupted one breaks; outcomes are recorded; a failing blocking check stops downstream."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

import pyarrow as pa
import pytest

from medlake.lake.tables import (
    ANNOTATIONS,
    BATCHES,
    CASES,
    DEID_AUDIT,
    INSTANCES,
    LANDED_FILES,
    QUARANTINE,
    SERIES,
    SOURCE_INSTANCES,
    STUDIES,
)
from medlake.validation import VALIDATION_HISTORY, load_suite, load_suites, record, validate
from medlake.validation.history import history_rows
from medlake.validation.runner import WITHHELD
from medlake.validation.suite import SuiteError
from pipelines.resources import LakeResource

SUITES = Path(__file__).resolve().parent.parent / "expectations"
TS = datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
SHA = "ab" * 32
PSN = "PSN-" + "ABCDEFGHIJKLMNOPQR27"
UID = "2.25.123456789012345678901234567890123456"


def _uid(i: int) -> str:
    return f"2.25.{10**30 + i}"


def _landed(i):
    return {"team": "tvgh", "dataset": "liver-ct", "batch": "2019-09-15", "path": f"images/{i}.dcm", "size": 100,
            "sha256": SHA, "kind": "dicom_image", "status": "catalogued", "ingested_at": TS}


def _source(i):
    return {"team": "tvgh", "dataset": "liver-ct", "batch": "b1", "path": f"{i}.dcm", "sha256": SHA, "size": 10,
            "kind": "dicom_image", "patient_id": "A123456789", "patient_name": "WANG^XIAO",
            "study_instance_uid": "1.2.3", "series_instance_uid": "1.2.3.4", "sop_instance_uid": f"1.2.3.4.{i}",
            "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2", "transfer_syntax_uid": "1.2.840.10008.1.2.1",
            "rows": 512, "columns": 512, "pixel_spacing_row": 0.7, "pixel_spacing_col": 0.7,
            "slice_thickness": 1.25, "burned_in_annotation": "NO", "pixel_data_offset": 1200,
            "study_date": datetime.date(2019, 1, 1)}


def _quarantine(i):
    return {"team": "tvgh", "dataset": "liver-ct", "batch": "b1", "path": f"{i}.bin", "scope": "file", "line": 0,
            "reason_code": "not_dicom", "message": "not a DICOM file", "detected_at": TS}


def _batch(i):
    return {"team": "tvgh", "dataset": "liver-ct", "batch": f"b{i}", "content_digest": SHA,
            "listing_fingerprint": SHA, "status": "ingested", "files_landed": 10, "files_catalogued": 7,
            "files_quarantined": 2, "files_duplicate": 1, "dicom_objects": 7, "slides": 0, "cases": 1,
            "case_rows_rejected": 0, "bytes": 1000, "ingested_at": TS, "duration_s": 1.5}


def _instance(i):
    return {"team": "tvgh", "dataset": "liver-ct", "batch_ref": "ABCDEFGHIJKLMNOPQRST", "patient_pseudonym": PSN,
            "study_instance_uid": UID, "series_instance_uid": UID, "sop_instance_uid": _uid(i),
            "sop_class_uid": "1.2.840.10008.5.1.4.1.1.2", "kind": "dicom_image", "modality": "CT",
            "transfer_syntax_uid": "1.2.840.10008.1.2.1", "rows": 512, "columns": 512,
            "study_date": datetime.date(2012, 5, 6), "patient_sex": "F", "patient_age": "054Y",
            "manufacturer": "GE MEDICAL SYSTEMS", "pixel_spacing_row": 0.7, "pixel_spacing_col": 0.7,
            "slice_thickness": 5.0, "frame_of_reference_uid": UID, "pixels_cleaned": False, "defaced": False,
            "object_path": f"deid/objects/tvgh/{_uid(i)}.dcm", "sha256": SHA, "size": 5000}


def _audit(i):
    return {"team": "tvgh", "dataset": "liver-ct", "batch_ref": "ABCDEFGHIJKLMNOPQRST", "object_id": _uid(i),
            "object_kind": "dicom_image", "options": ["retain_safe_private"], "actions": '{"X": 12, "U": 4}',
            "fast_path": True, "pixels_cleaned": False, "defaced": False, "processed_at": TS}


def _series(i):
    return {"team": "tvgh", "dataset": "liver-ct", "study_instance_uid": UID, "series_instance_uid": _uid(i),
            "patient_pseudonym": PSN, "modality": "CT", "kinds": ["dicom_image"], "instances": 40, "frames": 40,
            "bytes": 20_000_000, "pixels_cleaned": 0, "defaced": 0}


def _study(i):
    return {"team": "tvgh", "dataset": "liver-ct", "study_instance_uid": _uid(i), "patient_pseudonym": PSN,
            "study_date": datetime.date(2012, 5, 6), "modalities": ["CT"], "series": 2, "instances": 80,
            "frames": 80, "bytes": 40_000_000}


CASE = "CASE-" + "ABCDEFGHIJKLMNOPQR27"


def _annotation(i):
    return {"team": "tvgh", "dataset": "liver-ct", "batch_ref": "ABCDEFGHIJKLMNOPQRST",
            "annotation_id": f"{_uid(i)}#1", "kind": "contour", "source_format": "rtstruct", "label": "tumour",
            "code": None, "value": None, "value_text": None, "unit": None, "target_study_uid": UID,
            "target_series_uid": UID, "target_instance_uid": _uid(i), "target_case": None, "reader_role": None,
            "resolved": True}


def _case(i):
    return {"team": "tvgh", "dataset": "liver-ct", "case_pseudonym": f"CASE-{'ABCDEFGHIJKLMNOPQRS'}{'234567'[i]}",
            "patient_pseudonym": PSN, "part": "shared", "study_instance_uids": [_uid(i)], "instances": 80,
            "frames": 80, "slides": 0, "modalities": ["CT"], "annotation_kinds": ["contour"],
            "annotation_status": "full", "label_source": "physician", "shareable": True, "consent_class": "A"}


TABLES = {"restricted.landed_files": (LANDED_FILES, _landed), "restricted.source_instances": (SOURCE_INSTANCES, _source),
          "restricted.quarantine": (QUARANTINE, _quarantine), "restricted.batches": (BATCHES, _batch),
          "deid.instances": (INSTANCES, _instance), "deid.series": (SERIES, _series),
          "deid.studies": (STUDIES, _study), "deid.deid_audit": (DEID_AUDIT, _audit),
          "deid.annotations": (ANNOTATIONS, _annotation), "deid.cases": (CASES, _case)}


def _changed(table_id, changes: dict[int, dict]):
    td, make = TABLES[table_id]
    rows = [make(i) for i in range(6)]
    for i, c in changes.items():
        rows[i].update(c)
    return td.from_rows(rows)


@pytest.fixture(scope="module")
def suites():
    return load_suites(SUITES)


def test_one_suite_per_table_and_columns_match_the_table_defs(suites):
    assert set(suites) == set(TABLES)
    for table_id, suite in suites.items():
        td = TABLES[table_id][0]
        assert suite.columns() <= set(td.column_names), table_id
        keys = [e for e in suite.expectations if e.type == "expect_compound_columns_to_be_unique"]
        assert [tuple(e.kwargs["column_list"]) for e in keys] == [td.keys]
        for k in td.keys:
            assert any(e.type == "expect_column_values_to_not_be_null" and e.column == k for e in suite.expectations)


@pytest.mark.parametrize("table_id", sorted(TABLES))
def test_suite_passes_on_a_correct_table(suites, table_id):
    outcome = validate(_changed(table_id, {}), suites[table_id])
    assert outcome.success, [(r.name, r.unexpected_count, r.error) for r in outcome.failed]
    assert outcome.row_count == 6 and len(outcome.results) == len(suites[table_id].expectations)


def _key_cols(table_id):
    return ",".join(TABLES[table_id][0].keys)


CORRUPTIONS = [
    # (table, {row: changes}, failing expectation, column)
    ("restricted.landed_files", {3: _landed(2)}, "expect_compound_columns_to_be_unique", _key_cols("restricted.landed_files")),
    ("restricted.landed_files", {1: {"status": "lost"}}, "expect_column_values_to_be_in_set", "status"),
    ("restricted.source_instances", {4: {"sop_instance_uid": "1.2.3.4.0"}}, "expect_compound_columns_to_be_unique",
     _key_cols("restricted.source_instances")),
    ("restricted.source_instances", {2: {"pixel_spacing_row": 120.0}}, "expect_column_values_to_be_between",
     "pixel_spacing_row"),
    ("restricted.source_instances", {2: {"rows": 0}}, "expect_column_values_to_be_between", "rows"),
    ("restricted.quarantine", {0: {"scope": "dataset"}}, "expect_column_values_to_be_in_set", "scope"),
    ("restricted.batches", {5: {"files_duplicate": 3}}, "medlake_column_equals_sum", "files_landed"),
    ("restricted.batches", {1: {"status": "pending"}}, "expect_column_values_to_be_in_set", "status"),
    ("deid.instances", {3: {"pixel_spacing_col": 0.0}}, "expect_column_values_to_be_between", "pixel_spacing_col"),
    ("deid.instances", {3: {"study_date": datetime.date(2021, 1, 1)}}, "expect_column_values_to_be_between",
     "study_date"),
    ("deid.instances", {1: {"patient_pseudonym": "A123456789"}}, "expect_column_values_to_match_regex",
     "patient_pseudonym"),
    ("deid.instances", {1: {"series_instance_uid": "1.2.840.113619.2.55.3"}}, "expect_column_values_to_match_regex",
     "series_instance_uid"),
    ("deid.instances", {2: {"manufacturer": "call 0912-345-678"}}, "expect_column_values_to_not_match_regex_list",
     "manufacturer"),
    ("deid.instances", {2: {"body_part_examined": "F223456789"}}, "expect_column_values_to_not_match_regex_list",
     "body_part_examined"),
    ("deid.instances", {4: {"sop_instance_uid": _uid(0)}}, "expect_compound_columns_to_be_unique",
     _key_cols("deid.instances")),
    ("deid.deid_audit", {0: {"object_kind": "A123456789.dcm"}}, "expect_column_values_to_not_match_regex_list",
     "object_kind"),
    ("deid.deid_audit", {5: {"object_id": _uid(1)}}, "expect_compound_columns_to_be_unique",
     _key_cols("deid.deid_audit")),
    ("deid.series", {2: {"instances": 0}}, "expect_column_values_to_be_between", "instances"),
    ("deid.series", {1: {"series_instance_uid": _uid(0)}}, "expect_compound_columns_to_be_unique",
     _key_cols("deid.series")),
    ("deid.studies", {0: {"study_date": datetime.date(2021, 3, 1)}}, "expect_column_values_to_be_between",
     "study_date"),
    ("deid.studies", {0: {"patient_pseudonym": "CHEN^YI-CHUN"}}, "expect_column_values_to_match_regex",
     "patient_pseudonym"),
    ("deid.annotations", {3: {"resolved": False}}, "expect_column_values_to_be_in_set", "resolved"),
    ("deid.annotations", {3: {"kind": "arrow"}}, "expect_column_values_to_be_in_set", "kind"),
    ("deid.annotations", {2: {"label": "seen 0912-345-678"}}, "expect_column_values_to_not_match_regex_list",
     "label"),
    ("deid.cases", {4: {"instances": 0, "slides": 0}}, "medlake_sum_at_least", "instances,slides"),
    ("deid.cases", {4: {"annotation_status": "annotated"}}, "expect_column_values_to_be_in_set",
     "annotation_status"),
    ("deid.cases", {1: {"case_pseudonym": "LUNG-CT-00012"}}, "expect_column_values_to_match_regex",
     "case_pseudonym"),
]


@pytest.mark.parametrize(("table_id", "changes", "expectation", "column"), CORRUPTIONS,
                         ids=[f"{c[0]}-{c[2]}-{c[3]}" for c in CORRUPTIONS])
def test_suite_fails_on_a_corrupted_table_and_names_the_expectation(suites, table_id, changes, expectation, column):
    outcome = validate(_changed(table_id, changes), suites[table_id])
    assert not outcome.success
    assert outcome.failing(expectation, column), [r.name for r in outcome.failed]
    failed = [r for r in outcome.failed if r.expectation == expectation and r.column == column][0]
    assert failed.unexpected_count >= 1 and failed.example_keys


def test_null_key_fails_not_null(suites):
    # A null key column cannot be built through the TableDef (non-nullable), so relax the schema.
    t = _changed("deid.instances", {})
    schema = pa.schema([f.with_nullable(True) for f in t.schema])
    rows = t.to_pylist()
    rows[2]["sop_instance_uid"] = None
    outcome = validate(pa.Table.from_pylist(rows, schema=schema), suites["deid.instances"])
    assert outcome.failing("expect_column_values_to_not_be_null", "sop_instance_uid")


def test_restricted_tables_report_row_numbers_never_values(suites):
    outcome = validate(_changed("restricted.source_instances", {4: {"rows": 70000}}), suites["restricted.source_instances"])
    [bad] = outcome.failed
    assert bad.example_keys == [("row", 4)]
    assert "A123456789" not in json.dumps([r.example_keys for r in outcome.results])


def test_deid_examples_withhold_identifier_shaped_key_values(suites):
    leaked = "1.2.840.113619.2.55.3.604688119"  # an original (hospital) UID left in the deid zone
    outcome = validate(_changed("deid.instances", {2: {"sop_instance_uid": leaked, "rows": 0}}), suites["deid.instances"])
    assert outcome.failing("expect_column_values_to_match_regex", "sop_instance_uid")
    rows_fail = [r for r in outcome.failed if r.column == "rows"][0]
    assert rows_fail.example_keys == [("tvgh", "liver-ct", WITHHELD)]
    assert leaked not in json.dumps([r.example_keys for r in outcome.results])
    ok = validate(_changed("deid.instances", {3: {"slice_thickness": 500.0}}), suites["deid.instances"])
    assert ok.failed[0].example_keys == [("tvgh", "liver-ct", _uid(3))]


def test_missing_column_fails_with_an_error_not_an_exception(suites):
    outcome = validate(_changed("restricted.batches", {}).drop_columns(["status", "files_duplicate"]),
                       suites["restricted.batches"])
    errs = {r.name: r.error for r in outcome.failed}
    assert errs["expect_column_values_to_be_in_set(status)"] == "missing column"
    assert errs["medlake_column_equals_sum(files_landed)"] == "missing column"


def test_suite_files_are_checked(tmp_path):
    p = tmp_path / "deid.instances.json"
    p.write_text(json.dumps({"table": "deid.other", "expectations": [
        {"type": "x", "kwargs": {}, "severity": "integrity", "reason": "r"}]}))
    with pytest.raises(SuiteError, match="must be named"):
        load_suite(p)
    p.write_text(json.dumps({"table": "nowhere.instances", "expectations": []}))
    with pytest.raises(SuiteError):
        load_suite(p)


# --- integrity holds a batch, plausibility warns ---------------------------------------------------

# Every plausibility expectation of the shipped suites: ranges and enumerations of acquisition
# values, which medlake passes on as the modality wrote them. Everything else is integrity.
PLAUSIBILITY = {
    ("restricted.source_instances", "expect_column_values_to_be_between", c)
    for c in ("rows", "columns", "pixel_spacing_row", "pixel_spacing_col", "slice_thickness", "number_of_frames")
} | {
    ("restricted.source_instances", "expect_column_values_to_be_in_set", "burned_in_annotation"),
} | {
    ("deid.instances", "expect_column_values_to_be_between", c)
    for c in ("rows", "columns", "pixel_spacing_row", "pixel_spacing_col", "slice_thickness", "study_date")
} | {
    ("deid.studies", "expect_column_values_to_be_between", "study_date"),
    ("deid.studies", "expect_column_values_to_be_between", "frames"),
    ("deid.series", "expect_column_values_to_be_between", "frames"),
    ("deid.cases", "expect_column_values_to_be_between", "frames"),
}


def test_every_expectation_says_its_kind_and_why(suites):
    kinds = {(t, e.type, e.column): e.severity for t, suite in suites.items() for e in suite.expectations}
    assert {k for k, v in kinds.items() if v == "plausibility"} == PLAUSIBILITY
    assert set(kinds.values()) == {"integrity", "plausibility"}
    for suite in suites.values():
        for e in suite.expectations:
            assert e.reason.strip(), (suite.table_id, e.type, e.column)
            # Keys, keyed ids, references, accounting and identifiers hold the batch, whatever else changes.
            if e.type in ("expect_column_values_to_not_be_null", "expect_compound_columns_to_be_unique",
                          "expect_column_values_to_match_regex", "expect_column_values_to_not_match_regex_list",
                          "medlake_column_equals_sum", "medlake_sum_at_least") or e.column == "resolved":
                assert e.severity == "integrity", (suite.table_id, e.type, e.column)


def test_an_unclassified_expectation_is_refused(tmp_path):
    p = tmp_path / "deid.instances.json"
    exp = {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "team"}}
    p.write_text(json.dumps({"table": "deid.instances", "expectations": [exp]}))
    with pytest.raises(SuiteError, match=r"expectation 0 .*needs a 'severity'"):
        load_suite(p)
    p.write_text(json.dumps({"table": "deid.instances", "expectations": [{**exp, "severity": "blocking"}]}))
    with pytest.raises(SuiteError, match="integrity, plausibility"):
        load_suite(p)
    p.write_text(json.dumps({"table": "deid.instances", "expectations": [{**exp, "severity": "integrity"}]}))
    with pytest.raises(SuiteError, match="needs a 'reason'"):
        load_suite(p)
    p.write_text(json.dumps({"table": "deid.instances",
                             "expectations": [{**exp, "severity": "integrity", "reason": "natural key"}]}))
    assert load_suite(p).expectations[0].blocks


def test_odd_acquisition_values_warn_while_a_repeated_key_holds_the_batch(suites):
    suite = suites["deid.instances"]
    odd = validate(_changed("deid.instances", {1: {"slice_thickness": 650.0}, 2: {"pixel_spacing_col": 0.0},
                                               3: {"study_date": datetime.date(1996, 3, 4)}}), suite)
    assert not odd.success and not odd.holds_batch and odd.integrity_failures == []
    assert {(w.rule, w.unexpected_count) for w in odd.warnings} == {
        ("slice thickness outside 0-100 mm", 1), ("pixel spacing col outside 0.001-50 mm", 1),
        ("study date outside 2007-11-01 to 2020-11-30", 1)}
    dup = validate(_changed("deid.instances", {4: {"sop_instance_uid": _uid(0), "slice_thickness": 650.0}}), suite)
    assert dup.holds_batch and [r.name for r in dup.integrity_failures] == [
        "expect_compound_columns_to_be_unique(team,dataset,sop_instance_uid)"]
    assert [w.rule for w in dup.warnings] == ["slice thickness outside 0-100 mm"]


def test_rules_in_words_come_from_the_suite_only(suites):
    from medlake.validation.rule_text import rule_text

    words = {(t, e.type, e.column): rule_text(e) for t, suite in suites.items() for e in suite.expectations}
    assert words[("restricted.source_instances", "expect_column_values_to_be_between", "slice_thickness")] == \
        "slice thickness outside 0-100 mm"
    assert words[("restricted.source_instances", "expect_column_values_to_be_in_set", "burned_in_annotation")] == \
        "burned in annotation not one of YES, NO"
    assert words[("deid.series", "expect_column_values_to_be_between", "frames")] == "frames below 1"
    assert words[("deid.annotations", "expect_column_values_to_be_in_set", "resolved")] == "resolved not true"
    assert words[("restricted.batches", "medlake_column_equals_sum", "files_landed")] == \
        "files landed not files catalogued + files quarantined + files duplicate"
    assert words[("deid.instances", "expect_compound_columns_to_be_unique", "team,dataset,sop_instance_uid")] == \
        "key team, dataset, sop instance uid repeated"
    # A regex or an identifier pattern is never spelt out.
    assert all("\\d" not in w and "[" not in w for w in words.values())


def test_record_appends_history_rows(tmp_path, suites):
    from medlake.lake import DeltaStore, Lake

    store = DeltaStore(Lake.from_root(str(tmp_path / "lake")))
    suite = suites["restricted.batches"]
    outcome = validate(_changed("restricted.batches", {0: {"files_landed": 11}}), suite)
    record(store, suite.table_id, outcome, "run-1")
    record(store, suite.table_id, outcome, "run-2")
    rows = store.read(VALIDATION_HISTORY).to_pylist()
    assert len(rows) == 2 * len(suite.expectations)
    assert store.read(VALIDATION_HISTORY).schema == VALIDATION_HISTORY.schema
    bad = [r for r in rows if not r["success"]]
    assert {(r["expectation"], r["column"], r["unexpected_count"], r["run_id"]) for r in bad} == {
        ("medlake_column_equals_sum", "files_landed", 1, "run-1"), ("medlake_column_equals_sum", "files_landed", 1, "run-2")}
    assert {(r["severity"], r["rule"]) for r in bad} == {
        ("integrity", "files landed not files catalogued + files quarantined + files duplicate")}


def test_history_written_before_batches_were_recorded_gains_the_columns(tmp_path, suites):
    from medlake.lake import DeltaStore, Lake

    store = DeltaStore(Lake.from_root(str(tmp_path / "lake")))
    suite = suites["restricted.batches"]
    outcome = validate(_changed("restricted.batches", {}), suite)
    old_columns = [c for c in VALIDATION_HISTORY.column_names
                   if c not in ("team", "dataset", "batch_ref", "severity", "rule")]
    from deltalake import write_deltalake

    # As an older medlake wrote it, before the table had those columns.
    write_deltalake(store.uri(VALIDATION_HISTORY), history_rows(suite.table_id, outcome, "run-0").select(old_columns))
    record(store, suite.table_id, outcome, "run-1", batch=("tvgh", "liver-ct", "ABCDEFGHIJKLMNOPQRST"))
    rows = store.read(VALIDATION_HISTORY).to_pylist()
    assert {(r["run_id"], r["team"], r["batch_ref"]) for r in rows} == {
        ("run-0", None, None), ("run-1", "tvgh", "ABCDEFGHIJKLMNOPQRST")}
    assert len(rows) == 2 * len(suite.expectations)
    # Rows recorded before expectations had kinds read null; the dashboard counts them as integrity.
    assert {r["severity"] for r in rows if r["run_id"] == "run-0"} == {None}
    assert {r["severity"] for r in rows if r["run_id"] == "run-1"} == {"integrity"}


# --- one batch's rows, keys against the dataset -------------------------------------------------

REF_1, REF_2 = "ABCDEFGHIJKLMNOPQRST", "BCDEFGHIJKLMNOPQRSTU"


def _two_batches(tmp_path, table_id, first: list[dict], second: list[dict]):
    from medlake.lake import DeltaStore, Lake

    td, _ = TABLES[table_id]
    store = DeltaStore(Lake.from_root(str(tmp_path / "lake")))
    store.append(td, first + second)
    return store


def test_a_batch_is_validated_on_its_rows_with_keys_checked_against_the_dataset(tmp_path, suites):
    from medlake.validation.scope import validate_dataset

    first = [_instance(i) for i in range(6)]
    first[2]["pixel_spacing_col"] = 0.0   # an earlier batch's fault: reported when that batch was checked
    second = [{**_instance(i), "batch_ref": REF_2} for i in range(6, 10)]
    second[1]["sop_instance_uid"] = _uid(4)   # the same instance as the first batch's row 4
    second[3]["rows"] = 0
    store = _two_batches(tmp_path, "deid.instances", first, second)
    suite = suites["deid.instances"]

    batch = validate_dataset(store, suite, "tvgh", "liver-ct", "2019-10-01", REF_2)
    assert batch.row_count == 4
    failed = {(r.expectation, r.column): r for r in batch.failed}
    assert set(failed) == {("expect_compound_columns_to_be_unique", "team,dataset,sop_instance_uid"),
                           ("expect_column_values_to_be_between", "rows")}
    repeated = failed[("expect_compound_columns_to_be_unique", "team,dataset,sop_instance_uid")]
    assert repeated.unexpected_count == 1     # only the batch's row: the earlier one was valid when it came
    assert repeated.example_keys == [("tvgh", "liver-ct", _uid(4))]
    assert failed[("expect_column_values_to_be_between", "rows")].unexpected_count == 1

    # The dataset as a whole: both rows of the repeated key and the earlier batch's fault too.
    whole = validate_dataset(store, suite, "tvgh", "liver-ct")
    assert whole.row_count == 10
    assert {(r.expectation, r.column): r.unexpected_count for r in whole.failed} == {
        ("expect_compound_columns_to_be_unique", "team,dataset,sop_instance_uid"): 2,
        ("expect_column_values_to_be_between", "rows"): 1,
        ("expect_column_values_to_be_between", "pixel_spacing_col"): 1}

    # The first batch now: its row 4 is repeated by the second, its own fault is its own.
    earlier = validate_dataset(store, suite, "tvgh", "liver-ct", "2019-09-15", REF_1)
    assert {(r.expectation, r.column): r.unexpected_count for r in earlier.failed} == {
        ("expect_compound_columns_to_be_unique", "team,dataset,sop_instance_uid"): 1,
        ("expect_column_values_to_be_between", "pixel_spacing_col"): 1}


def test_restricted_rows_are_found_by_folder_and_series_by_the_batch_instances(tmp_path, suites):
    from medlake.validation.scope import validate_dataset

    suite = suites["restricted.source_instances"]
    first = [_source(i) for i in range(3)]
    second = [{**_source(i), "batch": "b2"} for i in range(3, 5)] + [{**_source(1), "batch": "b2"}]
    store = _two_batches(tmp_path / "r", "restricted.source_instances", first, second)
    out = validate_dataset(store, suite, "tvgh", "liver-ct", "b2", REF_2)
    assert out.row_count == 3
    assert [(r.expectation, r.unexpected_count, r.example_keys) for r in out.failed] == [
        ("expect_compound_columns_to_be_unique", 1, [("row", 2)])]   # restricted: row numbers, never values
    other_dataset = [{**_source(i), "dataset": "lung-ct", "batch": "b2"} for i in range(3)]
    store = _two_batches(tmp_path / "o", "restricted.source_instances", first, other_dataset)
    assert validate_dataset(store, suite, "tvgh", "liver-ct", "b2", REF_2).row_count == 0

    # A batch that re-sent an object with other content also rewrote the earlier batch's rows.
    conflict = [{**_quarantine(0), "batch": "b2", "reason_code": "conflicting_sop_instance"}]
    store = _two_batches(tmp_path / "c", "restricted.source_instances", first, second)
    store.append(QUARANTINE, conflict)
    assert validate_dataset(store, suite, "tvgh", "liver-ct", "b2", REF_2).row_count == 6
    assert validate_dataset(store, suite, "tvgh", "liver-ct", "b1", REF_2).row_count == 3

    # Series: those the batch's instances belong to; no instances table yet: the whole slice.
    store = _two_batches(tmp_path / "s", "deid.series", [_series(i) for i in range(4)], [])
    assert validate_dataset(store, suites["deid.series"], "tvgh", "liver-ct", "b2", REF_2).row_count == 4
    store.append(INSTANCES, INSTANCES.from_rows(
        [{**_instance(i), "batch_ref": REF_2, "series_instance_uid": _uid(3)} for i in range(10, 13)]
        + [_instance(i) for i in range(3)]))
    out = validate_dataset(store, suites["deid.series"], "tvgh", "liver-ct", "b2", REF_2)
    assert out.row_count == 1 and out.success
    assert validate_dataset(store, suites["deid.cases"], "tvgh", "liver-ct", "b2", REF_2) is None


# --- Dagster -----------------------------------------------------------------------------------

def _graph(tmp_path, table_id, rows_changes, executed: list):
    import dagster as dg

    from expectations.checks import suite_checks

    parts = dg.StaticPartitionsDefinition(["tvgh/liver-ct/b1"])
    td = TABLES[table_id][0]
    key = dg.AssetKey([td.zone, td.name])

    @dg.asset(key=key, partitions_def=parts)
    def table(lake: LakeResource):
        lake.store().append(td, _changed(table_id, rows_changes))

    @dg.asset(deps=[key], partitions_def=parts)
    def downstream():
        executed.append("downstream")

    checks = suite_checks({key: table_id}, partitions_def=parts)
    with dg.instance_for_test() as instance:
        return dg.materialize([table, downstream, *checks], partition_key="tvgh/liver-ct/b1", instance=instance,
                              resources={"lake": LakeResource(root=str(tmp_path / "lake"))}, raise_on_error=False)


def _evaluations(res) -> dict:
    return {e.check_name: e for e in res.get_asset_check_evaluations()}


def test_failing_blocking_suite_check_stops_downstream(tmp_path):
    import dagster as dg

    executed: list = []
    res = _graph(tmp_path, "restricted.batches", {2: {"files_catalogued": 1}}, executed)
    assert not res.success
    assert executed == []
    ev = _evaluations(res)
    assert set(ev) == {"expectations_batches", "plausibility_batches"}
    bad = ev["expectations_batches"]
    assert not bad.passed and bad.severity == dg.AssetCheckSeverity.ERROR
    meta = bad.metadata
    assert meta["failed"].value == 1
    assert meta["failing_expectations"].value == {"medlake_column_equals_sum(files_landed)": 1}
    assert meta["example_keys"].value == {"medlake_column_equals_sum(files_landed)": [["row", 2]]}
    assert ev["plausibility_batches"].passed
    from medlake.lake import DeltaStore, Lake
    hist = DeltaStore(Lake.from_root(str(tmp_path / "lake"))).read(VALIDATION_HISTORY)
    assert hist.num_rows == 17 and set(hist.column("run_id").to_pylist()) == {res.run_id}


def test_passing_suite_check_lets_downstream_run(tmp_path):
    executed: list = []
    res = _graph(tmp_path, "restricted.batches", {}, executed)
    assert res.success and executed == ["downstream"]
    assert all(ev.passed for ev in res.get_asset_check_evaluations())


def test_plausibility_failures_warn_and_never_hold_downstream(tmp_path):
    """Slice Thickness 650 and Pixel Spacing 0 occur in real files: flagged, downstream runs."""
    import dagster as dg

    executed: list = []
    res = _graph(tmp_path, "restricted.source_instances",
                 {1: {"slice_thickness": 650.0}, 4: {"slice_thickness": 650.0, "pixel_spacing_row": 0.0}}, executed)
    assert res.success and executed == ["downstream"]
    ev = _evaluations(res)
    assert ev["expectations_source_instances"].passed
    warned = ev["plausibility_source_instances"]
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
    assert warned.metadata["flagged"].value == {"slice thickness outside 0-100 mm": 2,
                                                 "pixel spacing row outside 0.001-50 mm": 1}
    assert warned.metadata["example_keys"].value["expect_column_values_to_be_between(slice_thickness)"] == [
        ["row", 1], ["row", 4]]
    from medlake.lake import DeltaStore, Lake
    hist = DeltaStore(Lake.from_root(str(tmp_path / "lake"))).read(VALIDATION_HISTORY).to_pylist()
    assert sorted((r["severity"], r["rule"], r["unexpected_count"]) for r in hist if not r["success"]) == [
        ("plausibility", "pixel spacing row outside 0.001-50 mm", 1),
        ("plausibility", "slice thickness outside 0-100 mm", 2)]


def test_an_integrity_failure_holds_downstream_beside_plausibility_warnings(tmp_path):
    import dagster as dg

    executed: list = []
    res = _graph(tmp_path, "restricted.source_instances",
                 {4: {"sop_instance_uid": "1.2.3.4.0", "slice_thickness": 650.0}}, executed)
    assert not res.success and executed == []
    ev = _evaluations(res)
    held = ev["expectations_source_instances"]
    assert not held.passed and held.severity == dg.AssetCheckSeverity.ERROR
    assert held.metadata["failing_expectations"].value == {
        "expect_compound_columns_to_be_unique(team,dataset,sop_instance_uid)": 2}
    warned = ev["plausibility_source_instances"]
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
    assert warned.metadata["flagged"].value == {"slice thickness outside 0-100 mm": 1}


@pytest.mark.parametrize("severity_name", ["WARN", "ERROR"])
def test_dagster_holds_downstream_of_a_blocking_check_only_on_error(severity_name):
    """The Dagster semantics the suites' checks rest on (1.13): a blocking check that fails with
    severity WARN lets downstream run; only ERROR holds it. Integrity results are therefore ERROR."""
    import dagster as dg

    executed: list = []

    @dg.asset
    def table():
        return 1

    @dg.asset(deps=[table])
    def downstream():
        executed.append("downstream")

    @dg.asset_check(asset=table, blocking=True)
    def failing():
        return dg.AssetCheckResult(passed=False, severity=getattr(dg.AssetCheckSeverity, severity_name))

    with dg.instance_for_test() as instance:
        res = dg.materialize([table, downstream, failing], instance=instance, raise_on_error=False)
    assert executed == (["downstream"] if severity_name == "WARN" else [])
    assert res.success == (severity_name == "WARN")
