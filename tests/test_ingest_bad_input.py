"""Every kind of bad input from the foundation issue: a reason code, the run goes on, nothing lost."""

import os
import subprocess
import sys
import textwrap
from collections import Counter

import pytest
from pydicom.uid import generate_uid

from dicom_factory import ct_bytes, raw_dataset_bytes, write
from medlake.lake.tables import table_named
from medlake.ingest.pending import pending_batches
from medlake.lake.tables import BATCHES, SOURCE_CASES, SOURCE_INSTANCES

TEAM, DATASET = "ntu", "ccta"


def _good_batch(lh, batch="b1", n=3, patient="F223344556"):
    d = lh.batch_dir(TEAM, DATASET, batch)
    study = generate_uid()
    for i in range(n):
        write(d / "images" / "series 1" / f"IM{i:04d}", ct_bytes(patient_id=patient, study_uid=study, value=i))
    (d / "cases.csv").write_text(f"case_id,patient_id,study_instance_uids\nC001,{patient},{study}\n")
    return d, study


def _ready(d):
    (d / "_READY").write_text("")


def assert_nothing_lost(lh, batch):
    """landed = catalogued + quarantined + duplicate, and every file is in landed_files."""
    landed = lh.rows("landed_files", batch=batch)
    on_disk = sum(len(files) for _, _, files in os.walk(lh.landing_root / TEAM / DATASET / batch))
    assert len(landed) == on_disk
    status = Counter(r["status"] for r in landed)
    assert set(status) <= {"catalogued", "quarantined", "duplicate"}
    summary = lh.rows("batches", batch=batch)[-1]
    assert summary["files_landed"] == on_disk
    assert summary["files_catalogued"] + summary["files_quarantined"] + summary["files_duplicate"] == on_disk
    assert (summary["files_catalogued"], summary["files_quarantined"], summary["files_duplicate"]) == (
        status["catalogued"], status["quarantined"], status["duplicate"])
    quarantined_files = {r["path"] for r in lh.rows("quarantine", batch=batch) if r["scope"] == "file"}
    assert quarantined_files == {r["path"] for r in landed if r["status"] == "quarantined"}
    catalogued_dicom = {r["path"] for r in landed if r["status"] == "catalogued" and r["kind"].startswith(
        ("dicom", "rtstruct", "seg", "sr", "presentation", "kos"))}
    assert catalogued_dicom == {r["path"] for r in lh.rows("source_instances", batch=batch)}
    return summary


def _reasons(lh, batch):
    return {r["path"]: r["reason_code"] for r in lh.rows("quarantine", batch=batch) if r["scope"] == "file"}


def test_each_bad_file_gets_a_reason_and_the_batch_goes_on(lakehouse):
    lh = lakehouse
    d, _ = _good_batch(lh)
    good = ct_bytes(patient_id="F223344556")
    write(d / "images" / "notes.txt", b"scanner log, not an image\n" * 20)
    write(d / "images" / "cut.dcm", good[: len(good) - 40])
    write(d / "images" / "raw.dcm", raw_dataset_bytes())
    # A transfer syntax DICOM does not define, patched into the meta header at the same length.
    unknown_ts = ct_bytes(patient_id="F223344556").replace(b"1.2.840.10008.1.2.1\x00", b"1.2.3.4.5.6.7.8.9.1\x00", 1)
    write(d / "images" / "odd_ts.dcm", unknown_ts)
    write(d / "images" / "empty.dcm", b"")
    os.symlink("/etc/hostname", d / "images" / "link.dcm")
    write(d / "annotations" / "roi.json", b"{}")
    write(d / "annotations" / "bad.xml", b"<html></html>")
    write(d / "annotations" / "mask.png", b"\x89PNG\r\n\x1a\n" + b"0" * 20)
    _ready(d)
    result = lh.ingest(TEAM, DATASET, "b1")
    assert result.outcome == "ingested"
    assert _reasons(lh, "b1") == {
        "images/notes.txt": "not_dicom",
        "images/cut.dcm": "truncated_or_corrupt",
        "images/raw.dcm": "not_part10",
        "images/odd_ts.dcm": "unknown_transfer_syntax",
        "images/empty.dcm": "empty_file",
        "images/link.dcm": "symlink_not_followed",
        "annotations/roi.json": "unknown_annotation_format",
        "annotations/bad.xml": "not_aim",
        "annotations/mask.png": "mask_name_invalid",
    }
    summary = assert_nothing_lost(lh, "b1")
    assert summary["dicom_objects"] == 3 and summary["cases"] == 1
    messages = " ".join(r["message"] for r in lh.rows("quarantine", batch="b1"))
    assert "F223344556" not in messages and "WANG" not in messages


