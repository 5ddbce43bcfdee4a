"""The whole programme at a fraction of full scale: seed table 5 (520,874 cases at 1.0) through the
whole graph, to see which stage stops growing linearly.

`python -m bench fullscale [--scale 0.01 0.1 1.0]` (default: those three, in order). Each scale runs in
its own process (so peak RSS is that scale's), under bench/work/fullscale/<scale>/, with
MEDLAKE_AS_OF=2019-09-15 and a bench secret key:

1. synthesis: bench/replicate.py clones one medlake.synth template per (dataset, part, status) into the
   landing zone, batches of <= 50,000 cases, plus 0.1% of lung-ct as real 512x512x50 CT;
2. batch jobs: run_pending's per-batch Dagster runs (ingest, de-identify, identifier check, cases);
3. programme job: consent, purge, progress, eligibility, releases, applications, cards, dashboard,
   catalogue.

Per stage: wall time, files/s, peak RSS (reset at each stage start), and /proc/self/io deltas:
read_bytes/write_bytes (what reached the block layer; reads served by the page cache count zero) and
rchar/wchar (every read/write call), also per landed file. The growth factor of a figure between two
scales is (figure ratio) / (case ratio): 1.0 is linear. Results merge into bench/results/fullscale.json,
so `--scale 1.0` alone adds to what smaller scales left there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "work" / "fullscale"
RESULTS = REPO / "bench" / "results" / "fullscale.json"
SCALES = (0.01, 0.1, 1.0)
AS_OF = "2019-09-15"
KEY = "medlake-bench-fullscale-key-0123456789abcdef"
SUPERLINEAR = 1.25      # a figure growing 25% faster than the cases between two scales is flagged
FLAGGED = ("wall_s", "write_bytes", "rchar", "wchar", "peak_rss_mib")
IO_FIELDS = ("read_bytes", "write_bytes", "rchar", "wchar", "cancelled_write_bytes")


def _io() -> dict[str, int]:
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(": ") for line in f) if k in IO_FIELDS}


def _reset_peak() -> None:
    """Peak RSS per stage, not per process: Linux resets VmHWM (and ru_maxrss) on clear_refs 5."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_mib() -> int:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


class Mark:
    """A point in time: wall clock and I/O counters; `since(earlier)` is the stage between them."""

    def __init__(self):
        self.t, self.io = time.perf_counter(), _io()

    def since(self, a: Mark, files: int) -> dict:
        out = {"wall_s": round(self.t - a.t, 2), "files_per_s": round(files / max(self.t - a.t, 1e-9), 1)}
        for k in IO_FIELDS:
            out[k] = self.io[k] - a.io[k]
        for k in ("read_bytes", "write_bytes", "rchar", "wchar"):
            out[f"{k}_per_file"] = round(out[k] / max(files, 1))
        return out


def run_scale(scale: float) -> dict:
    """One scale, in this process: synthesis, batch jobs, programme job, then the checks."""
    os.environ["MEDLAKE_AS_OF"] = AS_OF
    os.environ["MEDLAKE_SECRET_KEY"] = KEY
    from bench.replicate import replicate
    from medlake.ingest.pending import pending_batches
    from medlake.lake import DeltaStore, Lake
    from medlake.landing import LandingZone
    from medlake.program import load_registry
    from medlake.settings import Settings
    from pipelines.runner import run_pending

    work = WORK / str(scale)
    shutil.rmtree(work, ignore_errors=True)
    settings = Settings.from_env({"MEDLAKE_HOME": str(work / "home"),
                                  "MEDLAKE_PROGRAM": str(REPO / "config" / "program.yaml")}).absolute()
    registry = load_registry(settings.program)
    landing = Path(settings.landing)
    store = DeltaStore(Lake.from_root(settings.lake))
    out: dict = {"scale": scale}

    _reset_peak()
    a = Mark()
    w = replicate(landing, work / "templates", registry, scale)
    b = Mark()
    synth = b.since(a, w.files) | {"peak_rss_mib": _peak_mib()}
    out.update(cases=w.cases, files=w.files, landed_bytes=w.bytes, batches=w.batches,
               real_size_cases=w.real_size_cases, remapped_cells=w.remapped)

    # Batch stage: from the landing walk to the last batch run; the programme job is what follows.
    _reset_peak()
    a = Mark()
    pending = pending_batches(LandingZone(landing), store)
    per_batch, starts, ends = [], {}, []

    def started(key: str, n: int) -> None:
        starts[key] = (Mark(), n)

    def done(outcome) -> None:
        # Per batch too: equal batches that get slower, or write more, as the lake fills are the suspects.
        key, ok = outcome.name, outcome.ok
        m0, n = starts[key]
        d = Mark().since(m0, n)
        per_batch.append({"batch": key, "files": n, "s": d["wall_s"], "ok": ok,
                          **{k: d[k] for k in ("rchar", "wchar", "write_bytes")}})
        if len(per_batch) == len(pending):
            ends.append((Mark(), _peak_mib()))
            _reset_peak()

    report = run_pending(settings, on_batch_start=started, on_batch_done=done, pending=pending)
    c = Mark()
    b, batch_peak = ends[0] if ends else (a, _peak_mib())
    out["stages"] = {"synthesis": synth,
                     "batch_jobs": b.since(a, w.files) | {"peak_rss_mib": batch_peak},
                     "programme_job": c.since(b, w.files) | {"peak_rss_mib": _peak_mib()}}
    out["per_batch"] = per_batch
    out["checks"] = _checks(store, report, w)
    out["steps"], out["steps_by_batch"] = _steps(work / "home" / "dagster")
    return out


