"""The programme dashboard: one self-contained HTML page from the program-zone tables.

Written for the programme office, who read percentages against targets: every figure is
formatted as the work report prints it (520,874; 76.0%) and compared with the share of the
programme period that has elapsed. The page needs no network: CSS and SVG charts are inline, there
is no script, no font, image or style sheet from elsewhere.

Every figure a test (or a person checking the page) looks for carries a stable `data-testid`.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from html import escape
from typing import Any

import pyarrow as pa

from medlake.dashboard import svg
from medlake.dashboard.quality import QualityState, quality_state

log = logging.getLogger(__name__)

PROGRAMME_NAME_ZH = "醫療影像專案計畫"
PROGRAMME_NAME_EN = "National medical-imaging AI dataset programme"

# The tables the page reads, as (zone, name); `tables` passed to render_dashboard is keyed by name.
TABLES = (
    ("program", "progress_by_team"),
    ("program", "progress_by_dataset"),
    ("program", "progress_history"),
    ("program", "consent_summary"),
    ("program", "identifier_checks"),
    ("program", "validation_history"),
    ("program", "applications"),
    ("program", "usage_reports"),
    ("program", "release_log"),
)

_VIEWS = (
    ("built", "all", "Built cases", "建置案例"),
    ("built", "annotated", "Annotated cases only", "僅計已標註案例"),
    ("built", "annotated_without_ehr_labels", "Annotated, without diagnosis-code datasets",
     "已標註，不含診斷碼標註資料集"),
    ("shared", "all", "Shared cases", "分享案例"),
    ("shared", "annotated", "Shared, annotated only", "分享案例，僅計已標註"),
    ("shared", "annotated_without_ehr_labels", "Shared, annotated, without diagnosis-code datasets",
     "分享案例，已標註，不含診斷碼標註資料集"),
)
_PARTS = {"shared": ("Shared", "分享"), "partially_not_shared": ("Partly withheld", "部分不分享"),
          "not_shared": ("Not shared", "不分享")}
_PART_ORDER = {"shared": 0, "partially_not_shared": 1, "not_shared": 2}

CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f5f7f9;color:#1d2733;
 font-family:"Noto Sans CJK TC","Noto Sans CJK SC","Noto Sans TC","Noto Sans CJK JP","Source Han Sans TC",
 "Microsoft JhengHei","PingFang TC",sans-serif;font-size:14px;line-height:1.45}
header{background:#17324d;color:#fff;padding:18px 28px}
header h1{margin:0;font-size:24px;font-weight:700}
header .en{font-size:16px;font-weight:400;opacity:.9}
header dl{display:flex;flex-wrap:wrap;gap:6px 28px;margin:10px 0 0}
header dt{font-size:12px;opacity:.75}header dd{margin:0;font-size:16px;font-weight:700}
main{padding:8px 28px 28px;max-width:1400px}
section{background:#fff;border:1px solid #dde3e8;border-radius:6px;padding:14px 18px;margin:14px 0}
h2{font-size:18px;margin:0 0 4px}h2 .zh{font-weight:400;color:#4a5a6a;margin-left:8px}
p.note{margin:2px 0 10px;color:#4a5a6a;font-size:13px}
table{border-collapse:collapse;width:100%}
th,td{padding:4px 8px;border-bottom:1px solid #edf0f3;text-align:left;vertical-align:middle}
th{font-size:12px;color:#4a5a6a;font-weight:600;background:#f8fafb;white-space:nowrap}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.total td{font-weight:700;border-top:2px solid #c7d0d8}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{flex:1 1 240px;border:1px solid #dde3e8;border-radius:6px;padding:10px 14px}
.card.overall{flex-basis:100%;background:#f3f7fc}
.card .big{font-size:28px;font-weight:700;color:#2f6db5}
.card .sub{color:#4a5a6a}
.badge{display:inline-block;padding:1px 7px;border-radius:9px;font-size:12px;margin-left:6px}
.ahead{background:#dff3e8;color:#17603f}.behind{background:#fdecd2;color:#8a5300}
.legend{font-size:12px;color:#4a5a6a;margin:4px 0 8px}
.legend i{display:inline-block;width:12px;height:10px;margin:0 4px 0 12px;vertical-align:middle}
.legend i.mark{width:3px;height:12px}
.missing{border-style:dashed;background:#fbfbfc}.missing p{color:#6b4d00}
.zhname{font-weight:600}.enname{color:#4a5a6a;font-size:12px}
svg.bar{vertical-align:middle}svg text.axis{font-size:11px;fill:#4a5a6a}
svg text.pointlabel{font-size:12px;font-weight:700;fill:#2f6db5}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:14px}
.kpi{display:inline-block;margin-right:28px}.kpi b{font-size:22px;display:block}
.bad{color:#b03a2e}.good{color:#17603f}.warn{color:#8a5300}
footer{color:#6a7a8a;font-size:12px;padding:0 28px 20px}
"""


