"""The synthetic programme through ingestion (and the CLI): everything catalogued, nothing lost."""

import os
import subprocess
import sys
from collections import Counter

import pytest

from medlake.ingest.batch import ingest_batch
from medlake.ingest.pending import pending_batches
from medlake.synth import SynthSpec, generate, load_truth


@pytest.fixture(scope="module")
def ingested(tmp_path_factory, registry):
    from conftest import Lakehouse

    lh = Lakehouse(tmp_path_factory.mktemp("programme"), registry)
    report = generate(lh.landing_root, registry, SynthSpec(cases=3, seed=7, batches=1))
    truth = load_truth(report.truth_path)
    results = [ingest_batch(lh.landing, lh.store, registry, p.ref) for p in pending_batches(lh.landing, lh.store)]
    return lh, truth, results


def test_every_batch_of_every_dataset_is_ingested(ingested, registry):
    lh, truth, results = ingested
    assert {(r.team, r.dataset) for r in results} == {(d.team, d.id) for d in registry.datasets}
    assert all(r.outcome == "ingested" for r in results)
    assert sum(r.files_quarantined for r in results) == 0, Counter(
        k for r in results for k in r.quarantine_by_reason)


def test_catalogue_matches_the_truth_file(ingested):
    lh, truth, _ = ingested
    objects = {(o["team"], o["dataset"], o["batch"], o["path"]): o for o in truth["objects"]}
    landed = {(r["team"], r["dataset"], r["batch"], r["path"]): r for r in lh.rows("landed_files")}
    for key, obj in objects.items():
        assert landed[key]["status"] == "catalogued", key
        assert landed[key]["kind"] == obj["kind"], key
    sop_uids = {r["sop_instance_uid"] for r in lh.rows("source_instances")}
    assert sop_uids == {o["sop_instance_uid"] for o in truth["objects"] if o["sop_instance_uid"]}
    cases = {(c["team"], c["dataset"], c["case_id"]): c for c in lh.rows("source_cases")}
    assert set(cases) == {(c["team"], c["dataset"], c["case_id"]) for c in truth["cases"]}
    for c in truth["cases"]:
        row = cases[(c["team"], c["dataset"], c["case_id"])]
        assert row["patient_id"] == c["patient_id"]
        assert row["study_instance_uids"] == c["study_instance_uids"]
        assert row["shareable"] == (c["shareable"] == "yes")
        assert row["label_source"] == c["label_source"]
    slides = lh.rows("source_slides")
    assert slides and all(s["has_label"] and s["study_instance_uid"] for s in slides)


def test_landed_equals_catalogued_plus_quarantined_plus_duplicate(ingested):
    lh, _, _ = ingested
    for b in lh.rows("batches"):
        on_disk = sum(len(f) for _, _, f in os.walk(lh.landing_root / b["team"] / b["dataset"] / b["batch"]))
        assert b["files_landed"] == on_disk == b["files_catalogued"] + b["files_quarantined"] + b["files_duplicate"]


def test_cli_run_refuses_without_a_secret_key_and_names_a_broken_registry(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MEDLAKE_SECRET_KEY"}
    env["MEDLAKE_HOME"] = str(tmp_path)
    medlake = os.path.join(os.path.dirname(sys.executable), "medlake")
    no_key = subprocess.run([medlake, "run"], env=env, capture_output=True, text=True)
    assert no_key.returncode == 2 and "MEDLAKE_SECRET_KEY" in no_key.stderr
    broken = tmp_path / "program.yaml"
    broken.write_text("schema_version: 1\nprogramme: {id: x}\n", encoding="utf-8")
    env.update(MEDLAKE_SECRET_KEY="k" * 40, MEDLAKE_PROGRAM=str(broken))
    bad = subprocess.run([medlake, "run"], env=env, capture_output=True, text=True)
    assert bad.returncode == 2
    assert str(broken) in bad.stderr and "programme" in bad.stderr and "Traceback" not in bad.stderr


def test_demo_builds_everything_and_says_where_to_look(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "MEDLAKE_SECRET_KEY"}
    env["MEDLAKE_HOME"] = str(tmp_path / "home")
    medlake = os.path.join(os.path.dirname(sys.executable), "medlake")
    out = subprocess.run([medlake, "demo", "--cases", "2"], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Made a demo secret key" in out.stdout
    assert (tmp_path / "home" / "lake" / "restricted" / "batches" / "_delta_log").is_dir()
    assert str(tmp_path / "home" / "lake") in out.stdout and "Where to look" in out.stdout
    for dataset in ("ccta", "lung-pathology", "hand-foot-xray-ra"):
        assert dataset in out.stdout
    again = subprocess.run([medlake, "run"], env={**env, "MEDLAKE_SECRET_KEY": "k" * 40},
                           capture_output=True, text=True)
    assert again.returncode == 0 and "Nothing new" in again.stdout
