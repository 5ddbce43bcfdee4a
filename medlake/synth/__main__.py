"""`python -m medlake.synth --out DIR`: write synthetic hospital exports and the truth file."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from medlake.program import load_registry
from medlake.settings import Settings

from .generate import SynthSpec, generate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m medlake.synth", description=__doc__)
    ap.add_argument("--out", required=True, type=Path, help="landing-zone root to write into")
    ap.add_argument("--program", type=Path, help="programme registry (default: as `medlake` finds it)")
    ap.add_argument("--datasets", nargs="*", help="dataset ids (default: all)")
    ap.add_argument("--cases", type=int, default=4, help="cases per dataset")
    ap.add_argument("--status-counts", type=Path, help="JSON {dataset: {part: {status: n}}}; overrides --cases")
    ap.add_argument("--batches", type=int, default=1)
    ap.add_argument("--tiny", action="store_true", help="8x8 pixels, one image object per case")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-consent", action="store_true")
    ap.add_argument("--no-applications", action="store_true")
    ap.add_argument("--truth", type=Path, help="truth file (default OUT/_synth/truth.json)")
    a = ap.parse_args(argv)
    spec = SynthSpec(datasets=tuple(a.datasets) if a.datasets else None, cases=a.cases,
                     status_counts=json.loads(a.status_counts.read_text()) if a.status_counts else None,
                     batches=a.batches, tiny=a.tiny, seed=a.seed, consent=not a.no_consent,
                     applications=not a.no_applications)
    t0 = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if done == total or done % 100 == 0:
            print(f"\r{done}/{total} cases", end="", file=sys.stderr, flush=True)

    r = generate(a.out, load_registry(a.program or Settings.from_env().program), spec, a.truth, progress)
    print(f"\n{r.cases} cases in {r.datasets} datasets / {r.batches} batches / {r.teams} teams: {r.files} files, "
          f"{r.bytes / 1e6:.1f} MB, {r.identifiers} identifiers -> {r.truth_path} ({time.perf_counter() - t0:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