# --- formatting ---------------------------------------------------------------------------------

def fmt_int(n: Any) -> str:
    """520874 -> '520,874'; None -> '—'."""
    return "—" if n is None else f"{int(n):,}"


def fmt_pct(r: Any) -> str:
    """0.7601 -> '76.0%'; None -> '—'."""
    return "—" if r is None else f"{float(r) * 100:.1f}%"


def _fmt_time(t: dt.datetime) -> str:
    if t.tzinfo is None:
        return f"{t:%Y-%m-%d %H:%M}"
    return f"{t:%Y-%m-%d %H:%M} {t.tzname() or ''}".strip()


def _e(v: Any) -> str:
    return escape("" if v is None else str(v))


def _tid(*parts: str) -> str:
    return escape("-".join(str(p) for p in parts), quote=True)


# --- data helpers -------------------------------------------------------------------------------

def _rows(tables: dict[str, pa.Table], name: str) -> list[dict] | None:
    t = tables.get(name)
    if t is None or t.num_rows == 0:
        return None
    return t.to_pylist()


def _latest(rows: list[dict], key: str = "as_of") -> list[dict]:
    last = max(r[key] for r in rows)
    return [r for r in rows if r[key] == last]


def _status(achievement: float | None, elapsed: float | None) -> str:
    if achievement is None or elapsed is None:
        return ""
    if achievement >= elapsed:
        return '<span class="badge ahead">ahead of time 超前</span>'
    return '<span class="badge behind">behind time 落後</span>'


def _team_label(team: str, name_zh: str | None = None) -> str:
    if team == "all":
        return "Overall 總計"
    return f"{_e(team.upper())}{' ' + _e(name_zh) if name_zh else ''}"


def _heading(en: str, zh: str) -> str:
    return f'<h2>{_e(en)}<span class="zh">{_e(zh)}</span></h2>'


def _missing(section_id: str, en: str, zh: str, table: str, why: str = "") -> str:
    why = why or (f"The table program/{table} is not in the lake yet (or is empty). These figures appear "
                  "after the next refresh of the programme figures; nothing needs to be done here.")
    return (f'<section class="missing" data-testid="{section_id}-missing">{_heading(en, zh)}'
            f'<p>{_e(why)}</p></section>')


def _legend_elapsed() -> str:
    return f'<i class="mark" style="background:{svg.ELAPSED}"></i>time elapsed 時間進度'


# --- sections -----------------------------------------------------------------------------------

class _Ctx:
    def __init__(self, tables: dict[str, pa.Table]):
        self.tables = tables
        self.as_of: dt.date | None = None
        self.elapsed: float | None = None
        for name in ("progress_by_team", "progress_by_dataset", "consent_summary"):
            rows = _rows(tables, name)
            if rows:
                last = _latest(rows)
                self.as_of, self.elapsed = last[0]["as_of"], last[0]["elapsed_ratio"]
                break


