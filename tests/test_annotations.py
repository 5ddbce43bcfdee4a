"""Annotation readers (medlake.annotations) against the synthetic programme and against bad input."""

from __future__ import annotations

import copy
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from medlake.annotations import (AnnotationProblem, AnnotationResult, kinds_found, mask_shape, read_annotation)
from medlake.program import load_registry
from medlake.synth import SynthSpec, generate, load_truth

REPO = Path(__file__).resolve().parent.parent
ANNOTATION_KINDS = {"rtstruct", "seg", "sr", "presentation_state", "aim", "mask_image", "label_sheet"}


@pytest.fixture(scope="module")
def programme(tmp_path_factory):
    landing = tmp_path_factory.mktemp("ann") / "landing"
    report = generate(landing, load_registry(REPO / "config" / "program.yaml"), SynthSpec(cases=3, seed=5))
    truth = load_truth(report.truth_path)
    return landing, truth


def _path(landing: Path, o: dict) -> Path:
    return landing / o["team"] / o["dataset"] / o["batch"] / o["path"]


def _objects(truth, kind: str) -> list[dict]:
    return [o for o in truth["objects"] if o["kind"] == kind]


def _one(programme, kind: str) -> Path:
    landing, truth = programme
    objs = _objects(truth, kind)
    assert objs, f"the synthetic programme has no {kind} object"
    return _path(landing, objs[-1])


# ---------------------------------------------------------------------------------------------- round trip
def test_kinds_per_case_match_truth(programme):
    landing, truth = programme
    cases = {(c["team"], c["dataset"], c["case_id"]): c for c in truth["cases"]}
    by_study = {(c["team"], c["dataset"], u): k for k, c in cases.items() for u in c["study_instance_uids"]}
    by_sop = {(c["team"], c["dataset"], u): k for k, c in cases.items() for u in c["sop_instance_uids"]}
    found: dict[tuple, set[str]] = defaultdict(set)
    formats_seen = set()
    for o in truth["objects"]:
        if o["kind"] not in ANNOTATION_KINDS:
            continue
        formats_seen.add(o["kind"])
        result = read_annotation(_path(landing, o), o["kind"])
        assert isinstance(result, AnnotationResult)
        assert result.rows, f"{o['kind']} object {o['path']} gave no rows"
        assert result.problems == [], (o["kind"], result.problems)
        assert {r.source_format for r in result.rows} == {o["kind"]}
        ids = [r.annotation_id for r in result.rows]
        assert len(set(ids)) == len(ids)
        if o["kind"] == "label_sheet":
            # rows map to cases by their own targets (a batch sheet covers several cases)
            sheet_cases = set()
            for r in result.rows:
                team_ds = (o["team"], o["dataset"])
                if r.target_case:
                    key = (*team_ds, r.target_case)
                elif r.target_study_uid:
                    key = by_study[(*team_ds, r.target_study_uid)]
                else:
                    key = by_sop[(*team_ds, r.target_instance_uid)]
                assert key in cases
                found[key].add(r.kind)
                sheet_cases.add(key[2])
            expected = set(o.get("case_ids") or [o["case_id"]])
            assert sheet_cases == expected
        else:
            key = (o["team"], o["dataset"], o["case_id"])
            found[key] |= kinds_found(result.rows)
            case = cases[key]
            for r in result.rows:   # every DICOM-side target is one of the case's own UIDs
                if r.target_study_uid:
                    assert r.target_study_uid in case["study_instance_uids"]
                if r.target_series_uid:
                    assert r.target_series_uid in case["series_instance_uids"]
                if r.target_instance_uid:
                    assert r.target_instance_uid in case["sop_instance_uids"]
                assert r.target_series_uid or r.target_instance_uid
    assert formats_seen == ANNOTATION_KINDS   # the fixture exercises every reader
    for key, case in cases.items():
        assert found.get(key, set()) == set(case["annotation_kinds"]), (key, case["expected_status"])
    assert any(case["expected_status"] == "partial" for case in cases.values())


