"""Identifiers outside DICOM: AIM person/user elements, label-sheet columns, mask names and metadata."""

import gzip
import io

import openpyxl
import pytest
import SimpleITK as sitk

from medlake.annotations import read_annotation
from medlake.deid.aim import deidentify_aim
from medlake.deid.errors import DeidError
from medlake.deid.masks import clean_nifti_gz, clean_png, mask_name
from medlake.deid.sheets import deidentify_sheet
from medlake.formula_cells import neutralise_cell, restore_cell

AIM = b"""<?xml version="1.0" encoding="UTF-8"?>
<ImageAnnotationCollection xmlns="gme://caCORE.caCORE/4.4/edu.northwestern.radiology.AIM" aimVersion="AIMv4_0">
<uniqueIdentifier root="2.25.1111"/>
<dateTime value="20180226163000"/>
<user><name value="HUANG^HUA-CHIH"/><loginName value="huang01"/><roleInTrial value="Performing"/></user>
<person><name value="CHUANG^KUAN-JUNG"/><id value="52582605"/><birthDate value="1946-02-28T00:00:00"/></person>
<imageAnnotations><ImageAnnotation><uniqueIdentifier root="2.25.2222"/>
<comment value="seen for Mr CHUANG 52582605"/>
<imageReferenceEntityCollection><ImageReferenceEntity><imageStudy><instanceUid root="1.2.3.4"/>
<imageSeries><instanceUid root="1.2.3.4.5"/><imageCollection><Image><sopClassUid root="1.2.840.10008.5.1.4.1.1.2"/>
<sopInstanceUid root="1.2.3.4.5.6"/></Image></imageCollection></imageSeries></imageStudy></ImageReferenceEntity>
</imageReferenceEntityCollection></ImageAnnotation></imageAnnotations></ImageAnnotationCollection>"""


def _uid(u: str) -> str:
    return "2.25.9" + str(abs(hash(u)) % 10**20)


def test_aim_loses_person_user_identity_and_comments_and_keeps_references():
    r = deidentify_aim(AIM, _uid, -100)
    text = r.data.decode("utf-8")
    for value in ("CHUANG", "52582605", "1946-02-28", "HUANG", "huang01", "1.2.3.4.5.6\""):
        assert value not in text
    assert "roleInTrial" in text and "20171118163000" in text
    assert _uid("1.2.3.4.5.6") in r.referenced_uids
    assert r.actions["person_removed"] == 1 and r.actions["user_identity_removed"] == 2


def test_malformed_aim_and_entity_bombs_are_refused():
    with pytest.raises(DeidError) as e:
        deidentify_aim(b"<ImageAnnotationCollection><unclosed>", _uid, 0)
    assert e.value.code == "aim_malformed"
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;">]><ImageAnnotationCollection>&b;</ImageAnnotationCollection>'
    with pytest.raises(DeidError):
        deidentify_aim(bomb, _uid, 0)


def _sheet_kwargs():
    return dict(target=lambda col, v: f"T-{len(v)}", reader=lambda v: "R-1",
                shift_days_for=lambda col, v: -10)


def test_csv_sheet_drops_identifier_columns_and_maps_targets():
    csv = ("\ufeffcase_id,patient_id,patient_name,label,value,region,reader,read_date,remarks\n"
           "LX-0001,40043495,王小明,icd10,J18.9,,WANG^LING-SHU,2018-03-19,call 0912-345-678\n").encode()
    r = deidentify_sheet(csv, ".csv", **_sheet_kwargs())
    text = r.data.decode()
    assert text.splitlines()[0] == "case_id,label,value,region,reader,read_date"
    assert text.splitlines()[1] == "T-7,icd10,J18.9,,R-1,2018-03-09"
    for value in ("40043495", "王小明", "WANG", "0912", "LX-0001"):
        assert value not in text
    assert r.dropped_columns == 3


def test_xlsx_sheet_with_merged_header_or_missing_column_is_refused():
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["sop_instance_uid", "label", "value"])
    ws.append(["1.2.3", "fracture", "yes"])
    ws.merge_cells("B1:C1")
    buf = io.BytesIO()
    wb.save(buf)
    with pytest.raises(DeidError) as e:
        deidentify_sheet(buf.getvalue(), ".xlsx", **_sheet_kwargs())
    assert e.value.code == "label_sheet_merged_header"
    with pytest.raises(DeidError) as e:
        deidentify_sheet(b"case_id,label\nA,b\n", ".csv", **_sheet_kwargs())
    assert e.value.code == "label_sheet_columns"