def _section_teams(ctx: _Ctx) -> str:
    en, zh = "Completion against the 2019-11 target", "2019年11月目標達成率（表4）"
    rows = _rows(ctx.tables, "progress_by_team")
    if not rows:
        return _missing("teams", en, zh, "progress_by_team")
    rows = _latest(rows)
    el = ctx.elapsed
    by = {(r["scope"], r["view"], r["team"]): r for r in rows}
    teams: list[str] = []
    names: dict[str, str] = {}
    for r in rows:
        if r["team"] != "all" and r["team"] not in teams:
            teams.append(r["team"])
        names[r["team"]] = r["team_name_zh"]
    teams.append("all")
    out = [f'<section data-testid="teams">{_heading(en, zh)}',
           '<p class="note">Cases built against each team\'s 2019-11 target. The red mark on each bar is the '
           'share of the programme period already elapsed: a bar that reaches it is on schedule.</p>',
           f'<div class="legend"><i style="background:{svg.ACHIEVED}"></i>cases / target 達成率'
           f'{_legend_elapsed()}</div>']
    # headline cards: built cases, every case counted
    out.append('<div class="cards">')
    for team in ["all"] + teams[:-1]:
        r = by.get(("built", "all", team))
        if r is None:
            continue
        who = "overall" if team == "all" else f"team-{team}"
        cls = "card overall" if team == "all" else "card"
        out.append(
            f'<div class="{cls}"><div><b>{_team_label(team, names.get(team))}</b>'
            f'{_status(r["achievement"], el)}</div>'
            f'<div class="big" data-testid="{_tid(who, "achievement")}">{fmt_pct(r["achievement"])}</div>'
            f'<div class="sub"><span data-testid="{_tid(who, "cases")}">{fmt_int(r["cases"])}</span> of '
            f'<span data-testid="{_tid(who, "target")}">{fmt_int(r["target"])}</span> cases · '
            f'time elapsed {fmt_pct(el)}</div>'
            f'{svg.progress_bar(r["achievement"], el, width=560 if team == "all" else 220, label=f"{team} achievement")}'
            '</div>')
    out.append("</div>")
    # table 4 layout: one block per (scope, view)
    for scope, view, ven, vzh in _VIEWS:
        if not any((scope, view, t) in by for t in teams):
            continue
        out.append(f'<h3 style="margin:14px 0 4px;font-size:15px">{_e(ven)} <span class="zh" '
                   f'style="font-weight:400;color:#4a5a6a">{_e(vzh)}</span></h3>')
        out.append('<table><tr><th>Team 團隊</th><th class="n">Datasets 資料集</th><th class="n">Cases 案例數</th>'
                   '<th class="n">Target 目標</th><th class="n">Achievement 達成率</th><th></th></tr>')
        for team in teams:
            r = by.get((scope, view, team))
            if r is None:
                continue
            p = (team, scope, view)
            cls = ' class="total"' if team == "all" else ""
            out.append(
                f'<tr{cls}><td>{_team_label(team, names.get(team))}</td>'
                f'<td class="n" data-testid="{_tid("team", *p, "datasets")}">{fmt_int(r["datasets"])}</td>'
                f'<td class="n" data-testid="{_tid("team", *p, "cases")}">{fmt_int(r["cases"])}</td>'
                f'<td class="n" data-testid="{_tid("team", *p, "target")}">{fmt_int(r["target"])}</td>'
                f'<td class="n" data-testid="{_tid("team", *p, "achievement")}">{fmt_pct(r["achievement"])}</td>'
                f'<td>{svg.progress_bar(r["achievement"], el, label=f"{team} {scope} {view}")}</td></tr>')
        out.append("</table>")
    out.append("</section>")
    return "".join(out)


def _section_datasets(ctx: _Ctx) -> str:
    en, zh = "Datasets", "各資料集建置進度（表5）"
    rows = _rows(ctx.tables, "progress_by_dataset")
    if not rows:
        return _missing("datasets", en, zh, "progress_by_dataset")
    rows = sorted(_latest(rows), key=lambda r: (r["table5_no"], _PART_ORDER.get(r["part"], 9), r["part"]))
    el = ctx.elapsed
    out = [f'<section data-testid="datasets">{_heading(en, zh)}',
           '<p class="note">Cases per dataset and sharing part by annotation status, against the 2019-11 target. '
           'A dataset partly withheld by its hospital has one row per part.</p>',
           f'<div class="legend"><i style="background:{svg.FULL}"></i>full 完整標註'
           f'<i style="background:{svg.PARTIAL}"></i>partial 部分標註'
           f'<i style="background:{svg.IMAGE_ONLY}"></i>image only 僅影像{_legend_elapsed()}'
           '<i class="mark" style="background:#333"></i>target (when exceeded) 目標</div>',
           '<table><tr><th class="n">No.</th><th>Dataset 資料集</th><th>Team 團隊</th><th>Part 分享</th>'
           '<th class="n">Image only 僅影像</th><th class="n">Partial 部分</th><th class="n">Full 完整</th>'
           '<th class="n">Total 合計</th><th class="n">Target 目標</th><th class="n">Achievement 達成率</th>'
           '<th>Annotation mix 標註組成</th></tr>']
    for r in rows:
        p = ("dataset", r["dataset"], r["part"])
        pen, pzh = _PARTS.get(r["part"], (r["part"], ""))
        out.append(
            f'<tr data-testid="{_tid(*p)}"><td class="n">{_e(r["table5_no"])}</td>'
            f'<td><div class="zhname" data-testid="{_tid(*p, "name-zh")}">{_e(r["name_zh"])}</div>'
            f'<div class="enname" data-testid="{_tid(*p, "name-en")}">{_e(r["name_en"])}</div></td>'
            f'<td data-testid="{_tid(*p, "team")}">{_e(str(r["team"]).upper())}</td>'
            f'<td data-testid="{_tid(*p, "part")}">{_e(pen)} {_e(pzh)}</td>'
            + "".join(f'<td class="n" data-testid="{_tid(*p, k.replace("_", "-"))}">{fmt_int(r[k])}</td>'
                      for k in ("image_only", "partial", "full", "total"))
            + f'<td class="n" data-testid="{_tid(*p, "target")}">{fmt_int(r["target_2019_11"])}</td>'
            f'<td class="n" data-testid="{_tid(*p, "achievement")}">{fmt_pct(r["achievement_2019_11"])}</td>'
            f'<td>{svg.stacked_bar(r["full"], r["partial"], r["image_only"], r["target_2019_11"], el, label=r["dataset"])}</td>'
            "</tr>")
    out.append("</table></section>")
    return "".join(out)


