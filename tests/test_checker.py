"""The identifier checker on real files: DICOM, Delta, Parquet, text, PNG, file and folder names."""

from __future__ import annotations

import json
import random
import struct
import time
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import write_deltalake
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from medlake.checker import CheckReport, Checker, Finding, IdentifierIndex, fold, national_id_valid
from medlake.lake.tables import SOURCE_CASES

NAME = "CHEN^YI-CHUN"
NAME_ZH = "陳怡君"
CHART = "58213467"
NATIONAL_ID = "A123456789"          # valid check digit
BIRTH = "19600101"
ACCESSION = "ACC20190315007"
ORIGINAL_UID = "1.2.840.113619.2.55.3.2831164356.781.1552636120.223"
PHONE = "0912-345-678"
EMAIL = "chen.yichun@example.com.tw"
VALUES = [NAME, "CHEN", "YI-CHUN", NAME_ZH, CHART, NATIONAL_ID, BIRTH, "1960-01-01", ACCESSION, ORIGINAL_UID,
          PHONE, "0912345678", EMAIL, "2831164356"]

IDENTIFIERS = [
    ("patient_name", NAME + "=" + "陳^怡君"),
    ("patient_name", NAME_ZH),
    ("patient_id", CHART),
    ("national_id", NATIONAL_ID),
    ("birth_date", BIRTH),
    ("accession_number", ACCESSION),
    ("original_uid", ORIGINAL_UID),
]

ALL_FINDINGS: list[Finding] = []


@pytest.fixture(scope="module")
def index() -> IdentifierIndex:
    return IdentifierIndex.build(IDENTIFIERS)


@pytest.fixture(scope="module")
def checker(index) -> Checker:
    return Checker(index, allowed_private=["MEDLAKE DEID 1.0"])


def keep(findings: list[Finding]) -> list[Finding]:
    """Every finding a test produces is checked for leaked values at the end of the module."""
    ALL_FINDINGS.extend(findings)
    for f in findings:
        assert_no_value(f)
    return findings


def assert_no_value(f) -> None:
    for text in (repr(f), str(f)):
        low = text.lower()
        for v in VALUES:
            assert v.lower() not in low, "a finding repeats an identifier value"
        # the folded forms too: no "chenyichun", "19600101" hidden in a location
        assert fold(NAME) not in fold(text) and fold(CHART) not in fold(text)


def at(findings, location_part: str, kind: str | None = None) -> list[Finding]:
    return [f for f in findings if location_part in f.location and (kind is None or f.identifier_kind == kind)]


# --- the index and the patterns ------------------------------------------------------------------


def test_matching_is_robust_to_rewriting(index):
    for text in ["Chen Yi-Chun", "CHEN YI CHUN", "chen_yi_chun_ct.dcm", "YI-CHUN CHEN", "Dr. 陳怡君 報告"]:
        assert "patient_name" in index.find(text), text
    for text in ["1960-01-01", "1960/01/01", "born 19600101", "1960/1/1", "1960年1月1日", "01/01/1960"]:
        assert "birth_date" in index.find(text), text
    assert "patient_id" in index.find(f"scan_P{CHART}_axial.nii.gz")
    assert "patient_id" in index.find(f"Chart no.{CHART}, follow-up")
    assert "original_uid" in index.find(ORIGINAL_UID)
    assert "accession_number" in index.find(ACCESSION.lower())
    # a chart number never "matches" inside a longer number such as a de-identified UID
    assert index.find(f"2.25.99{CHART}123456") == []
    assert index.find(f"1{CHART}") == []
    assert index.find("Chen Yi-Ting") == []


def test_short_values_match_only_whole_values():
    ix = IdentifierIndex.build([("patient_id", "731"), ("patient_name", "王明"), ("patient_name", "陳")],
                               patterns=False)
    assert ix.find("731") == ["patient_id"]
    assert ix.find(" #731 ") == ["patient_id"]          # folds to the whole value
    assert ix.find("P-731") == []                       # folds to p731: not the same value
    assert ix.find("slice 731 of 800") == []
    assert ix.find("王明") == ["patient_name"]
    assert ix.find("病人王明的影像") == ["patient_name"]   # two ideographs weigh 4: substring
    assert ix.find("陳醫師") == []                       # one ideograph: whole value only


