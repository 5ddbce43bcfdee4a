"""Every zone in buckets of a real S3-compatible server on loopback: the landing sensor sees the
batches, ingestion, de-identification, the identifier check, cases and the programme job run
against s3:// URIs, and nothing is left on the local disk but the cache."""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg
import pytest

from medlake.lake import DeltaStore, Lake
from medlake.lake.objects import ObjectStore, StorageError
from medlake.settings import Settings
from medlake.synth import SynthSpec, generate
from pipelines.definitions import build_definitions
from pipelines.runner import run_pending
from s3server import S3Server, s3_environment
from sensors.landing import landing_sensor
from medlake.lake.tables import BATCHES, CASES, IDENTIFIER_CHECKS, INSTANCES, SLIDES, SOURCE_INSTANCES


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    server = S3Server()
    server.start()
    try:
        with s3_environment(server), pytest.MonkeyPatch.context() as mp:
            mp.setenv("MEDLAKE_CACHE", str(tmp_path_factory.mktemp("cache")))
            for bucket in ("landing", "lake", "releases"):
                server.make_bucket(bucket)
            yield server
    finally:
        server.stop()


def upload_tree(local: Path, uri: str) -> int:
    store = ObjectStore(uri)
    n = 0
    for p in sorted(local.rglob("*")):
        if p.is_file():
            rel = p.relative_to(local).as_posix()
            dst = store.path(rel)
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_bytes(p.read_bytes())
            n += store.upload([rel])
    return n


@pytest.fixture(scope="module")
def programme(s3, tmp_path_factory, registry):
    local = tmp_path_factory.mktemp("exports")
    generate(local, registry, SynthSpec(datasets=("ccta", "lung-pathology"), cases=12, tiny=True, seed=5))
    assert upload_tree(local, "s3://landing/exports") > 20
    home = tmp_path_factory.mktemp("home")
    settings = Settings.from_env({"MEDLAKE_HOME": str(home), "MEDLAKE_PROGRAM": registry.source,
                                  "MEDLAKE_LANDING": "s3://landing/exports", "MEDLAKE_LAKE": "s3://lake/lake",
                                  "MEDLAKE_RELEASES": "s3://releases/out"})
    return settings, home


def test_landing_sensor_lists_batches_in_a_bucket(programme):
    settings, _ = programme
    defs = build_definitions(settings)
    with dg.instance_for_test() as instance:
        result = landing_sensor(dg.build_sensor_context(instance=instance, resources=defs.resources))
        keys = sorted(r.partition_key for r in result.run_requests)
    assert keys == ["ntu/ccta/2019-09-15-a", "tmu/lung-pathology/2019-09-15-a"]


def test_the_whole_graph_runs_against_buckets(programme):
    settings, home = programme
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDLAKE_AS_OF", "2019-09-15")
        run = run_pending(settings)
    assert run.ok and len(run.batches) == 2, run.failed
    store = DeltaStore(Lake.from_root(settings.lake))
    instances = store.read(INSTANCES)
    slides = store.read(SLIDES)
    assert instances.num_rows > 0 and slides.num_rows > 0
    assert store.read(CASES).num_rows > 0
    checks = store.read(IDENTIFIER_CHECKS).to_pylist()
    assert len(checks) == 2 and all(c["passed"] for c in checks)
    # The de-identified objects are in the bucket, every one the tables name.
    lake = ObjectStore(settings.lake)
    in_bucket = {p for p, _, _ in lake.listing("deid/objects")}
    named = {p[len("deid/objects/"):] for t in (instances, slides) for p in t.column("object_path").to_pylist()}
    assert named and named <= in_bucket
    assert {p for p, _, _ in lake.listing("catalog")} >= {"medlake.duckdb"}
    assert lake.exists("program/dashboard/index.html")
    assert any(p.endswith("ccta.md") for p, _, _ in lake.listing("program/dataset_cards"))
    # Releases in their bucket: complete versions, `latest` naming one, objects copied from the lake.
    releases = ObjectStore(settings.releases)
    published = {p for p, _, _ in releases.listing()}
    assert releases.read_bytes("collaboration/ntu/ccta/latest").decode().strip() == "v1"
    assert {"collaboration/ntu/ccta/v1/release.json", "collaboration/ntu/ccta/v1/MANIFEST.sha256",
            "collaboration/ntu/ccta/v1/DATASET_CARD.md", "review/tmu/lung-pathology/latest"} <= published
    manifest = releases.read_bytes("collaboration/ntu/ccta/v1/MANIFEST.sha256").decode().splitlines()
    objects = [line.split("  ", 1)[1] for line in manifest if "  objects/" in line]
    assert objects and all(f"collaboration/ntu/ccta/v1/{o}" in published for o in objects)
    assert any(p.startswith("applications/app-2019-001/v1/ccta/objects/") for p in published)
    # Nothing of the lake or the releases on the local disk outside the cache.
    assert not (home / "lake").exists() and not (home / "releases").exists()
    # A second run finds nothing new: the landing listing and Delta tables agree across processes.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDLAKE_AS_OF", "2019-09-15")
        again = run_pending(settings)
    assert again.ok and not again.batches and again.programme is None


def test_environment_is_what_reaches_the_bucket(s3):
    assert os.environ["AWS_ENDPOINT_URL"] == s3.endpoint


def test_store_outage_fails_clearly_and_the_next_run_resumes(tmp_path, registry):
    """The landing bucket's server goes away: the run retries, then fails naming the store, having
    written nothing; once the server is back (with its data) the next run processes everything once."""
    server = S3Server()
    exports = tmp_path / "exports"
    generate(exports, registry, SynthSpec(datasets=("ccta",), cases=2, tiny=True, seed=9, applications=False))
    settings = Settings.from_env({"MEDLAKE_HOME": str(tmp_path / "home"), "MEDLAKE_PROGRAM": registry.source,
                                  "MEDLAKE_LANDING": "s3://outage/exports"})
    with s3_environment(server), pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDLAKE_CACHE", str(tmp_path / "cache"))
        mp.setenv("MEDLAKE_S3_ATTEMPTS", "3")
        server.start()
        server.make_bucket("outage")
        upload_tree(exports, "s3://outage/exports")
        server.stop()
        with pytest.raises(StorageError) as failure:
            run_pending(settings)
        assert "cannot list s3://outage/exports" in str(failure.value)
        store = DeltaStore(Lake.from_root(settings.lake))
        assert not store.exists(BATCHES)
        server.start()  # moto keeps buckets in memory: bring the store back as it was
        server.make_bucket("outage")
        upload_tree(exports, "s3://outage/exports")
        try:
            run = run_pending(settings)
            assert run.ok and len(run.batches) == 1
            again = run_pending(settings)
            assert not again.batches
        finally:
            server.stop()
    rows = store.read(SOURCE_INSTANCES).to_pylist()
    assert len(rows) == len({(r["team"], r["dataset"], r["sop_instance_uid"]) for r in rows}) > 0
