"""Operations: the production instance file, step retries, freshness of the progress tables and the
run-failure alert."""

import datetime as dt
import os
import subprocess
import sys

import dagster as dg
import pytest
import yaml
from dagster._core.instance.config import PoolGranularity, dagster_instance_config

from conftest import REPO
from medlake.alerts import ALERTS, MESSAGE_LIMIT, record_alert
from medlake.lake import DeltaStore, Lake
from medlake.settings import Settings
from pipelines.definitions import build_definitions
from pipelines.partitions import EXPORT_BATCHES
from pipelines.policies import IO_RETRY_POLICY, PROGRESS_FRESHNESS
from pipelines.resources import LakeResource
from sensors.alerts import run_failure_alert

DEPLOY = REPO / "deploy"


@pytest.fixture(scope="module")
def defs(tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    return build_definitions(Settings.from_env({"MEDLAKE_HOME": str(home)}))


def _local_copy(home) -> None:
    """deploy/dagster.yaml with SQLite under `home` in place of Postgres (not installed here)."""
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert set(config["storage"]) == {"postgres"}, "the production file must keep the Postgres storage"
    config["storage"] = {"sqlite": {"base_dir": str(home / "storage")}}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))


def test_production_instance_file_passes_dagsters_schema():
    config, custom_class = dagster_instance_config(str(DEPLOY))
    assert custom_class is None
    db = config["storage"]["postgres"]["postgres_db"]
    # Credentials are read from the environment, never written in the file.
    assert all(set(db[k]) == {"env"} for k in ("username", "password", "hostname", "db_name"))


def test_per_pool_limits_cannot_live_in_the_instance_file(tmp_path):
    """Why deploy/README.md sets `releases` with the CLI: Dagster's schema has no per-pool key."""
    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    config["concurrency"]["pools"]["releases"] = 1
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(dg.DagsterInvalidConfigError):
        dagster_instance_config(str(tmp_path))


def test_instance_from_the_production_file_reads_back_its_settings(tmp_path):
    _local_copy(tmp_path)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert not instance.telemetry_enabled
        assert instance.run_retries_enabled and instance.run_retries_max_retries == 2
        assert not instance.run_retries_retry_on_asset_or_op_failure
        assert instance.run_monitoring_enabled and instance.run_monitoring_max_resume_run_attempts == 0
        assert instance.freshness_enabled
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        concurrency = instance.get_concurrency_config()
        queue = concurrency.run_queue_config
        assert queue.max_concurrent_runs == 5
        limits = {(t["key"], t["value"]): t["limit"] for t in queue.tag_concurrency_limits}
        assert limits == {("medlake/job", "refresh_programme"): 1, ("medlake/job", "process_export_batch"): 4}
        # The batches' limit leaves the programme refresh a run slot.
        assert limits[("medlake/job", "process_export_batch")] < queue.max_concurrent_runs
        assert concurrency.pool_config.pool_granularity == PoolGranularity.OP
        assert concurrency.pool_config.default_pool_limit == 2
        # A pool without its own limit gets the default the first time a step claims it.
        instance.event_log_storage.initialize_concurrency_limit_to_default("deid_cpu")
        assert instance.event_log_storage.get_concurrency_info("deid_cpu").slot_count == 2


