"""The table API (medlake.lake.delta): one declared Arrow schema per table, enforced on every write
and read; read-modify-writes that never lose a concurrent writer's rows; legacy lakes brought to the
declared types."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from medlake.lake import DeltaStore, Lake
from medlake.lake.delta import TableSchemaError
from medlake.lake.migrate import ensure_current, normalise
from medlake.consent.tables import CONSENT_STATUS
from medlake.lake.tables import BATCHES, CASES, QUARANTINE, SOURCE_CASES, VAULT, every_table

REPO = Path(__file__).resolve().parent.parent
MEDLAKE = Path(sys.executable).with_name("medlake")


@pytest.fixture
def store(tmp_path) -> DeltaStore:
    return DeltaStore(Lake.from_root(str(tmp_path / "lake")))


def _case(i: int, team: str = "ntu", dataset: str = "ccta", **changes) -> dict:
    return {"team": team, "dataset": dataset, "case_pseudonym": f"CASE-{i:04d}", "patient_pseudonym": f"PSN-{i:04d}",
            "part": "shared", "study_instance_uids": [f"2.25.{i}"], "instances": 1, "frames": 1, "slides": 0,
            "modalities": ["CT"], "annotation_kinds": [], "annotation_status": "image_only",
            "label_source": "physician", "shareable": True, "consent_class": "A", **changes}


def _physical_types(uri: str) -> set[str]:
    """Every column type written in any data file of a Delta table (current or not)."""
    out = set()
    for f in glob.glob(f"{uri}/**/*.parquet", recursive=True):
        out |= {str(field.type) for field in pq.read_schema(f)}
    return out


def _view_types(types: set[str]) -> set[str]:
    return {t for t in types if "view" in t}


def test_every_write_shape_leaves_files_in_the_declared_types(store):
    slice_ = {"team": "ntu", "dataset": "ccta"}
    store.append(CASES, [_case(i) for i in range(3)])
    store.merge(CASES, [_case(1, annotation_status="full"), _case(7)], slice_)
    store.delete(CASES, slice_, pads.field("case_pseudonym") == "CASE-0000")
    store.rewrite(CASES, slice_, lambda rows: rows.filter(pads.field("case_pseudonym") != "CASE-0002"))
    store.replace(CASES, [_case(9, dataset="ffr")], {"team": "ntu", "dataset": "ffr"})
    assert not _view_types(_physical_types(store.uri(CASES)))
    got = store.read(CASES, ["case_pseudonym", "annotation_status"], where={"team": "ntu", "dataset": "ccta"})
    assert sorted(got.to_pylist(), key=lambda r: r["case_pseudonym"]) == [
        {"case_pseudonym": "CASE-0001", "annotation_status": "full"},
        {"case_pseudonym": "CASE-0007", "annotation_status": "image_only"}]
    # Filtered reads on string columns: what failed with "no kernel matching (string, string_view)".
    assert store.count(CASES, where=pads.field("case_pseudonym") >= "CASE-0005") == 2
    assert store.read(CASES).schema == CASES.schema


def test_rows_that_do_not_fit_the_schema_are_refused_naming_table_and_column(store):
    with pytest.raises(TableSchemaError, match="deid/cases has no column patient_id"):
        store.append(CASES, pa.Table.from_pylist([_case(1)]).append_column("patient_id", pa.array(["A1"])))
    with pytest.raises(TableSchemaError, match="deid/cases: column annotation_status may not be null"):
        store.append(CASES, [_case(1, annotation_status=None)])
    with pytest.raises(TableSchemaError, match="deid/cases: column instances is string"):
        store.append(CASES, pa.Table.from_pylist([_case(1)]).set_column(6, "instances", pa.array(["many"])))
    with pytest.raises(TableSchemaError, match="rows outside the slice"):
        store.replace(CASES, [_case(1, dataset="ffr")], {"team": "ntu", "dataset": "ccta"})
    assert not store.exists(CASES), "nothing may be written when rows are refused"


def test_a_repeat_merge_writes_no_commit(store):
    slice_ = {"team": "ntu", "dataset": "ccta"}
    v = store.merge(CASES, [_case(1), _case(2)], slice_)
    assert store.merge(CASES, [_case(2), _case(1)], slice_) == v
    assert store.merge(CASES, [_case(2)], slice_, update=False) == v


def test_a_rewrite_that_loses_a_race_is_recomputed_from_the_new_snapshot(store):
    """Another writer commits to the slice after the rewrite read it: its rows must survive, and the
    change runs again on the rows as they now are."""
    slice_ = {"team": "ntu"}
    store.append(VAULT, [_vault("P1")])
    seen: list[list[str]] = []

    def add_p3(current: pa.Table) -> list[dict]:
        seen.append(sorted(current.column("patient_id").to_pylist()))
        if len(seen) == 1:  # the other writer gets in between our read and our commit
            store.merge(VAULT, [_vault("P2")], slice_, update=False)
        return current.to_pylist() + [_vault("P3")]

    store.rewrite(VAULT, slice_, add_p3)
    assert seen == [["P1"], ["P1", "P2"]]
    assert sorted(store.read(VAULT).column("patient_id").to_pylist()) == ["P1", "P2", "P3"]


def test_writers_of_other_slices_do_not_force_a_recompute(store):
    store.append(VAULT, [_vault("P1"), _vault("Q1", team="tmu")])
    calls = []

    def add(current: pa.Table) -> list[dict]:
        calls.append(1)
        if len(calls) == 1:
            store.merge(VAULT, [_vault("Q2", team="tmu")], {"team": "tmu"})
        return current.to_pylist() + [_vault("P2")]

    store.rewrite(VAULT, {"team": "ntu"}, add)
    assert len(calls) == 1
    assert sorted(store.read(VAULT).column("patient_id").to_pylist()) == ["P1", "P2", "Q1", "Q2"]


def _vault(pid: str, team: str = "ntu") -> dict:
    import datetime as dt

    return {"team": team, "patient_id": pid, "pseudonym": f"PSN-{pid}", "date_shift_days": -10, "key_check": "k",
            "first_batch": "b1", "recorded_at": dt.datetime(2019, 9, 1, tzinfo=dt.timezone.utc)}


def test_a_delete_names_only_the_slice_in_the_commit_log(store):
    store.append(CASES, [_case(i) for i in range(4)])
    assert store.delete(CASES, {"team": "ntu"}, pads.field("patient_pseudonym").isin(["PSN-0002"])) == 1
    assert store.delete(CASES, {"team": "ntu"}, pads.field("patient_pseudonym").isin(["PSN-0002"])) == 0
    logs = sorted(glob.glob(f"{store.uri(CASES)}/_delta_log/*.json"))
    assert len(logs) == 2, "a delete that matches nothing commits nothing"
    last = Path(logs[-1]).read_text()
    info = next(json.loads(line)["commitInfo"] for line in last.splitlines() if "commitInfo" in line)
    assert info["operationParameters"]["predicate"] == "team = 'ntu'"
    assert "PSN-0002" not in last


def test_columns_a_definition_gains_are_added_to_older_tables(store, tmp_path):
    old = [c for c in QUARANTINE.column_names if c != "message"]
    row = {"team": "ntu", "dataset": "ccta", "batch": "b1", "path": "images/a.dcm", "scope": "file", "line": 0,
           "reason_code": "not_dicom", "message": "not DICOM",
           "detected_at": __import__("datetime").datetime(2019, 9, 1, tzinfo=__import__("datetime").timezone.utc)}
    write_deltalake(store.uri(QUARANTINE), QUARANTINE.from_rows([row]).select(old), partition_by=["team"])
    store.append(QUARANTINE, [{**row, "path": "images/b.dcm"}])
    got = store.read(QUARANTINE, ["path", "message"]).to_pylist()
    assert sorted(got, key=lambda r: r["path"]) == [{"path": "images/a.dcm", "message": None},
                                                     {"path": "images/b.dcm", "message": "not DICOM"}]


def test_a_legacy_lake_with_string_view_files_is_rewritten_once(store):
    """A table that delta-rs's own MERGE wrote (as medlake did before its table API owned writes)."""
    store.append(CASES, [_case(i) for i in range(3)])
    store.append(BATCHES, [_batch("b1")])
    DeltaTable(store.uri(CASES)).merge(
        CASES.from_rows([_case(1, annotation_status="full")]), predicate="t.case_pseudonym = s.case_pseudonym",
        source_alias="s", target_alias="t").when_matched_update_all().when_not_matched_insert_all().execute()
    assert _view_types(_physical_types(store.uri(CASES))), "delta-rs's MERGE no longer writes string_view"
    with pytest.raises(pa.ArrowNotImplementedError):
        store.read(CASES, where=pads.field("case_pseudonym") >= "CASE-0001")
    before = store.version(BATCHES)
    assert ensure_current(store) == ["deid/cases"]
    assert store.version(BATCHES) == before, "a table already in its declared types is left alone"
    got = store.read(CASES, ["case_pseudonym", "annotation_status"], where=pads.field("case_pseudonym") >= "CASE-0001")
    assert sorted(r["annotation_status"] for r in got.to_pylist()) == ["full", "image_only"]
    assert ensure_current(store) == []
    assert not normalise(store, CASES)
    assert json.loads((Path(store.lake.root) / "restricted" / "_medlake_format.json").read_text())["lake_format"] >= 2


