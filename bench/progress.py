"""Progress recomputation and `medlake status` on a programme-sized lake (865,800 cases).

Targets (issue 5): recomputing every progress table <= 30 s and <= 4 GiB; `medlake status` <= 3 s.
The progress tables read only deid/cases (and the consent events), so the lake here holds a
865,800-row cases table with the seed's status mix; the 12,000,000-instance catalogue queries are
measured by bench/catalog.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from medlake.lake import DeltaStore, Lake
from medlake.lake.tables import CASES
from medlake.program import load_registry

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "work" / "progress"
RESULTS = REPO / "bench" / "results" / "progress.json"
CASES_N = 865_800

_CHILD = r"""
import datetime as dt, json, resource, sys, time
from medlake.lake import DeltaStore, Lake
from medlake.program import load_registry
from medlake.progress.refresh import refresh_progress
home = sys.argv[1]
t = time.perf_counter()
refresh_progress(DeltaStore(Lake.from_root(home + "/lake")), load_registry(sys.argv[2]), dt.date(2020, 11, 30))
print(json.dumps({"seconds": time.perf_counter() - t,
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _cases(registry) -> pa.Table:
    rng = np.random.default_rng(7)
    datasets = [d for d in registry.datasets for _ in d.parts]
    parts = [p.sharing for d in registry.datasets for p in d.parts]
    weights = np.array([max(1, p.targets.get("2020-11", p.targets.get("2019-11", 1))) for d in registry.datasets
                        for p in d.parts], dtype=float)
    pick = rng.choice(len(parts), size=CASES_N, p=weights / weights.sum())
    status = rng.choice(np.array(["image_only", "partial", "full"]), size=CASES_N, p=[0.1, 0.6, 0.3])
    ids = np.char.add("CASE-", np.char.zfill(np.arange(CASES_N).astype(str), 20))
    n = CASES_N
    return pa.table({
        "team": [datasets[i].team for i in pick], "dataset": [datasets[i].id for i in pick],
        "case_pseudonym": ids.tolist(), "patient_pseudonym": ids.tolist(), "part": [parts[i] for i in pick],
        "study_instance_uids": [[f"2.25.{10**30 + i}"] for i in range(n)],
        "instances": np.full(n, 14, np.int64), "frames": np.full(n, 14, np.int64), "slides": np.zeros(n, np.int64),
        "modalities": [["CT"]] * n, "annotation_kinds": [["contour"]] * n, "annotation_status": status,
        "label_source": ["physician"] * n, "shareable": [parts[i] != "partially_not_shared" for i in pick],
        "consent_class": ["A"] * n}, schema=CASES.schema)


def main() -> None:
    registry_path = str(REPO / "config" / "program.yaml")
    registry = load_registry(registry_path)
    shutil.rmtree(WORK, ignore_errors=True)
    (WORK / "landing").mkdir(parents=True)
    store = DeltaStore(Lake.from_root(str(WORK / "lake")))
    store.append(CASES, _cases(registry))
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.run([sys.executable, "-c", _CHILD, str(WORK), registry_path], capture_output=True, text=True,
                           env=env, check=True)
    progress = json.loads(child.stdout.strip().splitlines()[-1])
    t = time.perf_counter()
    status = subprocess.run([str(Path(sys.executable).parent / "medlake"), "status"], capture_output=True, text=True,
                            env={**env, "MEDLAKE_HOME": str(WORK), "MEDLAKE_PROGRAM": registry_path})
    status_s = time.perf_counter() - t
    assert status.returncode == 0 and "Programme progress" in status.stdout, status.stdout + status.stderr
    result = {"cases": CASES_N, "progress_recompute_s": round(progress["seconds"], 2),
              "progress_peak_rss_mib": round(progress["peak_rss_mib"]), "status_cli_s": round(status_s, 2),
              "targets": {"progress_s": 30, "progress_rss_mib": 4096, "status_s": 3},
              "command": "make bench (python -m bench progress)"}
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