def test_release_pool_limit_is_set_with_the_documented_command(tmp_path):
    _local_copy(tmp_path)
    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    out = subprocess.run([dagster, "instance", "concurrency", "set", "releases", "1"],
                         env={**os.environ, "DAGSTER_HOME": str(tmp_path)}, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        pools = {p.name: p for p in instance.event_log_storage.get_pool_limits()}
        assert pools["releases"].limit == 1 and not pools["releases"].from_default


def test_pools_used_by_assets_are_the_documented_ones(defs):
    used = {d.op.pool for d in defs.resolve_asset_graph().assets_defs if d.is_executable and d.op.pool}
    assert used == {"landing_io", "deid_cpu", "releases"}
    readme = (DEPLOY / "README.md").read_text()
    assert all(f"`{pool}`" in readme for pool in used)


def test_io_assets_retry_with_the_shared_policy(defs, registry):
    graph = defs.resolve_asset_graph()
    retried = {k.to_user_string() for d in graph.assets_defs if d.is_executable
               and d.op.retry_policy == IO_RETRY_POLICY for k in d.keys}
    expected_ops = {"ingest_export_batch", "deidentify_export_batch", "access_applications",
                    *(f"releases_{t.id.replace('-', '_')}" for t in registry.teams)}
    by_op = {d.op.name: d for d in graph.assets_defs if d.is_executable}
    assert expected_ops <= set(by_op)
    assert retried == {k.to_user_string() for op in expected_ops for k in by_op[op].keys}
    assert IO_RETRY_POLICY.max_retries == 3 and IO_RETRY_POLICY.backoff == dg.Backoff.EXPONENTIAL
    assert IO_RETRY_POLICY.jitter is not None


def test_progress_tables_have_a_26_hour_freshness_policy(defs):
    graph = defs.resolve_asset_graph()
    fresh = {k.to_user_string() for k in graph.get_all_asset_keys()
             if graph.get(k).freshness_policy == PROGRESS_FRESHNESS}
    assert fresh == {"program/progress_by_dataset", "program/progress_by_team", "program/consent_summary",
                     "program/progress_history"}
    assert PROGRESS_FRESHNESS.fail_window.to_timedelta() == dt.timedelta(hours=26)


@dg.asset(partitions_def=EXPORT_BATCHES)
def broken_batch():
    raise ValueError("landing folder unreadable: " + "x" * 2 * MESSAGE_LIMIT)


BROKEN_JOB = dg.define_asset_job("broken_batch_job", selection=[broken_batch])


def test_failed_run_leaves_an_alert_row(tmp_path, defs):
    assert defs.resolve_sensor_def("run_failure_alert") is not None
    key = "tvgh/liver-ct/2019-09-15-a"
    store = DeltaStore(Lake.from_root(str(tmp_path / "lake")))
    job = dg.Definitions(assets=[broken_batch], jobs=[BROKEN_JOB]).resolve_job_def("broken_batch_job")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(EXPORT_BATCHES.name, [key])
        result = job.execute_in_process(partition_key=key, instance=instance, raise_on_error=False)
        assert not result.success
        for _ in range(2):  # a tick evaluated twice (after a daemon restart) leaves one row
            context = dg.build_run_status_sensor_context(
                sensor_name="run_failure_alert", dagster_event=result.get_run_failure_event(),
                dagster_instance=instance, dagster_run=result.dagster_run,
                resources={"lake": LakeResource(root=str(tmp_path / "lake"))})
            run_failure_alert(context)
    rows = store.read(ALERTS).to_pylist()
    assert len(rows) == 1
    row = rows[0]
    assert (row["kind"], row["job"], row["run_id"], row["partition"], row["step"]) == (
        "run_failure", "broken_batch_job", result.run_id, key, "broken_batch")
    assert row["message"].startswith("ValueError: landing folder unreadable: xxx")
    assert len(row["message"]) == MESSAGE_LIMIT
    assert dt.datetime.now(dt.timezone.utc) - row["raised_at"] < dt.timedelta(hours=1)


def test_alert_for_an_unpartitioned_run_without_a_step(tmp_path):
    store = DeltaStore(Lake.from_root(str(tmp_path / "lake")))
    at = dt.datetime(2026, 3, 1, 6, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    record_alert(store, kind="run_failure", job="refresh_programme", run_id="r1", partition=None,
                 message="UNEXPECTED_TERMINATION: run worker exited", at=at)
    row = store.read(ALERTS).to_pylist()[0]
    assert row["partition"] is None and row["step"] is None
    assert row["raised_at"] == dt.datetime(2026, 2, 28, 22, 30, tzinfo=dt.timezone.utc)
