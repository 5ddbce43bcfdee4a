"""The Dagster wiring: definitions load, the sensor requests ready batches, the job ingests one."""

import dagster as dg
from pydicom.uid import generate_uid

from dicom_factory import ct_bytes, write
from medlake.settings import Settings
from pipelines.definitions import build_definitions
from pipelines.partitions import EXPORT_BATCHES
from sensors.landing import landing_sensor
from medlake.validation.history import VALIDATION_HISTORY
from medlake.lake.tables import CASES, INSTANCES


def _defs(lh):
    return build_definitions(Settings.from_env({
        "MEDLAKE_HOME": str(lh.root), "MEDLAKE_PROGRAM": lh.registry.source}))


def _batch(lh, name, ready=True, patient="H112233445", case="L1"):
    d = lh.batch_dir("tvgh", "liver-ct", name)
    study = generate_uid()
    for i in range(2):
        write(d / "images" / f"{i}.dcm", ct_bytes(patient_id=patient, study_uid=study, value=i))
    (d / "cases.csv").write_text(f"case_id,patient_id,study_instance_uids\n{case},{patient},{study}\n")
    if ready:
        (d / "_READY").write_text("")


def test_definitions_load_with_assets_job_and_sensor(lakehouse):
    defs = _defs(lakehouse)
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_all_asset_keys()}
    assert {"restricted/landed_files", "restricted/source_instances", "restricted/source_cases",
            "restricted/quarantine", "restricted/batches"} <= keys
    assert defs.resolve_job_def("process_export_batch") is not None
    assert defs.resolve_sensor_def("landing_sensor") is not None


def test_sensor_requests_ready_batches_once(lakehouse):
    lh = lakehouse
    _batch(lh, "2019-09-15-a")
    _batch(lh, "2019-09-16-b", ready=False)
    defs = _defs(lh)
    with dg.instance_for_test() as instance:
        ctx = dg.build_sensor_context(instance=instance, resources=defs.resources)
        result = landing_sensor(ctx)
        assert [r.partition_key for r in result.run_requests] == ["tvgh/liver-ct/2019-09-15-a"]
        assert result.dynamic_partitions_requests[0].partition_keys == ["tvgh/liver-ct/2019-09-15-a"]
        first_key = result.run_requests[0].run_key
        again = landing_sensor(dg.build_sensor_context(instance=instance, resources=defs.resources))
        # Same listing, same run key: Dagster launches one run however many ticks see the batch.
        assert [r.run_key for r in again.run_requests] == [first_key]


def test_job_ingests_a_batch_partition_and_reports_counts_without_identifiers(lakehouse):
    lh = lakehouse
    _batch(lh, "b1")
    defs = _defs(lh)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(EXPORT_BATCHES.name, ["tvgh/liver-ct/b1"])
        job = defs.resolve_job_def("process_export_batch")
        result = job.execute_in_process(partition_key="tvgh/liver-ct/b1", instance=instance)
        assert result.success
        mats = {m.asset_key.to_user_string(): m for m in result.get_asset_materialization_events()}
        inst = mats["restricted/source_instances"].materialization.metadata
        assert inst["dagster/partition_row_count"].value == 2
        assert mats["restricted/landed_files"].materialization.metadata["files_landed"].value == 4
        logs = " ".join(str(e) for e in instance.all_logs(result.run_id))
        metadata = " ".join(str(m.materialization.metadata) for m in mats.values())
        for identifier in ("H112233445", "WANG", "19600101"):
            assert identifier not in logs and identifier not in metadata
        # A second run of the same partition changes nothing.
        job.execute_in_process(partition_key="tvgh/liver-ct/b1", instance=instance)
    assert len(lh.rows("source_instances")) == 2
    assert len(lh.rows("batches")) == 1