def test_unreadable_file_is_quarantined(lakehouse, tmp_path):
    """Permissions bite only a non-root reader, so as root the ingestion runs as 'nobody'."""
    lh = lakehouse
    d, _ = _good_batch(lh)
    secret = write(d / "images" / "locked.dcm", ct_bytes(patient_id="F223344556"))
    _ready(d)
    os.chmod(secret, 0)
    if os.geteuid() != 0:
        lh.ingest(TEAM, DATASET, "b1")
    else:
        for parent in tmp_path.parents:
            if parent == tmp_path.parent.parent.parent:
                break
            os.chmod(parent, parent.stat().st_mode | 0o005)  # pytest's base folders are 0700
        os.chmod(tmp_path, 0o777)
        for sub in tmp_path.rglob("*"):
            if sub != secret:
                os.chmod(sub, 0o777 if sub.is_dir() else 0o666)
        # Import as root (the interpreter lives under /root), then drop to 'nobody' for the reads.
        script = textwrap.dedent(f"""
            import encodings.utf_8_sig, os
            from medlake.ingest.batch import ingest_batch
            from medlake.lake import DeltaStore, Lake
            from medlake.landing import BatchRef, LandingZone
            from medlake.program import load_registry
            registry = load_registry({str(lh.registry.source)!r})
            os.setgid(65534); os.setuid(65534)
            ingest_batch(LandingZone({str(lh.landing_root)!r}), DeltaStore(Lake.from_root({str(lh.root / 'lake')!r})),
                         registry, BatchRef("ntu", "ccta", "b1"))
        """)
        proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
    assert _reasons(lh, "b1") == {"images/locked.dcm": "unreadable"}
    assert_nothing_lost(lh, "b1")


def test_same_sop_uid_identical_bytes_is_deduplicated(lakehouse):
    lh = lakehouse
    d, study = _good_batch(lh)
    data = ct_bytes(patient_id="F223344556", study_uid=study)
    write(d / "images" / "a" / "x.dcm", data)
    write(d / "images" / "b" / "x-copy.dcm", data)
    _ready(d)
    lh.ingest(TEAM, DATASET, "b1")
    summary = assert_nothing_lost(lh, "b1")
    assert summary["files_duplicate"] == 1
    assert summary["dicom_objects"] == 4
    assert _reasons(lh, "b1") == {}


def test_same_sop_uid_different_bytes_quarantines_both(lakehouse):
    lh = lakehouse
    d, study = _good_batch(lh)
    uid = generate_uid()
    write(d / "images" / "a.dcm", ct_bytes(patient_id="F223344556", study_uid=study, sop_uid=uid, value=1))
    write(d / "images" / "b.dcm", ct_bytes(patient_id="F223344556", study_uid=study, sop_uid=uid, value=2))
    _ready(d)
    lh.ingest(TEAM, DATASET, "b1")
    assert _reasons(lh, "b1") == {"images/a.dcm": "conflicting_sop_instance",
                                  "images/b.dcm": "conflicting_sop_instance"}
    assert uid not in {r["sop_instance_uid"] for r in lh.rows("source_instances")}
    assert_nothing_lost(lh, "b1")


