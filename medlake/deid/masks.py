"""Mask images named after the UID they label: new name from the UID map, metadata stripped."""

from __future__ import annotations

import gzip
import io
import re
import struct
from collections.abc import Callable

import numpy as np
from PIL import Image

from medlake.deid.errors import DeidError
from medlake.ingest.detect import MASK_NAME

_NIFTI1_HEADER = 348
_SAFE_LABEL = re.compile(r"[^A-Za-z0-9_.-]+")



def mask_name(name: str, uid: Callable[[str], str]) -> tuple[str, str]:
    """(new file name, pseudonymous target UID) for a mask file name `<UID>__<label>.<ext>`."""
    m = MASK_NAME.match(name)
    if not m:
        raise DeidError("mask_name_invalid", "mask file name must be <UID>__<label>.png or .nii.gz")
    ext = ".nii.gz" if name.lower().endswith(".nii.gz") else ".png"
    label = _SAFE_LABEL.sub("_", m.group("label"))[:64]
    new_uid = uid(m.group("uid"))
    return f"{new_uid}__{label}{ext}", new_uid


def clean_png(data: bytes) -> tuple[bytes, tuple[int, int]]:
    """Re-encode the pixels only: text chunks, EXIF and ICC profiles do not survive."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            arr = np.asarray(im)
            mode = im.mode
    except Exception as e:  # noqa: BLE001
        raise DeidError("mask_unreadable", f"the PNG mask cannot be decoded ({type(e).__name__})") from None
    out = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(out, format="PNG", optimize=False)
    return out.getvalue(), (arr.shape[0], arr.shape[1])


def clean_nifti_gz(data: bytes) -> bytes:
    """Blank the free-text fields (descrip, aux_file, intent_name) and drop header extensions,
    which can carry a whole DICOM header; the voxel data is copied unchanged."""
    try:
        raw = gzip.decompress(data)
    except (OSError, EOFError) as e:
        raise DeidError("mask_unreadable", f"the NIfTI mask is not valid gzip ({type(e).__name__})") from None
    if len(raw) < _NIFTI1_HEADER + 4:
        raise DeidError("mask_unreadable", "the NIfTI file is shorter than its header")
    endian = "<" if struct.unpack("<i", raw[:4])[0] == _NIFTI1_HEADER else ">"
    if struct.unpack(endian + "i", raw[:4])[0] != _NIFTI1_HEADER or raw[344:347] not in (b"n+1", b"ni1"):
        raise DeidError("mask_unreadable", "not a single-file NIfTI-1 image")
    vox_offset = int(struct.unpack(endian + "f", raw[108:112])[0])
    header = bytearray(raw[:_NIFTI1_HEADER])
    header[148:228] = b"\0" * 80  # descrip
    header[228:252] = b"\0" * 24  # aux_file
    header[328:344] = b"\0" * 16  # intent_name
    header[108:112] = struct.pack(endian + "f", 352.0)
    body = raw[vox_offset:] if vox_offset >= _NIFTI1_HEADER + 4 else raw[_NIFTI1_HEADER + 4:]
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, filename="") as gz:
        gz.write(bytes(header) + b"\0\0\0\0" + body)
    return buf.getvalue()