def _section_trend(ctx: _Ctx) -> str:
    en, zh = "Trend of overall achievement", "整體達成率趨勢"
    rows = _rows(ctx.tables, "progress_history")
    rows = [r for r in rows or [] if r["level"] == "team" and r["key"] == "all" and r["achievement"] is not None]
    if not rows:
        return _missing("trend", en, zh, "progress_history",
                        "No snapshot of the programme's overall figures has been taken yet "
                        "(table program/progress_history). The trend appears after the next refresh.")
    # one point per snapshot (the last row wins if a snapshot repeats)
    snap: dict[dt.datetime, dict] = {}
    for r in sorted(rows, key=lambda r: r["snapshot_at"]):
        snap[r["snapshot_at"]] = r
    pts = [(t, r["achievement"], r["elapsed_ratio"]) for t, r in sorted(snap.items())]
    last = pts[-1]
    note = ("Only one snapshot so far: the line appears once the figures have been refreshed again."
            if len(pts) == 1 else
            f"{len(pts)} snapshots from {pts[0][0]:%Y-%m-%d} to {last[0]:%Y-%m-%d}.")
    return (f'<section data-testid="trend">{_heading(en, zh)}'
            f'<p class="note">Built cases against the 2019-11 target at each refresh of the figures. '
            f'<span data-testid="trend-snapshots">{len(pts)}</span> snapshot(s); latest '
            f'<b data-testid="trend-latest-achievement">{fmt_pct(last[1])}</b>. {_e(note)}</p>'
            f'<div class="legend"><i style="background:{svg.ACHIEVED}"></i>overall achievement 整體達成率'
            f'<i class="mark" style="background:{svg.ELAPSED}"></i>time elapsed (dashed) 時間進度</div>'
            f'{svg.trend_chart(pts)}</section>')


