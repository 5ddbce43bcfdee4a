"""Parse a DICOM Part-10 file's header once, from bytes already in memory, and check its integrity.

Ingestion reads each file exactly once: the same buffer feeds sha256 and this parser, so the
catalogue costs one read per object (bench/ measures it against a bare dcmread + sha256 loop).
"""

from __future__ import annotations

import datetime as dt
import io
import struct
from dataclasses import dataclass

import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.uid import UID

from medlake.dicom.fastheader import TRUNCATED, scan
from medlake.dicom.sop_classes import dicom_kind

PREAMBLE_LEN = 128
_PIXEL_TAGS = {(0x7FE0, 0x0010), (0x7FE0, 0x0008), (0x7FE0, 0x0009)}
_SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV"}


class DicomProblem(Exception):
    """A file that cannot be catalogued; `code` is the quarantine reason code."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Header:
    """The catalogue's view of one DICOM object (restricted zone: it holds identifiers)."""

    kind: str
    patient_id: str
    patient_name: str | None
    patient_birth_date: str | None
    patient_sex: str | None
    patient_age: str | None
    accession_number: str | None
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str | None
    transfer_syntax_uid: str
    rows: int | None
    columns: int | None
    number_of_frames: int | None
    study_date: dt.date | None
    series_date: dt.date | None
    manufacturer: str | None
    manufacturer_model_name: str | None
    body_part_examined: str | None
    pixel_spacing_row: float | None
    pixel_spacing_col: float | None
    slice_thickness: float | None
    burned_in_annotation: str | None
    series_number: int | None
    instance_number: int | None
    frame_of_reference_uid: str | None
    pixel_data_offset: int | None


def looks_like_part10(data: bytes) -> bool:
    return len(data) >= PREAMBLE_LEN + 4 and data[PREAMBLE_LEN:PREAMBLE_LEN + 4] == b"DICM"


def looks_like_raw_dataset(data: bytes) -> bool:
    """A DICOM data set written without preamble and meta header (starts with a group 0008 tag)."""
    return len(data) >= 8 and data[0:2] == b"\x08\x00" and data[2:4] < b"\xff\xff"


def parse_header(data: bytes) -> Header:
    """Parse and check one file's bytes; raise DicomProblem with a reason code when it is unusable."""
    if not data:
        raise DicomProblem("empty_file", "the file is empty (0 bytes)")
    if not looks_like_part10(data):
        if looks_like_raw_dataset(data):
            raise DicomProblem(
                "not_part10",
                "DICOM data set without the 128-byte preamble and DICM meta header; "
                "the export format requires Part-10 files",
            )
        raise DicomProblem("not_dicom", "not a DICOM Part-10 file (no DICM marker at byte 128)")
    fast = scan(data, _WANTED)
    if fast is TRUNCATED:
        raise DicomProblem("truncated_or_corrupt", "the file ends inside its header")
    if fast is not None:
        meta_values, values, offset = fast
        fields = _Fields(values)
        if fields.codec is not None and (values.get(_T.PixelSpacing) or values.get(_T.ImagerPixelSpacing)
                                         or _SHARED_GROUPS not in values):
            element = _element(data, offset)
            return _build(_Fields(meta_values), fields, offset, element, None)
    fp = io.BytesIO(data)
    ds = _dcmread(fp)
    offset = fp.tell() if fp.tell() < len(data) else None
    return header_from_dataset(ds, offset, _element(data, offset))


def _element(data: bytes, offset: int | None) -> PixelElement | None:
    if offset is None:
        return None
    return PixelElement(data[offset:offset + 12], len(data) - offset, data[-_TAIL:])


def parse_header_from_file(path, size: int) -> Header:
    """Like parse_header, for files too large to hold in memory: only the header and tail are read."""
    with open(path, "rb") as fh:
        head = fh.read(PREAMBLE_LEN + 4)
        if not looks_like_part10(head):
            return parse_header(head)
        fh.seek(0)
        ds = _dcmread(fh)
        offset = fh.tell() if fh.tell() < size else None
        element = None
        if offset is not None:
            fh.seek(offset)
            element_head = fh.read(12)
            fh.seek(max(offset, size - _TAIL))
            element = PixelElement(element_head, size - offset, fh.read())
    return header_from_dataset(ds, offset, element)


@dataclass(frozen=True)
class PixelElement:
    """Enough of the pixel data element to tell whether the file was cut short."""

    head: bytes  # the element's first 12 bytes
    available: int  # bytes from the element's start to the end of the file
    tail: bytes  # the file's last bytes


_TAIL = 64 * 1024


def _dcmread(fp) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(fp, stop_before_pixels=True)
    except (InvalidDicomError, EOFError, struct.error, ValueError, KeyError, OverflowError, TypeError) as e:
        raise DicomProblem("truncated_or_corrupt",
                           f"the DICOM header cannot be parsed ({type(e).__name__})") from None


