"""The batch job on the dask executor (deploy/dask/, pipelines/dask_executor.py): two export batches
run at once on one dask cluster of two worker processes, as a backfill runs on a shared scheduler
across machines; a run's own local cluster; a leak still stops the batch at its blocking check."""

import io
import multiprocessing
import os
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dask.distributed import Client, LocalCluster
from pydicom.uid import generate_uid

from conftest import REPO
from dicom_factory import ct_dataset, write
from medlake.deid.keys import DeidKeys
from medlake.lake import DeltaStore, Lake
from medlake.landing import LandingZone
from medlake.settings import Settings
from medlake.synth import SynthSpec, generate
from medlake.synth.identities import national_id
from pipelines.definitions import process_export_batch_job
from pipelines.partitions import EXPORT_BATCHES
from medlake.lake.tables import CASES, INSTANCES, SOURCE_INSTANCES

DEPLOY = REPO / "deploy" / "dask"
CHECK_STEP = "deid__instances_no_identifiers_in_deid_batch"


def _run_config(name: str, **cluster) -> dict:
    config = yaml.safe_load((DEPLOY / name).read_text())
    config["execution"]["config"]["cluster"].update(cluster)
    return config


def _instance(tmp_path):
    """A persistent (SQLite) instance, which the dask executor needs: workers open it from its ref."""
    (tmp_path / "dagster").mkdir()
    return dg.instance_for_test(temp_dir=str(tmp_path / "dagster"))


def _settings(tmp_path, registry, monkeypatch) -> Settings:
    """Settings and the executor choice in the environment, which dask workers started afterwards
    inherit (a real worker gets them from its deployment, deploy/dask/README.md)."""
    settings = Settings.from_env({"MEDLAKE_HOME": str(tmp_path / "home"), "MEDLAKE_PROGRAM": registry.source})
    monkeypatch.setenv("MEDLAKE_HOME", settings.home)
    monkeypatch.setenv("MEDLAKE_PROGRAM", settings.program)
    monkeypatch.setenv("MEDLAKE_EXECUTOR", "dask")
    return settings


def _execute(instance_ref, key: str, config: dict | None) -> tuple[bool, str]:
    """One run in its own process, as the run launcher gives each run (Dagster's run setup is not
    thread-safe, so two runs in one process's threads deadlock in its logging setup)."""
    with dg.DagsterInstance.from_ref(instance_ref) as instance:
        # The job is loaded by reference: each worker imports it with its own environment.
        with dg.execute_job(dg.reconstructable(process_export_batch_job), instance=instance,
                            run_config=config, tags={"dagster/partition": key}) as result:
            return result.success, result.run_id


def _steps(instance, run_id: str) -> dict[str, int]:
    """Step key -> pid of the process that ran it."""
    starts = instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_START)
    return {e.step_key: e.dagster_event.pid for e in starts}


def test_two_batches_run_at_once_on_a_shared_dask_cluster(tmp_path, registry, monkeypatch):
    settings = _settings(tmp_path, registry, monkeypatch)
    generate(Path(settings.landing), registry, SynthSpec(datasets=("ccta",), cases=2, tiny=True, batches=2, seed=3))
    keys = [b.key for b in LandingZone(settings.landing).batches()]
    assert len(keys) == 2, keys
    with _instance(tmp_path) as instance, \
            LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        instance.add_dynamic_partitions(EXPORT_BATCHES.name, keys)
        workers = set(client.run(os.getpid).values())
        # One batch with deploy/dask/existing.yaml's run config, the other with none, as a sensor's
        # run has: the executor then takes the scheduler from MEDLAKE_DASK_SCHEDULER.
        monkeypatch.setenv("MEDLAKE_DASK_SCHEDULER", cluster.scheduler_address)
        configs = [_run_config("existing.yaml", existing={"address": cluster.scheduler_address}), None]
        # Both at once: with upstream's task keys the second run "succeeds" without running.
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as pool:
            runs = dict(zip(keys, pool.map(_execute, [instance.get_ref()] * 2, keys, configs)))

        for key, (success, run_id) in runs.items():
            assert success, key
            steps = _steps(instance, run_id)
            assert {"ingest_export_batch", "deidentify_export_batch", CHECK_STEP, "annotations_and_cases"} <= set(steps)
            assert set(steps.values()) <= workers and os.getpid() not in steps.values()
            mats = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
            assert {e.dagster_event.partition for e in mats} == {key}

    store = DeltaStore(Lake.from_root(settings.lake))
    source = store.read(SOURCE_INSTANCES).to_pylist()
    deid = store.read(INSTANCES).to_pylist()
    deid_keys = DeidKeys.from_env()
    for key in keys:
        team, dataset, batch = key.split("/")
        assert any((r["team"], r["dataset"], r["batch"]) == (team, dataset, batch) for r in source), key
        assert any(r["batch_ref"] == deid_keys.batch_ref(team, dataset, batch) for r in deid), key


