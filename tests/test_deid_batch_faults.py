"""Faults in a de-identified batch: what cannot be made safe is quarantined, never shipped, and a
leak the de-identifier did not see fails the batch's blocking identifier check."""

import random

import dagster as dg
import numpy as np
import pydicom
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, generate_uid

from dicom_factory import ct_dataset, write
from medlake.deid.keys import DeidKeys
from medlake.deid.zone import deidentify_batch
from medlake.landing import BatchRef
from medlake.settings import Settings, secret_key
from medlake.synth.identities import national_id
from pipelines.definitions import build_definitions
from pipelines.partitions import EXPORT_BATCHES
from medlake.lake.tables import DEID_QUARANTINE, IDENTIFIER_CHECKS, INSTANCES


def _save(ds) -> bytes:
    import io

    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def _xray(patient: str, study: str, burned_in: bool, broken_pixels: bool = False) -> bytes:
    ds = ct_dataset(patient_id=patient, study_uid=study, rows=32)
    ds.Modality = "DX"
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.BurnedInAnnotation = "YES" if burned_in else "NO"
    if broken_pixels:
        # Declared JPEG, but the fragment is not a JPEG stream: nobody can decode it.
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.PixelData = encapsulate([b"\xff\xd8 not a jpeg at all \xff\xd9"])
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    else:
        ds.PixelData = np.full((32, 32), 100, np.int16).tobytes()
    return _save(ds)


def _batch(lh, dataset: str, files: dict[str, bytes], patient: str, study: str):
    team = lh.registry.dataset(dataset).team
    d = lh.batch_dir(team, dataset, "b1")
    for name, data in files.items():
        write(d / "images" / name, data)
    (d / "cases.csv").write_text(f"case_id,patient_id,study_instance_uids\nK1,{patient},{study}\n")
    (d / "_READY").write_text("")
    return BatchRef(team, dataset, "b1")


def test_undecodable_pixels_are_quarantined_not_shipped(lakehouse):
    lh = lakehouse
    study = generate_uid()
    ref = _batch(lh, "spine-xray-fracture", {
        "good.dcm": _xray("S2001", study, burned_in=True),
        "broken.dcm": _xray("S2001", study, burned_in=True, broken_pixels=True),
    }, "S2001", study)
    assert lh.ingest(ref.team, ref.dataset, ref.batch).dicom_objects == 2
    r = deidentify_batch(lh.store, lh.landing, lh.registry, DeidKeys(secret_key()), ref)
    assert r.instances == 1 and r.quarantined == 1
    q = lh.store.read(DEID_QUARANTINE).to_pylist()
    assert [(x["path"], x["reason_code"]) for x in q] == [("images/broken.dcm", "undecodable_pixels")]
    shipped = lh.store.read(INSTANCES).to_pylist()
    assert len(shipped) == 1 and shipped[0]["pixels_cleaned"] and shipped[0]["burned_in_annotation"] == "NO"
    out = pydicom.dcmread(lh.root / "lake" / shipped[0]["object_path"])
    assert out.PatientID.startswith("PSN-") and "S2001" not in str(out)


def test_a_leak_fails_the_blocking_identifier_check(lakehouse):
    lh = lakehouse
    study = generate_uid()
    leaky = ct_dataset(patient_id="C7001", study_uid=study)
    # A national ID typed into an attribute the profile keeps: only the checker can catch it.
    leaky.BodyPartExamined = national_id(random.Random(3), "F")
    ref = _batch(lh, "liver-ct", {"leaky.dcm": _save(leaky)}, "C7001", study)
    defs = build_definitions(Settings.from_env({"MEDLAKE_HOME": str(lh.root),
                                                "MEDLAKE_PROGRAM": lh.registry.source}))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(EXPORT_BATCHES.name, [ref.key])
        result = defs.resolve_job_def("process_export_batch").execute_in_process(
            partition_key=ref.key, instance=instance, raise_on_error=False)
        assert not result.success
        evaluations = [e.asset_check_evaluation_data for e in result.all_events
                       if e.event_type_value == "ASSET_CHECK_EVALUATION"
                       and e.asset_check_evaluation_data.check_name == "no_identifiers_in_deid_batch"]
        assert len(evaluations) == 1 and not evaluations[0].passed
        # Found in the object, in deid/instances' data and in its Delta log statistics.
        by_kind = evaluations[0].metadata["by_kind"].value
        assert evaluations[0].metadata["tables_scanned_whole"].value == [], "each table read for this batch only"
        assert set(by_kind) == {"national_id_pattern"} and by_kind["national_id_pattern"] >= 3
    checks = lh.store.read(IDENTIFIER_CHECKS).to_pylist()
    assert [c["passed"] for c in checks] == [False]
