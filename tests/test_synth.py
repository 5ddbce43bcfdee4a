"""medlake.synth: deterministic hospital exports that follow EXPORT_FORMAT.md, and an honest truth file."""

from __future__ import annotations

import csv
import io
import re
import time
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile

from medlake.dicom.sop_classes import dicom_kind
from medlake.ingest.manifest import parse_cases_csv
from medlake.program import load_registry
from medlake.synth import (SynthSpec, generate, head_phantom, load_truth, national_id_valid,
                           possible_statuses)
from medlake.synth.phantoms import TEXT_RGB, TEXT_VALUE_8BIT, TEXT_VALUE_12BIT

ROOT = Path(__file__).resolve().parents[1]
DICOM_KINDS = {"dicom_image", "dicom_waveform", "rtstruct", "seg", "sr", "presentation_state"}


@pytest.fixture(scope="session")
def registry():
    return load_registry(ROOT / "config" / "program.yaml")


@pytest.fixture(scope="session")
def demo(tmp_path_factory, registry):
    out = tmp_path_factory.mktemp("demo")
    calls = []
    t0 = time.perf_counter()
    report = generate(out, registry, SynthSpec(cases=4, batches=2, seed=7), progress=lambda d, t: calls.append((d, t)))
    print(f"\ndemo: {report.cases} cases, {report.files} files, {report.bytes / 1e6:.1f} MB "
          f"in {time.perf_counter() - t0:.1f} s")
    return out, report, load_truth(report.truth_path), calls


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _batch_dirs(out: Path):
    return sorted(p.parent for p in out.glob("*/*/*/cases.csv"))


def _objects_by_case(truth):
    by = defaultdict(list)
    for o in truth["objects"]:
        if o["case_id"] is not None:
            by[(o["team"], o["dataset"], o["case_id"])].append(o)
    return by


def _cases(truth):
    return {(c["team"], c["dataset"], c["case_id"]): c for c in truth["cases"]}


def _path(out, o):
    return out / o["team"] / o["dataset"] / o["batch"] / o["path"]


# ------------------------------------------------------------------------------------------ determinism
def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path, registry):
    spec = SynthSpec(datasets=("cac-ct", "svd-mri", "spine-xray-as", "lung-pathology", "ffr", "af-cardiac-ct",
                               "lung-ct", "fundus-glaucoma"), cases=5, batches=2, seed=11)
    generate(tmp_path / "a", registry, spec)
    generate(tmp_path / "b", registry, spec)
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) > 100
    assert [k for k in a if a[k] != b[k]] == []
    assert any(k.endswith(".xlsx") for k in a) and any(k.endswith(".nii.gz") or k.endswith(".png") for k in a)
    generate(tmp_path / "c", registry, SynthSpec(**{**spec.__dict__, "seed": 12}))
    c = _tree(tmp_path / "c")
    assert c["_synth/truth.json"] != a["_synth/truth.json"]
    same = [k for k in a if k in c and a[k] == c[k] and not k.endswith("_READY")]
    assert len(same) < len(a) // 10


# ------------------------------------------------------------------------------------------ layout
def test_layout_follows_export_format(demo, registry):
    out, report, truth, calls = demo
    batches = _batch_dirs(out)
    assert len(batches) == report.batches == 50
    for b in batches:
        team, dataset = b.parts[-3], b.parts[-2]
        assert registry.owns(team, dataset)
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2}-[a-j]", b.name)
        assert sorted(p.name for p in b.iterdir()) == ["_READY", "annotations", "cases.csv", "images"] or \
            sorted(p.name for p in b.iterdir()) == ["_READY", "cases.csv", "images"]
        ready = b / "_READY"
        assert ready.read_bytes() == b""
        newest = max(p.stat().st_mtime_ns for p in b.rglob("*") if p.is_file())
        assert ready.stat().st_mtime_ns == newest      # written last
    top = {p.name for p in out.iterdir()}
    assert top == {"ntu", "tvgh", "tmu", "_synth", "_applications"}
    assert calls[-1] == (100, 100) and [d for d, _ in calls] == list(range(1, 101))
    for o in truth["objects"]:
        assert _path(out, o).is_file(), o
        assert o["path"].split("/")[0] == ("images" if o["kind"] in ("dicom_image", "dicom_waveform", "wsi")
                                           else "annotations")