def _steps(dagster_home: Path) -> tuple[dict, dict]:
    """Seconds per Dagster step over the scale's runs, and per batch run (bench/steps.py), read from
    its instance."""
    import dagster as dg

    from bench.steps import step_times, steps_by_batch

    os.environ["DAGSTER_HOME"] = str(dagster_home)
    with dg.DagsterInstance.get() as instance:
        return step_times(instance), steps_by_batch(instance)


def _rows(store, zone: str, name: str, columns=None):
    from medlake.lake.tables import table_named

    table = table_named(zone, name)
    return store.read(table, columns) if store.exists(table) else None


def _checks(store, report, w) -> dict:
    """Did the pipeline take every clone: run ok, one deid case per case landed, statuses as planned,
    nothing quarantined, every batch passed its identifier check, releases made."""
    cases = _rows(store, "deid", "cases", ["dataset", "part", "annotation_status"])
    got = Counter("/".join(r.values()) for r in cases.to_pylist()) if cases is not None else Counter()
    want = Counter(w.by_cell)
    q = _rows(store, "restricted", "quarantine", ["reason_code"])
    dq = _rows(store, "restricted", "deid_quarantine", ["reason_code"])
    probs = _rows(store, "deid", "annotation_problems", ["code"])
    idc = _rows(store, "program", "identifier_checks", ["passed"])
    rel = _rows(store, "program", "release_log", ["action", "cases"])
    published = [r for r in rel.to_pylist() if r["action"] == "published"] if rel is not None else []
    return {
        "run_ok": report.ok, "failed": [f.name for f in report.failed], "batches_run": len(report.batches),
        "deid_cases": cases.num_rows if cases is not None else 0, "cases_landed": w.cases,
        "status_mismatch": {k: {"planned": want[k], "deid": got[k]} for k in sorted(set(want) | set(got))
                            if want[k] != got[k]},
        "quarantine": dict(Counter(q.column(0).to_pylist())) if q is not None else {},
        "deid_quarantine": dict(Counter(dq.column(0).to_pylist())) if dq is not None else {},
        "annotation_problems": dict(Counter(probs.column(0).to_pylist())) if probs is not None else {},
        "identifier_checks_failed": idc.column(0).to_pylist().count(False) if idc is not None else None,
        "releases_published": len(published), "released_cases": sum(r["cases"] for r in published),
    }


def growth(scales: dict) -> tuple[list[dict], list[dict]]:
    """Growth factors between consecutive scales, and the stages whose time grows superlinearly."""
    keys = sorted(scales, key=float)
    out, slow = [], []
    for lo, hi in zip(keys, keys[1:]):
        a, b = scales[lo], scales[hi]
        n = b["cases"] / a["cases"]
        step = {"from": lo, "to": hi, "case_ratio": round(n, 2), "stages": {}}
        for stage, sa in a["stages"].items():
            sb = b["stages"][stage]
            step["stages"][stage] = {k: round(sb[k] / sa[k] / n, 3) if sa[k] else None
                                     for k in ("wall_s", "read_bytes", "write_bytes", "rchar", "wchar", "peak_rss_mib")}
            for fig in FLAGGED:   # read_bytes is left out: it depends on what the page cache held
                g = step["stages"][stage][fig]
                if g is not None and g > SUPERLINEAR:
                    slow.append({"stage": stage, "figure": fig, "from": lo, "to": hi, "growth": g,
                                 "values": [sa[fig], sb[fig]], "cases": [a["cases"], b["cases"]]})
        out.append(step)
    return out, slow


