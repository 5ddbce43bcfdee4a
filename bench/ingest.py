"""Ingestion benchmark (foundation issue): medlake against a bare dcmread + sha256 loop, same run.

Figures:
1. one 10,000-file batch of 512x512 CT through the real Dagster job vs the bare loop (>= 0.8x);
2. two such batches as two concurrent runs on the 2 cores vs the same loop (>= 1.6x);
3. a re-run with nothing new over a lake of >= 100,000 catalogued instances (< 5% of the first
   ingestion), and the peak memory of ingesting that 100,000-file batch (< 1 GiB).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pydicom

from bench.ctfiles import all_files, write_batch

WORK = Path(__file__).resolve().parent / "work" / "ingest"
RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent


def bare_loop(files: list[str]) -> float:
    """The baseline the issue names: dcmread(stop_before_pixels=True) + sha256, one process."""
    t = time.perf_counter()
    for f in files:
        pydicom.dcmread(f, stop_before_pixels=True)
        with open(f, "rb") as fh:
            hashlib.sha256(fh.read()).hexdigest()
    return time.perf_counter() - t


def warm(files: list[str]) -> None:
    for f in files:
        with open(f, "rb") as fh:
            while fh.read(1 << 22):
                pass


_JOB_SCRIPT = r"""
import json, os, resource, sys, time, warnings
warnings.filterwarnings("ignore")
from medlake.settings import Settings
from pipelines.runner import dagster_instance
from pipelines.definitions import build_definitions
home, key, go = sys.argv[1], sys.argv[2], sys.argv[3]
settings = Settings.from_env({"MEDLAKE_HOME": home, "MEDLAKE_PROGRAM": os.environ["MEDLAKE_PROGRAM"]})
instance = dagster_instance(settings)
defs = build_definitions(settings)
if key not in instance.get_dynamic_partitions("export_batch"):
    instance.add_dynamic_partitions("export_batch", [key])
job = defs.resolve_job_def("process_export_batch")
if go != "-":
    while not os.path.exists(go):
        time.sleep(0.01)
t0 = time.time()
import dagster as dg
ingestion = [k for k in defs.resolve_all_asset_keys() if k.path[0] == "restricted" and k.path[1] in
             ("landed_files", "source_instances", "source_slides", "source_cases", "quarantine", "batches")]
r = job.execute_in_process(partition_key=key, instance=instance, asset_selection=ingestion,
                           run_config={"loggers": {"console": {"config": {"log_level": "ERROR"}}}})