def _section_sharing(ctx: _Ctx) -> str:
    en, zh = "Shared and withheld cases", "分享與不分享案例"
    rows = _rows(ctx.tables, "progress_by_dataset")
    if not rows:
        return _missing("sharing", en, zh, "progress_by_dataset")
    rows = _latest(rows)
    agg: dict[str, dict] = {}
    for r in sorted(rows, key=lambda r: r["table5_no"]):
        a = agg.setdefault(r["dataset"], {"no": r["table5_no"], "name_zh": r["name_zh"], "name_en": r["name_en"],
                                          "team": r["team"], "shared": 0, "withheld": 0})
        a["shared" if r["part"] == "shared" else "withheld"] += r["total"]
    domain = max((a["shared"] + a["withheld"] for a in agg.values()), default=1)
    ts = sum(a["shared"] for a in agg.values())
    tw = sum(a["withheld"] for a in agg.values())
    out = [f'<section data-testid="sharing">{_heading(en, zh)}',
           '<p class="note">Per dataset: cases the hospital shares against cases it withholds (partly or wholly '
           'not shared). Bars share one scale, the largest dataset.</p>',
           f'<div class="legend"><i style="background:{svg.SHARED}"></i>shared 分享'
           f'<i style="background:{svg.WITHHELD}"></i>withheld 不分享</div>',
           '<table><tr><th class="n">No.</th><th>Dataset 資料集</th><th>Team 團隊</th><th class="n">Shared 分享</th>'
           '<th class="n">Withheld 不分享</th><th class="n">Total 合計</th><th class="n">Shared share 分享比例</th>'
           '<th></th></tr>']
    for ds, a in agg.items():
        tot = a["shared"] + a["withheld"]
        out.append(
            f'<tr><td class="n">{_e(a["no"])}</td><td><span class="zhname">{_e(a["name_zh"])}</span> '
            f'<span class="enname">{_e(a["name_en"])}</span></td><td>{_e(str(a["team"]).upper())}</td>'
            f'<td class="n" data-testid="{_tid("sharing", ds, "shared")}">{fmt_int(a["shared"])}</td>'
            f'<td class="n" data-testid="{_tid("sharing", ds, "withheld")}">{fmt_int(a["withheld"])}</td>'
            f'<td class="n" data-testid="{_tid("dataset", ds, "total")}">{fmt_int(tot)}</td>'
            f'<td class="n">{fmt_pct(a["shared"] / tot if tot else None)}</td>'
            f'<td>{svg.split_bar(a["shared"], a["withheld"], domain, label=ds)}</td></tr>')
    out.append(
        f'<tr class="total"><td></td><td>Overall 總計</td><td></td>'
        f'<td class="n" data-testid="sharing-all-shared">{fmt_int(ts)}</td>'
        f'<td class="n" data-testid="sharing-all-withheld">{fmt_int(tw)}</td>'
        f'<td class="n" data-testid="sharing-all-total">{fmt_int(ts + tw)}</td>'
        f'<td class="n" data-testid="sharing-all-ratio">{fmt_pct(ts / (ts + tw) if ts + tw else None)}</td>'
        '<td></td></tr></table></section>')
    return "".join(out)


def _section_consent(ctx: _Ctx) -> str:
    en, zh = "Consent notices and opt-outs", "告知與退出（表7）"
    rows = _rows(ctx.tables, "consent_summary")
    if not rows:
        return _missing("consent", en, zh, "consent_summary")
    rows = _latest(rows)
    rows = [r for r in rows if r["team"] != "all"] + [r for r in rows if r["team"] == "all"]
    out = [f'<section data-testid="consent">{_heading(en, zh)}',
           '<p class="note">Notices sent to patients, notices that could not be delivered, opt-out requests '
           '(including withdrawals) and deaths. Opt-out ratio = opt-outs / (notices sent − undelivered).</p>',
           '<table><tr><th>Team 團隊</th><th class="n">Notices sent 寄發</th><th class="n">Undelivered 退件</th>'
           '<th class="n">Delivered 送達</th><th class="n">Opt-outs 退出</th><th class="n">Deaths 死亡</th>'
           '<th class="n">Opt-out ratio 退出比例</th></tr>']
    for r in rows:
        t = r["team"]
        cls = ' class="total"' if t == "all" else ""
        out.append(
            f'<tr{cls}><td>{_team_label(t)}</td>'
            f'<td class="n" data-testid="{_tid("consent", t, "sent")}">{fmt_int(r["notices_sent"])}</td>'
            f'<td class="n" data-testid="{_tid("consent", t, "undelivered")}">{fmt_int(r["undelivered"])}</td>'
            f'<td class="n" data-testid="{_tid("consent", t, "delivered")}">'
            f'{fmt_int(r["notices_sent"] - r["undelivered"])}</td>'
            f'<td class="n" data-testid="{_tid("consent", t, "opt-outs")}">{fmt_int(r["opt_outs"])}</td>'
            f'<td class="n" data-testid="{_tid("consent", t, "deaths")}">{fmt_int(r["deaths"])}</td>'
            f'<td class="n" data-testid="{_tid("consent", t, "ratio")}">{fmt_pct(r["opt_out_ratio"])}</td></tr>')
    out.append("</table></section>")
    return "".join(out)