def test_national_id_checksum():
    assert national_id_valid("A", "123456789")
    ix = IdentifierIndex.build([])
    rng = random.Random(7)
    letters = dict(zip("ABCDEFGHJKLMNPQRSTUVXYWZIO", range(10, 36)))
    valid = []
    for _ in range(50):
        letter = rng.choice(list(letters))
        digits = [rng.choice([1, 2])] + [rng.randrange(10) for _ in range(7)]
        code = letters[letter]
        total = code // 10 + (code % 10) * 9 + sum(d * w for d, w in zip(digits, range(8, 0, -1)))
        valid.append(letter + "".join(map(str, digits)) + str((10 - total % 10) % 10))
    for v in valid:
        assert ix.find(v) == ["national_id_pattern"], v
        assert ix.find(f"ID: {v.lower()}.") == ["national_id_pattern"]
        wrong = v[:-1] + str((int(v[-1]) + 3) % 10)
        assert ix.find(wrong) == [], "checksum-invalid IDs must not match"
    assert ix.find("A323456789") == []                   # second digit must be 1/2 (or 8/9)
    # inside hashes and UUIDs: not an ID
    assert ix.find("e3b0c44298fc1c149afb" + "a123456789" + "f4c8996fb92427ae41e4649b934ca495991b") == []
    assert ix.find("123e4567-e89b-12d3-f2a123456789.parquet") == []


def test_phone_and_email_patterns():
    ix = IdentifierIndex.build([])
    for text in ["0912-345-678", "0912345678", "call 0912 345 678 now", "+886-912-345-678", "+886912345678",
                 "Tel.0912345678"]:
        assert "phone_pattern" in ix.find(text), text
    for text in ["2.25.0912345678901", "1.2.3.0912345678", "20190912345678", "2019-09-12", "20190912",
                 "0.0912345678", "10912345678", "1.2.840.10008.5.1.4.1.1.2", "2.25.329800735698586629295641978511506172918"]:
        assert ix.find(text) == [], text
    assert ix.find("mail chen.yichun@example.com.tw") == ["email_pattern"]
    assert ix.find("a@b") == []
    allowed = IdentifierIndex.build([], allowed_values=["office@medlake.example.org"])
    assert allowed.find("contact: office@medlake.example.org") == []


# --- DICOM ---------------------------------------------------------------------------------------


def _base_dataset() -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "2.25.1234567890123456789012345678901"
    ds.StudyInstanceUID = "2.25.2234567890123456789012345678902"
    ds.SeriesInstanceUID = "2.25.3234567890123456789012345678903"
    ds.PatientName = "PSEUDO^7F3A9C"
    ds.PatientID = "PSN-7F3A9C2E"
    ds.PatientIdentityRemoved = "YES"
    ds.StudyDate = "20190415"
    ds.Modality = "CT"
    ds.ImageComments = "axial, contrast"
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ref = Dataset()
    ref.ReferencedSOPClassUID = CTImageStorage
    ref.ReferencedSOPInstanceUID = "2.25.4234567890123456789012345678904"
    ds.ReferencedImageSequence = Sequence([ref])
    # five levels of nested ContentSequence (as in an SR), the innermost with a person name
    item = Dataset()
    item.PersonName = "READER^ONE"
    for _ in range(4):
        outer = Dataset()
        outer.ValueType = "CONTAINER"
        outer.ContentSequence = Sequence([item])
        item = outer
    ds.ContentSequence = Sequence([item])
    block = ds.private_block(0x0011, "MEDLAKE DEID 1.0", create=True)   # allowed
    block.add_new(0x01, "LO", "pseudonymised by medlake")
    return ds


