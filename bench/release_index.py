"""The release check's identifier index, before and after it shared the batch check's per-process
index: the programme job runs after the batch runs in the same process (`medlake run`), and every
team's release folded the team's whole restricted zone again although the batch checks had just
folded it.

`python -m bench.release_index [--lake LAKE] [--team TEAM]` (default: the full-scale bench's lake,
bench/work/fullscale/1.0, left by `python -m bench fullscale`). In one process, side by side:

1. the batch stage's state: team_index(team), as the last batch check of the team leaves it;
2. baseline: the release check's former index, IdentifierIndex.build over every identifier of the team
   (it was rebuilt whenever a restricted table had changed, which every batch does);
3. now: the release check's team_index(team) call, which extends the index kept since step 1.

Writes bench/results/release_index.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path

from medlake.checker.index import IdentifierIndex
from medlake.checker.sources import team_identifiers, team_index
from medlake.lake import DeltaStore, Lake

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results" / "release_index.json"
DEFAULT_LAKE = REPO / "bench" / "work" / "fullscale" / "1.0" / "home" / "lake"


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t, 2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lake", default=str(DEFAULT_LAKE))
    ap.add_argument("--team", default="tmu")
    a = ap.parse_args()
    if not Path(a.lake, "restricted").is_dir():
        raise SystemExit(f"release_index: no lake at {a.lake}: run `python -m bench fullscale` first")
    store = DeltaStore(Lake.from_root(a.lake))
    kept, batch_s = _timed(lambda: team_index(store, a.team))
    rebuilt, baseline_s = _timed(lambda: IdentifierIndex.build(team_identifiers(store, a.team)))
    now, now_s = _timed(lambda: team_index(store, a.team))
    assert now is kept and now._whole == rebuilt._whole, "the shared index must hold what a rebuild holds"
    lake = Path(a.lake).absolute()
    doc = {"command": "python -m bench.release_index",
           "lake": str(lake.relative_to(REPO)) if lake.is_relative_to(REPO) else str(lake), "team": a.team,
           "folded_values": len(now), "batch_stage_index_s": batch_s,
           "release_index_baseline_rebuild_s": baseline_s, "release_index_shared_s": now_s,
           "ratio": round(baseline_s / max(now_s, 0.01), 1),
           "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
           "note": "same process, same lake, one after the other; the shared call lists the team's data "
                   "files and reads none (nothing was added since the batch stage)"}
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps(doc, indent=2))


if __name__ == "__main__":
    main()
