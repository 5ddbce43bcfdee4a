"""Consent events per team (EXPORT_FORMAT.md _consent/*.csv), consistent with cases.csv classes.

Two files per team: the initial notice/consent round and a later one carrying withdrawals and deaths,
because events accumulate and a later file may withdraw a patient who was released before.
A few patients get no record at all (not releasable by default).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

from .identities import Patient
from .ids import rng_for

COLUMNS = ["patient_id", "consent_class", "event", "event_date", "reference"]
FIRST_FILE = dt.date(2019, 6, 30)
LATER_FILE = dt.date(2019, 12, 31)


def consent_events(seed: int, team: str, patients: list[Patient]) -> tuple[list[dict], list[dict], list[str]]:
    """(first-file events, later-file events, patient_ids left without any record)."""
    first, later, none = [], [], []
    for n, p in enumerate(patients):
        r = rng_for(seed, team, "consent", p.chart_no)
        ref = lambda kind: f"{team.upper()}-{kind}-{r.randrange(100000, 999999)}"  # noqa: E731
        day = lambda: (FIRST_FILE - dt.timedelta(days=r.randrange(10, 400))).isoformat()  # noqa: E731
        # Deterministic positions so even a small cohort has every kind of history.
        if n % 11 == 3:
            none.append(p.chart_no)
            continue
        row = {"patient_id": p.chart_no, "consent_class": p.consent_class}
        if p.consent_class == "A":
            first.append({**row, "event": "consented", "event_date": day(), "reference": ref("ICF")})
        elif p.consent_class == "B":
            first.append({**row, "event": "notice_sent", "event_date": day(), "reference": ref("NTC")})
            if r.random() < 0.5:
                first.append({**row, "event": "consented", "event_date": day(), "reference": ref("ICF")})
        else:
            first.append({**row, "event": "notice_sent", "event_date": day(), "reference": ref("NTC")})
            if n % 7 == 5:
                first.append({**row, "event": "undelivered", "event_date": day(), "reference": ref("RET")})
            if n % 9 == 4:
                first.append({**row, "event": "opted_out", "event_date": day(), "reference": ref("OPT")})
        later_day = (LATER_FILE - dt.timedelta(days=r.randrange(1, 150))).isoformat()
        if n % 13 == 6:
            later.append({**row, "event": "withdrawn", "event_date": later_day, "reference": ref("WDR")})
        elif n % 17 == 8:
            later.append({**row, "event": "deceased", "event_date": later_day, "reference": ref("DTH")})
    return first, later, none


def write_consent(out: Path, seed: int, team: str, patients: list[Patient]) -> list[dict]:
    first, later, none = consent_events(seed, team, patients)
    folder = out / team / "_consent"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for date, rows in ((FIRST_FILE, first), (LATER_FILE, later)):
        if not rows:
            continue
        buf = io.StringIO(newline="")
        w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
        (folder / f"{date.isoformat()}.csv").write_bytes(buf.getvalue().encode("utf-8"))
        written += [{**r, "team": team, "file": f"{team}/_consent/{date.isoformat()}.csv"} for r in rows]
    return written
