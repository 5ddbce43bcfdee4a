"""The pseudonym vault (restricted zone): patient -> pseudonym and date shift, per team.

Pseudonyms are recomputable from the key, so the vault is not needed to de-identify; it is the
record that lets a withdrawal find a patient's de-identified data, and the guard that refuses a run
whose key differs from the one the lake was built with (which would silently split every patient).
"""

from __future__ import annotations

import datetime as dt

import pyarrow.dataset as pads

from medlake.deid.errors import DeidError
from medlake.deid.keys import DeidKeys
from medlake.lake.delta import DeltaStore
from medlake.lake.tables import VAULT


def key_check(keys: DeidKeys) -> str:
    return keys.opaque_id("key-check")


def ensure_patients(store: DeltaStore, keys: DeidKeys, team: str, patient_ids: set[str],
                    batch: str) -> dict[str, tuple[str, int]]:
    """patient_id -> (pseudonym, date shift) for the given patients, recording new ones."""
    check = key_check(keys)
    known: dict[str, dict] = {}
    ds = store.dataset(VAULT)
    if ds is not None:
        team_rows = ds.to_table(columns=["patient_id", "key_check"], filter=pads.field("team") == team)
        other_keys = set(team_rows.column("key_check").to_pylist()) - {check}
        if other_keys:
            raise DeidError(
                "secret_key_changed",
                f"the vault of team {team} was built with a different MEDLAKE_SECRET_KEY; with this key every "
                "patient would get a new pseudonym. Restore the original key.")
        known = {p: {} for p in team_rows.column("patient_id").to_pylist() if p in patient_ids}
    out: dict[str, tuple[str, int]] = {}
    new_rows = []
    now = dt.datetime.now(dt.timezone.utc)
    for pid in sorted(patient_ids):
        pseudonym, shift = keys.patient_pseudonym(team, pid), keys.date_shift_days(team, pid)
        out[pid] = (pseudonym, shift)
        if pid not in known:
            new_rows.append({"team": team, "patient_id": pid, "pseudonym": pseudonym, "date_shift_days": shift,
                             "key_check": check, "first_batch": batch, "recorded_at": now})
    if new_rows:
        # Two batches of the team may bring the same new patient at once: the first row recorded stays.
        store.merge(VAULT, new_rows, {"team": team}, update=False)
    return out
