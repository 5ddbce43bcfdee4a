"""Real vendor objects whose acquisition values are odd but genuine go through the batch job: a
plausibility expectation warns and flags them, an integrity expectation still holds the batch.

The objects are the vendor test files shipped inside the installed pydicom (GE CT, Toshiba MR,
Siemens MR, studies of 2004-2005), used as found and as copies carrying values real corpora hold:
Slice Thickness 650, Pixel Spacing 0\\0, a Study Date of 1997. Nothing here is written by medlake's
synthesiser or test factories.
"""

from __future__ import annotations

import copy
import csv

import dagster as dg
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import generate_uid

from medlake.dashboard import write_dashboard
from medlake.deid.keys import DeidKeys
from medlake.lake.tables import CASES, INSTANCES, SOURCE_CASES
from medlake.settings import Settings, secret_key
from medlake.validation.history import VALIDATION_HISTORY
from pipelines.definitions import build_definitions
from pipelines.partitions import EXPORT_BATCHES

import browser

TEAM, DATASET = "tvgh", "liver-ct"
VENDOR_FILES = ("CT_small.dcm", "MR_small.dcm", "examples_overlay.dcm")


def _vendor(name: str) -> pydicom.Dataset:
    path = get_testdata_file(name, download=False)   # never fetch: only what the package ships
    if path is None:
        pytest.fail(f"{name} is not among pydicom's installed test files")
    return pydicom.dcmread(path)


def _copy(ds: pydicom.Dataset, **changes) -> pydicom.Dataset:
    """Another object of the same series (a new SOP Instance UID), with header values changed."""
    out = copy.deepcopy(ds)   # a shallow copy shares data elements, whose values setattr changes in place
    out.SOPInstanceUID = out.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    for k, v in changes.items():
        setattr(out, k, v)
    return out


