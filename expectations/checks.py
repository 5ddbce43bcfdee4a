"""Dagster side of the data-quality suites: two asset checks per expectations/*.json, one validation.

    suite_checks({dg.AssetKey(["deid", "instances"]): "deid.instances", ...},
                 partitions_def=EXPORT_BATCHES, secret_resource_key="secret")

For each suite, one op validates the table once and reports two checks on its asset:

- `expectations_<table>`: blocking, severity ERROR, passed unless an integrity expectation failed
  (keys, keyed id formats, references, accounting, no identifier). A failure holds everything
  downstream of the asset in the run.
- `plausibility_<table>`: not blocking, severity WARN, passed unless a plausibility expectation
  (ranges and enumerations of acquisition values) flagged rows; its metadata says how many per rule.

The op reads the table through the `lake` resource (anything with `.store()` -> DeltaStore),
validates it (great_expectations is imported only when the check runs), appends the outcome to
program/validation_history and reports counts, failing expectations and identifier-free example
keys. All the work is in medlake.validation; this file only adapts it to Dagster.
"""


from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from medlake.lake.tables import table_named
from medlake.packaged import packaged_file
from medlake.validation.suite import INTEGRITY, PLAUSIBILITY, Suite, load_suite


def integrity_check_name(suite: Suite) -> str:
    return f"expectations_{suite.name}"


def plausibility_check_name(suite: Suite) -> str:
    return f"plausibility_{suite.name}"


def suite_checks(
    asset_keys_to_tables: "Mapping[dg.AssetKey | str, str | Suite]",
    partitions_def: dg.PartitionsDefinition | None = None,
    *,
    suites_dir: str | Path | None = None,
    lake_resource_key: str = "lake",
    secret_resource_key: str | None = None,
    blocking: bool = True,
) -> list[dg.AssetChecksDefinition]:
    """The checks of each asset: {asset key: "<zone>.<table>" (or a loaded Suite)}; suites come
    from `suites_dir`, by default the ones this package ships. `blocking` applies to the integrity
    check; the plausibility check never blocks.

    Partitioned by export batch (team/dataset/batch), a check validates the team and dataset's
    slice; given the secret resource (which keys the deid tables' batch_ref), only the rows the
    batch wrote, their keys checked against the slice's (medlake.validation.scope)."""
    checks = []
    for key, table in asset_keys_to_tables.items():
        suite = table if isinstance(table, Suite) else load_suite(
            Path(suites_dir) / f"{table}.json" if suites_dir else packaged_file(__package__, f"{table}.json"))
        checks.append(_suite_checks(dg.AssetKey.from_coercible(key), suite, partitions_def,
                                    lake_resource_key, secret_resource_key, blocking))
    return checks


def _suite_checks(key: dg.AssetKey, suite: Suite, partitions_def, lake_resource_key: str,
                  secret_resource_key: str | None, blocking: bool) -> dg.AssetChecksDefinition:
    counts = {kind: sum(1 for e in suite.expectations if e.severity == kind) for kind in (INTEGRITY, PLAUSIBILITY)}
    source = f"great-expectations suite expectations/{suite.table_id}.json"
    integrity = dg.AssetCheckSpec(
        integrity_check_name(suite), asset=key, blocking=blocking, partitions_def=partitions_def,
        description=f"{source}: its {counts[INTEGRITY]} integrity expectations (keys, keyed ids, references, "
                    "accounting, no identifier); a failure holds the batch")
    plausibility = dg.AssetCheckSpec(
        plausibility_check_name(suite), asset=key, blocking=False, partitions_def=partitions_def,
        description=f"{source}: its {counts[PLAUSIBILITY]} plausibility expectations (ranges and enumerations "
                    "of acquisition values); flags rows as a warning, never holds the batch")

    # Named as the single check's op was, so step keys (bench/steps.py, run logs) stay what they were.
    @dg.multi_asset_check(
        specs=[integrity, plausibility], name=f"{key.to_python_identifier()}_{integrity_check_name(suite)}",
        required_resource_keys={lake_resource_key, *([secret_resource_key] if secret_resource_key else [])},
        description=f"{source} ({len(suite.expectations)} expectations), validated once for both checks",
    )
    def _check(context: dg.AssetCheckExecutionContext):
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
            missing = {"error": f"table {suite.table_id} does not exist"}
            yield dg.AssetCheckResult(check_name=plausibility.name, asset_key=key, passed=False,
                                      severity=dg.AssetCheckSeverity.WARN, metadata=missing)
            yield dg.AssetCheckResult(check_name=integrity.name, asset_key=key, passed=False,
                                      severity=dg.AssetCheckSeverity.ERROR, metadata=missing)
            return
        record(store, suite.table_id, outcome, context.run.run_id, batch=scope)
        common = {"rows": outcome.row_count, "seconds": outcome.seconds}
        # The warning first: when the integrity check fails, Dagster ends the step after it.
        warnings = outcome.warnings
        yield dg.AssetCheckResult(
            check_name=plausibility.name, asset_key=key, passed=not warnings, severity=dg.AssetCheckSeverity.WARN,
            metadata={
                **common,
                "expectations": counts[PLAUSIBILITY],
                "warnings": len(warnings),
                # Rows flagged per rule, in words from the suite ("slice thickness outside 0-100 mm").
                "flagged": dg.MetadataValue.json(
                    {r.rule: r.unexpected_count if r.error is None else r.error for r in warnings}),
                "example_keys": _examples(warnings),
            })
        failed = outcome.integrity_failures
        yield dg.AssetCheckResult(
            check_name=integrity.name, asset_key=key, passed=not failed, severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                **common,
                "expectations": counts[INTEGRITY],
                "failed": len(failed),
                "failing_expectations": dg.MetadataValue.json(
                    {r.name: r.unexpected_count if r.error is None else r.error for r in failed}),
                "example_keys": _examples(failed),
            })

    return _check


def _examples(results) -> dg.MetadataValue:
    """Row numbers (restricted) or pseudonymous key tuples (deid); never a failing value."""
    return dg.MetadataValue.json({r.name: [list(k) for k in r.example_keys] for r in results if r.example_keys})
