"""Consent: every patient's status from the consent files, and the purge of patients who opted out
or withdrew. Not partitioned: consent files are re-read whole (they are append-only)."""

import dagster as dg

from medlake.consent.refresh import refresh_consent
from medlake.consent.status import withdrawn_patients
from medlake.consent.tables import CONSENT_PROBLEMS, CONSENT_STATUS, WITHDRAWAL_AUDIT
from medlake.consent.withdrawal import purge_withdrawn
from medlake.lake.tables import CONSENT_EVENTS, table_named
from pipelines.keys import SecretKeyResource
from pipelines.resources import LakeResource, LandingResource, RegistryResource

CONSENT_KEYS = {t.name: dg.AssetKey([t.zone, t.name]) for t in (CONSENT_EVENTS, CONSENT_STATUS, CONSENT_PROBLEMS)}
WITHDRAWAL_KEY = dg.AssetKey(["restricted", WITHDRAWAL_AUDIT.name])
DEID_PATIENT_TABLES = [dg.AssetKey(["deid", n]) for n in ("instances", "series", "studies", "slides",
                                                           "annotation_files", "annotations", "cases")]


@dg.multi_asset(
    specs=[dg.AssetSpec(key=k, group_name="consent", kinds={"delta"},
                        deps=[dg.AssetKey(["restricted", "source_cases"])]) for k in CONSENT_KEYS.values()],
    name="consent",
)
def consent(landing: LandingResource, lake: LakeResource, registry: RegistryResource, secret: SecretKeyResource):
    """Reads every team's _consent/*.csv, folds each patient's events and applies the registry's
    policy for the class (A releasable; B once notified; C unless opted out; no record: not
    releasable unless the dataset allows it). Rows that cannot be used go to consent_problems."""
    r = refresh_consent(lake.store(), landing.zone(), registry.load(), secret.deid_keys().patient_pseudonym)
    meta = {
        "consent_events": {"events": r.events},
        "consent_status": {"patients": r.patients, "releasable": r.releasable, "opted_out_or_withdrawn": r.withdrawn},
        "consent_problems": {"by_code": dg.MetadataValue.json(r.problems)},
    }
    for name, key in CONSENT_KEYS.items():
        yield dg.MaterializeResult(asset_key=key, metadata={**meta[name], "delta_version": r.versions[name],
                                                            "dagster/uri": lake.store().uri(table_named(key.path[0], name))})


@dg.asset(key=WITHDRAWAL_KEY, group_name="consent", kinds={"delta"},
          deps=[CONSENT_KEYS["consent_status"], *DEID_PATIENT_TABLES])
def withdrawals(lake: LakeResource) -> dg.MaterializeResult:
    """Removes every object and row of patients who opted out or withdrew from the deid zone (rows
    rewritten, files deleted, old Delta files vacuumed) and audits what went; the catalogue and the
    releases downstream follow on the same run."""
    r = purge_withdrawn(lake.store(), withdrawn_patients(lake.store()))
    return dg.MaterializeResult(metadata={"patients_purged": r.patients, "files_removed": r.files,
                                          "bytes_removed": r.bytes, "rows_removed": dg.MetadataValue.json(r.rows)})
