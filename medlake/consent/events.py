"""Read every team's consent event files into restricted/consent_events rows.

Files are append-only, so each run reads them all and replaces the table: a file that changed is
read again, and nothing is counted twice. A row with an unknown event, class or date is reported
(line and reason, never the patient id) and left out.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass, field

import pyarrow as pa

from medlake.lake.tables import CONSENT_EVENTS
from medlake.landing import LandingZone
from medlake.program import Registry

EVENTS = {"notice_sent", "undelivered", "consented", "opted_out", "withdrawn", "deceased"}
CLASSES = {"A", "B", "C", ""}
REQUIRED = ("patient_id", "event", "event_date")


@dataclass
class ConsentRead:
    table: pa.Table
    problems: list[dict] = field(default_factory=list)  # team, file, line, code, message


def read_consent_events(landing: LandingZone, registry: Registry) -> ConsentRead:
    rows: list[dict] = []
    problems: list[dict] = []
    for team in sorted(registry.teams_by_id):
        for path in landing.consent_files(team):
            try:
                text = path.read_bytes().decode("utf-8-sig")
            except (OSError, UnicodeDecodeError) as e:
                problems.append(_problem(team, path.name, 0, "consent_file_unreadable", type(e).__name__))
                continue
            reader = csv.DictReader(io.StringIO(text, newline=""))
            missing = [c for c in REQUIRED if c not in (reader.fieldnames or [])]
            if missing:
                problems.append(_problem(team, path.name, 1, "consent_file_columns",
                                         f"missing column(s): {', '.join(missing)}"))
                continue
            for line, r in enumerate(reader, start=2):
                event = (r.get("event") or "").strip()
                cls = (r.get("consent_class") or "").strip().upper()
                pid = (r.get("patient_id") or "").strip()
                try:
                    date = dt.date.fromisoformat((r.get("event_date") or "").strip())
                except ValueError:
                    date = None
                reason = ("unknown event" if event not in EVENTS else "unknown consent class" if cls not in CLASSES
                          else "empty patient_id" if not pid else "event_date is not an ISO date" if date is None
                          else None)
                if reason:
                    problems.append(_problem(team, path.name, line, "consent_row_invalid", reason))
                    continue
                rows.append({"team": team, "file": path.name, "line": line, "patient_id": pid,
                             "consent_class": cls or None, "event": event, "event_date": date,
                             "reference": (r.get("reference") or "").strip() or None})
    return ConsentRead(CONSENT_EVENTS.from_rows(rows), problems)


def _problem(team: str, file: str, line: int, code: str, message: str) -> dict:
    return {"team": team, "file": file, "line": line, "code": code, "message": message}