# ------------------------------------------------------------------------------------------ DICOM
def test_every_dicom_reads_back_with_file_meta_and_right_sop_class(demo):
    out, _, truth, _ = demo
    n = 0
    for o in truth["objects"]:
        if o["kind"] not in DICOM_KINDS:
            continue
        raw = _path(out, o).read_bytes()
        assert raw[128:132] == b"DICM"
        ds = pydicom.dcmread(_path(out, o))
        assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID == o["sop_instance_uid"]
        assert dicom_kind(ds.SOPClassUID) == o["kind"]
        assert ds.PatientID and ds.StudyInstanceUID
        if "PixelData" in ds:
            arr = ds.pixel_array
            assert arr.size > 0
        n += 1
    assert n > 800


def test_volumes_have_consistent_geometry(demo):
    out, _, truth, _ = demo
    by_series = defaultdict(list)
    for o in truth["objects"]:
        if o["kind"] == "dicom_image" and o["dataset"] in ("ccta", "brain-tumor-mri", "neck-ct-lymph"):
            ds = pydicom.dcmread(_path(out, o), stop_before_pixels=True)
            by_series[ds.SeriesInstanceUID].append(ds)
    assert len(by_series) >= 6
    for items in by_series.values():
        items.sort(key=lambda d: d.InstanceNumber)
        assert len(items) >= 12
        assert len({d.FrameOfReferenceUID for d in items}) == 1
        assert len({tuple(d.ImageOrientationPatient) for d in items}) == 1
        z = [float(d.ImagePositionPatient[2]) for d in items]
        steps = np.diff(z)
        assert np.allclose(steps, float(items[0].SliceThickness)) and np.allclose(steps, float(items[0].SpacingBetweenSlices))
        if items[0].Modality == "CT":
            assert items[0].RescaleIntercept == -1024 and items[0].RescaleSlope == 1


def test_modality_specific_objects(demo):
    out, _, truth, _ = demo
    seen = {}
    for o in truth["objects"]:
        if o["kind"] in ("dicom_image", "dicom_waveform"):
            seen.setdefault(o["dataset"], o)
    def read(d):
        return pydicom.dcmread(_path(out, seen[d]))
    xa = read("cag")
    assert xa.SOPClassUID == "1.2.840.10008.5.1.4.1.1.12.1" and xa.NumberOfFrames > 1 and xa.FrameTime
    for d, mod in (("ivus", "IVUS"), ("ivoct", "IVOCT")):
        us = read(d)
        assert us.Modality == mod and us.NumberOfFrames > 1 and us.BurnedInAnnotation == "YES"
        assert (us.pixel_array == TEXT_VALUE_8BIT).any()
    nm = read("spect-perfusion")
    assert nm.SOPClassUID == "1.2.840.10008.5.1.4.1.1.20" and nm.NumberOfFrames > 1
    op = read("fundus-pcv")
    assert op.SOPClassUID == "1.2.840.10008.5.1.4.1.1.77.1.5.1" and op.SamplesPerPixel == 3
    assert op.PhotometricInterpretation == "RGB" and op.pixel_array.shape[-1] == 3
    hd_ = read("ffr")
    assert hd_.SOPClassUID == "1.2.840.10008.5.1.4.1.1.9.2.1"
    wf = hd_.WaveformSequence[0]
    assert wf.NumberOfWaveformChannels == 2 and len(wf.WaveformData) == 2 * 2 * wf.NumberOfWaveformSamples
    mr = read("brain-mets-mri")
    assert mr.SpecificCharacterSet == "ISO_IR 192"


