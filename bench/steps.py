"""Time per Dagster step over every run of an instance, from its event log: which asset or check a
stage's wall time went to (ingest, de-identify, identifier check, cases, each validation suite, the
programme's assets), so growth between scales can be read step by step, not only per stage.

`python -m bench.steps DAGSTER_HOME [...]` prints them; bench/fullscale.py records them per scale.
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict

import dagster as dg

_VALIDATION = "_expectations_"   # the great-expectations checks: ten per batch, summed as one step


def _family(step_key: str) -> str:
    return "validation suites" if _VALIDATION in step_key else step_key


def _run_steps(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """{step family: seconds} of one run, from its step start and end events."""
    kinds = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE}
    started: dict[str, float] = {}
    out: dict[str, float] = defaultdict(float)
    for record in instance.get_records_for_run(run_id, of_type=kinds).records:
        e = record.event_log_entry
        key = e.step_key
        if key is None:
            continue
        if e.dagster_event_type == dg.DagsterEventType.STEP_START:
            started[key] = e.timestamp
        elif key in started:
            out[_family(key)] += e.timestamp - started.pop(key)
    return out


def step_times(instance: dg.DagsterInstance) -> dict[str, dict[str, dict[str, float]]]:
    """{job: {step family: {"s": seconds summed over runs, "runs": runs with the step}}}."""
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(lambda: {"s": 0.0, "runs": 0}))
    for run in instance.get_runs():
        for fam, s in _run_steps(instance, run.run_id).items():
            slot = out[run.job_name][fam]
            slot["s"] += s
            slot["runs"] += 1
    return {job: {k: {"s": round(v["s"], 2), "runs": v["runs"]} for k, v in sorted(steps.items())}
            for job, steps in out.items()}


def steps_by_batch(instance: dg.DagsterInstance, job: str = "process_export_batch") -> dict[str, dict[str, float]]:
    """{partition (team/dataset/batch): {step family: seconds}} for the job's runs: which step of equal
    batches of one dataset gets slower as the dataset grows."""
    out: dict[str, dict[str, float]] = {}
    for run in instance.get_runs(filters=dg.RunsFilter(job_name=job)):
        part = run.tags.get("dagster/partition")
        if part:
            out[part] = {k: round(v, 2) for k, v in sorted(_run_steps(instance, run.run_id).items())}
    return out


def main() -> None:
    for home in sys.argv[1:]:
        os.environ["DAGSTER_HOME"] = os.path.abspath(home)
        with dg.DagsterInstance.get() as instance:
            print(home, json.dumps(step_times(instance), indent=2))


if __name__ == "__main__":
    main()