def _batch(name: str) -> dict:
    import datetime as dt

    return {"team": "ntu", "dataset": "ccta", "batch": name, "content_digest": "d", "listing_fingerprint": "f",
            "status": "ingested", "files_landed": 1, "files_catalogued": 1, "files_quarantined": 0,
            "files_duplicate": 0, "dicom_objects": 1, "slides": 0, "cases": 1, "case_rows_rejected": 0, "bytes": 1,
            "ingested_at": dt.datetime(2019, 9, 1, tzinfo=dt.timezone.utc), "duration_s": 0.1}


def test_vacuum_after_a_purge_spares_files_another_writer_has_not_committed_yet(store):
    from medlake.consent.withdrawal import vacuum

    store.append(CASES, [_case(i) for i in range(3)])
    store.delete(CASES, {"team": "ntu"}, pads.field("case_pseudonym") == "CASE-0001")
    pending = Path(store.uri(CASES)) / "team=ntu" / "part-00000-a-writer-still-writing-c000.snappy.parquet"
    pq.write_table(CASES.from_rows([_case(5)]), pending)
    assert vacuum(store, CASES) >= 1
    assert pending.exists()
    assert store.count(CASES) == 2


def test_every_table_is_defined_once_with_its_keys_among_its_columns():
    names = [(t.zone, t.name) for t in every_table()]
    assert len(names) == len(set(names)) >= 30
    for t in every_table():
        assert set(t.keys) <= set(t.column_names) and set(t.partition_by) <= set(t.column_names)


