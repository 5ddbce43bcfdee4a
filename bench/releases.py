"""Releases at lung-CT scale, through the real pipeline.

1. Publish: a 60,000-case release of lung-ct (tiny images, one object per case) into a fresh
   folder, against `cp -r` of the same de-identified objects, alternated in the same run.
   Target: <= 1.5x cp -r.
2. Withdrawal: one patient withdraws from a 100,000-case lake that has been released; the next
   `medlake run` (consent, purge, vacuum, eligibility, new release versions, catalogue, cards,
   dashboard) is timed against the same run with nothing withdrawn. Target: <= 60 s.

The lake is made the way a hospital would make it: exports in the landing zone, then run_pending
(ingestion, de-identification, identifier checks, cases, programme job).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.ctfiles import _uid, template
from medlake.lake.tables import CASES
from medlake.consent.tables import WITHDRAWAL_AUDIT

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "work" / "releases"
RESULTS = REPO / "bench" / "results" / "releases.json"
FIRST, SECOND = 60_000, 40_000
ROUNDS = 3
AS_OF = "2019-09-15"


def write_cases(batch_dir: Path, first: int, n: int) -> list[str]:
    """n one-slice cases (8x8 CT), patients P<first..first+n>; UIDs and ids patched at fixed width."""
    images = batch_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    tpl = template(8, "P000000000", 0, 0)
    marks = [(_uid(k, 0).encode(), k) for k in (1, 2, 3, 4)]
    patients = []
    with open(batch_dir / "cases.csv", "w") as cases:
        cases.write("case_id,patient_id,study_instance_uids,consent_class\n")
        for i in range(first, first + n):
            data = tpl
            for mark, kind in marks:
                data = data.replace(mark, _uid(kind, i + 1).encode())
            pid = f"P{i + 1:09d}"
            data = data.replace(b"P000000000", pid.encode())
            sub = images / f"{i // 1000:04d}"
            if i % 1000 == 0 or i == first:
                sub.mkdir(exist_ok=True)
            with open(sub / f"IM{i:07d}.dcm", "wb") as fh:
                fh.write(data)
            cases.write(f"C{i + 1:09d},{pid},{_uid(1, i + 1)},A\n")
            patients.append(pid)
    (batch_dir / "_READY").write_text("")
    return patients


def consent(landing: Path, name: str, patients: list[str], event: str = "consented") -> None:
    folder = landing / "tmu" / "_consent"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / name, "w") as fh:
        fh.write("patient_id,consent_class,event,event_date,reference\n")
        for p in patients:
            fh.write(f"{p},A,{event},2019-05-01,ICF-{p}\n")


def timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main() -> None:
    os.environ.setdefault("MEDLAKE_SECRET_KEY", "medlake-bench-key-0123456789abcdef0123456789")
    os.environ["MEDLAKE_AS_OF"] = AS_OF
    from medlake.lake import DeltaStore, Lake
    from medlake.program import load_registry
    from medlake.settings import Settings
    from medlake.sharing.releases import release_dataset
    from medlake.sharing.run import release_run
    from pipelines.runner import run_pending

    home = WORK / "home"
    if "--withdrawal-only" in sys.argv:
        # Re-measure part 2 on the lake the last full run left (after a change to the release step).
        return withdrawal_again(home)
    shutil.rmtree(WORK, ignore_errors=True)
    settings = Settings.from_env({"MEDLAKE_HOME": str(home)}).absolute()
    landing = Path(settings.landing)
    registry = load_registry(settings.program)
    store = DeltaStore(Lake.from_root(settings.lake))
    result: dict = {"command": "make bench (python -m bench releases)", "machine": f"{os.cpu_count()} cores"}

    t = time.perf_counter()
    patients = write_cases(landing / "tmu" / "lung-ct" / "2019-09-01-a", 0, FIRST)
    consent(landing, "2019-06-30.csv", patients)
    result["synth_60k_s"] = round(time.perf_counter() - t, 1)
    run = timed(lambda: run_pending(settings))
    result["pipeline_60k_s"] = round(run, 1)
    assert store.read(CASES).num_rows == FIRST

    # -- 1. publishing against cp -r ------------------------------------------------------------
    objects = Path(settings.lake) / "deid" / "objects" / "tmu" / "lung-ct"
    ours, full, copies = [], [], []
    for i in range(ROUNDS):
        root = WORK / f"publish-{i}"
        r = release_run(store, registry, root, dt.date.fromisoformat(AS_OF))
        out: list = []
        ours.append(timed(lambda: out.extend(release_dataset(r, "tmu", "lung-ct", "collaboration"))))
        assert out[0].action == "published" and out[0].cases == FIRST, out
        linked = out[0].linked
        shutil.rmtree(root)
        dst = WORK / f"cp-{i}"
        copies.append(timed(lambda: subprocess.run(["cp", "-r", str(objects), str(dst)], check=True)))
        shutil.rmtree(dst)
        root = WORK / f"publish-full-{i}"
        r = release_run(store, registry, root, dt.date.fromisoformat(AS_OF))
        r.rescan_objects = True
        full.append(timed(lambda: release_dataset(r, "tmu", "lung-ct", "collaboration")))
        shutil.rmtree(root)
    files = sum(1 for _ in objects.rglob("*.dcm"))
    result["publish"] = {
        "cases": FIRST, "objects": files, "hard_links": linked, "rounds": ROUNDS,
        "medlake_s": [round(x, 2) for x in ours], "cp_r_s": [round(x, 2) for x in copies],
        "medlake_rescanning_objects_s": [round(x, 2) for x in full],
        "ratio_median": round(statistics.median(ours) / statistics.median(copies), 2),
        "ratio_rescanning_median": round(statistics.median(full) / statistics.median(copies), 2),
        "target_ratio": 1.5,
        "note": "medlake: select eligible cases, k-anonymity gate, hard-link objects, write Parquet tables, "
                "card, release.json and manifest (hashes from the lake, nothing re-read), run the identifier "
                "checker over the release (names of every file, content of every file that is not a link to "
                "an object its batch check already passed), rename, move latest. The rescanning variant also "
                "reads every object again.",
    }

    # -- 2. withdrawal from a 100,000-case lake -----------------------------------------------
    more = write_cases(landing / "tmu" / "lung-ct" / "2019-09-08-a", FIRST, SECOND)
    consent(landing, "2019-07-31.csv", more)
    result["pipeline_plus_40k_s"] = round(timed(lambda: run_pending(settings)), 1)
    assert store.read(CASES).num_rows == FIRST + SECOND
    import pipelines.runner as runner

    stale = runner.programme_stale
    runner.programme_stale = lambda *_: True  # a programme run with nothing new: the baseline
    baseline = timed(lambda: run_pending(settings))
    runner.programme_stale = stale
    consent(landing, "2019-10-01.csv", [patients[12_345]], event="withdrawn")
    report = {}
    withdrawal = timed(lambda: report.setdefault("r", run_pending(settings)))
    assert report["r"].ok, report["r"].failed
    assert store.read(CASES).num_rows == FIRST + SECOND - 1
    audit = store.read(WITHDRAWAL_AUDIT).num_rows
    result["withdrawal"] = {
        "cases_in_lake": FIRST + SECOND, "withdrawn_patients": 1, "medlake_run_s": round(withdrawal, 1),
        "same_run_nothing_withdrawn_s": round(baseline, 1), "audit_rows": audit, "target_s": 60,
        "note": "wall time of `medlake run` (run_pending) after the consent file arrives: consent status, purge "
                "(rewrite of the team's slice of every deid table, file deletion, vacuum), eligibility, new "
                "collaboration version of the 100,000-case release with the old ones purged, "
                "application releases, progress tables, programme cards, dashboard and catalogue.",
    }
    result["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


def withdrawal_again(home: Path) -> None:
    from medlake.settings import Settings
    from pipelines import runner
    from pipelines.runner import run_pending

    settings = Settings.from_env({"MEDLAKE_HOME": str(home)}).absolute()
    landing = Path(settings.landing)
    stale = runner.programme_stale
    runner.programme_stale = lambda *_: True
    baseline = timed(lambda: run_pending(settings))
    runner.programme_stale = stale
    n = len(list((landing / "tmu" / "_consent").glob("*.csv")))
    consent(landing, f"2019-10-{n:02d}.csv", [f"P{77_000 + n:09d}"], event="withdrawn")
    report = {}
    withdrawal = timed(lambda: report.setdefault("r", run_pending(settings)))
    assert report["r"].ok, report["r"].failed
    result = json.loads(RESULTS.read_text())
    result["withdrawal"].update({"medlake_run_s": round(withdrawal, 1), "same_run_nothing_withdrawn_s":
                                 round(baseline, 1), "remeasured": "python -m bench releases --withdrawal-only"})
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["withdrawal"], indent=2))


if __name__ == "__main__":
    sys.exit(main())
