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
    fp = io.BytesIO(data)
    ds = _dcmread(fp)
    offset = fp.tell() if fp.tell() < len(data) else None
    element = PixelElement(data[offset:offset + 12], len(data) - offset, data[-_TAIL:]) if offset is not None else None
    return header_from_dataset(ds, offset, element)


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
    ts = str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""
    if not ts:
        raise DicomProblem("missing_transfer_syntax", "the meta header has no TransferSyntaxUID")
    if not UID(ts).is_transfer_syntax:
        raise DicomProblem("unknown_transfer_syntax", f"transfer syntax {ts} is not one DICOM defines")
    if element is not None:
        _check_pixel_element(element, UID(ts))

    def text(keyword: str) -> str | None:
        v = ds.get(keyword)
        if v is None or v == "":
            return None
        return str(v).strip() or None

    sop_class = text("SOPClassUID") or (str(meta.get("MediaStorageSOPClassUID", "")) or None)
    missing = [k for k, v in (("SOPInstanceUID", text("SOPInstanceUID")),
                              ("StudyInstanceUID", text("StudyInstanceUID")),
                              ("SeriesInstanceUID", text("SeriesInstanceUID")),
                              ("SOPClassUID", sop_class)) if not v]
    if missing:
        raise DicomProblem("missing_uid", f"required UID attribute(s) missing: {', '.join(missing)}")
    patient_id = text("PatientID")
    if not patient_id:
        raise DicomProblem("missing_patient_id", "PatientID is empty: the object cannot be tied to a case")
    spacing = _pixel_spacing(ds)
    return Header(
        kind=dicom_kind(sop_class),
        patient_id=patient_id,
        patient_name=text("PatientName"),
        patient_birth_date=text("PatientBirthDate"),
        patient_sex=text("PatientSex"),
        patient_age=text("PatientAge"),
        accession_number=text("AccessionNumber"),
        study_instance_uid=text("StudyInstanceUID"),
        series_instance_uid=text("SeriesInstanceUID"),
        sop_instance_uid=text("SOPInstanceUID"),
        sop_class_uid=sop_class,
        modality=text("Modality"),
        transfer_syntax_uid=ts,
        rows=_int(ds.get("Rows")),
        columns=_int(ds.get("Columns")),
        number_of_frames=_int(ds.get("NumberOfFrames")),
        study_date=_date(ds.get("StudyDate")),
        series_date=_date(ds.get("SeriesDate")),
        manufacturer=text("Manufacturer"),
        manufacturer_model_name=text("ManufacturerModelName"),
        body_part_examined=text("BodyPartExamined"),
        pixel_spacing_row=spacing[0],
        pixel_spacing_col=spacing[1],
        slice_thickness=_float(ds.get("SliceThickness")),
        burned_in_annotation=text("BurnedInAnnotation"),
        series_number=_int(ds.get("SeriesNumber")),
        instance_number=_int(ds.get("InstanceNumber")),
        frame_of_reference_uid=text("FrameOfReferenceUID"),
        pixel_data_offset=pixel_offset,
    )


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


def _pixel_spacing(ds: pydicom.Dataset) -> tuple[float | None, float | None]:
    ps = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    if ps is None:
        # Enhanced multi-frame objects keep it in the shared functional groups.
        try:
            ps = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        except (AttributeError, IndexError, KeyError):
            ps = None
    try:
        return float(ps[0]), float(ps[1])
    except (TypeError, ValueError, IndexError):
        return None, None


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