def _section_validation(ctx: _Ctx) -> str:
    en, zh = "Validation status", "驗證狀態"
    parts = [f'<section data-testid="validation">{_heading(en, zh)}',
             '<p class="note">Counts only. Identifier checks: an independent scan of every de-identified batch '
             'for remaining personal identifiers (latest check per batch). Data quality: each lake table against '
             'its rules, the latest validation of each batch that wrote to it.</p><div class="grid2">']
    rows = _rows(ctx.tables, "identifier_checks")
    if not rows:
        parts.append('<div data-testid="identifier-checks-missing"><h3>Identifier checks 去識別化檢查</h3>'
                     '<p class="note">No identifier check has been recorded yet (table program/identifier_checks).'
                     '</p></div>')
    else:
        latest: dict[tuple, dict] = {}
        for r in sorted(rows, key=lambda r: r["checked_at"]):
            latest[(r["team"], r["dataset"], r["batch_ref"])] = r
        passed = sum(1 for r in latest.values() if r["passed"])
        failed = len(latest) - passed
        findings = sum(r["findings"] for r in latest.values())
        when = max(r["checked_at"] for r in latest.values())
        parts.append(
            '<div><h3 style="font-size:15px;margin:4px 0">Identifier checks 去識別化檢查</h3>'
            f'<span class="kpi">batches 批次<b data-testid="idcheck-batches">{fmt_int(len(latest))}</b></span>'
            f'<span class="kpi">passed 通過<b class="good" data-testid="idcheck-passed">{fmt_int(passed)}</b></span>'
            f'<span class="kpi">failed 未通過<b class="{"bad" if failed else "good"}" data-testid="idcheck-failed">'
            f'{fmt_int(failed)}</b></span>'
            f'<span class="kpi">findings 發現<b class="{"bad" if findings else "good"}" '
            f'data-testid="idcheck-findings">{fmt_int(findings)}</b></span>'
            f'<p class="note">Last check {_e(_fmt_time(when))}.</p></div>')
    rows = _rows(ctx.tables, "validation_history")
    batches = ""
    if not rows:
        parts.append('<div data-testid="quality-missing"><h3>Data quality 資料品質</h3>'
                     '<p class="note">No data-quality validation has been recorded yet '
                     '(table program/validation_history).</p></div>')
    else:
        q = quality_state(rows)
        bad_tables = sum(1 for t in q.tables.values() if t.failing)
        bad_batches = sum(1 for b in q.batches if b.failed)
        parts.append(
            '<div><h3 style="font-size:15px;margin:4px 0">Data quality 資料品質</h3>'
            f'<span class="kpi">tables 資料表<b data-testid="quality-tables">{fmt_int(len(q.tables))}</b></span>'
            f'<span class="kpi">rules checked 規則<b data-testid="quality-expectations">'
            f'{fmt_int(sum(t.rules for t in q.tables.values()))}</b></span>'
            f'<span class="kpi">failing 未通過<b class="{"bad" if q.failing else "good"}" '
            f'data-testid="quality-failing">{fmt_int(q.failing)}</b></span>'
            f'<span class="kpi">tables failing 未通過資料表<b class="{"bad" if bad_tables else "good"}" '
            f'data-testid="quality-tables-failing">{fmt_int(bad_tables)}</b></span>'
            f'<span class="kpi">batches failing 未通過批次<b class="{"bad" if bad_batches else "good"}" '
            f'data-testid="quality-batches-failing">{fmt_int(bad_batches)}</b></span>'
            f'<span class="kpi">warnings 警告<b class="{"warn" if q.warnings else "good"}" '
            f'data-testid="quality-warnings">{fmt_int(q.warnings)}</b></span>'
            '<p class="note">Failing: an integrity rule (keys, keyed ids, references, accounting, no identifier) '
            'broken; the batch is held until it passes. Warnings: plausibility rules (ranges and enumerations '
            'of acquisition values) that flagged rows; they never hold a batch.</p>'
            '<table><tr><th>Table 資料表</th><th class="n">Rules 規則</th><th class="n">Failing 未通過</th>'
            '<th class="n">Warnings 警告</th><th>Checked 時間</th></tr>'
            + "".join(f'<tr><td>{_e(t)}</td><td class="n">{fmt_int(c.rules)}</td>'
                      f'<td class="n {"bad" if c.failing else ""}" data-testid="{_tid("quality", t, "failing")}">'
                      f'{fmt_int(c.failing)}</td>'
                      f'<td class="n {"warn" if c.warnings else ""}" data-testid="{_tid("quality", t, "warnings")}">'
                      f'{fmt_int(c.warnings)}</td><td>{_e(_fmt_time(c.last_checked))}</td></tr>'
                      for t, c in sorted(q.tables.items()))
            + "</table></div>")
        batches = _quality_batches(q)
    parts.append("</div>" + batches + "</section>")
    return "".join(parts)


# Batches listed by state; the counts above cover every batch, the list its first ones.
_MAX_BATCHES_LISTED = 50


