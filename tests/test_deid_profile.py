"""The PS3.15 profile engine and the fast file path, on real pydicom objects."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian, RTStructureSetStorage

from medlake.deid import (DEFAULT_OPTIONS, Action, DeidContext, DeidError, DeidKeys, Option,
                          SafePrivateTag, deidentify, deidentify_file, load_table)
from medlake.deid.values import shift_da, shift_dt
from medlake.dicom.header import parse_header

KEYS = DeidKeys(b"medlake-test-secret-0123456789ab")
TEAM, PID, NAME, BIRTH = "teamA", "MRN-7731904", "LIN^MEI-HUA", "19581212"
ROOT = "1.2.826.0.1.3680043.8.498.4242."


def ctx(**kw) -> DeidContext:
    return DeidContext(TEAM, PID, KEYS, **kw)


# --- the table, row by row ------------------------------------------------------------------

_VALUES = {
    "AE": "STATION1", "AS": "045Y", "CS": "ABC", "DA": "20190401", "DS": "1.5",
    "DT": "20190401120000", "FL": 1.5, "FD": 1.5, "IS": "3", "LO": "CHEST LIN 12345678",
    "LT": "report for LIN", "PN": "DOE^JOHN", "SH": "HEAD LIN 1234", "SL": 1, "SS": 1,
    "ST": "text LIN", "TM": "120000", "UI": ROOT + "77", "UL": 1, "UN": b"ab", "US": 1,
    "UT": "text LIN 2019-04-01", "OB": b"\x01\x02", "OW": b"\x01\x02", "OF": b"\x00\x00\x80\x3f",
    "OL": b"\x01\x00\x00\x00", "OD": b"\x00" * 8, "OV": b"\x00" * 8, "AT": 0x00100010,
    "UC": "LIN", "UR": "http://example.org/x", "SV": 1, "UV": 1,
}


def _one_element_dataset(tag: int, vr: str):
    ds = Dataset()
    if tag != 0x00100010:
        ds.PatientName = NAME  # the identifier Clean Descriptors must scrub from text
    if vr == "SQ":
        item = Dataset()
        item.CodeValue = "X1"
        item.CodingSchemeDesignator = "99TEST"
        value = Sequence([item])
    else:
        value = _VALUES[vr]
    ds.add(DataElement(tag, vr, value))
    return ds, value


def _assert_outcome(tag: int, vr: str, action: Action, ds: Dataset, orig, c: DeidContext) -> str:
    shift = c.shift_days
    if tag in (0x00100010, 0x00100020):
        assert str(ds[tag].value) == c.pseudonym
        return "pseudonym"
    if tag == 0x00100030:
        assert ds[tag].value in ("", None)
        return "emptied"
    if tag == 0x00080050:
        assert ds[tag].value == KEYS.accession(TEAM, orig)
        return "keyed"
    if action is Action.X:
        assert tag not in ds
        return "removed"
    if vr == "SQ":
        assert tag in ds
        if action is Action.Z:
            assert len(ds[tag].value) == 0
            return "emptied"
        assert len(ds[tag].value) == 1 and ds[tag].value[0].CodeValue == "X1"
        return "walked"
    if vr == "UI":
        if action is Action.Z:
            assert ds[tag].value in ("", None)
            return "emptied"
        assert ds[tag].value == KEYS.uid(orig)
        return "remapped"
    if vr in ("DA", "DT"):
        if action is Action.K:
            assert ds[tag].value == orig
            return "kept"
        if action is Action.Z:
            assert ds[tag].value in ("", None)
            return "emptied"
        want = shift_da(orig, shift) if vr == "DA" else shift_dt(orig, shift)
        assert ds[tag].value == want and want != orig
        return "shifted"
    if action is Action.Z:
        assert ds[tag].value in ("", None, b"")
        return "emptied"
    if action is Action.D:
        v = ds[tag].value
        assert v not in ("", None, b"") and v != orig
        return "dummy"
    if action is Action.K:
        assert ds[tag].value == orig
        return "kept"
    if action is Action.C:
        if vr == "TM":
            assert ds[tag].value == orig  # whole-day shifts leave the time of day
            return "kept"
        if vr == "AS":
            assert ds[tag].value == orig  # 045Y is below the grouping age
            return "kept"
        if vr in ("LO", "SH", "CS", "UC", "LT", "ST", "UT", "PN"):
            v = str(ds[tag].value or "")
            assert "LIN" not in v and "12345678" not in v and "2019" not in v
            return "cleaned"
        assert tag not in ds
        return "removed"
    if action is Action.U:
        assert tag not in ds
        return "removed"
    raise AssertionError(f"unexpected action {action}")


def test_every_table_row_with_a_known_tag_gets_its_resolved_action():
    table = load_table()
    c = ctx()
    outcomes: dict[str, int] = {}
    exercised = skipped = 0
    for rule in table.rules:
        tag = rule.tag_int
        if tag is None or tag >> 16 in (0x0000, 0x0002, 0xFFFC):  # patterns, command/meta, padding
            skipped += 1
            continue
        try:
            vr = dictionary_VR(tag).split(" or ")[0]
        except KeyError:  # 2026 rows pydicom 3.0.2 does not know yet
            skipped += 1
            continue
        ds, orig = _one_element_dataset(tag, vr)
        deidentify(ds, c)
        action = rule.resolve(DEFAULT_OPTIONS)
        try:
            kind = _assert_outcome(tag, vr, action, ds, orig, c)
        except AssertionError as e:
            raise AssertionError(f"row {rule.tag} {rule.name} ({vr}, {rule.basic} -> {action}): {e}")
        outcomes[kind] = outcomes.get(kind, 0) + 1
        exercised += 1
    print(f"\nPS3.15 rows exercised: {exercised} of {len(table)} (skipped {skipped}); {outcomes}")
    assert len(table) == 656
    assert exercised >= 620
    assert {"removed", "emptied", "dummy", "remapped", "kept", "shifted", "cleaned"} <= set(outcomes)


def test_compound_actions_resolve_as_documented():
    table = load_table()
    rules = {r.tag: r for r in table.rules}
    basic = frozenset()
    assert rules["00080022"].resolve(basic) is Action.Z          # Acquisition Date X/Z
    assert rules["00080023"].resolve(basic) is Action.D          # Content Date Z/D
    assert rules["00180010"].resolve(basic) is Action.D          # Contrast/Bolus Agent Z/D
    assert rules["00080080"].resolve(basic) is Action.D          # Institution Name X/Z/D
    assert rules["00080082"].resolve(basic) is Action.Z          # Institution Code Sequence X/Z/D
    assert rules["00081140"].resolve(basic) is Action.U          # Referenced Image Sequence X/Z/U*
    assert rules["00080022"].resolve({Option.RETAIN_LONGITUDINAL_MODIFIED_DATES}) is Action.C
    assert rules["00101010"].resolve({Option.RETAIN_PATIENT_CHARACTERISTICS}) is Action.K
    assert rules["00101010"].resolve(basic) is Action.X


def test_basic_profile_without_options_dummies_dates_and_removes_characteristics():
    ds = Dataset()
    ds.PatientName, ds.PatientID, ds.PatientAge, ds.StudyDate = NAME, PID, "045Y", "20190401"
    ds.ContentDate, ds.SeriesDescription = "20190401", "CHEST"
    deidentify(ds, ctx(options=frozenset()))
    assert ds.StudyDate == ""  # Z
    assert ds.ContentDate == "19000101"  # Z/D -> D dummy
    assert "PatientAge" not in ds and "SeriesDescription" not in ds
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"
    assert [i.CodeValue for i in ds.DeidentificationMethodCodeSequence] == ["113100"]


def test_age_over_89_is_grouped_and_method_is_recorded():
    ds = Dataset()
    ds.PatientAge, ds.PatientBirthDate = "093Y", BIRTH
    opts = DEFAULT_OPTIONS | {Option.CLEAN_PIXEL_DATA, Option.CLEAN_RECOGNIZABLE_VISUAL_FEATURES}
    report = deidentify(ds, ctx(options=opts))
    assert ds.PatientAge == "090Y" and report["age_grouped"] == 1
    assert ds.PatientBirthDate == ""  # never shifted out of the restricted zone
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    codes = [(i.CodeValue, i.CodingSchemeDesignator) for i in ds.DeidentificationMethodCodeSequence]
    assert codes == [(c, "DCM") for c in ("113100", "113101", "113102", "113103", "113104", "113105",
                                          "113107", "113108")]
    assert all(len(v) <= 64 for v in ds.DeidentificationMethod)
    assert ds.BurnedInAnnotation == "NO" and ds.RecognizableVisualFeatures == "NO"
    assert not any(isinstance(v, str) and "093" in v for v in report.as_dict()["counts"])


# --- nesting, private tags, robustness -------------------------------------------------------

def _nest(levels: int, leaf: Dataset, seq_tag: int = 0x0040A730) -> Dataset:
    """`levels` sequences (Content Sequence by default) around `leaf`."""
    inner = leaf
    for _ in range(levels):
        outer = Dataset()
        outer.add(DataElement(seq_tag, "SQ", Sequence([inner])))
        inner = outer
    return inner


def _leaf() -> Dataset:
    leaf = Dataset()
    leaf.PatientName = NAME
    leaf.PersonName = "DOE^JOHN"
    leaf.PatientID = "OTHER-999"
    leaf.ObservationDateTime = "20190401101500"
    leaf.ReferencedSOPInstanceUID = ROOT + "5"
    return leaf


def test_names_five_levels_deep_are_cleaned_and_private_tags_go():
    ds = _nest(5, _leaf())
    ds.PatientName, ds.PatientID = NAME, PID
    # a private block whose sequence holds a name five levels deep
    block = ds.private_block(0x0009, "ACME PRIVATE", create=True)
    block.add_new(0x10, "SQ", Sequence([_nest(4, _leaf(), 0x0040A730)]))
    block.add_new(0x11, "LO", "LIN MEI-HUA")
    block.add_new(0x12, "DS", "3.5")  # on the allow-list below
    # an element of a block without its creator
    ds.add(DataElement(0x00111010, "LO", "LIN orphan"))
    c = ctx(safe_private=(SafePrivateTag(0x0009, "ACME PRIVATE", 0x12, "slice spacing"),))
    report = deidentify(ds, c)

    leaf = ds
    for _ in range(5):
        leaf = leaf.ContentSequence[0]
    assert str(leaf.PatientName) == c.pseudonym  # the same patient, nested
    assert leaf.PatientID == "DEIDENTIFIED"  # another patient's id: Z/D -> dummy
    assert str(leaf.PersonName) == "DEIDENTIFIED"  # D
    assert leaf.ObservationDateTime == shift_dt("20190401101500", c.shift_days)
    assert leaf.ReferencedSOPInstanceUID == KEYS.uid(ROOT + "5")
    assert report.max_depth == 5
    private = [e.tag for e in ds.iterall() if e.tag.is_private]
    assert sorted(private) == [0x00090010, 0x00091012]  # allow-listed element + its creator
    assert ds[0x00091012].value == "3.5"
    raw = _bytes(ds)
    assert b"LIN" not in raw and b"DOE" not in raw and b"OTHER-999" not in raw and PID.encode() not in raw


def test_without_allow_list_every_private_element_goes():
    ds = Dataset()
    block = ds.private_block(0x0029, "SIEMENS CSA HEADER", create=True)
    block.add_new(0x10, "OB", b"\x00" * 8)
    ds.PatientName = NAME
    report = deidentify(ds, ctx())
    assert not any(e.tag.is_private for e in ds.iterall())
    assert report["private_removed"] == 2


def test_deep_nesting_and_self_referencing_sr_do_not_loop():
    leaf = Dataset()
    leaf.ValueType = "TEXT"
    leaf.TextValue = f"seen by {NAME}"
    sr = _nest(12, leaf)
    sr.SOPInstanceUID = ROOT + "900"
    ref = Dataset()
    ref.ReferencedSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.33"
    ref.ReferencedSOPInstanceUID = ROOT + "900"  # the SR references itself
    sr.ContentSequence[0].ReferencedSOPSequence = Sequence([ref])
    report = deidentify(sr, ctx())
    assert report.max_depth == 12
    item = sr.ContentSequence[0].ReferencedSOPSequence[0]
    assert item.ReferencedSOPInstanceUID == sr.SOPInstanceUID == KEYS.uid(ROOT + "900")
    assert item.ReferencedSOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"  # well-known: kept
    deep = sr
    for _ in range(12):
        deep = deep.ContentSequence[0]
    assert deep.TextValue == ""

    too_deep = _nest(80, Dataset())
    with pytest.raises(DeidError) as e:
        deidentify(too_deep, ctx())
    assert e.value.code == "too_deep"


def test_wrong_vr_bad_length_and_missing_creator_do_not_crash():
    ds = _ct(1)[0]
    del ds.PixelData
    ds.set_original_encoding(False, True, "iso8859")  # as if read from a file: raw bytes written back
    # PatientName stored with VR US, a US element of 3 bytes, a date that is no date
    ds._dict[Tag(0x00100010)] = RawDataElement(Tag(0x00100010), "US", 4, b"LIN ", 0, False, True)
    ds._dict[Tag(0x00280010)] = RawDataElement(Tag(0x00280010), "US", 3, b"\x01\x02\x03", 0, False, True)
    ds._dict[Tag(0x00080020)] = RawDataElement(Tag(0x00080020), "DA", 8, b"LIN 1958", 0, False, True)
    ds._dict[Tag(0x00091010)] = RawDataElement(Tag(0x00091010), "LO", 4, b"LIN ", 0, False, True)
    ds._dict[Tag(0x00180015)] = RawDataElement(Tag(0x00180015), "CS", 5, b"CHEST", 0, False, True)
    report = deidentify(ds, ctx())
    assert 0x00091010 not in ds._dict
    assert ds._dict[0x00080020].value == b"19000101"  # unparseable date: dummy, never kept
    assert b"LIN" not in _bytes(ds)
    assert report["pseudonym"] >= 1


def test_errors_never_carry_identifier_values(tmp_path):
    ds = _ct(1)[0]
    src = _save(ds, tmp_path / "a.dcm")
    with pytest.raises(DeidError) as e:
        deidentify_file(src, tmp_path / "out.dcm", ctx(), pixel_data_offset=12)
    assert e.value.code == "pixel_offset_mismatch"
    text = str(e.value)
    assert PID not in text and "LIN" not in text and ROOT not in text
    with pytest.raises(DeidError) as e:
        deidentify_file(b"\x00" * 132 + b"nonsense", tmp_path / "out.dcm", ctx(), None)
    assert e.value.code in ("unreadable", "not_part10")
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


# --- RTSTRUCT references ---------------------------------------------------------------------

def _ct(n: int, implicit: bool = False) -> list[Dataset]:
    out = []
    for i in range(n):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ROOT + f"3.{i + 1}"
        ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, ROOT + f"3.{i + 1}"
        ds.StudyInstanceUID, ds.SeriesInstanceUID = ROOT + "1", ROOT + "2"
        ds.FrameOfReferenceUID = ROOT + "4"
        ds.PatientName, ds.PatientID, ds.PatientBirthDate = NAME, PID, BIRTH
        ds.PatientAge, ds.PatientSex = "061Y", "F"
        ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20190401"
        ds.StudyTime = "101500"
        ds.AccessionNumber = "ACC99173"
        ds.InstitutionName = "Mercy General Hospital"
        ds.ReferringPhysicianName = "HOUSE^GREGORY"
        ds.StudyDescription = "CT CHEST LIN 20190401"
        ds.SeriesDescription = "AXIAL 1.25mm"
        ds.Modality, ds.InstanceNumber = "CT", i + 1
        ds.Rows = ds.Columns = 16
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.PixelData = (np.arange(256, dtype=np.int16) * (i + 1)).reshape(16, 16).tobytes()
        out.append(ds)
    return out


def _rtstruct(cts: list[Dataset]) -> Dataset:
    rs = Dataset()
    rs.file_meta = FileMetaDataset()
    rs.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    rs.file_meta.MediaStorageSOPClassUID = RTStructureSetStorage
    rs.file_meta.MediaStorageSOPInstanceUID = ROOT + "8.1"
    rs.SOPClassUID, rs.SOPInstanceUID = RTStructureSetStorage, ROOT + "8.1"
    rs.StudyInstanceUID, rs.SeriesInstanceUID = ROOT + "1", ROOT + "8"
    rs.PatientName, rs.PatientID, rs.PatientBirthDate, rs.Modality = NAME, PID, BIRTH, "RTSTRUCT"
    rs.StructureSetLabel, rs.StructureSetDate = "LIN plan", "20190402"
    images = []
    for ct in cts:
        img = Dataset()
        img.ReferencedSOPClassUID, img.ReferencedSOPInstanceUID = CTImageStorage, ct.SOPInstanceUID
        images.append(img)
    series = Dataset()
    series.SeriesInstanceUID = ROOT + "2"
    series.ContourImageSequence = Sequence(images)
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = ROOT + "1"
    study.RTReferencedSeriesSequence = Sequence([series])
    frame = Dataset()
    frame.FrameOfReferenceUID = ROOT + "4"
    frame.RTReferencedStudySequence = Sequence([study])
    rs.ReferencedFrameOfReferenceSequence = Sequence([frame])
    roi = Dataset()
    roi.ROINumber, roi.ReferencedFrameOfReferenceUID, roi.ROIName = 1, ROOT + "4", "GTV"
    roi.ROIGenerationAlgorithm = "MANUAL"
    rs.StructureSetROISequence = Sequence([roi])
    contours = []
    for ct in cts:
        ci = Dataset()
        ci.ReferencedSOPClassUID, ci.ReferencedSOPInstanceUID = CTImageStorage, ct.SOPInstanceUID
        contour = Dataset()
        contour.ContourImageSequence = Sequence([ci])
        contour.ContourGeometricType, contour.NumberOfContourPoints = "CLOSED_PLANAR", 1
        contour.ContourData = [0.0, 0.0, 0.0]
        contours.append(contour)
    rc = Dataset()
    rc.ReferencedROINumber, rc.ContourSequence = 1, Sequence(contours)
    rs.ROIContourSequence = Sequence([rc])
    return rs


def _save(ds: Dataset, path: Path) -> Path:
    ds.save_as(path, enforce_file_format=True)
    return path


def _bytes(ds: Dataset) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, implicit_vr=False, little_endian=True)
    return buf.getvalue()


def test_rtstruct_references_resolve_to_deidentified_ct(tmp_path):
    cts = _ct(3)
    srcs = [_save(ct, tmp_path / f"ct{i}.dcm") for i, ct in enumerate(cts)]
    rs_src = _save(_rtstruct(cts), tmp_path / "rs.dcm")
    out = tmp_path / "out"
    out.mkdir()
    for i, src in enumerate(srcs):
        header = parse_header(src.read_bytes())
        report = deidentify_file(src, out / f"ct{i}.dcm", ctx(), header.pixel_data_offset)
        assert report.fast_path
    assert deidentify_file(rs_src, out / "rs.dcm", ctx(), None).fast_path is False

    new_cts = [pydicom.dcmread(out / f"ct{i}.dcm") for i in range(3)]
    rs = pydicom.dcmread(out / "rs.dcm")
    ct_uids = {c.SOPInstanceUID for c in new_cts}
    assert len(ct_uids) == 3 and not any(u.startswith(ROOT) for u in ct_uids)
    refs = [e.value for e in rs.iterall() if e.tag == 0x00081155]
    image_refs = [r for r in refs if r != rs.StudyInstanceUID]
    assert len(image_refs) == 6  # 3 contour images in the frame-of-reference tree + 3 contours
    assert all(r in ct_uids for r in image_refs)  # 100% resolve
    frame = rs.ReferencedFrameOfReferenceSequence[0]
    assert frame.FrameOfReferenceUID == new_cts[0].FrameOfReferenceUID
    study = frame.RTReferencedStudySequence[0]
    assert study.ReferencedSOPInstanceUID == new_cts[0].StudyInstanceUID == rs.StudyInstanceUID
    assert study.RTReferencedSeriesSequence[0].SeriesInstanceUID == new_cts[0].SeriesInstanceUID
    assert rs.StructureSetROISequence[0].ReferencedFrameOfReferenceUID == new_cts[0].FrameOfReferenceUID
    assert rs.StructureSetROISequence[0].ROIName == "GTV"  # Clean Descriptors keeps a clean name
    assert rs.StructureSetLabel == "plan"  # ... and scrubs the patient's name out of a label
    assert rs.file_meta.MediaStorageSOPInstanceUID == rs.SOPInstanceUID == KEYS.uid(ROOT + "8.1")
    assert study.ReferencedSOPClassUID == "1.2.840.10008.3.1.2.3.1"  # well-known class kept
    assert rs.StructureSetDate == shift_da("20190402", ctx().shift_days)


# --- the fast file path ----------------------------------------------------------------------

@pytest.mark.parametrize("implicit", [False, True])
def test_fast_path_output_reads_back_identical_pixels_no_identifiers(tmp_path, implicit):
    ct = _ct(1, implicit=implicit)[0]
    src = _save(ct, tmp_path / "src.dcm")
    data = src.read_bytes()
    header = parse_header(data)
    dst = tmp_path / "dst.dcm"
    report = deidentify_file(src, dst, ctx(), header.pixel_data_offset)
    assert report.fast_path is True
    out = pydicom.dcmread(dst)
    original = pydicom.dcmread(src)
    assert np.array_equal(out.pixel_array, original.pixel_array)
    assert out.file_meta.TransferSyntaxUID == original.file_meta.TransferSyntaxUID
    assert out.file_meta.ImplementationClassUID.startswith("2.25.")
    assert out.file_meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID
    raw = dst.read_bytes()
    for needle in (b"LIN", b"MEI-HUA", PID.encode(), BIRTH.encode(), b"ACC99173", b"Mercy",
                   b"HOUSE", ROOT.encode(), b"20190401"):
        assert needle not in raw, needle
    assert out.StudyDescription == "CT CHEST"
    assert out.PatientAge == "061Y" and out.PatientSex == "F"
    # bytes in, same answer
    dst2 = tmp_path / "dst2.dcm"
    deidentify_file(data, dst2, ctx(), header.pixel_data_offset)
    assert dst2.read_bytes() == raw


def test_trailing_padding_is_dropped_and_trailing_elements_go_through_pydicom(tmp_path):
    ct = _ct(1)[0]
    ct.add(DataElement(0xFFFCFFFC, "OB", b"LIN " * 4))
    src = _save(ct, tmp_path / "pad.dcm")
    header = parse_header(src.read_bytes())
    report = deidentify_file(src, tmp_path / "pad-out.dcm", ctx(), header.pixel_data_offset)
    assert report.fast_path is True
    assert b"LIN" not in (tmp_path / "pad-out.dcm").read_bytes()

    ct = _ct(1)[0]
    block = ct.private_block(0x7FE1, "ACME AFTER PIXELS", create=True)
    block.add_new(0x10, "LO", "LIN MEI-HUA")
    src = _save(ct, tmp_path / "after.dcm")
    header = parse_header(src.read_bytes())
    report = deidentify_file(src, tmp_path / "after-out.dcm", ctx(), header.pixel_data_offset)
    assert report.fast_path is False and report["private_removed"] == 2
    out = pydicom.dcmread(tmp_path / "after-out.dcm")
    assert np.array_equal(out.pixel_array, ct.pixel_array)
    assert b"LIN" not in (tmp_path / "after-out.dcm").read_bytes()


def test_changed_pixels_are_written_in_place_of_the_original(tmp_path):
    ct = _ct(1)[0]
    src = _save(ct, tmp_path / "src.dcm")
    header = parse_header(src.read_bytes())
    new = np.zeros((16, 16), dtype=np.int16)
    new[4:8, 4:8] = 7
    c = ctx(options=DEFAULT_OPTIONS | {Option.CLEAN_PIXEL_DATA})
    report = deidentify_file(src, tmp_path / "out.dcm", c, header.pixel_data_offset, new.tobytes())
    assert report.fast_path is True
    out = pydicom.dcmread(tmp_path / "out.dcm")
    assert np.array_equal(out.pixel_array, new)
    assert out.BurnedInAnnotation == "NO"
    assert "113101" in [i.CodeValue for i in out.DeidentificationMethodCodeSequence]
