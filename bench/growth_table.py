"""bench/results/fullscale.md from bench/results/fullscale.json: the full-size run as tables a reader
can check by eye (figures per scale, growth between scales, and batch-by-batch cost at the largest
scale, where a step that reads the whole lake on every batch shows as batches that get slower).

`python -m bench.growth_table` rewrites the file; `python -m bench fullscale` calls it after each scale.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
STAGES = ("synthesis", "batch_jobs", "programme_job")


def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f}"


def _kib(n: float) -> str:
    return f"{n / 2**10:,.1f}"


def render(doc: dict) -> str:
    scales = doc.get("scales", {})
    keys = sorted(scales, key=float)
    out = ["# Full-size programme run", "",
           f"Generated from `fullscale.json` by `python -m bench.growth_table`; command: "
           f"`{doc.get('command', 'python -m bench fullscale')}`; machine: {doc.get('machine', {})}; "
           f"as of {doc.get('as_of', '?')}.", "",
           "## Figures per scale", "",
           "| scale | cases | files | batches | stage | wall s | files/s | peak RSS MiB | "
           "read KiB/file (rchar) | written KiB/file (wchar) | to disk KiB/file (write_bytes) |",
           "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|"]
    for k in keys:
        s = scales[k]
        for stage in STAGES:
            f = s["stages"].get(stage)
            if f is None:
                continue
            out.append(f"| {k} | {s['cases']:,} | {s['files']:,} | {s['batches']} | {stage} | {f['wall_s']:,.1f} | "
                       f"{f['files_per_s']:,.1f} | {f['peak_rss_mib']:,} | {_kib(f['rchar_per_file'])} | "
                       f"{_kib(f['wchar_per_file'])} | {_kib(f['write_bytes_per_file'])} |")
    out += ["", "Checks per scale (did the pipeline take every case):", "",
            "| scale | run ok | de-identified cases / landed | status mismatches | quarantined | "
            "identifier checks failed | releases published (cases) |", "|---|---|---:|---:|---:|---:|---:|"]
    for k in keys:
        c = scales[k].get("checks", {})
        out.append(f"| {k} | {c.get('run_ok')} | {c.get('deid_cases', 0):,} / {c.get('cases_landed', 0):,} | "
                   f"{len(c.get('status_mismatch', {}))} | {sum(c.get('quarantine', {}).values()) + sum(c.get('deid_quarantine', {}).values())} | "
                   f"{c.get('identifier_checks_failed')} | {c.get('releases_published', 0)} ({c.get('released_cases', 0):,}) |")
    out += ["", "## Growth between scales", "",
            "Growth = (figure at the larger scale / figure at the smaller) / (case ratio): 1.0 is linear, "
            f"above {doc.get('superlinear_threshold', 1.25)} is flagged. Small scales carry fixed costs "
            "(one Dagster run and ten validation suites per batch), so growth below 1 there is expected.", "",
            "| from | to | case ratio | stage | wall | rchar | wchar | write_bytes | peak RSS |",
            "|---|---|---:|---|---:|---:|---:|---:|---:|"]
    for step in doc.get("growth", []):
        for stage, g in step["stages"].items():
            cells = " | ".join("-" if g.get(f) is None else f"{g[f]:.2f}"
                               for f in ("wall_s", "rchar", "wchar", "write_bytes", "peak_rss_mib"))
            out.append(f"| {step['from']} | {step['to']} | {step['case_ratio']} | {stage} | {cells} |")
    slow = doc.get("superlinear", [])
    out += ["", "Flagged as super-linear: " + ("none." if not slow else "")]
    for s in slow:
        out.append(f"- {s['stage']} {s['figure']} from {s['from']} to {s['to']}: growth {s['growth']}")
    rows = [r for r in doc.get("step_growth", []) if r["s"][1] >= 1.0]
    if rows:
        out += ["", "## Growth per Dagster step", "",
                "Seconds summed over every run of the step at each scale (the ten great-expectations suites of a "
                "batch summed as one step), and the growth between the two scales. Steps under a second at the "
                "larger scale are left out.", "",
                "| from | to | job | step | runs | s | growth |", "|---|---|---|---|---|---:|---:|"]
        for r in rows:
            out.append(f"| {r['from']} | {r['to']} | {r['job']} | {r['step']} | {r['runs'][0]} -> {r['runs'][1]} | "
                       f"{r['s'][0]:,.1f} -> {r['s'][1]:,.1f} | {r['growth']:.2f} |")
        flagged = doc.get("superlinear_steps", [])
        out += ["", "Steps flagged as super-linear: " + ("none." if not flagged else "")]
        for r in flagged:
            out.append(f"- {r['job']} / {r['step']} from {r['from']} to {r['to']}: growth {r['growth']}")
    if keys:
        top = scales[keys[-1]]
        by_dataset: dict[str, list[dict]] = defaultdict(list)
        for b in top.get("per_batch", []):
            by_dataset["/".join(b["batch"].split("/")[:2])].append(b)
        multi = {d: bs for d, bs in by_dataset.items() if len(bs) > 1}
        steps = top.get("steps_by_batch", {})
        families = sorted({f for b in multi.values() for x in b for f in steps.get(x["batch"], {})})
        out += ["", f"## Batch by batch at scale {keys[-1]}", "",
                "Datasets delivered in several batches: equal batches that got slower as the lake filled would "
                "show a step that reads the whole lake per batch. Step columns: seconds of each Dagster step "
                "of the batch's run (what the run spent between steps is in s, not in them).", "",
                "| batch | files | s | ms/file | read MiB (rchar) | written MiB (wchar) |"
                + "".join(f" {_short(f)} s |" for f in families),
                "|---|---:|---:|---:|---:|---:|" + "---:|" * len(families)]
        for d in sorted(multi):
            for b in multi[d]:
                mine = steps.get(b["batch"], {})
                out.append(f"| {b['batch']} | {b['files']:,} | {b['s']:,.1f} | {1000 * b['s'] / max(b['files'], 1):.2f} | "
                           f"{_mib(b['rchar'])} | {_mib(b['wchar'])} |"
                           + "".join(f" {mine[f]:,.1f} |" if f in mine else " - |" for f in families))
        single = [b for d, bs in by_dataset.items() if len(bs) == 1 for b in bs]
        if single:
            small = sorted(single, key=lambda b: b["files"])[: max(1, len(single) // 2)]
            out += ["", f"Fixed cost per batch: the {len(small)} smallest single-batch deliveries at this scale took "
                        f"{min(b['s'] for b in small):.1f} to {max(b['s'] for b in small):.1f} s each."]
    return "\n".join(out) + "\n"


def _short(step: str) -> str:
    """deid__instances_no_identifiers_in_deid_batch -> instances_no_identifiers_in_deid_batch."""
    return step.split("__")[-1]


def write(results: Path = RESULTS) -> Path:
    doc = json.loads((results / "fullscale.json").read_text())
    path = results / "fullscale.md"
    path.write_text(render(doc))
    return path


if __name__ == "__main__":
    print(write())