def test_a_leak_stops_the_batch_at_its_check_on_a_local_dask_cluster(tmp_path, registry, monkeypatch):
    """deploy/dask/local.yaml: the run starts its own cluster of worker processes. A national ID the
    profile keeps fails the blocking identifier check, and the step after it does not run (dask
    alone would start it once the check had ended)."""
    settings = _settings(tmp_path, registry, monkeypatch)
    study = generate_uid()
    leaky = ct_dataset(patient_id="C7001", study_uid=study)
    leaky.BodyPartExamined = national_id(random.Random(3), "F")
    buf = io.BytesIO()
    leaky.save_as(buf, enforce_file_format=True)
    batch = Path(settings.landing) / registry.dataset("liver-ct").team / "liver-ct" / "b1"
    write(batch / "images" / "leaky.dcm", buf.getvalue())
    (batch / "cases.csv").write_text(f"case_id,patient_id,study_instance_uids\nK1,C7001,{study}\n")
    (batch / "_READY").write_text("")
    key = LandingZone(settings.landing).batches()[0].key
    config = _run_config("local.yaml", local={"n_workers": 2, "threads_per_worker": 1, "processes": True,
                                              "dashboard_address": None})
    with _instance(tmp_path) as instance:
        instance.add_dynamic_partitions(EXPORT_BATCHES.name, [key])
        success, run_id = _execute(instance.get_ref(), key, config)
        assert not success
        steps = _steps(instance, run_id)
        assert {"ingest_export_batch", "deidentify_export_batch", CHECK_STEP} <= set(steps)
        assert "annotations_and_cases" not in steps
        assert os.getpid() not in steps.values()
        evaluations = [e.dagster_event.asset_check_evaluation_data for e in
                       instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION)]
        assert [e.passed for e in evaluations if e.check_name == "no_identifiers_in_deid_batch"] == [False]
        # Only checks failed (the leaky value also fails a great-expectations suite): no asset step.
        failed = {e.step_key for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_FAILURE)}
        assert CHECK_STEP in failed and not failed & {"ingest_export_batch", "deidentify_export_batch"}
    assert not DeltaStore(Lake.from_root(settings.lake)).exists(CASES)


def test_dask_executor_without_a_cluster_names_what_to_set(tmp_path, monkeypatch):
    """A run with no cluster in its run config and no MEDLAKE_DASK_SCHEDULER fails before any step,
    saying what to set; MEDLAKE_EXECUTOR accepts only the executors it documents."""
    from pipelines.executors import executor_from_env

    monkeypatch.setenv("MEDLAKE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEDLAKE_EXECUTOR", "dask")
    monkeypatch.delenv("MEDLAKE_DASK_SCHEDULER", raising=False)
    with _instance(tmp_path) as instance:
        instance.add_dynamic_partitions(EXPORT_BATCHES.name, ["ntu/ccta/b1"])
        success, run_id = _execute(instance.get_ref(), "ntu/ccta/b1", None)
        assert not success
        assert "MEDLAKE_DASK_SCHEDULER" in " ".join(str(e) for e in instance.all_logs(run_id))
        assert not _steps(instance, run_id)
    assert executor_from_env({}) is None
    assert executor_from_env({"MEDLAKE_EXECUTOR": "multiprocess"}) is dg.multiprocess_executor
    with pytest.raises(ValueError, match="MEDLAKE_EXECUTOR"):
        executor_from_env({"MEDLAKE_EXECUTOR": "celery"})
