"""Programme-level assets: progress tables (seed tables 4, 5, 7), the dashboard, and the Parquet
catalogue with its DuckDB views. Not partitioned: each run recomputes them from the whole lake."""

import datetime as dt
import os
from pathlib import Path

import dagster as dg

from medlake.catalog import build_duckdb, export_catalog
from medlake.dashboard import write_dashboard
from medlake.lake.tables import PROGRESS_TABLES, table_named
from medlake.progress.refresh import refresh_progress
from pipelines.policies import PROGRESS_FRESHNESS
from pipelines.resources import LakeResource, RegistryResource

_PROGRESS_KEYS = [dg.AssetKey(["program", t.name]) for t in PROGRESS_TABLES]
_UPSTREAM = [dg.AssetKey(["deid", "cases"]), dg.AssetKey(["restricted", "consent_events"]),
             dg.AssetKey(["restricted", "withdrawal_audit"])]
DASHBOARD_KEY = dg.AssetKey(["program", "dashboard"])
CATALOG_KEY = dg.AssetKey(["catalog", "parquet_and_duckdb"])


def as_of_date() -> dt.date:
    """MEDLAKE_AS_OF (an ISO date) pins the figures' date, e.g. to reproduce a report; else today."""
    value = os.environ.get("MEDLAKE_AS_OF")
    return dt.date.fromisoformat(value) if value else dt.datetime.now(dt.timezone.utc).date()


@dg.multi_asset(
    specs=[dg.AssetSpec(key=k, group_name="program", kinds={"delta"}, deps=_UPSTREAM,
                        freshness_policy=PROGRESS_FRESHNESS)
           for k in _PROGRESS_KEYS],
    name="programme_progress",
)
def programme_progress(context: dg.AssetExecutionContext, lake: LakeResource, registry: RegistryResource):
    """Seed tables 5 (per dataset and sharing part), 4 (per team, built and shared, with and without
    image-only cases and diagnosis-code labels) and 7 (consent), computed from deid/cases and the
    consent events, never typed in; a dated snapshot goes to progress_history every run."""
    as_of = as_of_date()
    r = refresh_progress(lake.store(), registry.load(), as_of)
    team = r.tables["progress_by_team"].to_pylist()
    built = [x for x in team if x["scope"] == "built" and x["view"] == "all"]
    md = "| team | cases | target | achievement |\n|---|---:|---:|---:|\n" + "\n".join(
        f"| {x['team']} | {x['cases']:,} | {x['target']:,} | {100 * (x['achievement'] or 0):.1f}% |" for x in built)
    overall = next(x for x in built if x["team"] == "all")
    consent = next(x for x in r.tables["consent_summary"].to_pylist() if x["team"] == "all")
    for key in _PROGRESS_KEYS:
        meta = {"as_of": str(as_of), "dagster/uri": lake.store().uri(table_named(*key.path))}
        if key.path[1] == "progress_by_team":
            # Numeric values are plotted over time in the asset's UI: the trend without the dashboard.
            meta.update({"progress": dg.MetadataValue.md(md), "overall_cases": overall["cases"],
                         "overall_achievement_pct": round(100 * (overall["achievement"] or 0), 2),
                         "elapsed_pct": round(100 * overall["elapsed_ratio"], 2)})
        elif key.path[1] == "consent_summary":
            meta.update({"notices_sent": consent["notices_sent"], "opt_outs": consent["opt_outs"],
                         "opt_out_ratio_pct": round(100 * (consent["opt_out_ratio"] or 0), 2)})
        yield dg.MaterializeResult(asset_key=key, metadata=meta)


@dg.asset(key=DASHBOARD_KEY, group_name="program", kinds={"html"}, deps=_PROGRESS_KEYS
          + [dg.AssetKey(["program", n]) for n in ("identifier_checks", "applications", "usage_reports")])
def dashboard(lake: LakeResource) -> dg.MaterializeResult:
    """The programme office's page: one self-contained HTML file in the program zone."""
    path = dashboard_path(lake.store())
    write_dashboard(lake.store(), path)
    lake.store().lake.objects().upload([DASHBOARD_FILE])
    return dg.MaterializeResult(metadata={"path": dg.MetadataValue.path(str(path)),
                                          "url": dg.MetadataValue.url(path.as_uri())})


@dg.asset(key=CATALOG_KEY, group_name="program", kinds={"parquet", "duckdb"},
          deps=[dg.AssetKey(["deid", n]) for n in ("instances", "series", "studies", "cases", "annotations")]
          + _PROGRESS_KEYS + [dg.AssetKey(["restricted", "withdrawal_audit"])])
def catalog(lake: LakeResource) -> dg.MaterializeResult:
    """Parquet for downstream jobs (partitioned by team and dataset, pseudonymous ids only) and a
    DuckDB file with one view per table; schema in docs/catalog.md."""
    counts = export_catalog(lake.store())
    db = build_duckdb(lake.store())
    lake.store().lake.objects().sync_up("catalog")
    return dg.MaterializeResult(metadata={"rows": dg.MetadataValue.json(counts),
                                          "duckdb": dg.MetadataValue.path(str(db))})


DASHBOARD_FILE = "program/dashboard/index.html"


def dashboard_path(store) -> Path:
    """The page on this machine (for a remote lake, the copy that is uploaded after writing)."""
    return store.lake.objects().path(DASHBOARD_FILE)
