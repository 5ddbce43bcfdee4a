"""Dagster side of the data-quality suites: one blocking asset check per expectations/*.json.

    suite_checks({dg.AssetKey(["deid", "instances"]): "deid.instances", ...},
                 partitions_def=EXPORT_BATCHES, secret_resource_key="secret")

The check reads the table through the `lake` resource (anything with `.store()` -> DeltaStore),
validates it (great_expectations is imported only when the check runs), appends the outcome to
program/validation_history and reports counts, failing expectations and identifier-free example
keys. All the work is in medlake.validation; this file only adapts it to Dagster.
"""


from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from medlake.lake.tables import table_named
from medlake.packaged import packaged_file
from medlake.validation.suite import Suite, load_suite


def suite_checks(
    asset_keys_to_tables: "Mapping[dg.AssetKey | str, str | Suite]",
    partitions_def: dg.PartitionsDefinition | None = None,
    *,
    suites_dir: str | Path | None = None,
    lake_resource_key: str = "lake",
    secret_resource_key: str | None = None,
    blocking: bool = True,
) -> list[dg.AssetChecksDefinition]:
    """One asset check per asset: {asset key: "<zone>.<table>" (or a loaded Suite)}; suites come
    from `suites_dir`, by default the ones this package ships.

    Partitioned by export batch (team/dataset/batch), a check validates the team and dataset's
    slice; given the secret resource (which keys the deid tables' batch_ref), only the rows the
    batch wrote, their keys checked against the slice's (medlake.validation.scope)."""
    checks = []
    for key, table in asset_keys_to_tables.items():
        suite = table if isinstance(table, Suite) else load_suite(
            Path(suites_dir) / f"{table}.json" if suites_dir else packaged_file(__package__, f"{table}.json"))
        checks.append(_suite_check(dg.AssetKey.from_coercible(key), suite, partitions_def,
                                   lake_resource_key, secret_resource_key, blocking))
    return checks


def _suite_check(key: dg.AssetKey, suite: Suite, partitions_def, lake_resource_key: str,
                 secret_resource_key: str | None, blocking: bool) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=key, name=f"expectations_{suite.name}", blocking=blocking, partitions_def=partitions_def,
        required_resource_keys={lake_resource_key, *([secret_resource_key] if secret_resource_key else [])},
        description=f"great-expectations suite expectations/{suite.table_id}.json "
                    f"({len(suite.expectations)} expectations)",
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        from medlake.landing import BatchRef
        from medlake.validation import record, validate
        from medlake.validation.scope import validate_dataset

        store = getattr(context.resources, lake_resource_key).store()
        if partitions_def is not None and context.has_partition_key:
            ref = BatchRef.from_key(context.partition_key)
            batch_ref = None
            if secret_resource_key:
                keys = getattr(context.resources, secret_resource_key).deid_keys()
                batch_ref = keys.batch_ref(ref.team, ref.dataset, ref.batch)
            outcome = validate_dataset(store, suite, ref.team, ref.dataset, ref.batch, batch_ref)
            scope = (ref.team, ref.dataset, batch_ref)
        else:
            scope = None
            ds = store.dataset(table_named(suite.zone, suite.name))
            outcome = None if ds is None else validate(
                ds.to_table(columns=[c for c in ds.schema.names if c in suite.columns()]), suite)
        if outcome is None:
            return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR,
                                       metadata={"error": f"table {suite.table_id} does not exist"})
        record(store, suite.table_id, outcome, context.run.run_id, batch=scope)
        failed = outcome.failed
        return dg.AssetCheckResult(
            passed=outcome.success,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "rows": outcome.row_count,
                "expectations": len(outcome.results),
                "failed": len(failed),
                "seconds": outcome.seconds,
                "failing_expectations": dg.MetadataValue.json(
                    {r.name: r.unexpected_count if r.error is None else r.error for r in failed}),
                # Row numbers (restricted) or pseudonymous key tuples (deid); never a failing value.
                "example_keys": dg.MetadataValue.json(
                    {r.name: [list(k) for k in r.example_keys] for r in failed if r.example_keys}),
            },
        )

    return _check
