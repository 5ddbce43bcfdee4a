"""The fast header walker must agree with pydicom on every object it accepts, and defer on the rest."""

import io
from dataclasses import asdict

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian, ImplicitVRLittleEndian, JPEG2000Lossless, RLELossless

from dicom_factory import ct_dataset
from medlake.dicom.fastheader import scan
from medlake.dicom.header import _WANTED, DicomProblem, header_from_dataset, parse_header


def _slow(data: bytes):
    fp = io.BytesIO(data)
    ds = pydicom.dcmread(fp, stop_before_pixels=True)
    offset = fp.tell() if fp.tell() < len(data) else None
    return header_from_dataset(ds, offset, None)


def _save(ds, **kw) -> bytes:
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True, **kw)
    return buf.getvalue()


def _nested(depth: int) -> Sequence:
    item = Dataset()
    item.PatientID = "NESTED-ID"
    if depth:
        item.ReferencedImageSequence = _nested(depth - 1)
    return Sequence([item])


def _variants():
    plain = ct_dataset()
    yield "explicit", _save(plain)
    implicit = ct_dataset()
    implicit.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    yield "implicit", _save(implicit)
    utf8 = ct_dataset()
    utf8.SpecificCharacterSet = "ISO_IR 192"
    utf8.PatientName = "陳^怡君"
    utf8.InstitutionName = "臺大醫院"
    yield "utf8", _save(utf8)
    deep = ct_dataset()
    deep.RequestAttributesSequence = _nested(10)
    yield "nested-10", _save(deep)
    # Undefined-length sequences and items, as many modalities write them.
    undefined = ct_dataset()
    undefined.RequestAttributesSequence = _nested(3)
    undefined.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    data = _save(undefined)
    yield "implicit-nested", data
    private = ct_dataset()
    block = private.private_block(0x0029, "ACME 1.0", create=True)
    block.add_new(0x10, "LO", "CHART 0012345")
    block.add_new(0x11, "SQ", _nested(2))
    yield "private", _save(private)
    multi = ct_dataset(rows=4)
    multi.NumberOfFrames = 3
    multi.PixelData = np.zeros((3, 4, 4), np.int16).tobytes()
    yield "multiframe", _save(multi)
    j2k = ct_dataset(rows=64)
    j2k.PixelRepresentation = 0
    j2k.BitsStored, j2k.HighBit = 12, 11
    j2k.compress(JPEG2000Lossless, np.arange(4096, dtype=np.uint16).reshape(64, 64))
    yield "jpeg2000", _save(j2k)
    rle = ct_dataset(rows=16)
    rle.compress(RLELossless, np.arange(256, dtype=np.int16).reshape(16, 16))
    yield "rle", _save(rle)
    no_pixels = ct_dataset()
    del no_pixels.PixelData
    yield "no-pixels", _save(no_pixels)


@pytest.mark.parametrize("name,data", list(_variants()), ids=lambda v: v if isinstance(v, str) else "")
def test_fast_walker_agrees_with_pydicom(name, data):
    assert scan(data, _WANTED) is not None, "the walker should follow this common layout"
    assert asdict(parse_header(data)) == asdict(_slow(data))


def test_big_endian_is_left_to_pydicom():
    ds = ct_dataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    data = _save(ds, little_endian=False, implicit_vr=False)
    assert scan(data, _WANTED) is None
    assert parse_header(data).rows == 8


def test_truncated_header_is_reported():
    data = _save(ct_dataset())
    with pytest.raises(DicomProblem) as e:
        parse_header(data[:300])
    assert e.value.code == "truncated_or_corrupt"