def _save(ds: Dataset, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def _dirty(ds: Dataset) -> Dataset:
    inner = ds.ContentSequence[0]
    for _ in range(4):
        inner = inner.ContentSequence[0]
    inner.PersonName = NAME                                   # 5 levels deep
    ds.private_block(0x0009, "HOSPITAL RIS", create=True).add_new(0x10, "LO", f"chart {CHART}")
    ds.ImageComments = f"pt {NATIONAL_ID} follow-up"
    ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID = ORIGINAL_UID
    return ds


def test_dicom_identifiers_found_with_locations(checker, tmp_path):
    dirty = _save(_dirty(_base_dataset()), tmp_path / "out" / "img1.dcm")
    findings = keep(checker.scan_dicom(dirty))
    deep = "ContentSequence[0]." * 5 + "PersonName"
    assert at(findings, deep, "patient_name")
    assert at(findings, '(0009,"HOSPITAL RIS",10)', "patient_id")
    assert at(findings, '(0009,"HOSPITAL RIS",10)', "private_tag")
    assert at(findings, "(0009,0010)", "private_tag")            # the creator element itself
    assert at(findings, "ImageComments", "national_id_pattern")
    assert at(findings, "ImageComments", "national_id")
    assert at(findings, "ReferencedImageSequence[0].ReferencedSOPInstanceUID", "original_uid")
    assert all(f.object == str(dirty) for f in findings)
    assert not at(findings, "(0011,"), "the allowed private block is not a finding"


def test_dicom_cleaned_has_zero_findings(checker, tmp_path):
    clean = _save(_base_dataset(), tmp_path / "out" / "img1.dcm")
    assert checker.scan_dicom(clean) == []


def test_dicom_birth_date_meta_and_unknown_private(checker, tmp_path):
    ds = _base_dataset()
    ds.PatientBirthDate = "19700707"                        # not in the index: flagged anyway
    ds.file_meta.MediaStorageSOPInstanceUID = ORIGINAL_UID
    ds.add_new(0x00131010, "UN", f"{NAME} {CHART}".encode())   # private, no creator, UN bytes
    ds.preamble = b"\0" * 128
    ds.save_as(tmp_path / "x.dcm", enforce_file_format=False)     # keep the meta as given
    findings = keep(checker.scan_dicom(tmp_path / "x.dcm"))
    assert at(findings, "PatientBirthDate", "birth_date")
    assert at(findings, "MediaStorageSOPInstanceUID", "original_uid")
    assert {f.identifier_kind for f in at(findings, "(0013,1010)")} >= {"private_tag", "patient_name", "patient_id"}


# --- tables --------------------------------------------------------------------------------------


def test_delta_table_data_and_log_reported_separately(checker, tmp_path):
    uri = str(tmp_path / "deid" / "cases")
    write_deltalake(uri, pa.table({"case_id": ["c1", "c2", "c3"],
                                   "note": ["ok", "ok", "ok"],
                                   "patient_ref": ["PSN-1", CHART, "PSN-3"]}))
    findings = keep(checker.scan_table(uri))
    assert at(findings, "patient_ref[1]", "patient_id"), "the data row"
    log = at(findings, "delta_log:", "patient_id")
    assert any(f.location.endswith(":stats.minValues.patient_ref") or f.location.endswith(
        ":stats.maxValues.patient_ref") for f in log), [f.location for f in log]
    assert all(f.location.startswith("delta_log:00000000000000000000.json:") for f in log)
    assert not at(findings, "case_id")


def test_delta_overwrite_still_finds_old_versions(checker, tmp_path):
    uri = str(tmp_path / "cases")
    write_deltalake(uri, pa.table({"who": [f"{NAME_ZH}"]}), partition_by=None)
    write_deltalake(uri, pa.table({"who": ["PSN-1"]}), mode="overwrite")
    findings = keep(checker.scan_table(uri))
    assert not [f for f in findings if f.location == "who[0]"], "the current snapshot is clean"
    assert at(findings, "delta_log:00000000000000000000.json:stats", "patient_name")
    assert at(findings, "unreferenced:", "patient_name"), "a removed but not vacuumed file is still readable"


def test_delta_scope_reads_one_batch_rows_and_commit(checker, tmp_path):
    """A batch's check reads the rows and the commit it wrote, not what earlier batches wrote."""
    import pyarrow.dataset as pads

    from medlake.checker.tables import DeltaScope

    uri = str(tmp_path / "instances")
    write_deltalake(uri, pa.table({"batch_ref": ["b1", "b1"], "who": [NAME_ZH, "PSN-1"]}))
    write_deltalake(uri, pa.table({"batch_ref": ["b2", "b2"], "who": ["PSN-2", CHART]}), mode="append")
    whole = keep(checker.scan_table(uri))
    assert at(whole, "who[", "patient_name") and at(whole, "delta_log:00000000000000000000.json:")

    scoped = keep(checker.scan_table(uri, scope=DeltaScope(rows=pads.field("batch_ref") == "b2", commits=(1,))))
    assert at(scoped, "who[1]", "patient_id"), "the batch's own row"
    assert at(scoped, "delta_log:00000000000000000001.json:", "patient_id"), "the batch's own commit"
    assert not [f for f in scoped if f.identifier_kind == "patient_name"], "the earlier batch is not re-read"
    assert not [f for f in scoped if f.location.startswith("delta_log:00000000000000000000.json")]


def test_delta_partition_values_and_commit_info(checker, tmp_path):
    uri = str(tmp_path / "parted")
    write_deltalake(uri, pa.table({"team": [CHART, "ntu"], "n": [1, 2]}), partition_by=["team"],
                    commit_properties=None)
    findings = keep(checker.scan_table(uri))
    assert at(findings, "partitionValues", "patient_id")
    assert at(findings, "add.path", "patient_id")


def test_parquet_birth_date_in_column_statistics(checker, tmp_path):
    import datetime as dt
    path = tmp_path / "export" / "patients.parquet"
    path.parent.mkdir()
    pq.write_table(pa.table({"pseudonym": ["PSN-1", "PSN-2"],
                             "dob": pa.array([dt.date(1960, 1, 1), dt.date(1975, 5, 5)], pa.date32())}), path)
    findings = keep(checker.scan_table(path))
    assert at(findings, "parquet_stats:row_group[0].dob.min", "birth_date")
    assert at(findings, "dob[0]", "birth_date")
    assert not at(findings, "dob[1]")
    # Statistics alone: a file whose data was later masked would still carry them; check footer
    # scanning independently of data scanning by writing stats only for the string column.
    p2 = tmp_path / "export2.parquet"
    pq.write_table(pa.table({"birth": [BIRTH[:4] + "-" + BIRTH[4:6] + "-" + BIRTH[6:], "1999-01-02"]}), p2)
    f2 = keep(checker.scan_parquet(p2))
    assert at(f2, "parquet_stats:row_group[0].birth.min", "birth_date")
    assert at(f2, "birth[0]", "birth_date")


# --- text, images, names ---------------------------------------------------------------------------


def test_text_formats(checker, tmp_path):
    (tmp_path / "a.json").write_text(json.dumps({"cases": [{"id": "c1", "who": NAME}], CHART: 1}), "utf-8")
    (tmp_path / "b.csv").write_text(f"case_id,reader\nc1,ok\nc2,{NAME_ZH}\n", "utf-8")
    (tmp_path / "c.md").write_text(f"# Card\n\nContact {EMAIL}\n\ncall {PHONE}\n", "utf-8")
    (tmp_path / "d.html").write_text("<p>&#38;&#x41;123456789</p>\n", "utf-8")
    j = keep(checker.scan_text(tmp_path / "a.json"))
    assert at(j, "/cases/0/who", "patient_name")
    assert any(f.location.startswith("/<key") and f.identifier_kind == "patient_id" for f in j)
    c = keep(checker.scan_text(tmp_path / "b.csv"))
    assert at(c, "reader[1]", "patient_name") and not at(c, "reader[0]")
    m = keep(checker.scan_text(tmp_path / "c.md"))
    assert at(m, "line 3", "email_pattern") and at(m, "line 5", "phone_pattern")
    h = keep(checker.scan_text(tmp_path / "d.html"))
    assert at(h, "line 1", "national_id_pattern"), "HTML entities are decoded"


def _png_with_text(path: Path, keyword: str, text: str) -> None:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    path.parent.mkdir(parents=True, exist_ok=True)
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    raw = zlib.compress(b"\x00\x00")
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"tEXt", keyword.encode() + b"\0" +
                     text.encode("latin-1")) + chunk(b"zTXt", b"Comment\0\0" + zlib.compress(CHART.encode()))
                     + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