def test_a_dataset_delivered_in_two_batches_runs_clean_and_releases(tmp_path):
    """Issue 14, defect 1 as a user met it: the second batch's merge left two string types in
    deid/cases and every later programme refresh failed. Batch folder names of 64+ characters too."""
    home = tmp_path / "home"
    env = {**os.environ, "MEDLAKE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
           "MEDLAKE_PROGRAM": str(REPO / "config" / "program.yaml"), "MEDLAKE_AS_OF": "2019-10-15"}
    subprocess.run([str(MEDLAKE), "synth", "--out", str(home / "landing"), "--datasets", "ccta", "--cases", "12",
                    "--batches", "2", "--tiny"], env=env, check=True, capture_output=True)
    batches = sorted((home / "landing" / "ntu" / "ccta").iterdir())
    assert len(batches) == 2
    batches[1].rename(batches[1].with_name(batches[1].name + "-" + "resent-after-review-" * 4))
    run = subprocess.run([str(MEDLAKE), "run"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    lake = home / "lake"
    for t in every_table():
        uri = lake / t.zone / t.name
        if uri.is_dir():
            assert not _view_types(_physical_types(str(uri))), f"{t.zone}/{t.name}"
    assert glob.glob(str(home / "releases" / "*" / "ntu" / "ccta" / "v1" / "release.json"))
    store = DeltaStore(Lake.from_root(str(lake)))
    cases = store.read(CASES)
    # Every case of both batches, once, except those of patients the synthetic consent files withdrew.
    landed = store.read(SOURCE_CASES, ["patient_id"]).column(0).to_pylist()
    status = store.read(CONSENT_STATUS, ["patient_id", "reason"]).to_pylist()
    gone = {r["patient_id"] for r in status if r["reason"] in ("consent_withdrawn", "consent_opted_out")}
    assert len(landed) == 12
    assert cases.num_rows == len(set(cases.column("case_pseudonym").to_pylist())) == 12 - len(set(landed) & gone)
