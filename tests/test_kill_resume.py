"""`medlake run` killed with SIGKILL in the middle of de-identifying a batch, then run again: every
file is accounted for once, no row is duplicated, and no de-identified object is left without the
table row that names it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from medlake.lake.tables import table_named
from medlake.lake import DeltaStore, Lake
from medlake.synth import SynthSpec, generate
from medlake.lake.tables import BATCHES, BATCH_COMPLETIONS, LANDED_FILES


def test_sigkill_mid_batch_then_rerun(tmp_path, registry):
    home = tmp_path / "home"
    generate(home / "landing", registry, SynthSpec(datasets=("ccta", "brain-mets-mri"), cases=6, seed=4,
                                                   applications=False))
    env = {**os.environ, "MEDLAKE_HOME": str(home), "MEDLAKE_PROGRAM": registry.source,
           "MEDLAKE_AS_OF": "2019-09-15", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    cmd = [sys.executable, "-m", "pipelines.cli", "run"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    objects = home / "lake" / "deid" / "objects"
    # Kill as soon as de-identified objects start to appear, i.e. in the middle of the first batch's
    # de-identification (or, on a fast machine, a little later in the same job).
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        if objects.is_dir() and any(p.is_file() for p in objects.rglob("*")):
            os.killpg(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    store = DeltaStore(Lake.from_root(str(home / "lake")))
    done_before = store.read(BATCH_COMPLETIONS).num_rows \
        if store.exists(BATCH_COMPLETIONS) else 0
    assert done_before < 2

    rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]

    assert store.read(BATCH_COMPLETIONS).num_rows == 2
    for table, key in (("source_instances", ("team", "dataset", "sop_instance_uid")),
                       ("landed_files", ("team", "dataset", "batch", "path"))):
        rows = store.read(table_named("restricted", table)).to_pylist()
        assert len(rows) == len({tuple(r[k] for k in key) for r in rows}), table
    for table, key in (("instances", ("team", "dataset", "sop_instance_uid")), ("cases", ("team", "dataset",
                                                                                          "case_pseudonym"))):
        rows = store.read(table_named("deid", table)).to_pylist()
        assert rows and len(rows) == len({tuple(r[k] for k in key) for r in rows}), table
    for b in store.read(BATCHES).to_pylist():
        assert b["files_landed"] == b["files_catalogued"] + b["files_quarantined"] + b["files_duplicate"]
    landed = store.read(LANDED_FILES)
    assert landed.num_rows == sum(1 for p in (home / "landing").rglob("*")
                                  if p.is_file() and p.parts[len((home / "landing").parts)] in ("ntu", "tvgh")
                                  and "_consent" not in p.parts)
    named = set()
    for table in ("instances", "slides", "annotation_files"):
        if store.exists(table_named("deid", table)):
            named |= set(store.read(table_named("deid", table)).column("object_path").to_pylist())
    on_disk = {p.relative_to(home / "lake").as_posix() for p in objects.rglob("*") if p.is_file()}
    assert on_disk == named, "an object without its row, or a row without its object"
