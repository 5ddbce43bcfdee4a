"""Recompute every programme table from the lake: what the progress asset runs."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pyarrow as pa

from medlake.lake.delta import DeltaStore
from medlake.lake.tables import (
    CASES,
    CONSENT_EVENTS,
    CONSENT_SUMMARY,
    PROGRESS_BY_DATASET,
    PROGRESS_BY_TEAM,
    PROGRESS_HISTORY,
)
from medlake.program import Registry
from medlake.progress.tables import consent_summary, progress_by_dataset, progress_by_team, status_counts


@dataclass
class ProgressResult:
    tables: dict[str, pa.Table] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)


def refresh_progress(store: DeltaStore, registry: Registry, as_of: dt.date,
                     now: dt.datetime | None = None) -> ProgressResult:
    now = now or dt.datetime.now(dt.timezone.utc)
    # The consent step has read the files into restricted/consent_events already.
    consent = store.read(CONSENT_EVENTS)
    out = ProgressResult()
    ds = store.dataset(CASES)
    cases = (ds.to_table(columns=["dataset", "part", "annotation_status"]) if ds is not None
             else CASES.schema.empty_table().select(["dataset", "part", "annotation_status"]))
    counts = status_counts(cases)
    out.tables = {
        "progress_by_dataset": progress_by_dataset(counts, registry, as_of),
        "progress_by_team": progress_by_team(counts, registry, as_of),
        "consent_summary": consent_summary(consent, registry, as_of),
    }
    for tdef in (PROGRESS_BY_DATASET, PROGRESS_BY_TEAM, CONSENT_SUMMARY):
        out.versions[tdef.name] = store.replace(tdef, out.tables[tdef.name], {})
    out.versions[PROGRESS_HISTORY.name] = store.append(PROGRESS_HISTORY, _snapshot(out.tables, now))
    return out


def _snapshot(tables: dict[str, pa.Table], now: dt.datetime) -> pa.Table:
    rows = []
    for r in tables["progress_by_team"].to_pylist():
        if r["scope"] == "built" and r["view"] == "all":
            rows.append({"snapshot_at": now, "as_of": r["as_of"], "level": "team", "key": r["team"],
                         "cases": r["cases"], "target": r["target"], "achievement": r["achievement"],
                         "elapsed_ratio": r["elapsed_ratio"]})
    per_dataset: dict[str, dict] = {}
    for r in tables["progress_by_dataset"].to_pylist():
        d = per_dataset.setdefault(r["dataset"], {"cases": 0, "target": 0, "as_of": r["as_of"],
                                                  "elapsed_ratio": r["elapsed_ratio"]})
        d["cases"] += r["total"]
        d["target"] += r["target_2019_11"]
    for key, d in per_dataset.items():
        rows.append({"snapshot_at": now, "as_of": d["as_of"], "level": "dataset", "key": key, "cases": d["cases"],
                     "target": d["target"], "achievement": d["cases"] / d["target"] if d["target"] else None,
                     "elapsed_ratio": d["elapsed_ratio"]})
    return PROGRESS_HISTORY.from_rows(rows)
