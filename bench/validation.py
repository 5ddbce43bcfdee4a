"""great-expectations validation cost on a table the size of a future `cases` table.

    python -m bench.validation [--rows 1000000]

Writes bench/results/validation.json. The run happens in a child process so that its peak RSS
(resource.getrusage(RUSAGE_CHILDREN).ru_maxrss) covers exactly: importing great_expectations,
building the 1,000,000-row pyarrow table (team, dataset, case_pseudonym unique, patient_pseudonym,
annotation_status, instances, study_date) and medlake.validation.validate with an 8-expectation
suite. Targets: validation <= 30 s wall, peak RSS <= 2 GiB.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results" / "validation.json"
TARGET_SECONDS = 30.0
TARGET_BYTES = 2 * 1024**3

SUITE = {
    "table": "deid.cases",
    "description": "bench: shaped like the future cases table",
    "example_keys": ["team", "dataset", "case_pseudonym"],
    "expectations": [
        {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "case_pseudonym"}},
        {"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["team", "dataset", "case_pseudonym"]}},
        {"type": "expect_column_values_to_match_regex", "kwargs": {"column": "patient_pseudonym",
                                                                   "regex": r"^PSN-[A-Z2-7]{20}$"}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "annotation_status",
                                                                 "value_set": ["image_only", "partial", "full"]}},
        {"type": "expect_column_values_to_be_between", "kwargs": {"column": "instances", "min_value": 1,
                                                                  "max_value": 100000}},
        {"type": "expect_column_values_to_be_between", "kwargs": {
            "column": "study_date", "min_value": {"$date": "2007-11-01"}, "max_value": {"$date": "2020-11-30"}}},
        {"type": "expect_column_values_to_not_match_regex_list", "kwargs": {"column": "case_pseudonym", "regex_list": [
            r"(?<![A-Za-z0-9])[A-Z][12]\d{8}(?![A-Za-z0-9])",
            r"(?<![A-Za-z0-9])09\d{2}[- ]?\d{3}[- ]?\d{3}(?![A-Za-z0-9])"]}},
        {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "team",
                                                                 "value_set": ["tvgh", "ntuh", "cgmh", "kmuh"]}},
    ],
}


def _cases(n: int):
    import base64
    import datetime
    import hashlib

    import numpy as np
    import pyarrow as pa

    rng = np.random.default_rng(7)
    b32 = lambda i, p: base64.b32encode(hashlib.blake2b(p + i.to_bytes(8, "big"), digest_size=15).digest()).decode()[:20]  # noqa: E731
    teams = np.array(["tvgh", "ntuh", "cgmh", "kmuh"])
    status = np.array(["image_only", "partial", "full"])
    days = rng.integers(0, (datetime.date(2020, 11, 30) - datetime.date(2007, 11, 1)).days, n)
    return pa.table({
        "team": pa.array(teams[rng.integers(0, 4, n)]),
        "dataset": pa.array(np.array(["liver-ct", "chest-xr", "brain-mr"])[rng.integers(0, 3, n)]),
        "case_pseudonym": pa.array([b32(i, b"c") for i in range(n)]),
        "patient_pseudonym": pa.array(["PSN-" + b32(i // 3, b"p") for i in range(n)]),
        "annotation_status": pa.array(status[rng.integers(0, 3, n)]),
        "instances": pa.array(rng.integers(1, 3000, n).astype("int32")),
        "study_date": pa.array((np.datetime64("2007-11-01") + days).astype("datetime64[D]"), type=pa.date32()),
    })


def child(rows: int) -> dict:
    sys.path.insert(0, str(REPO))
    t0 = time.perf_counter()
    from medlake.validation import validate
    from medlake.validation.suite import parse_suite

    import great_expectations  # noqa: F401  (import cost measured separately)

    t1 = time.perf_counter()
    table = _cases(rows)
    t2 = time.perf_counter()
    outcome = validate(table, parse_suite(SUITE))
    t3 = time.perf_counter()
    return {"import_s": round(t1 - t0, 2), "build_table_s": round(t2 - t1, 2), "validate_s": round(t3 - t2, 2),
            "success": outcome.success, "expectations": len(outcome.results),
            "failed": [r.name for r in outcome.failed], "table_bytes": table.nbytes}


def main() -> None:
    ap = argparse.ArgumentParser(prog="bench validation")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.rows)))
        return
    started = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "bench.validation", "--child", "--rows", str(args.rows)],
                       cwd=REPO, capture_output=True, text=True, env={**__import__("os").environ,
                                                                       "GX_ANALYTICS_ENABLED": "false"})
    wall = time.perf_counter() - started
    if p.returncode:
        sys.stderr.write(p.stderr)
        raise SystemExit(p.returncode)
    r = json.loads(p.stdout.strip().splitlines()[-1])
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    out = {
        "rows": args.rows, **r,
        "child_wall_s": round(wall, 2),
        "peak_rss_bytes": peak, "peak_rss_mib": round(peak / 2**20, 1),
        "targets": {"validate_s": TARGET_SECONDS, "peak_rss_bytes": TARGET_BYTES},
        "within_targets": r["validate_s"] <= TARGET_SECONDS and peak <= TARGET_BYTES,
        "python": platform.python_version(), "machine": platform.machine(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
