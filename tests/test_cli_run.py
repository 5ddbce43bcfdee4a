"""`medlake run` as an operator meets it: a summary that says what happened, one run per lake at a
time, and a clean stop on SIGTERM and SIGINT."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from medlake.lake import DeltaStore, Lake
from medlake.lake.tables import BATCH_COMPLETIONS, BATCHES, CASES, LANDED_FILES, SOURCE_INSTANCES

REPO = Path(__file__).resolve().parent.parent
MEDLAKE = Path(sys.executable).with_name("medlake")


def _home(tmp_path: Path, datasets: str = "ccta", batches: int = 2, tiny: bool = True) -> tuple[Path, dict]:
    home = tmp_path / "home"
    env = {**os.environ, "MEDLAKE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
           "MEDLAKE_PROGRAM": str(REPO / "config" / "program.yaml"), "MEDLAKE_AS_OF": "2019-10-15"}
    subprocess.run([str(MEDLAKE), "synth", "--out", str(home / "landing"), "--datasets", datasets, "--cases", "12",
                    "--batches", str(batches), *(["--tiny"] if tiny else [])], env=env, check=True,
                   capture_output=True)
    return home, env


def _store(home: Path) -> DeltaStore:
    return DeltaStore(Lake.from_root(str(home / "lake")))


def test_a_failed_programme_refresh_is_reported_as_failed(tmp_path, monkeypatch):
    """The programme job failed, yet `medlake run` printed "Programme tables, dashboard and catalogue
    refreshed." (and exited 1). Each line must say what happened, the failed step and how to see why."""
    import assets.programme
    from pipelines.cli import main

    home, env = _home(tmp_path, batches=1)
    for k, v in env.items():
        monkeypatch.setenv(k, v)

    def broken(*args, **kwargs):
        raise RuntimeError("progress tables could not be computed (injected)")

    monkeypatch.setattr(assets.programme, "refresh_progress", broken)
    result = CliRunner().invoke(main, ["run"], catch_exceptions=False)
    out = result.output
    assert result.exit_code == 1, out
    assert "refreshed" not in out
    assert "1 of 1 batch runs succeeded." in out
    line = next(ln for ln in out.splitlines() if "failed: refresh_programme" in ln)
    assert "programme_progress" in line, line
    run_id = line.split("medlake log ")[1].split()[0]
    why = CliRunner().invoke(main, ["log", run_id], catch_exceptions=False)
    assert why.exit_code == 0 and "progress tables could not be computed (injected)" in why.output


def _wait_for_lock(home: Path, proc: subprocess.Popen, timeout: float = 300) -> None:
    locks = Lake.from_root(str(home / "lake")).locks()
    deadline = time.monotonic() + timeout
    while locks.holder("run") is None:
        assert proc.poll() is None, "the first run ended before it was seen holding the lake"
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_a_second_run_on_the_same_lake_is_refused_then_waits(tmp_path):
    home, env = _home(tmp_path, datasets="ccta,liver-ct")
    first = subprocess.Popen([str(MEDLAKE), "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    _wait_for_lock(home, first)
    second = subprocess.run([str(MEDLAKE), "run"], env=env, capture_output=True, text=True, timeout=120)
    assert second.returncode == 75, second.stdout + second.stderr
    assert f"process {first.pid}" in second.stderr and "Nothing was done" in second.stderr
    waiting = subprocess.Popen([str(MEDLAKE), "run", "--wait", "-1"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    out, errs = first.communicate(timeout=900)
    assert first.returncode == 0, out[-2000:] + errs[-3000:]
    out, errs = waiting.communicate(timeout=300)
    assert waiting.returncode == 0, out[-2000:] + errs[-3000:]
    assert "Nothing new" in out
    store = _store(home)
    assert store.read(BATCHES).num_rows == 4, "every batch ingested once"
    assert store.read(BATCH_COMPLETIONS).num_rows == 4
    rows = store.read(SOURCE_INSTANCES, ["team", "dataset", "sop_instance_uid"]).to_pylist()
    assert len(rows) == len({tuple(r.values()) for r in rows})


@pytest.mark.parametrize("sig, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_stop_signal_ends_the_run_cleanly_and_the_next_run_completes(tmp_path, sig, status):
    home, env = _home(tmp_path, datasets="ccta,brain-mets-mri", batches=2, tiny=False)
    proc = subprocess.Popen([str(MEDLAKE), "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    objects = home / "lake" / "deid" / "objects"
    deadline = time.monotonic() + 600
    while not (objects.is_dir() and any(p.is_file() for p in objects.rglob("*"))):
        assert proc.poll() is None, "the run ended before it could be stopped"
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(sig)
    out, errs = proc.communicate(timeout=120)
    assert proc.returncode == status, out[-2000:] + errs[-3000:]
    assert f"Stopped by {signal.Signals(sig).name}" in errs
    store = _store(home)
    assert store.read(BATCH_COMPLETIONS).num_rows < 4, "it stopped instead of carrying on"
    assert Lake.from_root(str(home / "lake")).locks().holder("run") is None
    assert not [p for p in objects.rglob("*") if p.name.endswith(".tmp")], "half-written objects left behind"

    rerun = subprocess.run([str(MEDLAKE), "run"], env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-3000:]
    assert store.read(BATCH_COMPLETIONS).num_rows == 4
    for b in store.read(BATCHES).to_pylist():
        assert b["files_landed"] == b["files_catalogued"] + b["files_quarantined"] + b["files_duplicate"]
    landed = store.read(LANDED_FILES, ["team", "dataset", "batch", "path"]).to_pylist()
    assert len(landed) == len({tuple(r.values()) for r in landed})
    cases = store.read(CASES, ["team", "dataset", "case_pseudonym"]).to_pylist()
    assert cases and len(cases) == len({tuple(r.values()) for r in cases})


def test_a_batch_refused_at_ingestion_ends_its_job_without_error(tmp_path):
    """An unknown dataset folder is refused as a whole; the steps after ingestion have nothing to do
    (they used to look the dataset up in the registry and fail, retrying for minutes)."""
    import shutil

    home, env = _home(tmp_path, batches=1)
    batch = next((home / "landing" / "ntu" / "ccta").iterdir())
    shutil.copytree(batch, home / "landing" / "ntu" / "ccta-old" / batch.name)
    run = subprocess.run([str(MEDLAKE), "run"], env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    assert "2 of 2 batch runs succeeded." in run.stdout
    store = _store(home)
    status = {r["dataset"]: (r["status"], r["reason_code"]) for r in store.read(BATCHES).to_pylist()}
    assert status == {"ccta": ("ingested", None), "ccta-old": ("refused", "unknown_dataset")}
    assert store.count(CASES, where={"dataset": "ccta-old"}) == 0
    again = subprocess.run([str(MEDLAKE), "run"], env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "Nothing new" in again.stdout, again.stdout + again.stderr
