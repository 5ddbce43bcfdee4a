"""Encode a de-identified header, copying untouched (raw) elements byte for byte.

pydicom's write_dataset re-dispatches every element through its generic writer; for a header of
raw elements that is most of the per-file cost. Here a raw element with a known VR is re-emitted
as header + its original value bytes; anything else (converted elements, text whose character set
matters) goes through pydicom's own write_data_element, so the output is what pydicom would write.
"""

from __future__ import annotations

import struct

from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_data_element

_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_SEQ_DELIMITER = struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)


def encode_dataset(ds: Dataset, implicit: bool) -> bytes:
    """The data set (no meta) in little endian, implicit or explicit VR."""
    out = []
    fallback = None
    encoding = ds.get("SpecificCharacterSet", "iso8859")
    d = ds._dict
    for tag in sorted(d):
        elem = d[tag]
        if (isinstance(elem, RawDataElement) and elem.is_little_endian
                and elem.is_implicit_VR == implicit and (implicit or elem.VR)):
            value = elem.value or b""
            length = elem.length
            undefined = length == 0xFFFFFFFF
            if not undefined and length != len(value):
                length = len(value)
            group, el = tag >> 16, tag & 0xFFFF
            if implicit:
                out.append(struct.pack("<HHI", group, el, length))
            elif elem.VR in _LONG_VRS:
                out.append(struct.pack("<HH2sHI", group, el, elem.VR.encode(), 0, length))
            else:
                if length > 0xFFFF:
                    raise ValueError("value too long for a short-VR element")
                out.append(struct.pack("<HH2sH", group, el, elem.VR.encode(), length))
            out.append(value)
            if undefined:
                out.append(_SEQ_DELIMITER)
            continue
        if fallback is None:
            fallback = DicomBytesIO()
            fallback.is_implicit_VR, fallback.is_little_endian = implicit, True
        start = fallback.tell()
        write_data_element(fallback, ds[tag], encoding)
        out.append(fallback.getvalue()[start:])
    return b"".join(out)
