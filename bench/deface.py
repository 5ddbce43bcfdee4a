"""Defacing time of a 256x256x176 head volume on 2 threads (target <= 30 s); writes bench/results/deface.json.

Baseline in the same process: one linear resample of the same volume onto its own grid, i.e. what a
single pass over the volume costs on this machine, so the ratio travels between machines.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from medlake.deid import deface as D
from medlake.synth.phantoms import head_phantom, hu_to_mr

RESULTS = Path(__file__).parent / "results" / "deface.json"
TARGET_S = 30.0


def _volume(arr: np.ndarray) -> sitk.Image:
    img = sitk.GetImageFromArray(arr)
    img.SetOrigin([-(n - 1) / 2 for n in img.GetSize()])
    return img


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    shape = (176, 256, 256)
    hu = head_phantom(shape, (1.0, 1.0, 1.0))
    vols = {"CT": _volume(hu), "MR": _volume(hu_to_mr(hu))}
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    t0 = time.perf_counter()
    sitk.Resample(vols["CT"], vols["CT"], sitk.Euler3DTransform(), sitk.sitkLinear, -1000.0)
    baseline = time.perf_counter() - t0
    t0 = time.perf_counter()
    D._template()
    template_load = time.perf_counter() - t0
    runs = {}
    for modality, img in vols.items():
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            res = D.deface_volume(img, modality, threads=args.threads)
            times.append(time.perf_counter() - t0)
        runs[modality] = {"seconds": [round(t, 2) for t in times], "best_s": round(min(times), 2),
                          "removed_voxels": res.removed_voxels}
    worst = max(r["best_s"] for r in runs.values()) + template_load
    out = {
        "bench": "deface", "shape_zyx": list(shape), "spacing_mm": 1.0, "threads": args.threads,
        "cpus": os.cpu_count(), "python": platform.python_version(), "simpleitk": sitk.Version.VersionString(),
        "template_load_s": round(template_load, 2), "baseline_resample_s": round(baseline, 3),
        "runs": runs, "worst_cold_s": round(worst, 2),
        "ratio_to_baseline": round(max(r["best_s"] for r in runs.values()) / max(baseline, 1e-6), 1),
        "target_s": TARGET_S, "within_target": worst <= TARGET_S,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))
    return out


if __name__ == "__main__":
    main()