def test_conflict_with_an_earlier_batch_retracts_the_earlier_copy(lakehouse):
    lh = lakehouse
    d1, study = _good_batch(lh, "b1")
    uid = generate_uid()
    write(d1 / "images" / "x.dcm", ct_bytes(patient_id="F223344556", study_uid=study, sop_uid=uid, value=1))
    _ready(d1)
    lh.ingest(TEAM, DATASET, "b1")
    assert uid in {r["sop_instance_uid"] for r in lh.rows("source_instances")}
    d2 = lh.batch_dir(TEAM, DATASET, "b2")
    write(d2 / "images" / "x.dcm", ct_bytes(patient_id="F223344556", study_uid=study, sop_uid=uid, value=2))
    (d2 / "cases.csv").write_text("case_id,patient_id,study_instance_uids\n")
    _ready(d2)
    lh.ingest(TEAM, DATASET, "b2")
    assert uid not in {r["sop_instance_uid"] for r in lh.rows("source_instances")}
    assert _reasons(lh, "b1") == {"images/x.dcm": "conflicting_sop_instance"}
    assert _reasons(lh, "b2") == {"images/x.dcm": "conflicting_sop_instance"}
    assert_nothing_lost(lh, "b1")
    assert_nothing_lost(lh, "b2")


def test_batch_without_ready_is_left_alone_until_it_appears(lakehouse):
    lh = lakehouse
    d, _ = _good_batch(lh)
    assert pending_batches(lh.landing, lh.store) == []
    _ready(d)
    assert [p.ref.key for p in pending_batches(lh.landing, lh.store)] == ["ntu/ccta/b1"]


@pytest.mark.parametrize("team,dataset,code", [
    ("nthu", "ccta", "unknown_team"),
    ("ntu", "knee-mri", "unknown_dataset"),
    ("ntu", "liver-ct", "dataset_of_other_team"),
])
def test_unknown_team_or_dataset_refuses_the_whole_batch(lakehouse, team, dataset, code):
    lh = lakehouse
    d = lh.batch_dir(team, dataset, "b1")
    write(d / "images" / "1.dcm", ct_bytes())
    (d / "cases.csv").write_text("case_id,patient_id,study_instance_uids\n")
    _ready(d)
    result = lh.ingest(team, dataset, "b1")
    assert result.outcome == "refused" and result.reason_code == code
    batch_rows = [r for r in lh.rows("quarantine") if r["scope"] == "batch"]
    assert [r["reason_code"] for r in batch_rows] == [code]
    assert {r["status"] for r in lh.rows("landed_files")} == {"quarantined"}
    assert lh.store.read(BATCHES).to_pylist()[0]["status"] == "refused"
    assert not lh.store.exists(SOURCE_INSTANCES)


def test_files_outside_content_folders_refuse_the_batch(lakehouse):
    lh = lakehouse
    d, _ = _good_batch(lh)
    write(d / "README.txt", b"export notes")
    _ready(d)
    assert lh.ingest(TEAM, DATASET, "b1").reason_code == "files_outside_content_dirs"
    assert_nothing_lost(lh, "b1")


def test_cases_manifest_missing(lakehouse):
    lh = lakehouse
    d, _ = _good_batch(lh)
    (d / "cases.csv").unlink()
    _ready(d)
    result = lh.ingest(TEAM, DATASET, "b1")
    assert result.outcome == "ingested" and result.cases == 0 and result.dicom_objects == 3
    assert [(r["scope"], r["reason_code"]) for r in lh.rows("quarantine")] == [("batch", "cases_manifest_missing")]
    assert_nothing_lost(lh, "b1")


def test_cases_manifest_missing_columns(lakehouse):
    lh = lakehouse
    d, _ = _good_batch(lh)
    (d / "cases.csv").write_text("case_id,study_instance_uids\nC1,1.2.3\n")
    _ready(d)
    lh.ingest(TEAM, DATASET, "b1")
    q = lh.rows("quarantine")
    assert [(r["path"], r["reason_code"]) for r in q] == [("cases.csv", "cases_manifest_invalid")]
    assert "patient_id" in q[0]["message"]
    assert_nothing_lost(lh, "b1")


