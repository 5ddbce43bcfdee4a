"""Dagster side of the data-quality suites: one blocking asset check per expectations/*.json.

    suite_checks({dg.AssetKey(["deid", "instances"]): "deid.instances", ...},
                 partitions_def=EXPORT_BATCHES)

The check reads the table through the `lake` resource (anything with `.store()` -> DeltaStore),
validates it (great_expectations is imported only when the check runs), appends the outcome to
program/validation_history and reports counts, failing expectations and identifier-free example
keys. All the work is in medlake.validation; this file only adapts it to Dagster.
"""


from collections.abc import Callable, Mapping
from pathlib import Path

import dagster as dg

from medlake.validation.suite import Suite, load_suite

SUITES_DIR = Path(__file__).resolve().parent


def partition_filter(partition_key: str):
    """team/dataset/batch -> the (team, dataset) slice. Every suite's natural key starts with team
    and dataset, so uniqueness over the slice is uniqueness over the table; the batch column is not
    used because deid tables carry a keyed batch_ref instead of the folder name."""
    import pyarrow.dataset as pads

    team, dataset, *_ = partition_key.split("/")
    return (pads.field("team") == team) & (pads.field("dataset") == dataset)


def suite_checks(
    asset_keys_to_tables: "Mapping[dg.AssetKey | str, str | Suite]",
    partitions_def: dg.PartitionsDefinition | None = None,
    *,
    suites_dir: str | Path = SUITES_DIR,
    lake_resource_key: str = "lake",
    slice_for_partition: Callable[[str], object] | None = partition_filter,
    blocking: bool = True,
) -> list[dg.AssetChecksDefinition]:
    """One asset check per asset: {asset key: "<zone>.<table>" (or a loaded Suite)}."""
    checks = []
    for key, table in asset_keys_to_tables.items():
        suite = table if isinstance(table, Suite) else load_suite(Path(suites_dir) / f"{table}.json")
        checks.append(_suite_check(dg.AssetKey.from_coercible(key), suite, partitions_def,
                                   lake_resource_key, slice_for_partition, blocking))
    return checks


def _suite_check(key: dg.AssetKey, suite: Suite, partitions_def, lake_resource_key: str,
                 slice_for_partition, blocking: bool) -> dg.AssetChecksDefinition:
    @dg.asset_check(
        asset=key, name=f"expectations_{suite.name}", blocking=blocking, partitions_def=partitions_def,
        required_resource_keys={lake_resource_key},
        description=f"great-expectations suite expectations/{suite.table_id}.json "
                    f"({len(suite.expectations)} expectations)",
    )
    def _check(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        from medlake.validation import record, validate

        store = getattr(context.resources, lake_resource_key).store()
        filt = None
        if partitions_def is not None and slice_for_partition is not None and context.has_partition_key:
            filt = slice_for_partition(context.partition_key)
        ds = store.dataset(suite.zone, suite.name)
        if ds is None:
            return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.ERROR,
                                       metadata={"error": f"table {suite.table_id} does not exist"})
        columns = [c for c in ds.schema.names if c in suite.columns()]
        outcome = validate(ds.to_table(columns=columns, filter=filt), suite)
        record(store, suite.table_id, outcome, context.run.run_id)
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
