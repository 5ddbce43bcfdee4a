"""Seed tables 4, 5 and 7 from case-level rows: never typed in, always counted.

Counting rules, from the programme's 2019 report:
- a case is counted in the sharing part its hospital put it in (shareable yes: shared part);
- "annotated" views leave out image-only cases and as much of the target; a part whose cases are
  all image only leaves the view entirely (cases, target and dataset count);
- the pathology set (registry: annotated_outside_export) is annotated on the team's platform, so it
  counts as annotated when built but, since only its images are released, as image only when shared
  (table 4, note 1);
- "without diagnosis-code labels" also leaves out datasets whose labels are EHR codes (lung X-ray);
- achievement = cases / the 2019-11 target; the time-elapsed ratio stands beside it.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

import pyarrow as pa
import pyarrow.compute as pc

from medlake.lake.tables import CONSENT_SUMMARY, PROGRESS_BY_DATASET, PROGRESS_BY_TEAM
from medlake.program import Registry

MILESTONE = "2019-11"
NEXT_MILESTONE = "2020-11"
STATUSES = ("image_only", "partial", "full")
VIEWS = ("all", "annotated", "annotated_without_ehr_labels")


def status_counts(cases: pa.Table) -> dict[tuple[str, str], dict[str, int]]:
    """(dataset, part) -> counts by annotation status, from a cases table (dataset, part, status)."""
    grouped = cases.group_by(["dataset", "part", "annotation_status"]).aggregate([([], "count_all")])
    out: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: dict.fromkeys(STATUSES, 0))
    for d, p, s, n in zip(*(grouped.column(i).to_pylist() for i in range(4))):
        out[(d, p)][s] += n
    return out


def progress_by_dataset(counts, registry: Registry, as_of: dt.date) -> pa.Table:
    elapsed = registry.programme.period.elapsed_ratio(as_of)
    rows = []
    for d in registry.datasets:
        for part in d.parts:
            c = counts.get((d.id, part.sharing), dict.fromkeys(STATUSES, 0))
            total = sum(c.values())
            target = part.targets.get(MILESTONE, 0)
            rows.append({
                "as_of": as_of, "elapsed_ratio": elapsed, "table5_no": d.table5_no, "dataset": d.id,
                "name_zh": d.name_zh, "name_en": d.name_en, "organ": d.organ, "team": d.team, "sharing": d.sharing,
                "part": part.sharing, **c, "total": total, "target_2019_11": target,
                "target_2020_11": part.targets.get(NEXT_MILESTONE, 0),
                "achievement_2019_11": total / target if target else None,
                "avg_images_per_case": d.avg_images_per_case,
                "est_annotated_images": round((c["partial"] + c["full"]) * d.avg_images_per_case),
            })
    return PROGRESS_BY_DATASET.from_rows(rows)


def progress_by_team(counts, registry: Registry, as_of: dt.date) -> pa.Table:
    elapsed = registry.programme.period.elapsed_ratio(as_of)
    teams = [("all", "總計")] + [(t.id, t.name_zh) for t in registry.teams]
    rows = []
    for scope in ("built", "shared"):
        for view in VIEWS:
            for team, name in teams:
                datasets, cases, target = _sum(counts, registry, scope, view, team)
                rows.append({"as_of": as_of, "elapsed_ratio": elapsed, "scope": scope, "view": view, "team": team,
                             "team_name_zh": name, "datasets": datasets, "cases": cases, "target": target,
                             "achievement": cases / target if target else None})
    return PROGRESS_BY_TEAM.from_rows(rows)


def _sum(counts, registry: Registry, scope: str, view: str, team: str) -> tuple[int, int, int]:
    datasets: set[str] = set()
    cases = target = 0
    for d in registry.datasets:
        if team != "all" and d.team != team:
            continue
        if view == "annotated_without_ehr_labels" and d.label_source == "ehr_code":
            continue
        for part in d.parts:
            if scope == "shared" and part.sharing != "shared":
                continue
            c = counts.get((d.id, part.sharing), dict.fromkeys(STATUSES, 0))
            part_cases, part_target = sum(c.values()), part.targets.get(MILESTONE, 0)
            if view != "all":
                image_only = c["image_only"]
                if d.annotated_outside_export:
                    # Annotated on the team's platform: annotated when built, image only when shared.
                    image_only = 0 if scope == "built" else part_cases
                if image_only and part_cases == image_only:
                    continue  # only image-only cases: the part leaves the annotated view
                part_cases -= image_only
                part_target -= image_only
            datasets.add(d.id)
            cases += part_cases
            target += part_target
    return len(datasets), cases, target


def consent_summary(events: pa.Table, registry: Registry, as_of: dt.date) -> pa.Table:
    """Seed table 7: events up to as_of, per team and for the programme."""
    elapsed = registry.programme.period.elapsed_ratio(as_of)
    if events.num_rows:
        events = events.filter(pc.less_equal(events.column("event_date"), pa.scalar(as_of, pa.date32())))
    per: dict[str, dict[str, int]] = defaultdict(lambda: {"notice_sent": 0, "undelivered": 0, "opt_outs": 0,
                                                            "deceased": 0})
    for team, event in zip(events.column("team").to_pylist(), events.column("event").to_pylist()):
        key = "opt_outs" if event in ("opted_out", "withdrawn") else event
        for t in (team, "all"):
            if key in per[t]:
                per[t][key] += 1
    rows = []
    for team in ["all"] + [t.id for t in registry.teams]:
        c = per[team]
        reachable = c["notice_sent"] - c["undelivered"]
        rows.append({"as_of": as_of, "elapsed_ratio": elapsed, "team": team, "notices_sent": c["notice_sent"],
                     "undelivered": c["undelivered"], "opt_outs": c["opt_outs"], "deaths": c["deceased"],
                     "opt_out_ratio": c["opt_outs"] / reachable if reachable > 0 else None})
    return CONSENT_SUMMARY.from_rows(rows)
