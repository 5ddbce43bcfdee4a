"""Two batches of one dataset and a programme refresh with a withdrawal, run at the same time in
three processes on one lake (as the daemon runs them, deploy/dagster.yaml allows it), end in exactly
the lake that running them one after the other gives: no row lost, none duplicated, the withdrawal
not undone by a batch that read the rows before the purge."""

from __future__ import annotations

import csv
import multiprocessing
import os
import shutil
from pathlib import Path

import pytest

from medlake.consent.tables import CONSENT_STATUS
from medlake.lake import DeltaStore, Lake
from medlake.lake.tables import (
    ANNOTATION_FILES,
    ANNOTATIONS,
    BATCHES,
    CASES,
    DEID_AUDIT,
    DEID_QUARANTINE,
    INSTANCES,
    LANDED_FILES,
    QUARANTINE,
    SERIES,
    SOURCE_CASES,
    SOURCE_INSTANCES,
    STUDIES,
    VAULT,
)
from medlake.sharing.tables import RELEASE_ELIGIBILITY
from medlake.synth import SynthSpec, generate

REPO = Path(__file__).resolve().parent.parent
# Columns that say when or by which run, not what: they differ between any two runs.
VOLATILE = {"ingested_at", "duration_s", "detected_at", "recorded_at", "processed_at", "first_batch", "checked_at"}
COMPARED = (LANDED_FILES, SOURCE_INSTANCES, SOURCE_CASES, QUARANTINE, BATCHES, VAULT, DEID_QUARANTINE, INSTANCES,
            SERIES, STUDIES, ANNOTATION_FILES, DEID_AUDIT, ANNOTATIONS, CASES, RELEASE_ELIGIBILITY, CONSENT_STATUS)


def _env(home: Path) -> dict[str, str]:
    return {"MEDLAKE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "MEDLAKE_AS_OF": "2019-10-15",
            "MEDLAKE_PROGRAM": str(REPO / "config" / "program.yaml"), "MEDLAKE_EXECUTOR": "in_process"}


def _run_job(env: dict, job: str, partition: str | None) -> tuple[bool, float, float]:
    """One Dagster run in this process, as a run worker of the daemon executes it: (success, when it
    started, when it ended)."""
    os.environ.update(env)
    from medlake.settings import Settings
    from pipelines.definitions import build_definitions
    from pipelines.runner import dagster_instance

    settings = Settings.from_env()
    with dagster_instance(settings) as instance:
        result = build_definitions(settings).resolve_job_def(job).execute_in_process(
            partition_key=partition, instance=instance, raise_on_error=False)
        stats = instance.get_run_stats(result.run_id)
        return result.success, stats.start_time, stats.end_time


def _register(env: dict, keys: list[str]) -> None:
    os.environ.update(env)
    from medlake.settings import Settings
    from pipelines.runner import dagster_instance

    with dagster_instance(Settings.from_env()) as instance:
        instance.add_dynamic_partitions("export_batch", keys)


def _withdraw_first_patient(home: Path) -> str:
    """A consent file arriving later withdraws a patient of the first batch, who is released by now."""
    store = DeltaStore(Lake.from_root(str(home / "lake")))
    case = sorted(store.read(SOURCE_CASES, where={"batch": _batches(home)[0]}).to_pylist(),
                  key=lambda r: r["case_id"])[0]
    with open(home / "landing" / "ntu" / "_consent" / "zz-later-withdrawal.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["patient_id", "consent_class", "event", "event_date", "reference"])
        w.writerow([case["patient_id"], case["consent_class"] or "C", "withdrawn", "2019-10-01", "NTU-WDR-1"])
    return case["patient_id"]


def _batches(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "landing" / "ntu" / "ccta").iterdir())


def _state(home: Path) -> dict[str, list[tuple]]:
    store = DeltaStore(Lake.from_root(str(home / "lake")))
    out = {}
    for t in COMPARED:
        table = store.read(t)
        cols = [c for c in table.column_names if c not in VOLATILE]
        out[f"{t.zone}/{t.name}"] = sorted(tuple(str(r[c]) for c in cols) for r in table.select(cols).to_pylist())
    return out


@pytest.fixture(scope="module")
def landing(tmp_path_factory, registry) -> Path:
    root = tmp_path_factory.mktemp("landing")
    generate(root, registry, SynthSpec(datasets=("ccta",), cases=12, batches=3, seed=7, applications=False))
    return root


def _phase_one(home: Path, landing: Path, pool) -> list[str]:
    shutil.copytree(landing, home / "landing")
    env = _env(home)
    batches = _batches(home)
    keys = [f"ntu/ccta/{b}" for b in batches]
    pool.apply(_register, (env, keys))
    assert pool.apply(_run_job, (env, "process_export_batch", keys[0]))[0]
    assert pool.apply(_run_job, (env, "refresh_programme", None))[0]
    return keys


def test_two_batches_and_a_refresh_at_once_equal_them_one_after_the_other(tmp_path, landing):
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(3) as pool:
        together, apart = tmp_path / "together", tmp_path / "apart"
        keys = _phase_one(together, landing, pool)
        _phase_one(apart, landing, pool)
        withdrawn = _withdraw_first_patient(together)
        assert _withdraw_first_patient(apart) == withdrawn

        env = _env(together)
        runs = [pool.apply_async(_run_job, (env, "process_export_batch", keys[1])),
                pool.apply_async(_run_job, (env, "process_export_batch", keys[2])),
                pool.apply_async(_run_job, (env, "refresh_programme", None))]
        done = [r.get(timeout=900) for r in runs]
        assert [ok for ok, _, _ in done] == [True, True, True]
        assert max(start for _, start, _ in done) < min(end for _, _, end in done), "the runs did not overlap"
        # The refresh ran beside the batches; one more brings what it derives up to the last batch.
        assert pool.apply(_run_job, (env, "refresh_programme", None))[0]

        env = _env(apart)
        for job, key in (("process_export_batch", keys[1]), ("process_export_batch", keys[2]),
                         ("refresh_programme", None), ("refresh_programme", None)):
            assert pool.apply(_run_job, (env, job, key))[0]

    got, want = _state(together), _state(apart)
    for table in want:
        assert got[table] == want[table], f"{table} differs from the sequential lake"
    store = DeltaStore(Lake.from_root(str(together / "lake")))
    assert store.read(BATCHES).num_rows == 3 and store.read(CASES).num_rows > 0
    for t in COMPARED:
        rows = store.read(t, list(t.keys)).to_pylist()
        assert len(rows) == len({tuple(r.values()) for r in rows}), f"{t.name}: a duplicated key"
    pseudonym = store.read(VAULT, ["pseudonym"], where={"patient_id": withdrawn}).column(0)[0].as_py()
    for t in (INSTANCES, SERIES, STUDIES, CASES, RELEASE_ELIGIBILITY):
        assert store.count(t, where={"patient_pseudonym": pseudonym}) == 0, f"withdrawn patient back in {t.name}"
    assert not any(pseudonym in p.read_text(errors="ignore") for p in (together / "releases").rglob("*.json"))