STEP_MIN_S = 5.0   # steps shorter than this at the larger scale are start-up noise, not growth


def step_growth(scales: dict) -> tuple[list[dict], list[dict]]:
    """Growth of each Dagster step's summed time between consecutive scales, and the flagged ones."""
    keys = [k for k in sorted(scales, key=float) if scales[k].get("steps")]
    out, slow = [], []
    for lo, hi in zip(keys, keys[1:]):
        a, b = scales[lo], scales[hi]
        n = b["cases"] / a["cases"]
        for job, steps in sorted(b["steps"].items()):
            for step, fb in sorted(steps.items()):
                fa = a["steps"].get(job, {}).get(step)
                if not fa or not fa["s"]:
                    continue
                g = round(fb["s"] / fa["s"] / n, 3)
                row = {"from": lo, "to": hi, "job": job, "step": step, "s": [fa["s"], fb["s"]],
                       "runs": [fa["runs"], fb["runs"]], "growth": g}
                out.append(row)
                if g > SUPERLINEAR and fb["s"] >= STEP_MIN_S:
                    slow.append(row)
    return out, slow


def _write_results(scales: dict) -> dict:
    steps, slow = growth(scales)
    by_step, slow_steps = step_growth(scales)
    doc = {"command": "make bench (python -m bench fullscale [--scale S ...])",
           "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
           "as_of": AS_OF, "scales": scales, "growth": steps, "superlinear": slow,
           "step_growth": by_step, "superlinear_steps": slow_steps,
           "superlinear_threshold": SUPERLINEAR,
           "note": "growth = (figure ratio) / (case ratio) between consecutive scales; 1.0 is linear. "
                   "Small scales carry fixed per-run costs (Dagster start-up, one batch per dataset), so "
                   "growth below 1 there is expected. read_bytes counts only reads the page cache missed. "
                   f"Steps under {STEP_MIN_S:g} s at the larger scale are not flagged."}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")   # after every scale: a long run keeps its parts
    from bench.growth_table import write
    write(RESULTS.parent)
    return doc


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, nargs="+", default=list(SCALES), help="fractions of full scale")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tables-only", action="store_true",
                    help="run nothing: recompute growth and bench/results/fullscale.md from the results file")
    a = ap.parse_args()
    if a.child:   # one scale; the parent reads the result file
        import faulthandler
        faulthandler.enable()   # a crash at full scale leaves every thread's Python stack in the log
        (scale,) = a.scale
        result = run_scale(scale)
        (WORK / str(scale) / "result.json").write_text(json.dumps(result, indent=2) + "\n")
        return
    doc = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    scales = doc.get("scales", {})
    for scale in [] if a.tables_only else a.scale:
        print(f"fullscale: scale {scale}", flush=True)
        result = WORK / str(scale) / "result.json"
        result.unlink(missing_ok=True)
        rc = subprocess.run([sys.executable, "-m", "bench.fullscale", "--child", "--scale", str(scale)],
                            cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}).returncode
        if not result.exists():
            raise SystemExit(f"fullscale: scale {scale} failed (exit {rc}); see its output above")
        # A child can die at interpreter exit after writing its result (seen: SIGABRT, "terminate called
        # without an active exception"); the figures stand, the exit code is kept with them.
        scales[str(scale)] = json.loads(result.read_text()) | {"child_exit_code": rc}
        doc = _write_results(scales)
    if a.tables_only:
        # Step times for scales run before they were recorded, from the instances they left.
        for k, v in scales.items():
            home = WORK / k / "home" / "dagster"
            if ("steps" not in v or "steps_by_batch" not in v) and home.is_dir():
                v["steps"], v["steps_by_batch"] = _steps(home)
        doc = _write_results(scales)
    print(json.dumps({k: doc[k] for k in ("growth", "superlinear", "superlinear_steps")}, indent=2))


if __name__ == "__main__":
    main()