def test_a_batch_check_validates_the_rows_that_batch_wrote(lakehouse):
    lh = lakehouse
    _batch(lh, "b1", patient="H112233445")
    _batch(lh, "b2", patient="H223344556", case="L2")
    defs = _defs(lh)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(EXPORT_BATCHES.name, ["tvgh/liver-ct/b1", "tvgh/liver-ct/b2"])
        job = defs.resolve_job_def("process_export_batch")
        assert job.execute_in_process(partition_key="tvgh/liver-ct/b1", instance=instance).success
        second = job.execute_in_process(partition_key="tvgh/liver-ct/b2", instance=instance)
        assert second.success
    history = lh.store.read(VALIDATION_HISTORY).to_pylist()
    rows = {r["table"]: r["element_count"] for r in history if r["run_id"] == second.run_id}
    assert {(r["team"], r["dataset"], len(r["batch_ref"])) for r in history} == {("tvgh", "liver-ct", 20)}
    assert len({r["batch_ref"] for r in history}) == 2   # keyed, never the folder name
    # Each batch brings 2 images and 4 files: its rows only, though the dataset holds twice as many.
    assert rows["deid.instances"] == 2 and rows["restricted.source_instances"] == 2
    assert rows["restricted.landed_files"] == 4 and rows["deid.deid_audit"] == 2
    assert rows["restricted.batches"] == 1
    # Series and studies: those the batch's images belong to (2 and 1); cases: the whole slice.
    assert rows["deid.series"] == 2 and rows["deid.studies"] == 1
    assert rows["deid.cases"] == lh.store.read(CASES).num_rows == 2
    assert lh.store.read(INSTANCES).num_rows == 4


def test_workspace_yaml_loads_in_dagster_cli(tmp_path):
    """`make ui` runs `dagster dev -w workspace.yaml`; the same loader must accept the code location."""
    import os
    import subprocess
    import sys

    from conftest import REPO

    dagster = os.path.join(os.path.dirname(sys.executable), "dagster")
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "MEDLAKE_HOME": str(tmp_path / "home")}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    out = subprocess.run([dagster, "definitions", "validate", "-w", "workspace.yaml"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "All code locations passed validation" in out.stderr + out.stdout


def test_daily_sweep_requests_what_the_sensor_did_not_take(lakehouse):
    from sensors.schedules import daily_batch_sweep

    lh = lakehouse
    _batch(lh, "2019-10-01-a")
    defs = _defs(lh)
    # The schedule context opens its own instance from the ref; entered, it is closed before ours is
    # (left to the garbage collector, it would restore a dead instance's state into later tests).
    with dg.instance_for_test() as instance, \
            dg.build_schedule_context(instance=instance, resources=defs.resources) as context:
        requests = daily_batch_sweep(context)
        assert [r.partition_key for r in requests] == ["tvgh/liver-ct/2019-10-01-a"]
        assert instance.get_dynamic_partitions(EXPORT_BATCHES.name) == ["tvgh/liver-ct/2019-10-01-a"]
    assert defs.resolve_schedule_def("daily_batch_sweep").cron_schedule == "0 6 * * *"


def test_consent_sensor_requests_a_programme_run_when_consent_or_applications_change(lakehouse):
    from sensors.consent import consent_and_applications_sensor

    lh = lakehouse
    defs = _defs(lh)
    consent = lh.landing_root / "tvgh" / "_consent"
    consent.mkdir(parents=True)
    (consent / "2019-06-30.csv").write_text("patient_id,consent_class,event,event_date,reference\n"
                                            "P1,C,notice_sent,2019-06-01,N1\n")
    with dg.instance_for_test() as instance:
        first = consent_and_applications_sensor(dg.build_sensor_context(instance=instance, resources=defs.resources))
        assert len(first.run_requests) == 1 and first.cursor
        same = consent_and_applications_sensor(dg.build_sensor_context(
            instance=instance, resources=defs.resources, cursor=first.cursor))
        assert isinstance(same, dg.SkipReason)
        (consent / "2019-12-31.csv").write_text("patient_id,consent_class,event,event_date,reference\n"
                                                "P1,C,withdrawn,2019-12-01,W1\n")
        withdrawn = consent_and_applications_sensor(dg.build_sensor_context(
            instance=instance, resources=defs.resources, cursor=first.cursor))
        assert len(withdrawn.run_requests) == 1 and withdrawn.cursor != first.cursor
        (lh.landing_root / "_applications" / "app-1").mkdir(parents=True)
        (lh.landing_root / "_applications" / "app-1" / "decision.yaml").write_text("decision: approved\n")
        decided = consent_and_applications_sensor(dg.build_sensor_context(
            instance=instance, resources=defs.resources, cursor=withdrawn.cursor))
        assert len(decided.run_requests) == 1 and decided.run_requests[0].job_name in (None, "refresh_programme")
        assert defs.resolve_sensor_def("programme_after_batch") is not None
