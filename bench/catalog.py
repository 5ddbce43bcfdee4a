"""The analysis catalogue at programme scale: DuckDB views over 12,000,000 instance rows and
865,800 case rows, timed and measured in a fresh read-only process per query.

Target (issue: catalogue): recomputing every progress table over this catalogue <= 30 s and
<= 4 GiB. The progress computation itself is not plugged in yet; the GROUP BY over cases by dataset
and annotation status below is what it needs. `bench_catalogue(root)` makes the data for reuse.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from medlake.catalog import build_duckdb, catalog_root, query
from medlake.lake import DeltaStore, Lake
from medlake.lake.tables import CASES, INSTANCES
from medlake.program import load_registry

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "work" / "catalog"
RESULTS = REPO / "bench" / "results" / "catalog.json"

INSTANCE_ROWS = 12_000_000
CASE_ROWS = 865_800
_FILE_ROWS = 1_000_000
_HEX = np.array([f"{i:02X}".encode() for i in range(256)], dtype="S2")


def _hex(rng: np.random.Generator, n: int, nbytes: int) -> pa.Array:
    """n random upper-case hex strings of 2 * nbytes characters."""
    raw = rng.integers(0, 256, size=(n, nbytes), dtype=np.uint8)
    return pa.array(np.ascontiguousarray(_HEX[raw]).view(f"S{2 * nbytes}").ravel()).cast(pa.string())


def _prefixed(prefix: str, values: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(pa.scalar(prefix), values, "")


def _uid(base: int, ids: np.ndarray) -> pa.Array:
    """Keyed-looking 2.25 UIDs, deterministic in (base, id) so cases and instances agree."""
    return pc.binary_join_element_wise(pa.scalar("2.25."), pa.scalar(str(base)),
                                       pc.cast(pa.array(ids.astype(np.int64)), pa.string()), "")


def _pick(rng: np.random.Generator, choices, n: int, p=None) -> pa.Array:
    return pc.take(pa.array(choices), pa.array(rng.choice(len(choices), size=n, p=p)))


def _list1(values: pa.Array) -> pa.Array:
    return pa.ListArray.from_arrays(pa.array(np.arange(len(values) + 1, dtype=np.int32)), values)


def _split(total: int, weights: np.ndarray) -> np.ndarray:
    out = np.floor(total * weights / weights.sum()).astype(np.int64)
    out[: total - out.sum()] += 1
    return out


def bench_catalogue(root: str | Path, instances: int = INSTANCE_ROWS, cases: int = CASE_ROWS,
                    seed: int = 42) -> dict[str, Path]:
    """Write a synthetic catalogue (cases and instances, pseudonymous values, the registry's 25
    datasets across 3 teams) as `<root>/catalog/<table>/team=/dataset=/part-*.parquet`, laid out
    exactly as `export_catalog` lays it out; `root` is then a lake root for `build_duckdb`.
    Returns {"lake": root, "catalog": ..., "cases": ..., "instances": ...}."""
    root = Path(root).resolve()
    cat = root / "catalog"
    for t in ("cases", "instances"):
        shutil.rmtree(cat / t, ignore_errors=True)
    registry = load_registry(REPO / "config" / "program.yaml")
    datasets = list(registry.datasets)
    rng = np.random.default_rng(seed)
    weights = np.array([max(d.avg_images_per_case, 50.0) ** 0.3 for d in datasets])
    case_n = _split(cases, np.ones(len(datasets)) + rng.random(len(datasets)))
    inst_n = _split(instances, case_n * weights)
    case_schema = pa.schema([f for f in CASES.schema if f.name not in ("team", "dataset")])
    inst_schema = pa.schema([f for f in INSTANCES.schema if f.name not in ("team", "dataset")])
    statuses = ["image_only", "partial", "full"]
    for k, (d, nc, ni) in enumerate(zip(datasets, case_n, inst_n)):
        nc, ni = int(nc), int(ni)
        study_base = 10**18 + k * 10**15
        modality = (d.modalities or ("OT",))[0]
        parts = [p.sharing for p in d.parts] or ["shared"]
        patients = _prefixed("PSN-", _hex(rng, max(1, int(nc * 0.9)), 10))
        case_patient = rng.integers(0, len(patients), size=nc)
        kinds = list(d.required_annotation_kinds) or ["label"]
        data = {
            "case_pseudonym": _prefixed("CASE-", _hex(rng, nc, 10)),
            "patient_pseudonym": pc.take(patients, pa.array(case_patient)),
            "part": _pick(rng, parts, nc),
            "study_instance_uids": _list1(_uid(study_base, np.arange(nc))),
            "instances": pa.array(rng.poisson(max(1, ni // max(nc, 1)), nc).astype(np.int64)),
            "frames": pa.array(rng.poisson(max(1, ni // max(nc, 1)), nc).astype(np.int64)),
            "slides": pa.array(np.zeros(nc, dtype=np.int64)),
            "modalities": _list1(pa.array([modality] * nc)),
            "annotation_kinds": _list1(_pick(rng, kinds, nc)),
            "annotation_status": _pick(rng, statuses, nc, p=[0.1, 0.3, 0.6]),
            "label_source": pa.array([d.label_source] * nc),
            "shareable": pa.array(rng.random(nc) < 0.97),
            "consent_class": _pick(rng, ["A", "B", "C"], nc),
        }
        out = cat / "cases" / f"team={d.team}" / f"dataset={d.id}"
        out.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(data, schema=case_schema), out / "part-0.parquet")

        out = cat / "instances" / f"team={d.team}" / f"dataset={d.id}"
        out.mkdir(parents=True, exist_ok=True)
        batch_refs = _hex(rng, 4, 10)
        for i, start in enumerate(range(0, ni, _FILE_ROWS)):
            n = min(_FILE_ROWS, ni - start)
            case_idx = np.sort(rng.integers(0, nc, size=n))
            series_idx = case_idx * 4 + rng.integers(0, 4, size=n)
            sop = _uid(study_base + 7 * 10**14, np.arange(start, start + n))
            data = {
                "batch_ref": pc.take(batch_refs, pa.array(rng.integers(0, 4, size=n))),
                "patient_pseudonym": pc.take(patients, pa.array(case_patient[case_idx])),
                "study_instance_uid": _uid(study_base, case_idx),
                "series_instance_uid": _uid(study_base + 3 * 10**14, series_idx),
                "sop_instance_uid": sop,
                "sop_class_uid": pa.array(["1.2.840.10008.5.1.4.1.1.2"] * n),
                "kind": _pick(rng, ["dicom_image", "rtstruct", "seg", "sr"], n, p=[0.97, 0.01, 0.01, 0.01]),
                "modality": pa.array([modality] * n),
                "transfer_syntax_uid": _pick(rng, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2.4.90"], n),
                "rows": pa.array(np.full(n, 512, dtype=np.int32)),
                "columns": pa.array(np.full(n, 512, dtype=np.int32)),
                "number_of_frames": pa.nulls(n, pa.int32()),
                "study_date": pa.array((17000 + rng.integers(0, 2000, size=n)).astype(np.int32)).cast(pa.date32()),
                "patient_sex": _pick(rng, ["F", "M"], n),
                "patient_age": _prefixed("0", pc.cast(pa.array(rng.integers(18, 90, size=n)), pa.string())),
                "manufacturer": _pick(rng, ["Philips", "SIEMENS", "GE MEDICAL SYSTEMS", "TOSHIBA"], n),
                "manufacturer_model_name": _pick(rng, ["iCT 256", "SOMATOM Force", "Revolution CT"], n),
                "body_part_examined": pa.array([d.organ.upper()] * n),
                "pixel_spacing_row": pa.array(rng.uniform(0.3, 1.0, n)),
                "pixel_spacing_col": pa.array(rng.uniform(0.3, 1.0, n)),
                "slice_thickness": pa.array(rng.choice([0.625, 1.0, 2.5, 5.0], n)),
                "burned_in_annotation": pa.array(["NO"] * n),
                "frame_of_reference_uid": _uid(study_base + 5 * 10**14, case_idx),
                "pixels_cleaned": pa.array(np.zeros(n, dtype=bool)),
                "defaced": pa.array(np.zeros(n, dtype=bool)),
                "object_path": _prefixed(f"deid/objects/{d.team}/{d.id}/", _prefixed("", sop)),
                "sha256": _hex(rng, n, 32),
                "size": pa.array(rng.integers(100_000, 600_000, size=n, dtype=np.int64)),
            }
            pq.write_table(pa.table(data, schema=inst_schema), out / f"part-{i}.parquet")
    return {"lake": root, "catalog": cat, "cases": cat / "cases", "instances": cat / "instances"}


QUERIES = {
    "count_instances": "SELECT count(*) FROM instances",
    "cases_by_dataset_status": (
        "SELECT team, dataset, part, annotation_status, count(*) AS cases "
        "FROM cases GROUP BY ALL ORDER BY ALL"),
    "instances_by_dataset_modality_scan": (
        "SELECT dataset, modality, count(*) AS objects, count(DISTINCT study_instance_uid) AS studies, "
        "sum(size) AS bytes FROM instances GROUP BY ALL"),
}

_CHILD = """
import json, sys, time
t0 = time.perf_counter()
from medlake.catalog import query
t1 = time.perf_counter()
out = query(sys.argv[1], sys.argv[2])
t2 = time.perf_counter()
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec from the forked copy of the parent.
hwm = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"import_s": t1 - t0, "query_s": t2 - t1, "rows": out.num_rows, "peak_rss_mib": hwm / 1024}))
"""


def timed_query(db: Path, sql: str) -> dict:
    """Run one query in a fresh read-only process: wall time, query time and that process's peak RSS."""
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", _CHILD, str(db), sql], capture_output=True, text=True,
                       cwd=REPO, check=True)
    r = json.loads(p.stdout.strip().splitlines()[-1])
    return {"wall_s": round(time.perf_counter() - t, 3), "query_s": round(r["query_s"], 3),
            "rows": r["rows"], "peak_rss_mib": round(r["peak_rss_mib"], 1)}


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--instances", type=int, default=INSTANCE_ROWS)
    ap.add_argument("--cases", type=int, default=CASE_ROWS)
    ap.add_argument("--reuse", action="store_true", help="keep an existing bench/work/catalog")
    a = ap.parse_args()
    store = DeltaStore(Lake.from_root(str(WORK)))
    t = time.perf_counter()
    if not (a.reuse and (catalog_root(store) / "instances").is_dir()):
        shutil.rmtree(WORK, ignore_errors=True)
        bench_catalogue(WORK, a.instances, a.cases)
    generate_s = time.perf_counter() - t
    t = time.perf_counter()
    db = build_duckdb(store)
    build_s = time.perf_counter() - t
    timings = {name: timed_query(db, sql) for name, sql in QUERIES.items()}
    counts = {name: query(db, f"SELECT count(*) FROM {name}").column(0)[0].as_py()
              for name in ("instances", "cases")}
    result = {
        "instance_rows": counts["instances"], "case_rows": counts["cases"], "datasets": 25, "teams": 3,
        "parquet_bytes": {t: _du(catalog_root(store) / t) for t in ("instances", "cases")},
        "generate_s": round(generate_s, 1), "build_duckdb_s": round(build_s, 3),
        "queries": timings,
        "peak_rss_mib_max": max(q["peak_rss_mib"] for q in timings.values()),
        "target": "recompute every progress table over this catalogue <= 30 s and <= 4 GiB",
        "note": "each query in a fresh read-only process (python + duckdb import included in wall_s and "
                "peak RSS = VmHWM of that process); DuckDB defaults (all cores, default memory limit); progress computation not "
                "plugged in yet: cases_by_dataset_status is the aggregate it needs",
        "command": "python -m bench.catalog",
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
