"""The ten suites after one export batch: the dataset's whole slice validated (before) and the
batch's rows validated with their keys checked against the slice (now; series and studies: those
of the batch's instances; cases: the slice in both), side by side on the lake
the full-size bench left.

`python -m bench.validation_batch [--home HOME] [--team T --dataset D --batch B]` (default: the
last tmu/lung-xray batch of bench/work/fullscale/1.0, whose dataset holds 440,000 cases). One
process, same lake state (read only), before then now, suite by suite; both must pass where the
full-size run's checks passed. Writes bench/results/validation_batch.json.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from bench.fullscale_lake import batch_args
from medlake.lake.tables import BATCHES

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "validation_batch.json"


def main() -> None:
    a = batch_args(__doc__, "validation_batch")
    from medlake.deid.keys import DeidKeys
    from medlake.lake import DeltaStore, Lake
    from medlake.validation import load_suites, validate
    from medlake.validation.scope import validate_dataset

    store = DeltaStore(Lake.from_root(str(Path(a.home, "lake"))))
    ref = DeidKeys.from_env().batch_ref(a.team, a.dataset, a.batch)
    suites = load_suites(REPO / "expectations")
    validate(store.read(BATCHES).slice(0, 1), suites["restricted.batches"])  # import GX once
    per_suite, before_total, now_total, same = {}, 0.0, 0.0, True
    for table_id, suite in suites.items():
        s = time.perf_counter()
        before = validate_dataset(store, suite, a.team, a.dataset)
        mid = time.perf_counter()
        now = validate_dataset(store, suite, a.team, a.dataset, a.batch, ref)
        end = time.perf_counter()
        per_suite[table_id] = {"before_rows": before.row_count, "before_s": round(mid - s, 2),
                               "now_rows": now.row_count, "now_s": round(end - mid, 2),
                               "before_passed": before.success, "now_passed": now.success}
        before_total += mid - s
        now_total += end - mid
        same = same and before.success and now.success
        print(table_id, per_suite[table_id])
    doc = {"command": "python -m bench.validation_batch", "team": a.team, "dataset": a.dataset,
           "batch": a.batch, "suites": per_suite, "before_s": round(before_total, 2),
           "now_s": round(now_total, 2), "ratio": round(before_total / max(now_total, 0.01), 1),
           "both_passed": same,
           "note": "read and validate per suite, program/validation_history not written; now, series and "
                   "studies are those of the batch's instances, and cases are validated whole in both"}
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({k: v for k, v in doc.items() if k != "suites"}, indent=2))
    if not same:
        raise SystemExit("validation_batch: a suite failed on the full-size lake")


if __name__ == "__main__":
    main()
