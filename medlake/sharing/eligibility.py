"""Whether each case may be released at each tier, with every reason it may not.

A case is released only when all of these hold: the dataset offers the tier (sharing status and
the registry's tiers), the hospital has not withheld the case, the patient's consent allows it, and
the identifier checker passed every batch that brought the case's objects (its latest check).
"""

from __future__ import annotations

from collections import defaultdict

import pyarrow as pa
import pyarrow.compute as pc

from medlake.consent.tables import CONSENT_STATUS
from medlake.lake.delta import DeltaStore
from medlake.lake.tables import CASES, IDENTIFIER_CHECKS, INSTANCES, SLIDES
from medlake.program import Registry
from medlake.sharing.tables import RELEASE_ELIGIBILITY


def batch_verdicts(store: DeltaStore) -> dict[tuple[str, str, str], bool]:
    """(team, dataset, batch_ref) -> whether the latest identifier check of the batch passed."""
    t = store.read(IDENTIFIER_CHECKS, ["team", "dataset", "batch_ref", "passed", "checked_at"])
    latest: dict[tuple[str, str, str], tuple] = {}
    for team, ds, ref, passed, at in zip(*(t.column(i).to_pylist() for i in range(5))):
        key = (team, ds, ref)
        if key not in latest or at > latest[key][0]:
            latest[key] = (at, passed)
    return {k: v[1] for k, v in latest.items()}


def study_batches(store: DeltaStore) -> dict[tuple[str, str, str], set[str]]:
    """(team, dataset, study uid) -> batch refs that brought objects of the study."""
    out: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for table in (INSTANCES, SLIDES):
        t = store.read(table, ["team", "dataset", "study_instance_uid", "batch_ref"])
        if t.num_rows:
            t = t.group_by(["team", "dataset", "study_instance_uid", "batch_ref"]).aggregate([])
        for team, ds, study, ref in zip(*(t.column(i).to_pylist() for i in range(4))):
            if study:
                out[(team, ds, study)].add(ref)
    return out


def release_eligibility(store: DeltaStore, registry: Registry) -> pa.Table:
    cases = store.read(CASES, ["team", "dataset", "case_pseudonym", "patient_pseudonym",
                                         "study_instance_uids", "shareable", "consent_class"])
    status = store.read(CONSENT_STATUS,
                        ["team", "patient_pseudonym", "releasable", "reason"])
    consent = {(t, p): (ok, why) for t, p, ok, why in zip(*(status.column(i).to_pylist() for i in range(4)))}
    verdicts = batch_verdicts(store)
    batches = study_batches(store)
    rows = []
    for c in cases.to_pylist():
        spec = registry.datasets_by_id.get(c["dataset"])
        if spec is None:  # a dataset dropped from the registry releases nothing
            continue
        common: list[str] = []
        if not c["shareable"]:
            common.append("hospital_withheld")
        ok, why = consent.get((c["team"], c["patient_pseudonym"]), (False, "consent_no_record"))
        if not ok and not (why == "consent_no_record" and spec.release_without_consent_record):
            common.append(why or "consent_no_record")
        refs = set().union(*(batches.get((c["team"], c["dataset"], s), set()) for s in c["study_instance_uids"]))
        if not refs:
            common.append("no_objects")
        else:
            checks = [verdicts.get((c["team"], c["dataset"], r)) for r in refs]
            if any(v is False for v in checks):
                common.append("identifier_check_failed")
            elif any(v is None for v in checks):
                common.append("identifier_check_missing")
        for tier in registry.sharing_tiers:
            reasons = ([] if tier.id in spec.offered_tiers else ["tier_not_offered"]) + common
            rows.append({"team": c["team"], "dataset": c["dataset"], "tier": tier.id,
                         "case_pseudonym": c["case_pseudonym"], "patient_pseudonym": c["patient_pseudonym"],
                         "eligible": not reasons, "reasons": reasons, "content": spec.release_content,
                         "consent_class": c["consent_class"]})
    return RELEASE_ELIGIBILITY.from_rows(rows)


def eligible_cases(eligibility: pa.Table, team: str, dataset: str, tier: str) -> pa.Table:
    mask = pc.and_(pc.and_(pc.equal(eligibility["team"], team), pc.equal(eligibility["dataset"], dataset)),
                   pc.and_(pc.equal(eligibility["tier"], tier), eligibility["eligible"]))
    return eligibility.filter(mask)