def test_tree_names_png_and_dispatch(checker, tmp_path):
    root = tmp_path / "release"
    _save(_base_dataset(), root / "images" / f"P{CHART}" / "0001")           # DICOM without .dcm
    _save(_base_dataset(), root / "images" / "s2" / f"{fold(NAME)}_ct.dcm")
    _png_with_text(root / "annotations" / "mask.png", "Author", "Chen Yi Chun")
    (root / "annotations" / "notes.txt").write_text(f"birth {BIRTH[:4]}/{BIRTH[4:6]}/{BIRTH[6:]}\n", "utf-8")
    write_deltalake(str(root / "tables" / "cases"), pa.table({"pid": [CHART]}))
    (root / "DATASET_CARD.md").write_text("# Dataset\n\nNo identifiers here.\n", "utf-8")
    report = checker.check(root)
    findings = keep(report.findings)
    names = [f for f in findings if f.object == "(path)"]
    assert {f.identifier_kind for f in names} == {"patient_id", "patient_name"}
    assert all(f.location.startswith("path:") for f in names)
    assert any(f.location == "path:images/(path 1)" for f in names), [f.location for f in names]
    # content of a file below a redacted folder is reported under the redacted path
    assert not [f for f in findings if "0001" in f.object]           # that DICOM is clean inside
    assert at(findings, "png:tEXt[Author]", "patient_name")
    assert at(findings, "png:zTXt[Comment]", "patient_id")
    assert at(findings, "line 1", "birth_date")
    assert at(findings, "pid[0]", "patient_id") and at(findings, "delta_log:", "patient_id")
    assert not [f for f in findings if f.object.endswith("DATASET_CARD.md")]
    assert report.objects_scanned == 6      # 2 DICOM, png, txt, card, 1 Delta table
    assert report.by_kind["patient_id"] >= 4
    text = str(report)
    assert CHART not in text and "CHEN" not in text.upper() and NAME_ZH not in text


