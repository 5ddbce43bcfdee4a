"""Case assembly for one batch, rebuilt whole (before) and merged (now), side by side on a lake the
full-size bench left: the last of lung X-ray's batches, whose dataset already holds 440,000 cases.
The baseline is the code before the change: medlake/cases/annotations.py as of BASELINE_REV (it read
every instance of the dataset), loaded from git, and build_cases (still the fallback).

`python -m bench.cases_update [--home HOME] [--team T --dataset D --batch B]` (default: the last
tmu/lung-xray batch of bench/work/fullscale/1.0). Both paths run in one process on the same state
(the batch's annotations are already in deid/annotations): the step's reads and computation and its
write to deid/cases. Then the merged table is compared with a rebuild, row by row. Writes
bench/results/cases_update.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench.fullscale_lake import batch_args

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "cases_update.json"
BASELINE_REV = "e3487a3"   # the last commit that rebuilt a batch's dataset whole


def _baseline_annotations():
    """batch_annotations as it was at BASELINE_REV."""
    import subprocess
    import types

    source = subprocess.run(["git", "show", f"{BASELINE_REV}:medlake/cases/annotations.py"], cwd=REPO,
                            check=True, capture_output=True, text=True).stdout
    module = types.ModuleType("baseline_annotations")
    exec(compile(source, f"{BASELINE_REV}:medlake/cases/annotations.py", "exec"), module.__dict__)
    return module.batch_annotations


def main() -> None:
    a = batch_args(__doc__, "cases_update")
    import pyarrow.dataset as pads

    from medlake.cases.annotations import batch_annotations
    from medlake.cases.build import build_cases, case_pseudonyms
    from medlake.cases.update import apply_update, plan_update
    from medlake.deid.keys import DeidKeys
    from medlake.lake import DeltaStore, Lake
    from medlake.lake.tables import CASES
    from medlake.program import load_registry

    store = DeltaStore(Lake.from_root(str(Path(a.home, "lake"))))
    keys = DeidKeys.from_env()
    registry = load_registry(REPO / "config" / "program.yaml")
    team, dataset = a.team, a.dataset
    ref = keys.batch_ref(team, dataset, a.batch)
    t: dict[str, float] = {}

    def timed(name, fn):
        s = time.perf_counter()
        out = fn()
        t[name] = round(time.perf_counter() - s, 2)
        return out

    known = timed("before_case_pseudonyms", lambda: case_pseudonyms(store, keys, team, dataset))
    baseline_annotations = _baseline_annotations()
    rows, _ = timed("before_batch_annotations", lambda: baseline_annotations(store, team, dataset, ref, known))
    rebuilt = timed("before_build_cases", lambda: build_cases(store, keys, registry, team, dataset))
    timed("before_write", lambda: store.replace(CASES, rebuilt, {"team": team, "dataset": dataset}))
    plan = timed("now_plan", lambda: plan_update(store, keys, registry, team, dataset, a.batch, ref))
    if plan is None:
        raise SystemExit("cases_update: the update was not planned (the dataset would be rebuilt)")
    rows_now, _ = timed("now_batch_annotations",
                        lambda: batch_annotations(store, team, dataset, ref, plan.known_cases))
    version = timed("now_apply_and_write", lambda: apply_update(store, keys, registry, plan, rows_now))

    def by_case(tbl):
        return sorted(tbl.to_pylist(), key=lambda r: r["case_pseudonym"])
    now_table = store.read(CASES, where=(pads.field("team") == team) & (pads.field("dataset") == dataset))
    same = version is not None and plan.known_cases == known and rows_now == rows \
        and by_case(now_table.select(rebuilt.column_names)) == by_case(rebuilt)
    before = sum(v for k, v in t.items() if k.startswith("before_"))
    now = sum(v for k, v in t.items() if k.startswith("now_"))
    doc = {"command": "python -m bench.cases_update", "baseline_rev": BASELINE_REV,
           "team": team, "dataset": dataset, "batch": a.batch,
           "dataset_cases": rebuilt.num_rows, "batch_cases": len(plan.mine), "seconds": t,
           "before_s": round(before, 2), "now_s": round(now, 2), "ratio": round(before / max(now, 0.01), 1),
           "same_table_as_rebuild": same,
           "note": "one process, same lake state, before then now; annotation rows are computed by both "
                   "but not written (both steps write them the same way)"}
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))
    if not same:
        raise SystemExit("cases_update: the merged table differs from a rebuild")


if __name__ == "__main__":
    main()