# ------------------------------------------------------------------------------------------ annotations
def _referenced_uids(ds) -> set[str]:
    found = set()
    for elem in ds.iterall():
        if elem.keyword == "ReferencedSOPInstanceUID":
            found.add(str(elem.value))
    return found


def test_dicom_annotation_references_resolve_within_the_case(demo):
    out, _, truth, _ = demo
    cases = _cases(truth)
    checked = defaultdict(int)
    for o in truth["objects"]:
        if o["kind"] not in ("rtstruct", "seg", "sr", "presentation_state"):
            continue
        case = cases[(o["team"], o["dataset"], o["case_id"])]
        ds = pydicom.dcmread(_path(out, o))
        refs = _referenced_uids(ds)
        # RTSTRUCT's RTReferencedStudySequence names the study as a (Detached Study Management) SOP instance
        assert refs & set(case["sop_instance_uids"])
        assert refs <= set(case["sop_instance_uids"]) | set(case["study_instance_uids"]), o["path"]
        assert ds.StudyInstanceUID in case["study_instance_uids"]
        if o["kind"] == "rtstruct":
            for c in ds.ROIContourSequence[0].ContourSequence:
                assert c.ContourGeometricType == "CLOSED_PLANAR"
                assert c.ContourImageSequence[0].ReferencedSOPInstanceUID in case["sop_instance_uids"]
            study = ds.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
            assert study.RTReferencedSeriesSequence[0].SeriesInstanceUID in case["series_instance_uids"]
            assert ("RTROIObservationsSequence" in ds) == ("label" in case["annotation_kinds"])
        if o["kind"] == "sr":
            ev = ds.CurrentRequestedProcedureEvidenceSequence[0]
            assert ev.StudyInstanceUID in case["study_instance_uids"]
        if o["kind"] == "presentation_state":
            ga = ds.GraphicAnnotationSequence[0]
            assert ga.GraphicObjectSequence[0].GraphicType == "POLYLINE"
            assert ("TextObjectSequence" in ga) == ("label" in case["annotation_kinds"])
        checked[o["kind"]] += 1
    assert set(checked) == {"rtstruct", "seg", "sr", "presentation_state"}


def test_seg_and_sr_parse_with_highdicom(demo):
    import highdicom as hd
    out, _, truth, _ = demo
    cases = _cases(truth)
    segs = [o for o in truth["objects"] if o["kind"] == "seg"]
    srs = [o for o in truth["objects"] if o["kind"] == "sr"]
    assert segs and srs
    for o in segs:
        seg = hd.seg.segread(_path(out, o))
        assert seg.number_of_segments == 1
        src = {u[2] for u in seg.get_source_image_uids()}
        assert src <= set(cases[(o["team"], o["dataset"], o["case_id"])]["sop_instance_uids"])
    kinds_seen = set()
    for o in srs:
        sr = hd.sr.srread(_path(out, o))
        group = hd.sr.MeasurementReport.from_sequence(sr.content).get_image_measurement_groups()[0]
        case = cases[(o["team"], o["dataset"], o["case_id"])]
        if group.get_measurements():
            kinds_seen.add("measurement")
            assert "measurement" in case["annotation_kinds"]
        if group.get_qualitative_evaluations():
            kinds_seen.add("label")
            assert "label" in case["annotation_kinds"]
        text = [i.TextValue for i in sr.ContentSequence if i.ValueType == "TEXT"]
        assert text and any(case["patient_id"] in t for t in text)
    assert kinds_seen == {"measurement", "label"}