def test_measurements_carry_values_and_labels_codes(programme):
    landing, truth = programme
    sr_rows = [r for o in _objects(truth, "sr") for r in read_annotation(_path(landing, o), "sr").rows]
    nums = [r for r in sr_rows if r.kind == "measurement"]
    assert nums and all(isinstance(r.value, float) and r.unit for r in nums)
    coded = [r for r in sr_rows if r.kind == "label"]
    assert coded and all(r.code and ":" in r.code for r in coded)
    assert any(r.code == "SCT:415582006" and r.value_text == "Stenosis" for r in coded)
    seg_rows = read_annotation(_one(programme, "seg"), "seg").rows
    assert seg_rows[0].label and seg_rows[0].code == "SCT:52988006" and seg_rows[0].value > 0
    mask = _one(programme, "mask_image")
    row = read_annotation(mask, "mask_image").rows[0]
    uid, label = mask.name.split("__")[0], mask.name.split("__")[1].split(".")[0]
    assert row.label == label and (row.target_instance_uid == uid or row.target_series_uid == uid)
    assert row.value and row.value > 0 and row.annotation_id == mask.name + "#1"


def test_mask_shape_matches_its_image(programme, tmp_path):
    landing, truth = programme
    o = _objects(truth, "mask_image")[0]
    path = _path(landing, o)
    shape = mask_shape(path)
    image = next(i for i in truth["objects"] if i["sop_instance_uid"] == path.name.split("__")[0]
                 and i["kind"] == "dicom_image")
    ds = pydicom.dcmread(str(_path(landing, image)), stop_before_pixels=True)
    assert shape == (ds.Rows, ds.Columns)
    from PIL import Image
    bad = tmp_path / path.name
    Image.open(path).resize((ds.Columns // 2, ds.Rows)).save(bad)
    assert mask_shape(bad) == (ds.Rows, ds.Columns // 2) != (ds.Rows, ds.Columns)
    import SimpleITK as sitk
    vol = np.zeros((3, 8, 5), dtype=np.uint8)
    vol[1, 2:4, 1:3] = 1
    nii = tmp_path / "1.2.3.4__lesion.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(vol), str(nii))
    assert mask_shape(nii) == (3, 8, 5)
    row = read_annotation(nii, "mask_image").rows[0]
    assert (row.target_series_uid, row.label, row.value) == ("1.2.3.4", "lesion", 4.0)


def test_reads_de_identified_style_objects(programme, tmp_path):
    """Keyed 2.25 UIDs, no AIM person, pseudonymous label-sheet readers: same rows."""
    landing, truth = programme
    aim = _path(landing, _objects(truth, "aim")[-1])
    import re
    text = aim.read_text(encoding="utf-8")
    text = re.sub(r"<person>.*?</person>", "", text, flags=re.S)
    text = re.sub(r'root="[0-9.]+"', lambda m: 'root="2.25.%d"' % (abs(hash(m.group(0))) % 10**30), text)
    out = tmp_path / "aim_deid.xml"
    out.write_text(text, encoding="utf-8")
    before, after = read_annotation(aim, "aim"), read_annotation(out, "aim")
    assert kinds_found(before.rows) == kinds_found(after.rows)
    assert all(r.target_instance_uid is None or r.target_instance_uid.startswith("2.25.") for r in after.rows)
    sheet = tmp_path / "labels.csv"
    sheet.write_text("sop_instance_uid,label,value,region,reader,read_date\n"
                     "2.25.1,erosion,present,MCP2,reader-01,2019-01-01\n2.25.1,sharp_score,12,,reader-01,\n",
                     encoding="utf-8")
    rows = read_annotation(sheet, "label_sheet").rows
    assert [(r.kind, r.target_instance_uid, r.value) for r in rows] == [("label", "2.25.1", None),
                                                                        ("measurement", "2.25.1", 12.0)]


# ---------------------------------------------------------------------------------------------- bad input
def _no_identifier(exc: AnnotationProblem, *values: str) -> None:
    for v in values:
        assert v not in exc.message and v not in str(exc)


def test_aim_malformed(programme, tmp_path):
    src = _one(programme, "aim").read_bytes()
    bad = tmp_path / "AIM_bad.xml"
    bad.write_bytes(src[: len(src) // 2])
    with pytest.raises(AnnotationProblem) as e:
        read_annotation(bad, "aim")
    assert e.value.code == "aim_malformed"
    bad.write_bytes(b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]>'
                    b'<ImageAnnotationCollection>&b;</ImageAnnotationCollection>')
    with pytest.raises(AnnotationProblem) as e:
        read_annotation(bad, "aim")
    assert e.value.code == "aim_malformed"


def _xlsx(path: Path, header: list[str], rows: list[list], merge: str | None = None) -> Path:
    from openpyxl import Workbook
    wb = Workbook()
    ws = wb.active
    ws.append(header)
    for r in rows:
        ws.append(r)
    if merge:
        ws.merge_cells(merge)
    wb.save(path)
    return path


def test_label_sheet_merged_header(tmp_path):
    ok = _xlsx(tmp_path / "ok.xlsx", ["case_id", "label", "value"], [["C-1", "erosion", "present"]])
    assert kinds_found(read_annotation(ok, "label_sheet").rows) == {"label"}
    bad = _xlsx(tmp_path / "merged.xlsx", ["case_id", "label", "value"], [["C-1", "erosion", "present"]], "B1:C1")
    with pytest.raises(AnnotationProblem) as e:
        read_annotation(bad, "label_sheet")
    assert e.value.code == "label_sheet_merged_header"


def test_label_sheet_missing_column(tmp_path):
    bad = _xlsx(tmp_path / "nolabel.xlsx", ["case_id", "value", "reader"], [["C-SECRET-1", "3", "DOE^JOHN"]])
    with pytest.raises(AnnotationProblem) as e:
        read_annotation(bad, "label_sheet")
    assert e.value.code == "label_sheet_columns" and "label" in e.value.message
    _no_identifier(e.value, "C-SECRET-1", "DOE^JOHN")
    no_target = tmp_path / "notarget.csv"
    no_target.write_text("patient_id,label,value\nA123456789,erosion,present\n", encoding="utf-8")
    with pytest.raises(AnnotationProblem) as e:
        read_annotation(no_target, "label_sheet")
    assert e.value.code == "label_sheet_columns"
    _no_identifier(e.value, "A123456789")


def _empty_roi(ds: Dataset, number: int, name: str) -> None:
    roi = copy.deepcopy(ds.StructureSetROISequence[0])
    roi.ROINumber, roi.ROIName = number, name
    ds.StructureSetROISequence.append(roi)
    rc = Dataset()
    rc.ReferencedROINumber = number
    rc.ROIDisplayColor = [0, 255, 0]
    c = Dataset()
    c.ContourGeometricType = "CLOSED_PLANAR"
    c.NumberOfContourPoints = 0
    c.ContourData = []
    rc.ContourSequence = Sequence([c])
    ds.ROIContourSequence.append(rc)


def test_rtstruct_empty_contour(programme, tmp_path):
    src = _one(programme, "rtstruct")
    ds = pydicom.dcmread(str(src))
    _empty_roi(ds, 7, "PATIENT NAME ROI")
    partly = tmp_path / "rs_partly.dcm"
    ds.save_as(partly)
    result = read_annotation(partly, "rtstruct")
    assert [p[0] for p in result.problems] == ["rtstruct_empty_contour"]
    assert "PATIENT NAME ROI" not in result.problems[0][1]
    assert [r.label for r in result.rows if r.kind == "contour"] == ["GTV1"]
    # no usable ROI at all: refused
    ds = pydicom.dcmread(str(src))
    ds.ROIContourSequence[0].ContourSequence = Sequence()
    empty = tmp_path / "rs_empty.dcm"
    ds.save_as(empty)
    with pytest.raises(AnnotationProblem) as e:
        read_annotation(empty, "rtstruct")
    assert e.value.code == "rtstruct_empty_contour"
    _no_identifier(e.value, str(ds.SOPInstanceUID))


def test_sr_unknown_template(programme, tmp_path):
    src = _one(programme, "sr")
    assert read_annotation(src, "sr").rows
    ds = pydicom.dcmread(str(src))
    del ds.ContentTemplateSequence
    ds.ConceptNameCodeSequence[0].CodeValue = "18748-4"
    ds.ConceptNameCodeSequence[0].CodingSchemeDesignator = "LN"
    note = Dataset()
    note.RelationshipType, note.ValueType = "CONTAINS", "TEXT"
    note.ConceptNameCodeSequence = Sequence([copy.deepcopy(ds.ConceptNameCodeSequence[0])])
    note.TextValue = "free text report"
    ds.ContentSequence = Sequence([note])
    bad = tmp_path / "sr_text.dcm"
    ds.save_as(bad)
    with pytest.raises(AnnotationProblem) as e:
        read_annotation(bad, "sr")
    assert e.value.code == "sr_unknown_template"
    _no_identifier(e.value, str(ds.SOPInstanceUID), "free text report")


def test_wrong_kind_and_unreadable(programme, tmp_path):
    with pytest.raises(AnnotationProblem) as e:
        read_annotation(_one(programme, "sr"), "rtstruct")
    assert e.value.code == "wrong_sop_class"
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom at all")
    with pytest.raises(AnnotationProblem) as e:
        read_annotation(junk, "seg")
    assert e.value.code == "dicom_unreadable"
    with pytest.raises(AnnotationProblem) as e:
        read_annotation(tmp_path / "PATIENT_NAME__lesion.png", "mask_image")
    assert e.value.code == "annotation_missing"
    bad_name = tmp_path / "WANG_XIAOMING__lesion.png"
    bad_name.write_bytes(b"")
    with pytest.raises(AnnotationProblem) as e:
        read_annotation(bad_name, "mask_image")
    assert e.value.code == "mask_name_invalid"
    _no_identifier(e.value, "WANG_XIAOMING")


def test_same_kinds_after_project_deidentification(programme, tmp_path):
    """Every annotation object through medlake.deid: same kinds, targets become the keyed UIDs."""
    from medlake.deid import DeidContext, DeidKeys, deidentify_file
    from medlake.deid.aim import deidentify_aim
    from medlake.deid.sheets import deidentify_sheet

    landing, truth = programme
    keys = DeidKeys(b"medlake-test-secret-0123456789ab")
    pid = {(c["team"], c["dataset"], c["case_id"]): c["patient_id"] for c in truth["cases"]}
    checked = set()
    for n, o in enumerate(o for o in truth["objects"] if o["kind"] in ANNOTATION_KINDS):
        src = _path(landing, o)
        kind = o["kind"]
        if kind in ("rtstruct", "seg", "sr", "presentation_state"):
            dst = tmp_path / f"{n}.dcm"
            deidentify_file(src, dst, DeidContext(o["team"], pid[(o["team"], o["dataset"], o["case_id"])], keys), None)
        elif kind == "aim":
            dst = tmp_path / f"{n}.xml"
            dst.write_bytes(deidentify_aim(src.read_bytes(), keys.uid, 0).data)
        elif kind == "mask_image":
            uid, rest = src.name.split("__", 1)
            dst = tmp_path / f"{keys.uid(uid)}__{rest}"
            dst.write_bytes(src.read_bytes())
        else:
            def target(col, v, o=o):
                return keys.case_id(o["team"], o["dataset"], v) if col == "case_id" else keys.uid(v)
            dst = tmp_path / f"{n}.csv"
            dst.write_bytes(deidentify_sheet(src.read_bytes(), src.suffix.lower(), target,
                                             lambda v: keys.opaque_id("reader", v), lambda c, v: 0).data)
        before, after = read_annotation(src, kind), read_annotation(dst, kind)
        assert [r.kind for r in after.rows] == [r.kind for r in before.rows], kind
        for b, a in zip(before.rows, after.rows):
            for field in ("target_study_uid", "target_series_uid", "target_instance_uid"):
                if getattr(b, field):
                    assert getattr(a, field) == keys.uid(getattr(b, field)), (kind, field)
            assert a.value == b.value and a.code == b.code
        checked.add(kind)
    assert checked == ANNOTATION_KINDS