def test_direct_scan_of_a_path_that_holds_an_identifier(checker, tmp_path):
    p = (tmp_path / f"{NATIONAL_ID}.txt")
    p.write_text("nothing\n", "utf-8")
    findings = keep(checker.scan_text(p))
    assert findings and all(f.object == "(path)" for f in findings)
    assert at(findings, "path", "national_id")


def test_unreadable_object_is_a_finding(checker, tmp_path):
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    findings = keep(checker.scan_file(bad))
    assert [f.identifier_kind for f in findings] == ["unreadable"]
    assert not CheckReport.of(1, findings).clean


# --- scale ---------------------------------------------------------------------------------------


def test_scale_smoke(capsys):
    rng = random.Random(42)
    surnames = ["CHEN", "LIN", "HUANG", "CHANG", "LEE", "WANG", "WU", "LIU", "TSAI", "YANG", "HSU", "CHENG"]
    given = ["YI", "CHUN", "MING", "HUI", "WEI", "TING", "HSIANG", "CHIH", "KUAN", "PEI", "SHU", "JUNG", "HAO"]
    idents = []
    charts = set()
    while len(charts) < 12_500:
        charts.add(str(rng.randrange(10_000_000, 99_999_999)))
    for c in charts:
        idents.append(("patient_id", c))
        idents.append(("patient_name", f"{rng.choice(surnames)}^{rng.choice(given)}-{rng.choice(given)}"))
        d = f"{rng.randrange(1930, 2010)}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}"
        idents.append(("birth_date", d))
        idents.append(("original_uid", f"1.2.840.113619.2.55.3.{rng.randrange(10**9, 10**10)}.{rng.randrange(1000)}"))
    assert len(idents) == 50_000
    t0 = time.perf_counter()
    ix = IdentifierIndex.build(idents)
    build = time.perf_counter() - t0
    chart_list = sorted(charts)
    values = []
    for i in range(200_000):
        r = i % 8
        if r == 0:
            values.append(f"2.25.{rng.randrange(10**37, 10**38)}")
        elif r == 1:
            values.append(f"20{rng.randrange(10, 25)}{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}")
        elif r == 2:
            values.append(f"PSN-{rng.randrange(16**8):08x}")
        elif r == 3:
            values.append(rng.choice(["CT", "MR", "AXIAL", "ORIGINAL\\PRIMARY", "ACME Medical", "1.25", "512"]))
        elif r == 4:
            values.append(f"series {rng.randrange(1000)} reconstructed with kernel B{rng.randrange(10, 80)}f, "
                          f"slice thickness {rng.randrange(1, 5)} mm")
        elif r == 5:
            values.append(f"{rng.randrange(100)}.{rng.randrange(1000)}\\{rng.randrange(100)}.{rng.randrange(1000)}")
        elif r == 6:
            values.append(f"part-{rng.randrange(10**5):05d}-{rng.randrange(16**12):012x}.c000.snappy.parquet")
        else:
            values.append(f"Reader note {rng.randrange(10**6)}: nodule {rng.randrange(3, 30)} mm, lobe RUL")
    planted = rng.sample(range(200_000), 50)
    for i in planted:
        values[i] = f"file_{rng.choice(chart_list)}_x.dcm"
    t0 = time.perf_counter()
    hits = sum(1 for v in values if ix.find(v))
    scan = time.perf_counter() - t0
    with capsys.disabled():
        print(f"\n[checker scale] index of {len(idents)} identifiers ({len(ix)} folded forms) built in "
              f"{build:.2f} s; {len(values)} values scanned in {scan:.2f} s = {len(values) / scan:,.0f} values/s; "
              f"{hits} hits")
    assert all("patient_id" in ix.find(values[i]) for i in planted)
    assert hits < 50 + 200, "hardly any false positives among realistic values"