def test_mask_names_and_metadata(tmp_path):
    name, target = mask_name("1.2.3.4__left atrium.png", _uid)
    assert name == f"{_uid('1.2.3.4')}__left_atrium.png" and target == _uid("1.2.3.4")
    from PIL import Image, PngImagePlugin
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "CHEN^YI-CHUN 0012345")
    buf = io.BytesIO()
    Image.new("L", (8, 6), 1).save(buf, format="PNG", pnginfo=info)
    clean, shape = clean_png(buf.getvalue())
    assert b"CHEN" not in clean and shape == (6, 8)
    img = sitk.Image(4, 4, 3, sitk.sitkUInt8)
    path = tmp_path / "m.nii.gz"
    writer = sitk.ImageFileWriter()
    writer.SetFileName(str(path))
    writer.Execute(img)
    raw = bytearray(gzip.decompress(path.read_bytes()))
    raw[148:168] = b"CHEN^YI-CHUN 0012345"  # descrip, where exporters put free text
    path.write_bytes(gzip.compress(bytes(raw)))
    cleaned = clean_nifti_gz(path.read_bytes())
    assert b"CHEN" not in gzip.decompress(cleaned)
    out = tmp_path / "c.nii.gz"
    out.write_bytes(cleaned)
    back = sitk.ReadImage(str(out))
    assert back.GetSize() == (4, 4, 3)


# A spreadsheet runs a cell starting with = + - @ (or tab, carriage return) as a formula (OWASP CSV
# injection). Numbers stay numbers; a cell that starts with the quote itself is quoted too, so one
# leading quote always comes off.
FORMULA_SHEET = (
    'case_id,label,value,region\n'
    'C1,"=HYPERLINK(""http://evil.example"",""click"")",1,\n'
    'C2,+cmd,-2+3,@SUM(A1)\n'
    'C3,finding,-3.5,+2\n'
    "C4,'quoted,1e-3,=1+1\n").encode()
NEUTRALISED_SHEET = (
    'case_id,label,value,region\n'
    'T-2,"\'=HYPERLINK(""http://evil.example"",""click"")",1,\n'
    "T-2,'+cmd,'-2+3,'@SUM(A1)\n"
    'T-2,finding,-3.5,+2\n'
    "T-2,''quoted,1e-3,'=1+1\n").encode()
SHEET_ROWS = [
    ("measurement", '=HYPERLINK("http://evil.example","click")', 1.0, None, None),
    ("label", "+cmd", None, "-2+3", "@SUM(A1)"),
    ("measurement", "finding", -3.5, None, "+2"),
    ("measurement", "'quoted", 0.001, None, "=1+1"),
]


def test_formula_cells_of_a_label_sheet_are_neutralised_and_numbers_kept():
    assert deidentify_sheet(FORMULA_SHEET, ".csv", **_sheet_kwargs()).data == NEUTRALISED_SHEET


def test_annotations_read_from_a_neutralised_sheet_are_the_landed_values(tmp_path):
    landed, deid = tmp_path / "landed.csv", tmp_path / "deid.csv"
    landed.write_bytes(FORMULA_SHEET)
    deid.write_bytes(NEUTRALISED_SHEET)

    def values(path):
        return [(r.kind, r.label, r.value, r.value_text, r.region) for r in read_annotation(path, "label_sheet").rows]
    assert values(deid) == SHEET_ROWS == values(landed)


def test_neutralised_cells_restore_exactly():
    cells = ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx", "'", "''x", "'=x", "-3.5", "+2", "-.5", "1e-3",
             "-1E+5", "-", "+", "-inf", "--1", "plain", "", "2019-01-01", "=", "x=1"]
    for cell in cells:
        assert restore_cell(neutralise_cell(cell)) == cell, cell
        safe = neutralise_cell(cell)
        assert not safe.startswith(("=", "+", "-", "@", "\t", "\r")) or cell in ("-3.5", "+2", "-.5", "-1E+5"), cell
    assert [neutralise_cell(c) for c in ("-3.5", "+2", "-2+3", "-inf")] == ["-3.5", "+2", "'-2+3", "'-inf"]
    # A landed sheet that was never neutralised reads as it is, quote included.
    assert restore_cell("'abc") == "'abc" and restore_cell("'-3.5") == "'-3.5"


def test_a_label_sheet_released_filtered_keeps_its_cells_neutralised():
    # A sheet that also covers cases outside a release goes out as a filtered copy, not a hard link.
    from medlake.sharing.selection import _filtered_sheet

    other_case = b"T-9,=cmd,1,\n"
    assert _filtered_sheet(NEUTRALISED_SHEET + other_case, {"T-2"}) == NEUTRALISED_SHEET