def test_non_dicom_annotations_point_at_case_images(demo):
    out, _, truth, _ = demo
    cases = _cases(truth)
    by_batch = defaultdict(list)
    for c in truth["cases"]:
        by_batch[(c["team"], c["dataset"], c["batch"])].append(c)
    kinds = set()
    for o in truth["objects"]:
        p = _path(out, o)
        if o["kind"] == "aim":
            text = p.read_text(encoding="utf-8")
            assert "<ImageAnnotationCollection" in text and "gme://caCORE.caCORE/4.4/edu.northwestern.radiology.AIM" in text
            case = cases[(o["team"], o["dataset"], o["case_id"])]
            uids = re.findall(r'<sopInstanceUid root="([0-9.]+)"', text)
            assert uids and set(uids) <= set(case["sop_instance_uids"])
            assert f'<id value="{case["patient_id"]}"/>' in text
            assert ("TwoDimensionPolyline" in text) == ("contour" in case["annotation_kinds"]) or o["dataset"] == "lung-ct"
            kinds.add("aim")
        elif o["kind"] == "mask_image":
            uid = p.name.split("__")[0]
            case = cases[(o["team"], o["dataset"], o["case_id"])]
            if p.name.endswith(".png"):
                from PIL import Image
                assert uid in case["sop_instance_uids"]
                img = np.asarray(Image.open(p))
                ref = next(x for x in truth["objects"] if x["sop_instance_uid"] == uid)
                ds = pydicom.dcmread(_path(out, ref), stop_before_pixels=True)
                assert img.shape == (ds.Rows, ds.Columns) and img.max() == 255
            else:
                import SimpleITK as sitk
                assert uid in case["series_instance_uids"]
                img = sitk.ReadImage(str(p))
                assert img.GetSize()[2] == sum(1 for x in truth["objects"] if x["sop_instance_uid"] in case["sop_instance_uids"]
                                               and x["kind"] == "dicom_image")
            kinds.add(p.name.rsplit(".", 2)[-2] if p.name.endswith(".nii.gz") else "png")
        elif o["kind"] == "label_sheet":
            if p.suffix == ".csv":
                rows = list(csv.DictReader(io.StringIO(p.read_bytes().decode("utf-8-sig"))))
            else:
                import openpyxl
                ws = openpyxl.load_workbook(p).active
                vals = list(ws.values)
                rows = [dict(zip(vals[0], r)) for r in vals[1:]]
            assert rows and {"label", "value"} <= set(rows[0])
            target = next(c for c in ("case_id", "study_instance_uid", "sop_instance_uid") if c in rows[0])
            bcases = by_batch[(o["team"], o["dataset"], o["batch"])]
            field = {"case_id": "case_id", "study_instance_uid": "study_instance_uids",
                     "sop_instance_uid": "sop_instance_uids"}[target]
            allowed = set()
            for c in bcases:
                allowed |= set(c[field]) if isinstance(c[field], list) else {c[field]}
            assert {str(r[target]) for r in rows} <= allowed
            kinds.add("sheet_" + p.suffix)
    assert {"aim", "png", "sheet_.csv", "sheet_.xlsx"} <= kinds


# ------------------------------------------------------------------------------------------ statuses
def test_each_dataset_covers_its_statuses_and_kinds_match(demo, registry):
    _, report, truth, _ = demo
    by_ds = defaultdict(set)
    for c in truth["cases"]:
        ds = registry.dataset(c["dataset"])
        by_ds[c["dataset"]].add(c["expected_status"])
        req, have = set(ds.required_annotation_kinds), set(c["annotation_kinds"])
        if c["expected_status"] == "image_only":
            assert have == set() and c["annotation_files"] == 0
        elif c["expected_status"] == "full":
            assert req <= have and c["annotation_files"] >= 1
        else:
            assert have and c["annotation_files"] >= 1
            assert ds.label_source == "ehr_code" or (have & req and not req <= have)
    for ds in registry.datasets:
        assert by_ds[ds.id] == set(possible_statuses(ds)), ds.id
    assert by_ds["lung-pathology"] == {"image_only"} and by_ds["lung-xray"] == {"image_only", "partial"}


