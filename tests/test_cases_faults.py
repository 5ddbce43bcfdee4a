"""Annotation faults are reported with a reason, never dropped: a mask of the wrong size, an
annotation whose target does not exist, an unreadable annotation file."""

import io

from PIL import Image
from pydicom.uid import generate_uid

from dicom_factory import ct_bytes, write
from medlake.cases.batch import annotate_and_count
from medlake.deid.keys import DeidKeys
from medlake.deid.zone import deidentify_batch
from medlake.landing import BatchRef
from medlake.settings import secret_key
from medlake.lake.tables import ANNOTATION_PROBLEMS, CASES


def _png(size: int) -> bytes:
    buf = io.BytesIO()
    Image.new("L", (size, size), 1).save(buf, format="PNG")
    return buf.getvalue()


def test_mask_size_target_missing_and_bad_sheet_are_reported(lakehouse):
    lh = lakehouse
    study, sop = generate_uid(), generate_uid()
    d = lh.batch_dir("tvgh", "af-cardiac-ct", "b1")
    write(d / "images" / "1.dcm", ct_bytes(patient_id="M5001", study_uid=study, sop_uid=sop, rows=8))
    write(d / "annotations" / f"{sop}__left_atrium.png", _png(4))           # image is 8x8
    write(d / "annotations" / f"{generate_uid()}__left_atrium.png", _png(8))  # no such image
    (d / "cases.csv").write_text(f"case_id,patient_id,study_instance_uids\nAF1,M5001,{study}\n")
    (d / "_READY").write_text("")
    ref = BatchRef("tvgh", "af-cardiac-ct", "b1")
    lh.ingest(*ref.key.split("/"))
    keys = DeidKeys(secret_key())
    deidentify_batch(lh.store, lh.landing, lh.registry, keys, ref)
    result = annotate_and_count(lh.store, keys, lh.registry, ref)
    codes = sorted(p["code"] for p in lh.store.read(ANNOTATION_PROBLEMS).to_pylist())
    assert codes == ["mask_size_mismatch", "target_missing"]
    assert result.unresolved == 1 and result.problems_by_code == {"mask_size_mismatch": 1, "target_missing": 1}
    cases = lh.store.read(CASES).to_pylist()
    assert [(c["annotation_status"], c["annotation_kinds"]) for c in cases] == [("full", ["mask"])]