def header_from_dataset(ds: pydicom.Dataset, pixel_offset: int | None, element: PixelElement | None) -> Header:
    meta = getattr(ds, "file_meta", None)
    meta_fields = _Fields(meta._dict, meta) if meta is not None else _Fields({})
    return _build(meta_fields, _Fields(ds._dict, ds), pixel_offset, element, ds)


def _build(meta_fields: _Fields, f: _Fields, pixel_offset: int | None, element: PixelElement | None,
           ds: pydicom.Dataset | None) -> Header:
    ts = meta_fields.text(0x00020010) or ""
    if not ts:
        raise DicomProblem("missing_transfer_syntax", "the meta header has no TransferSyntaxUID")
    if not UID(ts).is_transfer_syntax:
        raise DicomProblem("unknown_transfer_syntax", f"transfer syntax {ts} is not one DICOM defines")
    if element is not None:
        _check_pixel_element(element, UID(ts))

    sop_class = f.text(_T.SOPClassUID) or meta_fields.text(0x00020002)
    missing = [k for k, v in (("SOPInstanceUID", f.text(_T.SOPInstanceUID)),
                              ("StudyInstanceUID", f.text(_T.StudyInstanceUID)),
                              ("SeriesInstanceUID", f.text(_T.SeriesInstanceUID)),
                              ("SOPClassUID", sop_class)) if not v]
    if missing:
        raise DicomProblem("missing_uid", f"required UID attribute(s) missing: {', '.join(missing)}")
    patient_id = f.text(_T.PatientID)
    if not patient_id:
        raise DicomProblem("missing_patient_id", "PatientID is empty: the object cannot be tied to a case")
    spacing = (f.pair(_T.PixelSpacing) or f.pair(_T.ImagerPixelSpacing)
               or (_functional_group_spacing(ds) if ds is not None else None))
    return Header(
        kind=dicom_kind(sop_class),
        patient_id=patient_id,
        patient_name=f.text(_T.PatientName),
        patient_birth_date=f.text(_T.PatientBirthDate),
        patient_sex=f.text(_T.PatientSex),
        patient_age=f.text(_T.PatientAge),
        accession_number=f.text(_T.AccessionNumber),
        study_instance_uid=f.text(_T.StudyInstanceUID),
        series_instance_uid=f.text(_T.SeriesInstanceUID),
        sop_instance_uid=f.text(_T.SOPInstanceUID),
        sop_class_uid=sop_class,
        modality=f.text(_T.Modality),
        transfer_syntax_uid=ts,
        rows=f.us(_T.Rows),
        columns=f.us(_T.Columns),
        number_of_frames=_int(f.text(_T.NumberOfFrames)),
        study_date=_date(f.text(_T.StudyDate)),
        series_date=_date(f.text(_T.SeriesDate)),
        manufacturer=f.text(_T.Manufacturer),
        manufacturer_model_name=f.text(_T.ManufacturerModelName),
        body_part_examined=f.text(_T.BodyPartExamined),
        pixel_spacing_row=spacing[0] if spacing else None,
        pixel_spacing_col=spacing[1] if spacing else None,
        slice_thickness=_float(f.text(_T.SliceThickness)),
        burned_in_annotation=f.text(_T.BurnedInAnnotation),
        series_number=_int(f.text(_T.SeriesNumber)),
        instance_number=_int(f.text(_T.InstanceNumber)),
        frame_of_reference_uid=f.text(_T.FrameOfReferenceUID),
        pixel_data_offset=pixel_offset,
    )


class _T:
    """Tags read from every object (ints, so lookups skip pydicom's keyword machinery)."""

    SpecificCharacterSet = 0x00080005
    SOPClassUID = 0x00080016
    SOPInstanceUID = 0x00080018
    StudyDate = 0x00080020
    SeriesDate = 0x00080021
    AccessionNumber = 0x00080050
    Modality = 0x00080060
    Manufacturer = 0x00080070
    ManufacturerModelName = 0x00081090
    PatientName = 0x00100010
    PatientID = 0x00100020
    PatientBirthDate = 0x00100030
    PatientSex = 0x00100040
    PatientAge = 0x00101010
    BodyPartExamined = 0x00180015
    SliceThickness = 0x00180050
    ImagerPixelSpacing = 0x00181164
    StudyInstanceUID = 0x0020000D
    SeriesInstanceUID = 0x0020000E
    SeriesNumber = 0x00200011
    InstanceNumber = 0x00200013
    FrameOfReferenceUID = 0x00200052
    NumberOfFrames = 0x00280008
    Rows = 0x00280010
    Columns = 0x00280011
    PixelSpacing = 0x00280030
    BurnedInAnnotation = 0x00280301


