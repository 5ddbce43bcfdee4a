"""Re-read every consent file and recompute each patient's status (what the consent asset runs)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from medlake.consent.events import read_consent_events
from medlake.consent.status import consent_status
from medlake.consent.tables import CONSENT_PROBLEMS, CONSENT_STATUS
from medlake.lake.delta import DeltaStore
from medlake.lake.tables import CONSENT_EVENTS, SOURCE_CASES
from medlake.landing import LandingZone
from medlake.program import Registry


@dataclass
class ConsentRefresh:
    events: int = 0
    patients: int = 0
    releasable: int = 0
    withdrawn: int = 0
    problems: dict[str, int] = field(default_factory=dict)  # code -> rows
    versions: dict[str, int] = field(default_factory=dict)


def refresh_consent(store: DeltaStore, landing: LandingZone, registry: Registry, pseudonym) -> ConsentRefresh:
    read = read_consent_events(landing, registry)
    cases = store.read(SOURCE_CASES, ["team", "patient_id", "consent_class"])
    status = consent_status(read.table, cases, registry, pseudonym)
    problems = CONSENT_PROBLEMS.from_rows(
        [{k: p[k] for k in ("team", "file", "line", "code", "message")} for p in read.problems + status.problems])
    out = ConsentRefresh(events=read.table.num_rows, patients=status.table.num_rows)
    out.releasable = pc.sum(status.table.column("releasable")).as_py() or 0
    out.withdrawn = pc.sum(pc.is_in(status.table.column("reason"),
                                    pa.array(["consent_withdrawn", "consent_opted_out"]))).as_py() or 0
    for p in problems.column("code").to_pylist():
        out.problems[p] = out.problems.get(p, 0) + 1
    # Files are append-only and re-read whole, so each table is replaced whole: nothing counted twice.
    for tdef, table in ((CONSENT_EVENTS, read.table), (CONSENT_STATUS, status.table), (CONSENT_PROBLEMS, problems)):
        out.versions[tdef.name] = store.replace(tdef, table, {})
    return out
