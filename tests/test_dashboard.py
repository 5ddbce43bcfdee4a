"""The programme dashboard, rendered from Delta tables and read back from headless Chromium.

The figures are seed-like (table 4, 5 and 7 of the 2019 work report). What the test reads is the DOM
Chromium produced after rendering, so a figure that is not on the page (or mangled by escaping or
encoding) fails. A screenshot goes to docs/dashboard.png.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest

import browser
from medlake.dashboard import render_dashboard, write_dashboard
from medlake.lake import DeltaStore, Lake
from medlake.lake.tables import (
    CONSENT_SUMMARY,
    IDENTIFIER_CHECKS,
    PROGRESS_BY_DATASET,
    PROGRESS_BY_TEAM,
    PROGRESS_HISTORY,
)
from medlake.validation.history import VALIDATION_HISTORY

REPO = Path(__file__).resolve().parent.parent
AS_OF = dt.date(2019, 9, 30)
ELAPSED = (AS_OF - dt.date(2017, 11, 1)).days / (dt.date(2020, 11, 30) - dt.date(2017, 11, 1)).days
UTC = dt.UTC


def pct(r):
    return "—" if r is None else f"{r * 100:.1f}%"


def num(n):
    return f"{n:,}"


def _ds(no, ds, zh, en, team, sharing, part, io, pa_, fu, target, t2020, avg=1.0):
    total = io + pa_ + fu
    return {"as_of": AS_OF, "elapsed_ratio": ELAPSED, "table5_no": no, "dataset": ds, "name_zh": zh,
            "name_en": en, "organ": "x", "team": team, "sharing": sharing, "part": part, "image_only": io,
            "partial": pa_, "full": fu, "total": total, "target_2019_11": target, "target_2020_11": t2020,
            "achievement_2019_11": total / target if target else None, "avg_images_per_case": avg,
            "est_annotated_images": int((pa_ + fu) * avg)}


DATASETS = [
    _ds(1, "ccta", "冠狀動脈電腦斷層 CCTA", "Coronary CT angiography (CCTA)", "ntu", "shared", "shared",
        0, 1096, 1028, 2250, 3500),
    _ds(4, "ivus", "冠狀動脈血管內超音波 IVUS", "Coronary intravascular ultrasound <IVUS> & co", "ntu",
        "not_shared", "not_shared", 0, 44, 5, 80, 300),
    _ds(11, "brain-tumor-mri", "腦部 MRI (原發腦瘤)", "Brain MRI (primary brain tumour)", "tvgh",
        "partially_shared", "shared", 0, 200, 300, 500, 3800),
    _ds(11, "brain-tumor-mri", "腦部 MRI (原發腦瘤)", "Brain MRI (primary brain tumour)", "tvgh",
        "partially_shared", "partially_not_shared", 0, 400, 500, 1500, 0),
    _ds(15, "lung-ct", "肺部 CT", "Lung CT (low-dose)", "tmu", "shared", "shared", 56500, 0, 3500, 60000, 80000),
    _ds(16, "lung-pathology", "肺癌數位病理影像", "Lung cancer digital pathology", "tmu", "shared", "shared",
        1400, 0, 0, 2000, 3000),
    _ds(17, "lung-xray", "肺部 X-ray", "Lung X-ray (EHR codes)", "tmu", "partially_shared",
        "partially_not_shared", 0, 380000, 0, 540000, 0),
    _ds(23, "extra-target-met", "超標資料集", "A dataset over its target", "tvgh", "shared", "shared",
        10, 20, 200, 100, 200),
]

# seed table 4 (team, name, datasets, cases, target) per (scope, view)
TEAM_FIGURES = {
    ("built", "all"): [("ntu", "臺大醫院", 6, 3112, 3450), ("tvgh", "臺北榮民總醫院", 17, 6939, 9895),
                       ("tmu", "臺北醫學大學", 11, 510823, 671950), ("all", "總計", 34, 520874, 685295)],
    ("built", "annotated"): [("ntu", "臺大醫院", 6, 3112, 3450), ("tvgh", "臺北榮民總醫院", 17, 6389, 9345),
                             ("tmu", "臺北醫學大學", 11, 452923, 612950), ("all", "總計", 34, 462424, 625745)],
    ("built", "annotated_without_ehr_labels"): [("ntu", "臺大醫院", 6, 3112, 3450),
                                                ("tvgh", "臺北榮民總醫院", 15, 4989, 7345),
                                                ("tmu", "臺北醫學大學", 10, 12923, 12950),
                                                ("all", "總計", 31, 21024, 23745)],
    ("shared", "all"): [("ntu", "臺大醫院", 3, 3015, 3250), ("tvgh", "臺北榮民總醫院", 10, 3150, 3650),
                        ("tmu", "臺北醫學大學", 9, 130448, 131025), ("all", "總計", 22, 136613, 137925)],
}
TEAMS = [{"as_of": AS_OF, "elapsed_ratio": ELAPSED, "scope": s, "view": v, "team": t, "team_name_zh": zh,
          "datasets": d, "cases": c, "target": tg, "achievement": c / tg}
         for (s, v), rows in TEAM_FIGURES.items() for t, zh, d, c, tg in rows]

CONSENT_FIGURES = [("ntu", 1783, 104, 35, 186), ("tvgh", 2359, 391, 19, 19), ("tmu", 2500, 169, 30, 186),
                   ("all", 6642, 664, 84, 391)]
CONSENT = [{"as_of": AS_OF, "elapsed_ratio": ELAPSED, "team": t, "notices_sent": s, "undelivered": u,
            "opt_outs": o, "deaths": d, "opt_out_ratio": o / (s - u)} for t, s, u, o, d in CONSENT_FIGURES]

SNAPSHOTS = [(dt.datetime(2019, 6, 30, 2, tzinfo=UTC), 402100), (dt.datetime(2019, 8, 15, 2, tzinfo=UTC), 471500),
             (dt.datetime(2019, 9, 30, 2, tzinfo=UTC), 520874)]
HISTORY = [{"snapshot_at": t, "as_of": t.date(), "level": "team", "key": "all", "cases": c, "target": 685295,
            "achievement": c / 685295, "elapsed_ratio": (t.date() - dt.date(2017, 11, 1)).days / 1125}
           for t, c in SNAPSHOTS] + [
           {"snapshot_at": t, "as_of": t.date(), "level": "team", "key": "ntu", "cases": 3000, "target": 3450,
            "achievement": 3000 / 3450, "elapsed_ratio": 0.6} for t, _ in SNAPSHOTS]


def _check(team, ds, batch, passed, findings, at):
    return {"team": team, "dataset": ds, "batch_ref": batch, "passed": passed, "objects_scanned": 100,
            "findings": findings, "by_kind": "{}", "checked_at": at}


T1, T2 = dt.datetime(2019, 9, 29, tzinfo=UTC), dt.datetime(2019, 9, 30, tzinfo=UTC)
ID_CHECKS = [_check("ntu", "ccta", "b1", False, 3, T1), _check("ntu", "ccta", "b1", True, 0, T2),  # fixed
             _check("ntu", "ccta", "b2", True, 0, T2), _check("tvgh", "brain-tumor-mri", "b1", False, 2, T2),
             _check("tmu", "lung-ct", "b1", True, 0, T2)]


def _v(table, exp, ok, at, run):
    return {"table": table, "expectation": exp, "column": "c", "success": ok, "unexpected_count": 0 if ok else 5,
            "element_count": 10, "run_id": run, "checked_at": at}


def _batch_v(batch, exp, ok, at, run):
    return {**_v("deid.annotations", exp, ok, at, run), "team": "ntu", "dataset": "ccta", "batch_ref": batch}


# Whole-table rows (as histories written before batches were recorded), then two batches' checks.
VALIDATIONS = [_v("deid.cases", "not_null", False, T1, "r1"), _v("deid.cases", "unique", False, T1, "r1"),
               _v("deid.cases", "not_null", True, T2, "r2"), _v("deid.cases", "unique", False, T2, "r2"),
               _v("deid.instances", "not_null", True, T2, "r2"), _v("deid.instances", "in_set", True, T2, "r2"),
               _batch_v("REFB1", "resolved", False, T1, "r3"), _batch_v("REFB1", "unique", True, T1, "r3"),
               _batch_v("REFB2", "resolved", True, T2, "r4"), _batch_v("REFB2", "unique", True, T2, "r4")]

ALL_TABLES = {PROGRESS_BY_DATASET: DATASETS, PROGRESS_BY_TEAM: TEAMS, CONSENT_SUMMARY: CONSENT,
              PROGRESS_HISTORY: HISTORY, IDENTIFIER_CHECKS: ID_CHECKS, VALIDATION_HISTORY: VALIDATIONS}


def _lake(root: Path, defs) -> DeltaStore:
    store = DeltaStore(Lake.from_root(str(root)))
    for d in defs:
        store.append(d, ALL_TABLES[d])
    return store


@pytest.fixture(scope="module")
def chromium():
    if browser.find_chromium() is None:
        pytest.fail(f"chromium is required for the dashboard test; install it with: {browser.INSTALL_HINT}")
    return browser.find_chromium()


@pytest.fixture(scope="module")
def page(tmp_path_factory, chromium):
    tmp = tmp_path_factory.mktemp("dashboard")
    store = _lake(tmp / "lake", ALL_TABLES)
    out = write_dashboard(store, tmp / "site" / "dashboard.html",
                          generated_at=dt.datetime(2019, 10, 1, 9, 30, tzinfo=UTC))
    net_log = tmp / "netlog.json"
    dom = browser.dump_dom(out, net_log=net_log)
    text, attrs = browser.testids(dom)
    return {"path": out, "html": out.read_text(encoding="utf-8"), "dom": dom, "text": text, "attrs": attrs,
            "net_log": net_log, "tmp": tmp}


def test_header(page):
    t = page["text"]
    assert t["programme-name-zh"] == "醫療影像專案計畫"
    assert t["programme-name-en"] == "National medical-imaging AI dataset programme"
    assert t["as-of"] == "2019-09-30"
    assert t["generated-at"] == "2019-10-01 09:30 UTC"
    assert t["elapsed-ratio"] == pct(ELAPSED) == "62.0%"
    assert t["lake-uri"] == str(page["tmp"] / "lake")


def test_team_completion_matches_table4(page):
    t = page["text"]
    assert (t["overall-cases"], t["overall-target"], t["overall-achievement"]) == ("520,874", "685,295", "76.0%")
    assert (t["team-ntu-cases"], t["team-ntu-target"], t["team-ntu-achievement"]) == ("3,112", "3,450", "90.2%")
    assert t["team-tvgh-achievement"] == "70.1%" and t["team-tmu-achievement"] == "76.0%"
    for (scope, view), rows in TEAM_FIGURES.items():
        for team, _, datasets, cases, target in rows:
            p = f"team-{team}-{scope}-{view}"
            assert t[f"{p}-datasets"] == num(datasets)
            assert t[f"{p}-cases"] == num(cases)
            assert t[f"{p}-target"] == num(target)
            assert t[f"{p}-achievement"] == pct(cases / target), p
    assert t["team-all-shared-all-achievement"] == "99.0%"


def test_datasets_match_table5(page):
    t = page["text"]
    for r in DATASETS:
        p = f"dataset-{r['dataset']}-{r['part']}"
        assert t[f"{p}-name-zh"] == r["name_zh"]
        assert t[f"{p}-name-en"] == r["name_en"]  # '<IVUS> & co' survives escaping
        assert t[f"{p}-team"] == r["team"].upper()
        for k in ("image_only", "partial", "full", "total"):
            assert t[f"{p}-{k.replace('_', '-')}"] == num(r[k]), (p, k)
        assert t[f"{p}-target"] == num(r["target_2019_11"])
        assert t[f"{p}-achievement"] == pct(r["achievement_2019_11"])
    assert t["dataset-ccta-shared-achievement"] == "94.4%"
    assert t["dataset-extra-target-met-shared-achievement"] == "230.0%"
    # shared against withheld, per dataset
    assert (t["sharing-ccta-shared"], t["sharing-ccta-withheld"], t["dataset-ccta-total"]) == ("2,124", "0", "2,124")
    assert (t["sharing-brain-tumor-mri-shared"], t["sharing-brain-tumor-mri-withheld"],
            t["dataset-brain-tumor-mri-total"]) == ("500", "900", "1,400")
    assert t["sharing-ivus-withheld"] == "49" and t["sharing-lung-xray-withheld"] == "380,000"
    shared = sum(r["total"] for r in DATASETS if r["part"] == "shared")
    withheld = sum(r["total"] for r in DATASETS if r["part"] != "shared")
    assert t["sharing-all-shared"] == num(shared) and t["sharing-all-withheld"] == num(withheld)


def test_trend(page):
    t, a = page["text"], page["attrs"]
    assert t["trend-snapshots"] == "3"
    assert t["trend-latest-achievement"] == "76.0%"
    assert [a[f"trend-point-{i}"]["data-value"] for i in range(3)] == [pct(c / 685295) for _, c in SNAPSHOTS]


def test_consent_matches_table7(page):
    t = page["text"]
    for team, sent, und, opt, deaths in CONSENT_FIGURES:
        assert t[f"consent-{team}-sent"] == num(sent)
        assert t[f"consent-{team}-undelivered"] == num(und)
        assert t[f"consent-{team}-delivered"] == num(sent - und)
        assert t[f"consent-{team}-opt-outs"] == num(opt)
        assert t[f"consent-{team}-deaths"] == num(deaths)
        assert t[f"consent-{team}-ratio"] == pct(opt / (sent - und))
    assert t["consent-all-ratio"] == "1.4%" and t["consent-all-sent"] == "6,642"


def test_validation_status(page):
    t = page["text"]
    # latest check per batch: ntu/b1 passed on re-check, tvgh/b1 failed
    assert (t["idcheck-batches"], t["idcheck-passed"], t["idcheck-failed"], t["idcheck-findings"]) == \
        ("4", "3", "1", "2")
    # latest run per table and batch: deid.cases 1 failing of 2, deid.instances 0 of 2, deid.annotations
    # 1 of 4: batch B1's fault stays on the board after batch B2 passed
    assert (t["quality-tables"], t["quality-expectations"], t["quality-failing"], t["quality-tables-failing"]) == \
        ("3", "8", "2", "2")
    assert t["quality-deid.cases-failing"] == "1" and t["quality-deid.instances-failing"] == "0"
    assert t["quality-deid.annotations-failing"] == "1"


def test_self_contained_and_no_network(page, tmp_path):
    html = page["html"]
    assert html.startswith("<!DOCTYPE html>") and '<meta charset="utf-8">' in html
    assert "Noto Sans CJK" in html
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.I), "a URL in the page"
    assert not re.search(r"<script|<link|<img|<iframe|@import|url\(|\ssrc=|\shref=", html, re.I)
    assert "<IVUS>" not in html and "&lt;IVUS&gt; &amp; co" in html
    # Chromium's own log of what was requested while the page loaded: nothing from the page
    assert browser.page_requests(page["net_log"]) == []
    # ...and the check does see a page that loads remote resources (so the empty list means something)
    leak = tmp_path / "leak.html"
    leak.write_text('<img src="http://example.invalid/x.png"><link rel="stylesheet" '
                    'href="https://cdn.example.invalid/a.css">', encoding="utf-8")
    log = tmp_path / "leak-netlog.json"
    browser.dump_dom(leak, net_log=log)
    assert set(browser.page_requests(log)) == {"http://example.invalid/x.png", "https://cdn.example.invalid/a.css"}


def test_screenshot(page):
    png = browser.screenshot(page["path"], page["tmp"] / "dashboard.png", 1400, 3400)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 50_000
    docs = REPO / "docs" / "dashboard.png"
    shutil.copyfile(png, docs)


def test_missing_tables_and_single_snapshot(tmp_path, chromium):
    """Only table 4 and one snapshot in the lake: placeholders, a one-point trend, no crash."""
    store = _lake(tmp_path / "lake", [PROGRESS_BY_TEAM])
    store.append(PROGRESS_HISTORY, HISTORY[2:3])
    out = write_dashboard(store, tmp_path / "dashboard.html")
    assert not list(tmp_path.glob(".dashboard.html.*")), "temporary file left behind"
    text, attrs = browser.testids(browser.dump_dom(out))
    assert text["overall-achievement"] == "76.0%"
    for section in ("datasets", "sharing", "consent"):
        assert f"{section}-missing" in text and "not in the lake yet" in text[f"{section}-missing"]
    assert "identifier-checks-missing" in text and "quality-missing" in text
    assert text["trend-snapshots"] == "1" and attrs["trend-point-0"]["data-value"] == "76.0%"
    assert "Only one snapshot" in text["trend"]


def test_empty_lake_and_bad_table_do_not_crash(tmp_path):
    html = render_dashboard({}, dt.datetime(2019, 10, 1), "s3://bucket/lake")
    assert 'data-testid="teams-missing"' in html and 'data-testid="elapsed-ratio">—<' in html
    # a table of the wrong shape: that section says so, the rest of the page is drawn
    bad = PROGRESS_BY_TEAM.from_rows(TEAMS).drop_columns(["cases"])
    html = render_dashboard({"progress_by_team": bad, "consent_summary": CONSENT_SUMMARY.from_rows(CONSENT)},
                            dt.datetime(2019, 10, 1), "/lake")
    assert 'data-testid="teams-missing"' in html and "could not be drawn" in html
    assert 'data-testid="consent-all-ratio">1.4%<' in html


def _kind_v(batch, table, exp, kind, ok, at, run, count=5, rule=""):
    return {**_v(table, exp, ok, at, run), "team": "tvgh", "dataset": "liver-ct", "batch_ref": batch,
            "unexpected_count": 0 if ok else count, "severity": kind, "rule": rule}


def test_plausibility_warnings_are_shown_per_batch_apart_from_failures():
    """Warnings never fail a batch; an integrity failure keeps it failed until that batch passes."""
    thick, early = "slice thickness outside 0-100 mm", "study date outside 2007-11-01 to 2020-11-30"
    rows = [
        # B1 failed an integrity rule, then its re-run passed it with warnings only.
        _kind_v("REFB1", "deid.instances", "unique", "integrity", False, T1, "r1", 1),
        _kind_v("REFB1", "deid.instances", "between", "plausibility", True, T1, "r1"),
        _kind_v("REFB1", "deid.instances", "unique", "integrity", True, T2, "r2"),
        _kind_v("REFB1", "deid.instances", "between", "plausibility", False, T2, "r2", 2, thick),
        _kind_v("REFB1", "deid.studies", "between", "plausibility", False, T2, "r2", 1, early),
        # B2 failed and was not validated again: later batches passing do not clear it.
        _kind_v("REFB2", "deid.instances", "unique", "integrity", False, T1, "r3", 3),
        _kind_v("REFB2", "deid.instances", "between", "plausibility", False, T1, "r3", 4, thick),
        _kind_v("REFB3", "deid.instances", "unique", "integrity", True, T2, "r4"),
        _kind_v("REFB3", "deid.instances", "between", "plausibility", True, T2, "r4"),
        # Recorded before expectations had kinds: its failure held the batch, and still counts so.
        {**_kind_v("REFB4", "deid.series", "between", None, False, T2, "r5", 1), "rule": None},
    ]
    html = render_dashboard({"validation_history": VALIDATION_HISTORY.from_rows(rows)}, T2, "/lake")
    t, _ = browser.testids(html)
    assert (t["quality-failing"], t["quality-batches-failing"], t["quality-warnings"]) == ("2", "2", "3")
    assert t["quality-state-tvgh-liver-ct-REFB1"] == "passed"
    assert t["quality-warnings-tvgh-liver-ct-REFB1"].replace(")warning", ") warning") == (
        "warning: 2 objects with slice thickness outside 0-100 mm (deid.instances) "
        "warning: 1 study with study date outside 2007-11-01 to 2020-11-30 (deid.studies)")
    assert t["quality-state-tvgh-liver-ct-REFB2"] == "failed: 1 integrity rule"
    assert t["quality-warnings-tvgh-liver-ct-REFB2"] == \
        "warning: 4 objects with slice thickness outside 0-100 mm (deid.instances)"
    assert t["quality-state-tvgh-liver-ct-REFB4"] == "failed: 1 integrity rule"
    assert "quality-state-tvgh-liver-ct-REFB3" not in t   # passed, no warnings: counted, not listed
    assert (t["quality-deid.instances-failing"], t["quality-deid.instances-warnings"]) == ("1", "2")
    assert t["quality-deid.studies-warnings"] == "1"