def _land(lh, batch: str, objects: dict[str, pydicom.Dataset]) -> str:
    """An export batch as EXPORT_FORMAT.md lays it out: images/, cases.csv (one case per study), _READY."""
    d = lh.batch_dir(TEAM, DATASET, batch)
    studies: dict[str, str] = {}
    for name, ds in objects.items():
        (d / "images").mkdir(exist_ok=True)
        ds.save_as(d / "images" / name, enforce_file_format=True)
        studies[ds.StudyInstanceUID] = str(ds.PatientID)
    with open(d / "cases.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["case_id", "patient_id", "study_instance_uids"])
        for i, (study, patient) in enumerate(sorted(studies.items())):
            w.writerow([f"{batch}-K{i}", patient, study])
    (d / "_READY").write_text("")
    return f"{TEAM}/{DATASET}/{batch}"


def _run(defs, instance, key: str):
    instance.add_dynamic_partitions(EXPORT_BATCHES.name, [key])
    return defs.resolve_job_def("process_export_batch").execute_in_process(
        partition_key=key, instance=instance, raise_on_error=False)


def _checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {f"{e.asset_key.to_user_string()}:{e.check_name}": e for e in result.get_asset_check_evaluations()}


def _identifiers(objects) -> set[str]:
    """What the vendor files carry that must not reach the dashboard or a check's metadata."""
    out = set()
    for ds in objects:
        out |= {str(ds.PatientID), str(ds.get("PatientName", "")), ds.StudyInstanceUID, ds.SeriesInstanceUID,
                ds.SOPInstanceUID, str(ds.get("AccessionNumber", "")), str(ds.get("PatientBirthDate", ""))}
    return {v for v in out if len(v) >= 4}


@pytest.fixture(scope="module")
def vendor():
    return {n: _vendor(n) for n in VENDOR_FILES}


def test_odd_but_real_acquisition_values_warn_and_the_batch_reaches_the_cases(lakehouse, vendor, tmp_path):
    lh = lakehouse
    ct, mr, siemens = vendor["CT_small.dcm"], vendor["MR_small.dcm"], vendor["examples_overlay.dcm"]
    objects = {
        "ct.dcm": ct, "mr.dcm": mr, "siemens.dcm": siemens,   # as the vendors wrote them (studies of 2004-05)
        "ct-thick.dcm": _copy(ct, SliceThickness=650),
        "mr-thick.dcm": _copy(mr, SliceThickness=650),
        "ct-spacing.dcm": _copy(ct, PixelSpacing=[0, 0]),
        "mr-1997.dcm": _copy(mr, StudyDate="19970101"),
    }
    key = _land(lh, "2019-10-01-a", objects)
    defs = build_definitions(Settings.from_env({"MEDLAKE_HOME": str(lh.root), "MEDLAKE_PROGRAM": lh.registry.source}))
    with dg.instance_for_test() as instance:
        result = _run(defs, instance, key)
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        checks = _checks(result)
        logs = " ".join(str(e) for e in instance.all_logs(result.run_id))

    # Every integrity check passed; the plausibility checks of the tables these values reach warn.
    integrity = {k: e for k, e in checks.items() if ":expectations_" in k}
    assert len(integrity) == 10 and all(e.passed for e in integrity.values()), \
        [k for k, e in integrity.items() if not e.passed]
    warned = {k: e for k, e in checks.items() if ":plausibility_" in k and not e.passed}
    assert set(warned) == {"restricted/source_instances:plausibility_source_instances",
                           "deid/instances:plausibility_instances", "deid/studies:plausibility_studies"}
    assert all(e.severity == dg.AssetCheckSeverity.WARN for e in warned.values())
    flagged = warned["restricted/source_instances:plausibility_source_instances"].metadata["flagged"].value
    assert flagged == {"slice thickness outside 0-100 mm": 2, "pixel spacing row outside 0.001-50 mm": 1,
                       "pixel spacing col outside 0.001-50 mm": 1}
    deid_flagged = warned["deid/instances:plausibility_instances"].metadata["flagged"].value
    # Every study here predates the programme period, so every shifted date lies below the bound.
    assert deid_flagged["study date outside 2007-11-01 to 2020-11-30"] == len(objects)
    assert deid_flagged["slice thickness outside 0-100 mm"] == 2

    # The batch was de-identified and its cases built: one per study.
    instances = lh.store.read(INSTANCES).to_pylist()
    assert len(instances) == len(objects)
    assert sorted(r["slice_thickness"] for r in instances if r["slice_thickness"] > 100) == [650.0, 650.0]
    cases = lh.store.read(CASES).to_pylist()
    assert len(cases) == lh.store.read(SOURCE_CASES).num_rows == 3
    assert all(c["instances"] >= 1 for c in cases)

    # validation_history flags the rows: kind and count per expectation, for this batch.
    history = [r for r in lh.store.read(VALIDATION_HISTORY).to_pylist() if r["run_id"] == result.run_id]
    failing = {(r["table"], r["rule"]): (r["severity"], r["unexpected_count"]) for r in history if not r["success"]}
    assert failing == {
        ("restricted.source_instances", "slice thickness outside 0-100 mm"): ("plausibility", 2),
        ("restricted.source_instances", "pixel spacing row outside 0.001-50 mm"): ("plausibility", 1),
        ("restricted.source_instances", "pixel spacing col outside 0.001-50 mm"): ("plausibility", 1),
        ("deid.instances", "slice thickness outside 0-100 mm"): ("plausibility", 2),
        ("deid.instances", "pixel spacing row outside 0.001-50 mm"): ("plausibility", 1),
        ("deid.instances", "pixel spacing col outside 0.001-50 mm"): ("plausibility", 1),
        ("deid.instances", "study date outside 2007-11-01 to 2020-11-30"): ("plausibility", len(objects)),
        ("deid.studies", "study date outside 2007-11-01 to 2020-11-30"): ("plausibility", 3),
    }
    assert {r["severity"] for r in history} == {"integrity", "plausibility"}
    assert {(r["team"], r["dataset"]) for r in history} == {(TEAM, DATASET)}

    # The dashboard: the batch passed, with its warnings as counts and ranges.
    page = write_dashboard(lh.store, tmp_path / "dashboard.html")
    html = page.read_text(encoding="utf-8")
    text, _ = browser.testids(html)
    assert text["quality-failing"] == "0" and text["quality-batches-failing"] == "0"
    assert text["quality-warnings"] == "8"
    batch_ref = DeidKeys(secret_key()).batch_ref(TEAM, DATASET, "2019-10-01-a")
    shown = text[f"quality-warnings-{TEAM}-{DATASET}-{batch_ref}"]
    assert "warning: 2 objects with slice thickness outside 0-100 mm" in shown
    assert "warning: 7 objects with study date outside 2007-11-01 to 2020-11-30" in shown
    assert "warning: 3 studies with study date outside 2007-11-01 to 2020-11-30" in shown
    for value in _identifiers(objects.values()) | set(objects) | {"2019-10-01-a"}:
        assert value not in html, value
    for value in _identifiers(objects.values()):
        assert value not in logs, value
    for e in checks.values():
        assert not any(v in str(e.metadata) for v in _identifiers(objects.values())), e.check_name


def test_an_integrity_failure_still_holds_the_batch(lakehouse, vendor, tmp_path):
    lh = lakehouse
    ct = vendor["CT_small.dcm"]
    first = _land(lh, "2019-10-01-a", {"ct.dcm": ct, "ct-thick.dcm": _copy(ct, SliceThickness=650)})
    # The second batch: a new study of the same scanner, one object with an odd value again.
    study, series = generate_uid(), generate_uid()
    later = _copy(ct, StudyInstanceUID=study, SeriesInstanceUID=series, PixelSpacing=[0, 0])
    second = _land(lh, "2019-11-01-a", {"later.dcm": later})
    defs = build_definitions(Settings.from_env({"MEDLAKE_HOME": str(lh.root), "MEDLAKE_PROGRAM": lh.registry.source}))
    with dg.instance_for_test() as instance:
        assert _run(defs, instance, first).success
        cases_before = lh.store.read(CASES).to_pylist()
        # A fault elsewhere left a row of the first batch under the keyed UID the second batch's
        # object gets: the second batch repeats a key of the dataset.
        keys = DeidKeys(secret_key())
        stale = dict(lh.store.read(INSTANCES).to_pylist()[0], sop_instance_uid=keys.uid(later.SOPInstanceUID))
        lh.store.append(INSTANCES, [stale])
        result = _run(defs, instance, second)
        assert not result.success
        checks = _checks(result)
        steps = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}

    blocked = checks["deid/instances:expectations_instances"]
    assert not blocked.passed and blocked.severity == dg.AssetCheckSeverity.ERROR
    assert blocked.metadata["failing_expectations"].value == {
        "expect_compound_columns_to_be_unique(team,dataset,sop_instance_uid)": 1}
    # The plausibility fault of the same table is reported beside it, as a warning only.
    warned = checks["deid/instances:plausibility_instances"]
    assert not warned.passed and warned.severity == dg.AssetCheckSeverity.WARN
    assert warned.metadata["flagged"].value["pixel spacing row outside 0.001-50 mm"] == 1
    # Downstream of the failed integrity check nothing ran: the second batch's case was not built.
    assert "annotations_and_cases" not in steps
    assert lh.store.read(CASES).to_pylist() == cases_before

    page = write_dashboard(lh.store, tmp_path / "dashboard.html")
    text, _ = browser.testids(page.read_text(encoding="utf-8"))
    assert text["quality-batches-failing"] == "1"
    ref = keys.batch_ref(TEAM, DATASET, "2019-11-01-a")
    assert "failed" in text[f"quality-state-{TEAM}-{DATASET}-{ref}"]
    assert "warning: 1 object with pixel spacing row outside 0.001-50 mm" in \
        text[f"quality-warnings-{TEAM}-{DATASET}-{ref}"]