def test_status_counts_are_exact_and_impossible_ones_refused(tmp_path, registry):
    counts = {"brain-mets-mri": {"shared": {"image_only": 1, "partial": 2, "full": 3},
                                 "partially_not_shared": {"full": 2}},
              "lung-xray": {"shared": {"partial": 3}}}
    rep = generate(tmp_path / "x", registry, SynthSpec(status_counts=counts, tiny=True, seed=1))
    truth = load_truth(rep.truth_path)
    got = defaultdict(int)
    for c in truth["cases"]:
        got[(c["dataset"], c["part"], c["expected_status"])] += 1
        assert (c["shareable"] == "no") == (c["part"] == "partially_not_shared")
    assert dict(got) == {("brain-mets-mri", "shared", "image_only"): 1, ("brain-mets-mri", "shared", "partial"): 2,
                         ("brain-mets-mri", "shared", "full"): 3,
                         ("brain-mets-mri", "partially_not_shared", "full"): 2,
                         ("lung-xray", "shared", "partial"): 3}
    with pytest.raises(ValueError, match="cannot have full"):
        generate(tmp_path / "y", registry, SynthSpec(status_counts={"lung-xray": {"shared": {"full": 1}}}))
    with pytest.raises(ValueError, match="no partially_not_shared part"):
        generate(tmp_path / "z", registry, SynthSpec(status_counts={"ccta": {"partially_not_shared": {"full": 1}}}))


# ------------------------------------------------------------------------------------------ cases.csv, consent
def test_cases_csv_parses_and_matches_truth(demo):
    out, _, truth, _ = demo
    cases = _cases(truth)
    boms = 0
    for b in _batch_dirs(out):
        raw = (b / "cases.csv").read_bytes()
        boms += raw.startswith(b"\xef\xbb\xbf")
        m = parse_cases_csv(raw)
        assert m.file_problem is None and m.issues == []
        team, dataset = b.parts[-3], b.parts[-2]
        notes = {r["case_id"]: r["note"] for r in csv.DictReader(io.StringIO(raw.decode("utf-8-sig")))}
        for row in m.rows:
            c = cases[(team, dataset, row["case_id"])]
            assert c["batch"] == b.name
            assert row["patient_id"] == c["patient_id"]
            assert row["study_instance_uids"] == c["study_instance_uids"]
            assert row["shareable"] == (c["shareable"] == "yes")
            assert row["consent_class"] == c["consent_class"] and row["label_source"] == c["label_source"]
            names = [i["value"] for i in truth["identifiers"] if i["patient_id"] == c["patient_id"]
                     and i["team"] == team and i["kind"] in ("name_zh", "name_text")]
            assert any(n in notes[row["case_id"]] for n in names)
    assert 0 < boms < len(_batch_dirs(out))
    assert sum(len(parse_cases_csv((b / "cases.csv").read_bytes()).rows) for b in _batch_dirs(out)) == len(truth["cases"])


def test_patients_shared_across_datasets_and_consent_files(demo):
    out, _, truth, _ = demo
    datasets_of = defaultdict(set)
    for c in truth["cases"]:
        datasets_of[(c["team"], c["patient_id"])].add(c["dataset"])
    assert any(len(v) > 1 for v in datasets_of.values())
    events = truth["consent_events"]
    assert {"notice_sent", "consented", "opted_out", "withdrawn", "deceased", "undelivered"} <= {e["event"] for e in events}
    with_record = {(e["team"], e["patient_id"]) for e in events}
    assert len(set(datasets_of) - with_record) >= 2          # a couple of patients without any record
    assert with_record <= set(datasets_of)
    class_of = {(c["team"], c["patient_id"]): c["consent_class"] for c in truth["cases"]}
    for team in ("ntu", "tvgh", "tmu"):
        files = sorted((out / team / "_consent").glob("*.csv"))
        assert files
        for f in files:
            rows = list(csv.DictReader(io.StringIO(f.read_text(encoding="utf-8"))))
            assert list(rows[0]) == ["patient_id", "consent_class", "event", "event_date", "reference"]
            for r in rows:
                assert class_of[(team, r["patient_id"])] == r["consent_class"]
                assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", r["event_date"])