def test_no_finding_anywhere_repeats_a_value():
    assert ALL_FINDINGS, "the tests above produced findings"
    for f in ALL_FINDINGS:
        assert_no_value(f)


def test_index_extended_in_parts_equals_one_build():
    pairs = [("patient_name", "CHEN^MEI-LING"), ("patient_name", "Chen Yi-Chun"), ("birth_date", "1960-01-01"),
             ("patient_id", "A123456789"), ("patient_name", NAME_ZH), ("case_id", "X 12"), ("accession_number",
             "20190101"), ("patient_id", "20190101"), ("original_uid", "1.2.826.0.1.3680043.8.498.1"),
             ("patient_id", "ab"), ("patient_id", CHART), ("case_id", CHART)]
    pairs += [("original_uid", f"1.2.826.0.1.3680043.8.498.{i}") for i in range(2, 300)]
    whole = IdentifierIndex.build(pairs)
    parts = IdentifierIndex.build(pairs[::2])
    assert parts.extend(pairs[1::2]) > 0 and parts.extend(pairs) == 0, "a second extend adds nothing"
    for attr in ("_whole", "_exact", "_digits", "_dates", "_wide"):
        assert getattr(parts, attr) == getattr(whole, attr), attr
    for attr in ("_long", "_short"):
        assert {k: sorted(v) for k, v in getattr(parts, attr).items()} == \
               {k: sorted(v) for k, v in getattr(whole, attr).items()}, attr
    assert parts.find(f"chart {CHART}") == whole.find(f"chart {CHART}") == ["case_id", "patient_id"]
    assert whole._as_tuple is not None and len({id(k) for k in whole._whole.values()}) <= len(whole._as_tuple)


def test_team_index_reads_only_files_added_since(tmp_path):
    """Batch after batch in one process, a team's index folds each new data file's identifiers once."""
    from medlake.checker import sources
    from medlake.lake import DeltaStore, Lake

    store = DeltaStore(Lake.from_root(str(tmp_path / "lake")))
    uri = store.uri(SOURCE_CASES)
    write_deltalake(uri, pa.table({"team": ["tmu", "ntu"], "patient_id": ["A123456789", "B223456789"],
                                   "case_id": ["C-1", "C-2"]}), partition_by=["team"])
    first = sources.team_index(store, "tmu")
    assert first.find_whole("A123456789") == ("patient_id",) and first.find_whole("B223456789") == ()
    write_deltalake(uri, pa.table({"team": ["tmu"], "patient_id": [CHART], "case_id": ["C-3"]}), mode="append",
                    partition_by=["team"])
    second = sources.team_index(store, "tmu")
    assert second is first, "extended, not rebuilt"
    assert second.find_whole(CHART) == ("patient_id",) and second.find_whole("A123456789") == ("patient_id",)
    fresh = IdentifierIndex.build(sources.team_identifiers(store, "tmu"))
    assert second._whole == fresh._whole


def test_team_indexes_cover_several_teams_and_the_least_recent_goes_first(tmp_path, monkeypatch):
    """The release check asks for every team at once; the cache is bounded by the values it holds."""
    from medlake.checker import sources
    from medlake.lake import DeltaStore, Lake

    store = DeltaStore(Lake.from_root(str(tmp_path / "lake")))
    write_deltalake(store.uri(SOURCE_CASES),
                    pa.table({"team": ["tmu", "ntu", "tvgh"], "patient_id": ["A123456789", "B223456789", CHART],
                              "case_id": ["C-1", "C-2", "C-3"]}), partition_by=["team"])
    monkeypatch.setattr(sources, "_TEAM_INDEXES", type(sources._TEAM_INDEXES)())
    both = sources.team_index(store, ["tmu", "ntu"])
    assert both.find_whole("A123456789") == both.find_whole("B223456789") == ("patient_id",)
    assert both.find_whole(CHART) == ()
    assert sources.team_index(store, ("ntu", "tmu")) is both, "the same teams in another order share it"
    monkeypatch.setattr(sources, "_MAX_CACHED_VALUES", len(both) + 1)
    tvgh = sources.team_index(store, "tvgh")
    assert list(sources._TEAM_INDEXES) == [(str(store.lake.root), ("tvgh",))]
    assert sources.team_index(store, "tvgh") is tvgh
    assert sources.team_index(store, ["tmu", "ntu"]) is not both, "evicted, so built again"