t1 = time.time()
print(json.dumps({"ok": r.success, "start": t0, "end": t1,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def run_job(home: Path, key: str, go: str = "-", wait: bool = True):
    env = {**os.environ, "MEDLAKE_PROGRAM": str(REPO / "config" / "program.yaml"), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", _JOB_SCRIPT, str(home), key, go],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    if not wait:
        return proc
    return _result(proc)


def _result(proc) -> dict:
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"job failed: {err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1])


def _init_instance(home: Path, keys: list[str]) -> None:
    from medlake.settings import Settings
    from pipelines.runner import dagster_instance

    instance = dagster_instance(Settings.from_env({"MEDLAKE_HOME": str(home)}))
    instance.add_dynamic_partitions("export_batch", keys)
    instance.dispose()


def fresh_home(name: str, batches: list[tuple[str, str]]) -> Path:
    """A MEDLAKE_HOME whose landing zone links to the prepared batches (no copying)."""
    home = WORK / name
    shutil.rmtree(home, ignore_errors=True)
    for team_dataset, src in batches:
        dst = home / "landing" / team_dataset / Path(src).name
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(src, dst)
    return home


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=10_000, help="files per CT batch (512x512)")
    ap.add_argument("--big", type=int, default=100_000, help="files in the re-run / memory batch")
    ap.add_argument("--big-rows", type=int, default=256, help="pixel rows of the big batch's slices (MR-sized)")
    ap.add_argument("--out", default=str(RESULTS / "ingest.json"))
    a = ap.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    data = WORK / "data"
    ct = [data / "ntu" / "ccta" / f"ct-{i}" for i in range(2)]
    for i, d in enumerate(ct):
        if not (d / "_READY").exists() or len(all_files(d)) != a.files:
            shutil.rmtree(d, ignore_errors=True)
            print(f"writing {a.files} CT slices to {d}", flush=True)
            write_batch(d, a.files, 512, first=i * 1000, patient_prefix=f"N{i}")
    big = data / "tmu" / "lung-ct" / "big"
    shape = big.parent / "big.rows"  # beside the batch: inside it, the file would refuse the batch
    if not (big / "_READY").exists() or len(all_files(big)) != a.big or \
            not shape.exists() or shape.read_text() != str(a.big_rows):
        shutil.rmtree(big, ignore_errors=True)
        print(f"writing {a.big} small slices to {big}", flush=True)
        write_batch(big, a.big, a.big_rows, first=5000, per_series=200, patient_prefix="T")
        shape.write_text(str(a.big_rows))
    files0, files1 = all_files(ct[0]), all_files(ct[1])
    warm(files0 + files1)

    # 1. one batch, alternating baseline and medlake runs so neither gets a warmer cache
    base_t, med_t = [], []
    for rep in range(2):
        base_t.append(bare_loop(files0))
        home = fresh_home(f"one-{rep}", [("ntu/ccta", str(ct[0]))])
        r = run_job(home, "ntu/ccta/ct-0")
        med_t.append(r["end"] - r["start"])
    base_fps = a.files / min(base_t)
    med_fps = a.files / min(med_t)

    # 2. two batches, two concurrent runs (one per core), same lake
    home = fresh_home("two", [("ntu/ccta", str(ct[0])), ("ntu/ccta", str(ct[1]))])
    _init_instance(home, [f"ntu/ccta/ct-{i}" for i in range(2)])  # two processes must not race to create it
    go = WORK / "go"
    go.unlink(missing_ok=True)
    procs = [run_job(home, f"ntu/ccta/ct-{i}", str(go), wait=False) for i in range(2)]
    time.sleep(12)  # let both processes import and load definitions before the start signal
    go.write_text("")
    rs = [_result(p) for p in procs]
    go.unlink()
    wall2 = max(r["end"] for r in rs) - min(r["start"] for r in rs)
    two_fps = 2 * a.files / wall2
    base_again = a.files / bare_loop(files0)

    # 3. the 100,000-file batch: first ingestion (peak memory), then a re-run with nothing new
    home = fresh_home("big", [("tmu/lung-ct", str(big))])
    warm(all_files(big))
    first = run_job(home, "tmu/lung-ct/big")
    first_s = first["end"] - first["start"]
    env = {**os.environ, "MEDLAKE_HOME": str(home), "MEDLAKE_PROGRAM": str(REPO / "config" / "program.yaml"),
           "MEDLAKE_SECRET_KEY": "bench-" + "k" * 40}
    t = time.perf_counter()
    cli = subprocess.run([str(Path(sys.executable).parent / "medlake"), "run"], env=env, capture_output=True,
                         text=True)
    rerun_cli_s = time.perf_counter() - t
    assert cli.returncode == 0 and "Nothing new" in cli.stdout, cli.stdout + cli.stderr
    from medlake.ingest.pending import pending_batches
    from medlake.lake import DeltaStore, Lake
    from medlake.landing import LandingZone
    t = time.perf_counter()
    left = pending_batches(LandingZone(home / "landing"), DeltaStore(Lake.from_root(str(home / "lake"))))
    rerun_check_s = time.perf_counter() - t
    assert left == []

    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "pydicom": pydicom.__version__},
        "one_batch": {
            "files": a.files, "bare_loop_files_per_s": round(base_fps, 1),
            "medlake_job_files_per_s": round(med_fps, 1), "ratio": round(med_fps / base_fps, 3),
            "target": ">= 0.8", "bare_loop_s": [round(x, 2) for x in base_t],
            "medlake_job_s": [round(x, 2) for x in med_t],
        },
        "two_batches_concurrent": {
            "files": 2 * a.files, "wall_s": round(wall2, 2), "files_per_s": round(two_fps, 1),
            "ratio_to_bare_loop": round(two_fps / max(base_fps, base_again), 3), "target": ">= 1.6",
            "bare_loop_files_per_s_after": round(base_again, 1),
            "peak_rss_mib": [round(r["peak_rss_mib"]) for r in rs],
        },
        "rerun_nothing_new": {
            "catalogued_instances": a.big, "first_ingestion_s": round(first_s, 2),
            "rerun_cli_s": round(rerun_cli_s, 2), "rerun_cli_ratio": round(rerun_cli_s / first_s, 4),
            "pending_check_s": round(rerun_check_s, 3), "pending_check_ratio": round(rerun_check_s / first_s, 5),
            "target": "< 0.05",
        },
        "memory_100k_batch": {"files": a.big, "peak_rss_mib": round(first["peak_rss_mib"]),
                              "target_mib": "< 1024"},
        "command": "make bench (python -m bench ingest)",
    }
    Path(a.out).write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