_SHARED_GROUPS = 0x52009229
_WANTED = frozenset(v for k, v in vars(_T).items() if not k.startswith("_")) | {_SHARED_GROUPS}

# Character sets whose bytes a plain codec decodes; anything else (ISO 2022 code extensions) goes
# through pydicom's full decoder.
_SIMPLE_CHARSETS = {"": "ascii", "ISO_IR 6": "ascii", "ISO_IR 192": "utf-8", "ISO_IR 100": "latin-1"}


class _Fields:
    """Header values decoded straight from raw element bytes.

    Converting raw elements through pydicom's value machinery costs more than parsing the whole
    header; the catalogue needs a couple of dozen plain values, so they are decoded here. `raw` maps
    tags to bytes (the fast walker) or to pydicom's raw/converted elements; `ds`, when given, decodes
    text in character sets a plain codec cannot.
    """

    def __init__(self, raw, ds: pydicom.Dataset | None = None):
        self.raw = raw
        self.ds = ds
        charset = self._bytes(_T.SpecificCharacterSet)
        key = (charset or b"").decode("ascii", "replace").strip(" \0").split("\\")[-1].strip()
        self.codec = _SIMPLE_CHARSETS.get(key)

    def _value(self, tag: int):
        elem = self.raw.get(tag)
        if elem is None or isinstance(elem, bytes | bytearray):
            return elem
        return elem.value

    def _bytes(self, tag: int) -> bytes | None:
        value = self._value(tag)
        if value is None or isinstance(value, bytes | bytearray):
            return value
        return str(value).encode("utf-8")

    def text(self, tag: int) -> str | None:
        value = self._value(tag)
        if value is None:
            return None
        if not isinstance(value, bytes | bytearray):
            s = str(value)
        elif self.codec is None and self.ds is not None:
            s = str(self.ds[tag].value)
        else:
            s = bytes(value).decode(self.codec or "utf-8", "replace")
        s = s.strip(" \0")
        return s or None

    def us(self, tag: int) -> int | None:
        value = self._value(tag)
        if value is None:
            return None
        if isinstance(value, bytes | bytearray):
            little = getattr(self.raw.get(tag), "is_little_endian", True)
            return struct.unpack("<H" if little else ">H", value[:2])[0] if len(value) >= 2 else None
        return _int(value)

    def pair(self, tag: int) -> tuple[float, float] | None:
        s = self.text(tag)
        if not s:
            return None
        parts = s.split("\\")
        try:
            return float(parts[0]), float(parts[1])
        except (ValueError, IndexError):
            return None


def _functional_group_spacing(ds: pydicom.Dataset) -> tuple[float, float] | None:
    """Enhanced multi-frame objects keep PixelSpacing in the shared functional groups."""
    try:
        ps = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        return float(ps[0]), float(ps[1])
    except (AttributeError, IndexError, KeyError, TypeError, ValueError):
        return None


def _check_pixel_element(element: PixelElement, ts: UID) -> None:
    """Raise when the pixel data element runs past the end of the file (a truncated transfer)."""
    head = element.head
    if len(head) < 8:
        raise DicomProblem("truncated_or_corrupt", "the file ends inside the pixel data element header")
    group, elem = struct.unpack("<HH", head[:4])
    if (group, elem) not in _PIXEL_TAGS:
        return
    if ts.is_implicit_VR:
        (length,) = struct.unpack("<I", head[4:8])
        header_len = 8
    elif head[4:6] in _LONG_VRS:
        if len(head) < 12:
            raise DicomProblem("truncated_or_corrupt", "the file ends inside the pixel data element header")
        (length,) = struct.unpack("<I", head[8:12])
        header_len = 12
    else:
        (length,) = struct.unpack("<H", head[6:8])
        header_len = 8
    if length == 0xFFFFFFFF:
        # Encapsulated fragments end with a sequence delimiter; a cut-off transfer loses it.
        if _SEQ_DELIMITER not in element.tail:
            raise DicomProblem("truncated_or_corrupt",
                               "encapsulated pixel data has no sequence delimiter: the file is truncated")
    elif header_len + length > element.available:
        raise DicomProblem(
            "truncated_or_corrupt",
            f"pixel data declares {length} bytes but the file ends "
            f"{header_len + length - element.available} bytes short",
        )


def _int(v) -> int | None:
    try:
        return None if v is None or v == "" else int(v)
    except (TypeError, ValueError):
        return None


def _float(v) -> float | None:
    try:
        return None if v is None or v == "" else float(v)
    except (TypeError, ValueError):
        return None


def _date(v) -> dt.date | None:
    s = str(v or "").strip()
    if len(s) < 8:
        return None
    try:
        return dt.date(int(s[0:4]), int(s[4:6]), int(s[6:8]))
    except ValueError:
        return None
