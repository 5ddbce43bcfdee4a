"""Where the checker's identifiers come from: the restricted zone's own record of what was sent.

Everything a hospital sent that identifies someone (patient ids and names, birth dates, accession
numbers, case numbers, the original UIDs) is read back from the restricted tables, so the checker
looks for exactly what could leak, independently of how the de-identifier transformed it.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping

import pyarrow.dataset as pads

from medlake.checker.checker import Checker
from medlake.checker.findings import CheckReport
from medlake.checker.index import IdentifierIndex
from medlake.checker.tables import DeltaScope
from medlake.lake.delta import DeltaStore
from medlake.lake.tables import IDENTIFIER_CHECKS, SOURCE_CASES, SOURCE_INSTANCES, SOURCE_SLIDES, VAULT, table_named

_SOURCE_COLUMNS = {
    SOURCE_INSTANCES: {
        "patient_id": "patient_id", "patient_name": "patient_name", "patient_birth_date": "birth_date",
        "accession_number": "accession_number", "study_instance_uid": "original_uid",
        "series_instance_uid": "original_uid", "sop_instance_uid": "original_uid",
        "frame_of_reference_uid": "original_uid",
    },
    SOURCE_CASES: {"patient_id": "patient_id", "case_id": "case_id"},
    SOURCE_SLIDES: {"study_instance_uid": "original_uid"},
    VAULT: {"patient_id": "patient_id"},
}


def team_identifiers(store: DeltaStore, team: str) -> Iterator[tuple[str, str]]:
    """(kind, value) for every identifier the team's restricted tables hold."""
    for table, columns in _SOURCE_COLUMNS.items():
        yield from _pairs(store.read(table, list(columns), where={"team": team}), columns)


def _pairs(t, columns: dict[str, str]) -> Iterator[tuple[str, str]]:
    for column, kind in columns.items():
        for value in set(t.column(column).to_pylist()) - {None, ""}:
            yield kind, str(value)


# Indexes kept in a process per lake and set of teams, extended with the data files added since: a
# process that checks batch after batch (`medlake run`), then releases, folds each identifier once
# instead of folding the whole team again for every batch and release (35 s each for the largest
# team at full scale). Values whose rows were later removed stay in them, which can only add
# findings. Least recently used first out past _MAX_CACHED_VALUES folded values (about 0.65 KiB
# each); the one in use always stays.
_MAX_CACHED_VALUES = 8_000_000
_TEAM_INDEXES: OrderedDict[tuple[str, tuple[str, ...]], tuple[IdentifierIndex, dict[str, set[str]]]] = OrderedDict()
_TEAM_INDEXES_LOCK = threading.Lock()


def team_index(store: DeltaStore, team: str | Iterable[str]) -> IdentifierIndex:
    """Every identifier the restricted tables hold for a team (or several), as a searchable index."""
    teams = (team,) if isinstance(team, str) else tuple(sorted(set(team)))
    key = (str(store.lake.root), teams)
    mine = pads.field("team").isin(list(teams))
    with _TEAM_INDEXES_LOCK:
        index, indexed = _TEAM_INDEXES.pop(key, None) or (IdentifierIndex.build(()), {})
        pairs, files = [], {}
        for table, columns in _SOURCE_COLUMNS.items():
            ds = store.dataset(table)
            if ds is None:
                continue
            done = indexed.get(table.name, set())
            new = [f for f in ds.get_fragments(filter=mine) if f.path not in done]
            if not new:
                continue
            pairs += _pairs(pads.FileSystemDataset(new, ds.schema, ds.format, ds.filesystem).to_table(
                columns=list(columns), filter=mine), columns)
            files[table.name] = {f.path for f in new}
        index.extend(pairs)
        for table, paths in files.items():
            indexed.setdefault(table, set()).update(paths)
        _TEAM_INDEXES[key] = (index, indexed)
        while len(_TEAM_INDEXES) > 1 and sum(len(i) for i, _ in _TEAM_INDEXES.values()) > _MAX_CACHED_VALUES:
            _TEAM_INDEXES.popitem(last=False)
        return index


def batch_scopes(store: DeltaStore, team: str, dataset: str, batch_ref: str,
                 commits: Mapping[str, int]) -> dict[str, DeltaScope]:
    """What one batch wrote to each deid table: its rows (the dataset's, for the per-dataset
    summaries, which have no batch column) and the commit it made (Delta versions from its
    de-identification). A table without a recorded commit gets no scope: it is scanned whole."""
    out = {}
    for name, version in commits.items():
        ds = store.dataset(table_named("deid", name))
        if ds is None:
            continue
        rows = (pads.field("team") == team) & (pads.field("dataset") == dataset)
        if "batch_ref" in ds.schema.names:
            rows &= pads.field("batch_ref") == batch_ref
        out[name] = DeltaScope(rows=rows, commits=(int(version),))
    return out


def check_objects(store: DeltaStore, team: str, paths: Iterable[str], tables: Iterable[str],
                  scopes: Mapping[str, DeltaScope] | None = None) -> CheckReport:
    """Scan de-identified objects (paths relative to the lake root) and deid-zone tables (whole, or
    the part `scopes` names)."""
    index = team_index(store, team)
    checker = Checker(index, storage_options=store.lake.options("deid") or None)
    files = store.lake.objects()
    findings = []
    scanned = 0
    for rel in paths:
        findings += checker.scan_file(files.fetch(rel), _obj=rel)
        scanned += 1
    for name in tables:
        table = table_named("deid", name)
        if store.exists(table):
            findings += checker.scan_table(store.uri(table), _obj=f"deid/{name}",
                                           scope=(scopes or {}).get(name))
            scanned += 1
    return CheckReport.of(scanned, findings)


def record_check(store: DeltaStore, team: str, dataset: str, batch_ref: str, report: CheckReport) -> None:
    """Append the outcome to program/identifier_checks (counts and kinds only)."""
    row = {"team": team, "dataset": dataset, "batch_ref": batch_ref, "passed": report.clean,
           "objects_scanned": report.objects_scanned, "findings": len(report.findings),
           "by_kind": json.dumps(report.by_kind, sort_keys=True), "checked_at": dt.datetime.now(dt.timezone.utc)}
    store.append(IDENTIFIER_CHECKS, [row])