def test_case_rows_checked_against_images(lakehouse):
    lh = lakehouse
    d, study = _good_batch(lh)
    (d / "cases.csv").write_bytes(
        ("\ufeffcase_id,patient_id,study_instance_uids,shareable,consent_class,note\n"
         f"C001,F223344556,{study},yes,A,seen by Dr Lin\n"
         "C002,F223344556,1.2.999.1,yes,B,\n"
         f"C003,Q199887766,{study},no,C,\n"
         f"C001,F223344556,{study},yes,A,\n"
         f"C004,F223344556,{study},maybe,A,\n").encode("utf-8"))
    _ready(d)
    lh.ingest(TEAM, DATASET, "b1")
    rows = {r["line"]: r["reason_code"] for r in lh.rows("quarantine") if r["scope"] == "row"}
    assert rows == {3: "case_study_missing", 4: "case_patient_mismatch", 5: "duplicate_case_id",
                    6: "case_row_invalid"}
    cases = lh.rows("source_cases")
    assert [(c["case_id"], c["shareable"], c["consent_class"]) for c in cases] == [("C001", True, "A")]
    assert "note" not in lh.store.read(SOURCE_CASES).column_names
    summary = assert_nothing_lost(lh, "b1")
    assert summary["case_rows_rejected"] == 4


def test_rerun_adds_nothing_and_changed_batch_is_refused(lakehouse):
    lh = lakehouse
    d, _ = _good_batch(lh)
    _ready(d)
    lh.ingest(TEAM, DATASET, "b1")
    versions = {t: lh.store.version(table_named("restricted", t)) for t in ("landed_files", "source_instances", "batches")}
    counts = {t: len(lh.rows(t)) for t in ("landed_files", "source_instances", "source_cases", "batches")}
    again = lh.ingest(TEAM, DATASET, "b1")
    assert again.outcome == "unchanged"
    assert {t: lh.store.version(table_named("restricted", t)) for t in versions} == versions
    # Touching files (new mtimes, same bytes) re-reads them but still adds no row.
    for p in d.rglob("*"):
        if p.is_file():
            os.utime(p, ns=(p.stat().st_mtime_ns + 10**9,) * 2)
    assert lh.ingest(TEAM, DATASET, "b1").outcome == "ingested"
    assert {t: len(lh.rows(t)) for t in counts} == counts
    # Different content under a finished batch's name is refused; the first delivery stays.
    write(d / "images" / "series 1" / "IM0001", ct_bytes(patient_id="F223344556", value=99))
    changed = lh.ingest(TEAM, DATASET, "b1")
    assert changed.outcome == "refused" and changed.reason_code == "batch_changed"
    assert len(lh.rows("source_instances")) == counts["source_instances"]
    statuses = sorted(r["status"] for r in lh.rows("batches"))
    assert statuses == ["ingested", "refused"]
    assert any(r["reason_code"] == "batch_changed" for r in lh.rows("quarantine"))
    # ...and it is not retried on every run.
    assert pending_batches(lh.landing, lh.store) == []


def test_large_objects_are_streamed(lakehouse, monkeypatch):
    """Objects above the in-memory limit are hashed in chunks and only their header is parsed."""
    import hashlib

    import medlake.ingest.batch as batch_mod
    monkeypatch.setattr(batch_mod, "WHOLE_READ_LIMIT", 1024)
    lh = lakehouse
    d, study = _good_batch(lh, n=0)
    big = ct_bytes(patient_id="F223344556", study_uid=study, rows=64)
    write(d / "images" / "big.dcm", big)
    write(d / "images" / "big-cut.dcm", big[:-100])
    _ready(d)
    lh.ingest(TEAM, DATASET, "b1")
    assert _reasons(lh, "b1") == {"images/big-cut.dcm": "truncated_or_corrupt"}
    inst = lh.rows("source_instances")
    assert len(inst) == 1 and inst[0]["sha256"] == hashlib.sha256(big).hexdigest()
    assert inst[0]["rows"] == 64 and inst[0]["pixel_data_offset"] > 0
