"""The truth file: every identifier planted (with every place it went), every case and object.

De-identification tests search their output for these values; ingestion tests compare their
catalogue with the cases and objects. Keys are sorted and lists ordered so the file is byte-stable.
"""

from __future__ import annotations

import json
from pathlib import Path

# Identifiers that belong to the hospital rather than to one patient.
SITE_KINDS = {"physician", "physician_text", "operator", "institution", "institution_address", "station_name",
              "device_serial"}


class IdentifierLog:
    def __init__(self) -> None:
        self._places: dict[tuple, set[str]] = {}

    def planter(self, team: str, patient_id: str):
        places = self._places

        def plant(kind: str, value: str, place: str) -> None:
            key = (team, None if kind in SITE_KINDS else patient_id, kind, value)
            s = places.get(key)
            if s is None:
                places[key] = {place}
            else:
                s.add(place)
        return plant

    def rows(self) -> list[dict]:
        return [{"team": t, "patient_id": p, "kind": k, "value": v, "places": sorted(pl)}
                for (t, p, k, v), pl in sorted(self._places.items(), key=lambda kv: (kv[0][0], kv[0][1] or "",
                                                                                      kv[0][2], kv[0][3]))]


def write_truth(path: Path, seed: int, spec: dict, identifiers: list[dict], cases: list[dict],
                objects: list[dict], consent_events: list[dict], applications: list[dict] = ()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {"seed": seed, "spec": spec, "identifiers": identifiers, "cases": cases, "objects": objects,
           "consent_events": consent_events, "applications": list(applications)}
    text = json.dumps(doc, ensure_ascii=False, indent=1, sort_keys=True, default=str)
    path.write_text(text + "\n", encoding="utf-8")


def load_truth(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))
