"""Real DICOM Part-10 files written with pydicom, for tests that need precise, small objects."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def ct_dataset(patient_id: str = "A123456789", study_uid: str | None = None, sop_uid: str | None = None,
               rows: int = 8, value: int = 0, transfer_syntax: str = ExplicitVRLittleEndian) -> Dataset:
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid or generate_uid()
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientID = patient_id
    ds.PatientName = "WANG^XIAO-MING"
    ds.PatientBirthDate = "19600101"
    ds.Modality = "CT"
    ds.StudyDate = "20190315"
    ds.Manufacturer = "ACME"
    ds.PixelSpacing = [0.7, 0.7]
    ds.SliceThickness = 1.0
    ds.Rows = ds.Columns = rows
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = np.full((rows, rows), value, np.int16).tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    return ds


def ct_bytes(**kw) -> bytes:
    buf = io.BytesIO()
    ct_dataset(**kw).save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def raw_dataset_bytes(**kw) -> bytes:
    """The same object without preamble and meta header (not Part-10)."""
    buf = io.BytesIO()
    ds = ct_dataset(**kw)
    ds.save_as(buf, implicit_vr=False, little_endian=True, enforce_file_format=False)
    data = buf.getvalue()
    return data[data.index(b"\x08\x00"):] if not data.startswith(b"\x08\x00") else data