# ------------------------------------------------------------------------------------------ identifiers
def _corpus(out: Path, truth) -> dict[str, bytes]:
    """Per team: file headers, text files, unzipped xlsx, WSI descriptions, and every path."""
    parts = defaultdict(list)
    for o in truth["objects"]:
        p = _path(out, o)
        parts[o["team"]].append(o["path"].encode())
        if o["kind"] == "label_sheet" and p.suffix == ".xlsx":
            with zipfile.ZipFile(p) as z:
                parts[o["team"]] += [z.read(n) for n in z.namelist()]
        elif o["kind"] == "wsi":
            with tifffile.TiffFile(p) as t:
                parts[o["team"]] += [(pg.description or "").encode() for pg in t.pages]
        elif o["kind"] != "mask_image":
            parts[o["team"]].append(p.read_bytes()[:65536])
    for b in _batch_dirs(out):
        parts[b.parts[-3]].append((b / "cases.csv").read_bytes())
    return {t: b"\x00".join(v) for t, v in parts.items()}


def test_every_identifier_recorded_occurs_in_the_export(demo):
    out, report, truth, _ = demo
    corpus = _corpus(out, truth)
    ids = truth["identifiers"]
    assert report.identifiers == len(ids)
    kinds = {i["kind"] for i in ids}
    assert {"name_zh", "name_dicom", "name_pn_ideographic", "name_text", "name_file", "national_id", "chart_no",
            "birth_date", "birth_date_iso", "address", "phone", "physician", "operator", "institution",
            "station_name", "device_serial", "accession_number"} <= kinds
    for i in ids:
        assert len(i["value"]) >= 3 and i["places"]
        if set(i["places"]) <= {"pixels", "wsi:label"}:
            continue
        assert i["value"].encode("utf-8") in corpus[i["team"]], i
    for i in ids:
        if i["kind"] == "national_id":
            assert national_id_valid(i["value"])
        if i["kind"] == "chart_no":
            assert len(i["value"]) >= 7


def test_identifiers_sit_in_private_blocks_nested_sequences_and_names(demo):
    out, _, truth, _ = demo
    nid = next(i for i in truth["identifiers"] if i["kind"] == "national_id")
    obj = next(o for o in truth["objects"] if o["kind"] == "dicom_image" and o["team"] == nid["team"]
               and any(c["patient_id"] == nid["patient_id"] and o["sop_instance_uid"] in c["sop_instance_uids"]
                       for c in truth["cases"]))
    ds = pydicom.dcmread(_path(out, obj))
    block = ds.private_block(0x0029, "TWHIS PATIENT INFO 1.0")
    inner = block[0x12].value[0].private_block(0x0029, "TWHIS PATIENT INFO 1.0")
    assert inner[0x13].value == nid["value"]
    assert ds.OtherPatientIDsSequence[0].PatientID == nid["value"]
    assert ds.OriginalAttributesSequence[0].ModifiedAttributesSequence[0].PatientID == nid["value"]
    assert block[0x11].value == ds.PatientID == nid["patient_id"]
    named_paths = [i for i in truth["identifiers"] if i["kind"] == "name_file" and "path" in i["places"]]
    assert named_paths
    for i in named_paths[:5]:
        assert any(i["value"] in o["path"] for o in truth["objects"] if o["team"] == i["team"])
    gsps_text = [i for i in truth["identifiers"] if "presentation_state:UnformattedTextValue" in i["places"]]
    aim_person = [i for i in truth["identifiers"] if "aim:person" in i["places"]]
    sheet_cols = [i for i in truth["identifiers"] if any(p.startswith("label_sheet:patient") for p in i["places"])]
    assert gsps_text and aim_person and sheet_cols


