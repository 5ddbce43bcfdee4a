"""Record in the object what was done to it (PS3.15 E.1.1: Patient Identity Removed and the
De-identification Method attributes), so a recipient can tell which profile and options apply."""

from __future__ import annotations

import io
from functools import lru_cache

from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence

from medlake.deid.context import DeidContext
from medlake.deid.table import Option

PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
# CID 7050 (data/cid7050_deidentification_method_codes.csv)
OPTION_CODES = {
    Option.CLEAN_PIXEL_DATA: ("113101", "Clean Pixel Data Option"),
    Option.CLEAN_RECOGNIZABLE_VISUAL_FEATURES: ("113102", "Clean Recognizable Visual Features Option"),
    Option.CLEAN_GRAPHICS: ("113103", "Clean Graphics Option"),
    Option.CLEAN_STRUCTURED_CONTENT: ("113104", "Clean Structured Content Option"),
    Option.CLEAN_DESCRIPTORS: ("113105", "Clean Descriptors Option"),
    Option.RETAIN_LONGITUDINAL_MODIFIED_DATES: (
        "113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    Option.RETAIN_PATIENT_CHARACTERISTICS: ("113108", "Retain Patient Characteristics Option"),
}
METHOD_PREFIX = "medlake PS3.15 E basic profile"


def method_codes(options) -> list[tuple[str, str]]:
    """(code, meaning) for the profile and each applied option, in code order."""
    return [PROFILE_CODE] + sorted(OPTION_CODES[o] for o in options)


def record(ds: Dataset, ctx: DeidContext) -> None:
    """Add the method attributes to `ds`.

    They are the same for every object with the same options, so they are built and encoded once
    and added as raw elements: building a six-item code sequence per file cost more than the rest
    of the header's de-identification.
    """
    implicit = bool(ds.original_encoding[0])
    ds._dict.update(_encoded(ctx.options, implicit))


@lru_cache(maxsize=64)
def _encoded(options: frozenset[Option], implicit: bool) -> dict:
    ds = Dataset()
    _build(ds, options)
    fp = DicomBytesIO()
    fp.is_implicit_VR, fp.is_little_endian = implicit, True
    write_dataset(fp, ds)
    raw = read_dataset(io.BytesIO(fp.getvalue()), implicit, True)
    return dict(raw._dict)


def _build(ds: Dataset, options: frozenset[Option]) -> None:
    codes = method_codes(options)
    ds.PatientIdentityRemoved = "YES"
    # LO is limited to 64 characters, so one value per option (VM 1-n).
    ds.DeidentificationMethod = [METHOD_PREFIX] + [meaning[:64] for _, meaning in codes[1:]]
    items = []
    for value, meaning in codes:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    ds.DeidentificationMethodCodeSequence = Sequence(items)
    ds.LongitudinalTemporalInformationModified = (
        "MODIFIED" if Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in options else "REMOVED")
    # The pixel options are in ctx.options only when pixels.py/deface.py cleaned this object.
    if Option.CLEAN_PIXEL_DATA in options:
        ds.BurnedInAnnotation = "NO"
    if Option.CLEAN_RECOGNIZABLE_VISUAL_FEATURES in options:
        ds.RecognizableVisualFeatures = "NO"