def _quality_batches(q: QualityState) -> str:
    """Each batch that failed or warned: its latest state and its warnings, as counts and rules."""
    shown = [b for b in q.batches if b.failed or b.warnings]
    if not shown:
        return ('<p class="note" data-testid="quality-batches-none">'
                f'{fmt_int(len(q.batches))} batches validated: none failing, no warnings.</p>')
    out = ['<h4 style="margin:10px 0 4px">Batches 批次</h4><table><tr><th>Team 團隊</th><th>Dataset 資料集</th>'
           '<th>Batch (keyed) 批次代碼</th><th>State 狀態</th><th>Warnings 警告</th></tr>']
    for b in shown[:_MAX_BATCHES_LISTED]:
        batch = (b.team, b.dataset, b.batch_ref or "")
        state = (f'failed: {fmt_int(b.failing)} integrity rule{"s" if b.failing != 1 else ""}' if b.failed
                 else "passed")
        warnings = "".join(f'<div>{_e(w.text)} <span style="color:#4a5a6a">({_e(w.table)})</span></div>'
                           for w in b.warnings)
        out.append(f'<tr><td>{_e(b.team)}</td><td>{_e(b.dataset)}</td><td><code>{_e(b.batch_ref or "")}</code></td>'
                   f'<td class="{"bad" if b.failed else "good"}" data-testid="{_tid("quality-state", *batch)}">'
                   f'{_e(state)}</td>'
                   f'<td class="{"warn" if b.warnings else ""}" data-testid="{_tid("quality-warnings", *batch)}">'
                   f'{warnings or "none"}</td></tr>')
    out.append("</table>")
    if len(shown) > _MAX_BATCHES_LISTED:
        out.append(f'<p class="note">and {fmt_int(len(shown) - _MAX_BATCHES_LISTED)} more batches failing or '
                   'with warnings (program/validation_history).</p>')
    return "".join(out)


def _section_access(ctx: _Ctx) -> str:
    en, zh = "Releases and access applications", "資料釋出與申請審查"
    apps = _rows(ctx.tables, "applications")
    log_rows = _rows(ctx.tables, "release_log") or []
    if not apps and not log_rows:
        return _missing("access", en, zh, "applications")
    out = [f'<section data-testid="access">{_heading(en, zh)}',
           '<p class="note">Releases published per tier (latest action per release folder), applications by '
           'status, and usage reports (due every six months after an application\'s first release). '
           'Overdue reports need a reminder.</p>']
    latest: dict[str, dict] = {}
    for r in sorted(log_rows, key=lambda r: r["logged_at"]):
        latest[r["path"].rsplit("/", 1)[0] if r["kind"] == "tier" else r["path"]] = r
    per_tier: dict[str, int] = {}
    for folder, r in latest.items():
        if r["action"] == "published" and r["kind"] == "tier":
            per_tier[r["tier"]] = per_tier.get(r["tier"], 0) + 1
    purged = sum(1 for r in log_rows if r["action"] == "purged")
    refused = sum(1 for r in log_rows if r["action"] == "refused")
    out.append("".join(
        f'<span class="kpi">{_e(t)} releases<b data-testid="{_tid("releases", t)}">{fmt_int(n)}</b></span>'
        for t, n in sorted(per_tier.items())))
    out.append(f'<span class="kpi">versions purged after withdrawals 撤回後移除'
               f'<b data-testid="releases-purged">{fmt_int(purged)}</b></span>'
               f'<span class="kpi">refused by the identifier check 檢查未通過'
               f'<b class="{"bad" if refused else "good"}" data-testid="releases-refused">{fmt_int(refused)}</b></span>')
    if apps:
        by_status: dict[str, int] = {}
        for a in apps:
            by_status[a["status"]] = by_status.get(a["status"], 0) + 1
        out.append('<h3 style="font-size:15px;margin:8px 0 4px">Applications 申請案</h3><table><tr>'
                   + "".join(f"<th class=\"n\">{_e(k)}</th>" for k in sorted(by_status)) + "</tr><tr>"
                   + "".join(f'<td class="n" data-testid="{_tid("applications", k)}">{fmt_int(v)}</td>'
                             for k, v in sorted(by_status.items())) + "</tr></table>")
        active = [a for a in apps if a["status"] == "active"]
        if active:
            out.append('<table data-testid="applications-active"><tr><th>Application 申請案</th>'
                       '<th>Institution 機構</th><th>Datasets 資料集</th><th>Expires 到期</th></tr>'
                       + "".join(f'<tr><td>{_e(a["application_id"])}</td><td>{_e(a["institution"] or "")}</td>'
                                 f'<td>{_e(", ".join(a["released_datasets"]))}</td><td>{_e(a["expires"] or "")}</td></tr>'
                                 for a in sorted(active, key=lambda a: a["application_id"])) + "</table>")
    usage = _rows(ctx.tables, "usage_reports") or []
    overdue = sorted((u for u in usage if u["status"] == "overdue"), key=lambda u: (u["due"], u["application_id"]))
    out.append(f'<h3 style="font-size:15px;margin:8px 0 4px">Usage reports overdue 逾期使用報告 '
               f'<b class="{"bad" if overdue else "good"}" data-testid="usage-overdue">{fmt_int(len(overdue))}</b></h3>')
    if overdue:
        out.append('<table data-testid="usage-overdue-table"><tr><th>Application 申請案</th><th class="n">Period 期別</th>'
                   '<th>Due 應繳日</th></tr>'
                   + "".join(f'<tr><td>{_e(u["application_id"])}</td><td class="n">{fmt_int(u["period"])}</td>'
                             f'<td class="bad">{_e(u["due"])}</td></tr>' for u in overdue) + "</table>")
    out.append("</section>")
    return "".join(out)