def test_burned_in_pixels_differ_from_blank_content(demo):
    out, _, truth, _ = demo
    burned = {True: 0, False: 0}
    for o in truth["objects"]:
        if o["kind"] != "dicom_image" or o["dataset"] not in ("chest-xray", "lung-xray", "spine-xray-as",
                                                               "hand-foot-xray-ra", "fundus-glaucoma", "fundus-pcv"):
            continue
        ds = pydicom.dcmread(_path(out, o))
        px = ds.pixel_array
        has_text = bool(((px == TEXT_RGB).all(-1)).any()) if ds.SamplesPerPixel == 3 else bool((px == TEXT_VALUE_12BIT).any())
        assert has_text == o["burned_in_text"] == (ds.BurnedInAnnotation == "YES")
        burned[o["burned_in_text"]] += 1
    assert burned[True] and burned[False]


def test_wsi_has_pyramid_label_and_macro(demo):
    out, _, truth, _ = demo
    wsis = [o for o in truth["objects"] if o["kind"] == "wsi"]
    assert len(wsis) == 4 and any(o["path"].endswith(".ndpi") for o in wsis)
    for o in wsis:
        with tifffile.TiffFile(_path(out, o)) as t:
            descs = [(pg.description or "").splitlines()[-1].split(" ")[0] for pg in t.pages]
            assert descs[-2:] == ["label", "macro"]
            assert t.pages[0].is_tiled and len(t.pages) >= 5
            assert f"StudyInstanceUID = {_cases(truth)[(o['team'], o['dataset'], o['case_id'])]['study_instance_uids'][0]}" \
                in t.pages[0].description
            label = t.pages[-2].asarray()
            assert (label == 0).all(-1).any() and (label == 255).all(-1).any()   # dark text on a white label


# ------------------------------------------------------------------------------------------ tiny, scale, phantom
def test_tiny_mode_is_8x8_with_one_image_object_per_case(tmp_path, registry):
    rep = generate(tmp_path, registry, SynthSpec(cases=3, tiny=True, seed=5))
    truth = load_truth(rep.truth_path)
    assert rep.cases == 75
    per_case = defaultdict(int)
    for o in truth["objects"]:
        if o["kind"] in ("dicom_image", "dicom_waveform", "wsi"):
            per_case[(o["team"], o["dataset"], o["case_id"])] += 1
            p = _path(tmp_path, o)
            if o["kind"] == "dicom_image":
                ds = pydicom.dcmread(p, stop_before_pixels=True)
                assert (ds.Rows, ds.Columns) == (8, 8)
            elif o["kind"] == "wsi":
                with tifffile.TiffFile(p) as t:
                    assert t.pages[0].shape[:2] == (8, 8)
    assert set(per_case.values()) == {1} and len(per_case) == 75
    assert all(c["image_files"] == 1 for c in truth["cases"])


def test_scale_smoke_2000_tiny_cases(tmp_path, registry):
    t0 = time.perf_counter()
    rep = generate(tmp_path, registry, SynthSpec(cases=80, tiny=True, batches=3, seed=9))
    dt = time.perf_counter() - t0
    print(f"\nscale: {rep.cases} tiny cases, {rep.files} files in {dt:.1f} s = {rep.cases / dt * 60:,.0f} cases/min")
    assert rep.cases == 2000 and rep.batches == 75
    assert len(list(tmp_path.glob("*/*/*/_READY"))) == 75


def test_head_phantom_has_a_face_in_front_of_the_skin():
    vol = head_phantom((176, 256, 256), (1.0, 1.0, 1.0))
    assert vol.shape == (176, 256, 256)
    tissue = vol > -500
    front = [int(np.argmax(tissue[z].any(axis=1))) if tissue[z].any() else 256 for z in range(176)]
    nose_level = min(range(30, 100), key=lambda z: front[z])       # most anterior point in the lower head
    assert front[nose_level] < front[150] - 10                       # the nose sticks out beyond the crown
    mid = vol[nose_level, :, 128]
    assert (mid[: front[nose_level]] == -1000).all() and (vol == 1000).any()


def test_synth_does_not_import_dagster():
    for f in (ROOT / "medlake" / "synth").glob("*.py"):
        assert "dagster" not in f.read_text(encoding="utf-8"), f
