"""The lake a full-size run leaves (bench/fullscale.py), for the benches that compare old and new code
on it: where it is, its key, and the batch they measure by default (lung X-ray's last)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOME = REPO / "bench" / "work" / "fullscale" / "1.0" / "home"
KEY = "medlake-bench-fullscale-key-0123456789abcdef"   # bench/fullscale.py's


def batch_args(doc: str, bench: str) -> argparse.Namespace:
    """--home, --team, --dataset and --batch, the lake checked, MEDLAKE_SECRET_KEY set to the run's."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--home", default=str(HOME))
    ap.add_argument("--team", default="tmu")
    ap.add_argument("--dataset", default="lung-xray")
    ap.add_argument("--batch", default="2020-01-05-i")
    a = ap.parse_args()
    if not Path(a.home, "lake", "deid").is_dir():
        raise SystemExit(f"{bench}: no lake under {a.home}: run `python -m bench fullscale` first")
    os.environ.setdefault("MEDLAKE_SECRET_KEY", KEY)
    return a
