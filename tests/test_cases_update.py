"""A batch's cases merged into deid/cases give the table a rebuild of the whole dataset would give:
with an annotation that reaches a case of an earlier batch, after a patient withdraws, and when the
table was damaged or the registry changed (the dataset is then rebuilt)."""

import io

import pyarrow as pa
from deltalake import write_deltalake
from PIL import Image
from pydicom.uid import generate_uid

from conftest import registry_with
from dicom_factory import ct_bytes, write
from medlake.cases.batch import annotate_and_count
from medlake.cases.build import build_cases
from medlake.cases.update import plan_update
from medlake.deid.keys import DeidKeys
from medlake.deid.zone import deidentify_batch
from medlake.landing import BatchRef
from medlake.settings import secret_key
import pyarrow.dataset as pads

from medlake.lake.tables import CASES, CONSENT_EVENTS

TEAM, DATASET = "tvgh", "af-cardiac-ct"


def _mask() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (8, 8), 1).save(buf, format="PNG")
    return buf.getvalue()


def _deliver(lh, batch: str, cases: list[tuple[str, str]], masks_on: list[str] = (),
             masked: bool = False) -> dict[str, str]:
    """Cases (case id, patient id), one study and one 8x8 CT image each (with a mask when `masked`),
    and masks on the given images of earlier batches; returns {case id: image SOP UID}."""
    d = lh.batch_dir(TEAM, DATASET, batch)
    lines, sops = ["case_id,patient_id,study_instance_uids"], {}
    for case, patient in cases:
        study, sops[case] = generate_uid(), generate_uid()
        write(d / "images" / f"{case}.dcm", ct_bytes(patient_id=patient, study_uid=study, sop_uid=sops[case], rows=8))
        lines.append(f"{case},{patient},{study}")
    for sop in [*masks_on, *(sops.values() if masked else ())]:
        write(d / "annotations" / f"{sop}__left_atrium.png", _mask())
    (d / "cases.csv").write_text("\n".join(lines) + "\n")
    (d / "_READY").write_text("")
    ref = BatchRef(TEAM, DATASET, batch)
    lh.ingest(TEAM, DATASET, batch)
    deidentify_batch(lh.store, lh.landing, lh.registry, DeidKeys(secret_key()), ref)
    return sops


def _step(lh, batch: str, registry=None):
    return annotate_and_count(lh.store, DeidKeys(secret_key()), registry or lh.registry, BatchRef(TEAM, DATASET, batch))


def _plan(lh, batch: str, registry=None):
    keys = DeidKeys(secret_key())
    return plan_update(lh.store, keys, registry or lh.registry, TEAM, DATASET, batch,
                       keys.batch_ref(TEAM, DATASET, batch))


def _table(lh) -> list[dict]:
    return sorted(lh.store.read(CASES).to_pylist(), key=lambda r: r["case_pseudonym"])


def _rebuilt(lh, registry=None) -> list[dict]:
    t = build_cases(lh.store, DeidKeys(secret_key()), registry or lh.registry, TEAM, DATASET)
    return sorted(t.to_pylist(), key=lambda r: r["case_pseudonym"])


def test_merged_cases_equal_a_rebuild_batch_after_batch(lakehouse):
    lh = lakehouse
    first = _deliver(lh, "b1", [("AF1", "M5001"), ("AF2", "M5002"), ("AF3", "M5003")])
    assert _plan(lh, "b1") is None, "nothing to merge into: the first batch builds the dataset"
    _step(lh, "b1")
    assert [r["annotation_status"] for r in _table(lh)] == ["image_only"] * 3

    # b2's masks: one on its own image, one on an image of b1 (AF1 becomes full in b2's step).
    _deliver(lh, "b2", [("AF4", "M5004")], masks_on=[first["AF1"]], masked=True)
    assert _plan(lh, "b2") is not None
    result = _step(lh, "b2")
    assert _table(lh) == _rebuilt(lh)
    assert result.cases == 4 and result.status == {"image_only": 2, "full": 2} and result.cases_without_images == 0

    # A patient of b1 withdraws: the next batch's update leaves the case out, as a rebuild does.
    write_deltalake(lh.store.uri(CONSENT_EVENTS),
                    pa.table({"team": [TEAM], "patient_id": ["M5002"], "event": ["withdrawn"]}))
    _deliver(lh, "b3", [("AF5", "M5005")])
    assert _plan(lh, "b3") is not None
    assert _step(lh, "b3").cases == 4
    assert _table(lh) == _rebuilt(lh)
    assert len(_table(lh)) == 4


def test_a_damaged_table_or_a_changed_registry_rebuilds_the_dataset(lakehouse):
    lh = lakehouse
    _deliver(lh, "b1", [("AF1", "M5001"), ("AF2", "M5002")], masked=True)
    _step(lh, "b1")
    lost = _table(lh)[0]["case_pseudonym"]
    lh.store.delete(CASES, {}, pads.field("case_pseudonym") == lost)
    _deliver(lh, "b2", [("AF3", "M5003")])
    assert _plan(lh, "b2") is None, "a case is missing: the update cannot tell which"
    _step(lh, "b2")
    assert _table(lh) == _rebuilt(lh) and lost in {r["case_pseudonym"] for r in _table(lh)}

    changed = registry_with(lh.registry, DATASET, required_annotation_kinds=["mask", "label"])
    _deliver(lh, "b3", [("AF4", "M5004")])
    assert _plan(lh, "b3") is not None and _plan(lh, "b3", changed) is None
    _step(lh, "b3", changed)
    assert _table(lh) == _rebuilt(lh, changed)
    assert sorted(r["annotation_status"] for r in _table(lh)) == ["image_only", "image_only", "partial", "partial"]
