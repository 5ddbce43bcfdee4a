"""De-identification assets: one catalogued export batch into the deid zone, then the independent
identifier check, which blocks everything downstream when it finds anything."""

import dagster as dg

from medlake.checker.sources import batch_scopes, check_objects, record_check
from medlake.deid.errors import DeidError
from medlake.deid.zone import batch_object_paths, deidentify_batch
from medlake.lake.tables import (
    ANNOTATION_FILES,
    DEID_AUDIT,
    DEID_QUARANTINE,
    INSTANCES,
    SERIES,
    SLIDES,
    STUDIES,
    VAULT,
    table_named,
)
from medlake.landing import BatchRef
from pipelines.keys import SecretKeyResource
from pipelines.partitions import EXPORT_BATCHES
from pipelines.policies import IO_RETRY_POLICY
from pipelines.resources import LakeResource, LandingResource, RegistryResource

_OUTPUTS = (INSTANCES, SERIES, STUDIES, SLIDES, ANNOTATION_FILES, DEID_AUDIT, VAULT, DEID_QUARANTINE)
_INGESTED = [dg.AssetKey(["restricted", n]) for n in
             ("landed_files", "source_instances", "source_slides", "source_cases", "batches")]
_CHECKED_TABLES = [t.name for t in (INSTANCES, SERIES, STUDIES, SLIDES, ANNOTATION_FILES, DEID_AUDIT)]
INSTANCES_KEY = dg.AssetKey(["deid", "instances"])


def _key(t) -> dg.AssetKey:
    return dg.AssetKey([t.zone, t.name])


@dg.multi_asset(
    specs=[dg.AssetSpec(key=_key(t), description=t.doc, group_name="deid", kinds={"delta"},
                        partitions_def=EXPORT_BATCHES, deps=_INGESTED) for t in _OUTPUTS],
    name="deidentify_export_batch",
    pool="deid_cpu",
    retry_policy=IO_RETRY_POLICY,
)
def deidentify_export_batch(context: dg.AssetExecutionContext, landing: LandingResource, lake: LakeResource,
                            registry: RegistryResource, secret: SecretKeyResource):
    """PS3.15 basic profile with the dataset's options, keyed pseudonyms and UIDs, burned-in text
    blanked, head volumes defaced, slide labels removed, identifiers dropped from AIM, masks and
    label sheets. Writes pseudonymous objects and tables only; what cannot be made safe is
    quarantined in the restricted zone."""
    ref = BatchRef.from_key(context.partition_key)
    try:
        r = deidentify_batch(lake.store(), landing.zone(), registry.load(), secret.deid_keys(), ref,
                             log=context.log.info)
    except DeidError as e:
        # A refusal (a changed secret key, an unsupported lake) would only repeat: fail now instead
        # of retrying. The message names a reason code and tags, never a value (DeidError's rule).
        raise dg.Failure(description=str(e), allow_retries=False) from e
    common = {"batch_ref": r.batch_ref, "objects_quarantined": r.quarantined, "seconds": round(r.duration_s, 3)}
    per = {
        "instances": {"dagster/partition_row_count": r.instances, "fast_path": r.fast_path,
                      "pixels_cleaned": r.pixels_cleaned, "defaced": r.defaced},
        "series": {},
        "studies": {},
        "slides": {"dagster/partition_row_count": r.slides},
        "annotation_files": {"dagster/partition_row_count": r.annotation_files},
        "deid_audit": {"actions": dg.MetadataValue.json(r.actions)},
        "vault": {},
        "deid_quarantine": {"by_reason": dg.MetadataValue.json(r.quarantine_by_reason)},
    }
    for t in _OUTPUTS:
        meta = {**common, **per[t.name], "dagster/uri": lake.store().uri(t)}
        if t.name in r.table_versions:
            meta["delta_version"] = r.table_versions[t.name]
        yield dg.MaterializeResult(asset_key=_key(t), metadata=meta)


def _commits_of(instance: dg.DagsterInstance, partition: str) -> dict[str, int]:
    """The Delta version each deid table had after this batch's latest de-identification, from its
    materialisation; a table without one is checked whole."""
    out = {}
    for name in _CHECKED_TABLES:
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(["deid", name]), asset_partitions=[partition]),
            limit=1).records
        meta = records[0].asset_materialization.metadata if records and records[0].asset_materialization else {}
        if "delta_version" in meta:
            out[name] = int(meta["delta_version"].value)
    return out


@dg.asset_check(asset=INSTANCES_KEY, blocking=True, partitions_def=EXPORT_BATCHES,
                name="no_identifiers_in_deid_batch",
                description="The independent checker scans every object of the batch and what the batch "
                            "wrote to the deid tables (its rows and its Delta commits) for the team's "
                            "identifiers and identifier patterns.")
def no_identifiers_in_deid_batch(context: dg.AssetCheckExecutionContext, lake: LakeResource,
                                 secret: SecretKeyResource) -> dg.AssetCheckResult:
    ref = BatchRef.from_key(context.partition_key)
    store = lake.store()
    batch_ref = secret.deid_keys().batch_ref(ref.team, ref.dataset, ref.batch)
    paths = batch_object_paths(store, ref.team, ref.dataset, batch_ref)
    scopes = batch_scopes(store, ref.team, ref.dataset, batch_ref,
                          _commits_of(context.instance, context.partition_key))
    report = check_objects(store, ref.team, paths, _CHECKED_TABLES, scopes=scopes)
    record_check(store, ref.team, ref.dataset, batch_ref, report)
    return dg.AssetCheckResult(
        passed=report.clean,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "objects_scanned": report.objects_scanned,
            # Tables whose batch commit was unknown (a check run without its de-identification).
            "tables_scanned_whole": dg.MetadataValue.json(
                [n for n in _CHECKED_TABLES if n not in scopes and store.exists(table_named("deid", n))]),
            "findings": len(report.findings),
            "by_kind": dg.MetadataValue.json(report.by_kind),
            # Locations name the pseudonymous object and attribute path, never a value.
            "first_findings": dg.MetadataValue.md("\n".join(
                f"- `{f.object}` {f.location} ({f.identifier_kind})" for f in report.findings[:20]) or "none"),
        },
    )