_SECTIONS: tuple[tuple[str, str, str, Callable[[_Ctx], str]], ...] = (
    ("teams", "Completion against the 2019-11 target", "2019年11月目標達成率", _section_teams),
    ("datasets", "Datasets", "各資料集建置進度", _section_datasets),
    ("trend", "Trend of overall achievement", "整體達成率趨勢", _section_trend),
    ("sharing", "Shared and withheld cases", "分享與不分享案例", _section_sharing),
    ("consent", "Consent notices and opt-outs", "告知與退出", _section_consent),
    ("access", "Releases and access applications", "資料釋出與申請審查", _section_access),
    ("validation", "Validation status", "驗證狀態", _section_validation),
)


def render_dashboard(tables: dict[str, pa.Table], generated_at: dt.datetime, lake_uri: str, *,
                     programme_name_zh: str = PROGRAMME_NAME_ZH,
                     programme_name_en: str = PROGRAMME_NAME_EN) -> str:
    """One self-contained HTML page (UTF-8) from the program-zone tables.

    `tables` maps table names (progress_by_team, progress_by_dataset, progress_history,
    consent_summary, identifier_checks, validation_history) to pyarrow tables; a missing or empty
    one gives an explanatory placeholder section, and a section that cannot be drawn (a table of an
    unexpected shape) says so instead of breaking the page.
    """
    ctx = _Ctx(tables)
    body = []
    for sid, en, zh, fn in _SECTIONS:
        try:
            body.append(fn(ctx))
        except Exception as exc:  # one bad table must not take the whole page down
            log.exception("dashboard section %s could not be drawn", sid)
            body.append(_missing(sid, en, zh, "", f"This section could not be drawn from the lake's tables "
                                                  f"({type(exc).__name__}: {exc}). The data team has been "
                                                  "notified in the run log."))
    as_of = f"{ctx.as_of:%Y-%m-%d}" if ctx.as_of else "—"
    title = f"{programme_name_zh} · {programme_name_en}"
    return (
        "<!DOCTYPE html>\n<html lang=\"zh-Hant\"><head><meta charset=\"utf-8\">"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "img-src data:\">"
        f"<title>{_e(title)} — progress dashboard</title><style>{CSS}</style></head><body>"
        f'<header><h1><span data-testid="programme-name-zh">{_e(programme_name_zh)}</span> '
        f'<span class="en" data-testid="programme-name-en">{_e(programme_name_en)}</span></h1>'
        "<dl>"
        f'<div><dt>Figures as of 資料截止日</dt><dd data-testid="as-of">{_e(as_of)}</dd></div>'
        f'<div><dt>Data last refreshed 更新時間</dt><dd data-testid="generated-at">{_e(_fmt_time(generated_at))}</dd></div>'
        f'<div><dt>Programme period elapsed 計畫時間進度</dt><dd data-testid="elapsed-ratio">{fmt_pct(ctx.elapsed)}</dd></div>'
        "</dl></header><main>" + "".join(body) + "</main>"
        f'<footer>Source: <span data-testid="lake-uri">{_e(lake_uri)}</span> (program zone). '
        "Counts of cases only; this page holds no patient data.</footer></body></html>\n")
