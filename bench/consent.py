"""The consent step's fold, per patient in Python (before) and in DuckDB (now), side by side on the
lakes the full-size bench left at 1/10 and full scale, to see how each grows with the programme.

The baseline is medlake/consent/status.py and medlake/deid/keys.py as of BASELINE_REV, loaded from
git; both folds read the same events and cases in one process and must give the same table and the
same problems. Read-only: nothing is written to the lakes.

`python -m bench.consent [--scales 0.1 1.0] [--repeat 3]`. Writes bench/results/consent.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "consent.json"
WORK = REPO / "bench" / "work" / "fullscale"
KEY = b"medlake-bench-fullscale-key-0123456789abcdef"   # the full-size bench's key (bench/fullscale.py)
BASELINE_REV = "f5c8fbf"   # the last commit that folded consent patient by patient


def _baseline(path: str) -> types.ModuleType:
    source = subprocess.run(["git", "show", f"{BASELINE_REV}:{path}"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    module = types.ModuleType("baseline_" + Path(path).stem)
    sys.modules[module.__name__] = module  # dataclasses look their module up there
    exec(compile(source, f"{BASELINE_REV}:{path}", "exec"), module.__dict__)
    return module


def _best(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        s = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - s)
    return round(best, 3), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scales", nargs="+", default=["0.1", "1.0"])
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    from medlake.consent.events import read_consent_events
    from medlake.consent.status import consent_status
    from medlake.deid.keys import DeidKeys
    from medlake.lake import DeltaStore, Lake
    from medlake.lake.tables import SOURCE_CASES
    from medlake.landing import open_landing
    from medlake.program import load_registry

    before_status = _baseline("medlake/consent/status.py").consent_status
    before_keys = _baseline("medlake/deid/keys.py").DeidKeys(KEY)
    now_keys = DeidKeys(KEY)
    registry = load_registry(REPO / "config" / "program.yaml")
    runs = []
    for scale in a.scales:
        home = WORK / scale / "home"
        if not (home / "lake" / "restricted").is_dir():
            raise SystemExit(f"consent: no lake under {home}: run `python -m bench fullscale` first")
        store = DeltaStore(Lake.from_root(str(home / "lake")))
        read_s, read = _best(lambda: read_consent_events(open_landing(str(home / "landing")), registry), 1)
        cases = store.read(SOURCE_CASES, ["team", "patient_id", "consent_class"],
                           schema=SOURCE_CASES.schema)
        before_s, before = _best(lambda: before_status(read.table, cases, registry, before_keys.patient_pseudonym),
                                 a.repeat)
        now_s, now = _best(lambda: consent_status(read.table, cases, registry, now_keys.patient_pseudonym), a.repeat)

        def problems(result):
            return sorted(tuple(sorted(p.items())) for p in result.problems)
        same = before.table.equals(now.table) and problems(before) == problems(now)
        runs.append({"scale": float(scale), "patients": now.table.num_rows, "events": read.table.num_rows,
                     "read_events_s": read_s, "before_fold_s": before_s, "now_fold_s": now_s,
                     "ratio": round(before_s / max(now_s, 1e-3), 2), "same_table_and_problems": same})
        print(json.dumps(runs[-1]))
    growth = []
    for lo, hi in zip(runs, runs[1:]):
        per = hi["patients"] / lo["patients"]
        growth.append({"from": lo["scale"], "to": hi["scale"],
                       "before_growth_per_patient": round(hi["before_fold_s"] / lo["before_fold_s"] / per, 2),
                       "now_growth_per_patient": round(hi["now_fold_s"] / lo["now_fold_s"] / per, 2)})
    doc = {"command": "python -m bench.consent", "baseline_rev": BASELINE_REV, "repeat": a.repeat,
           "runs": runs, "growth": growth,
           "note": "best of `repeat` runs of the fold (events and cases already in memory), pseudonyms "
                   "included; growth per patient is the time ratio divided by the patient ratio"}
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))
    if not all(r["same_table_and_problems"] for r in runs):
        raise SystemExit("consent: the DuckDB fold differs from the per-patient fold")


if __name__ == "__main__":
    main()
