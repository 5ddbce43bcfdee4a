"""Remove every object and row of patients who opted out or withdrew from the de-identified zone.

The restricted zone keeps what the hospital sent (it is the record of what was received and the
key to the withdrawal itself); everything shareable is derived from the deid zone, so the purge
here, the catalogue export after it and the release step's new versions together make the patient
vanish. Deleted Delta rows are also physically removed (vacuum with no retention), because a
Delta delete only hides rows from readers and leaves the old files on disk.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import os
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.dataset as pads

from medlake.consent.tables import WITHDRAWAL_AUDIT
from medlake.lake.delta import DeltaStore, where

# Tables that hold rows of a patient, and the column that ties a row to the patient's ids.
_ROW_TABLES = (
    ("cases", "patient_pseudonym", "patients"),
    ("series", "patient_pseudonym", "patients"),
    ("studies", "patient_pseudonym", "patients"),
    ("instances", "patient_pseudonym", "patients"),
    ("release_eligibility", "patient_pseudonym", "patients"),
    ("slides", "study_instance_uid", "studies"),
    ("deid_audit", "object_id", "objects"),
    ("annotation_problems", "object_id", "objects"),
)


@dataclass
class PatientFootprint:
    """Everything de-identified that belongs to the withdrawn patients of one team."""
    team: str
    patients: set[str]
    cases: set[str] = field(default_factory=set)
    studies: set[str] = field(default_factory=set)
    series: set[str] = field(default_factory=set)
    instances: set[str] = field(default_factory=set)
    objects: set[str] = field(default_factory=set)       # object ids (SOP UIDs, slide ids, file names)
    files: dict[str, int] = field(default_factory=dict)  # lake-relative path -> bytes (deleted whole)
    sheets: list[dict] = field(default_factory=list)     # annotation_files rows to rewrite without them

    @property
    def ids(self) -> set[str]:
        return self.cases | self.studies | self.series | self.instances


@dataclass
class PurgeResult:
    patients: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    files: int = 0
    bytes: int = 0
    audit: list[dict] = field(default_factory=list)


def purge_withdrawn(store: DeltaStore, withdrawn: dict[tuple[str, str], dict],
                    now: dt.datetime | None = None) -> PurgeResult:
    """`withdrawn`: (team, patient_pseudonym) -> the withdrawing event (medlake.consent.status)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    result = PurgeResult()
    by_team: dict[str, set[str]] = {}
    for team, pseudonym in withdrawn:
        by_team.setdefault(team, set()).add(pseudonym)
    touched: set[str] = set()
    for team, patients in sorted(by_team.items()):
        fp = footprint(store, team, patients)
        if not (fp.cases or fp.instances or fp.files or fp.sheets or _has_rows(store, team, patients)):
            continue
        team_rows: dict[str, int] = {}
        for table, column, which in _ROW_TABLES:
            values = fp.patients if which == "patients" else fp.studies if which == "studies" else fp.objects
            team_rows[table] = _delete_rows(store, table, team, column, values)
        team_rows["annotations"] = _delete_annotations(store, team, fp)
        team_rows["annotation_files"] = _delete_rows(store, "annotation_files", team, "object_path", set(fp.files))
        team_rows = {k: n for k, n in team_rows.items() if n}
        touched.update(team_rows)
        for table, n in team_rows.items():
            result.rows[table] = result.rows.get(table, 0) + n
        rewritten = _rewrite_sheets(store, team, fp)
        if rewritten:
            touched.add("annotation_files")
        files = store.lake.objects()
        for rel, size in fp.files.items():
            if files.delete(rel):
                result.files += 1
                result.bytes += size
        result.files += rewritten
        result.patients += len(patients)
        # One audit row per patient and place; counts are the team's, as one delete serves all its patients.
        for pseudonym in sorted(patients):
            event = withdrawn[(team, pseudonym)]
            base = {"team": team, "patient_pseudonym": pseudonym, "event": event["event"],
                    "event_date": event["event_date"], "event_file": event["event_file"],
                    "event_line": event["event_line"], "removed_at": now}
            result.audit.append({**base, "scope": "deid_objects", "target": "deid/objects",
                                 "removed_rows": 0, "removed_objects": len(fp.files) + rewritten,
                                 "removed_bytes": sum(fp.files.values())})
            for table, n in sorted(team_rows.items()):
                result.audit.append({**base, "scope": "deid_table", "target": f"deid/{table}",
                                     "removed_rows": n, "removed_objects": 0, "removed_bytes": 0})
    for table in sorted(touched):
        vacuum(store, "deid", table)
    if result.audit:
        store.append("restricted", WITHDRAWAL_AUDIT.name, WITHDRAWAL_AUDIT.from_rows(result.audit),
                     WITHDRAWAL_AUDIT.partition_by)
    return result


def footprint(store: DeltaStore, team: str, patients: set[str]) -> PatientFootprint:
    fp = PatientFootprint(team, set(patients))
    in_team = pads.field("team") == team
    plist = sorted(patients)
    cases = _read(store, "cases", ["case_pseudonym", "study_instance_uids"],
                  in_team & pads.field("patient_pseudonym").isin(plist))
    for case, studies in zip(cases.column(0).to_pylist(), cases.column(1).to_pylist()):
        fp.cases.add(case)
        fp.studies.update(studies or [])
    inst = _read(store, "instances", ["study_instance_uid", "series_instance_uid", "sop_instance_uid",
                                      "object_path", "size"], in_team & pads.field("patient_pseudonym").isin(plist))
    for study, series, sop, path, size in zip(*(inst.column(i).to_pylist() for i in range(5))):
        fp.studies.add(study)
        fp.series.add(series)
        fp.instances.add(sop)
        fp.objects.add(sop)
        fp.files[path] = size
    if fp.studies:
        slides = _read(store, "slides", ["slide_id", "object_path", "size"],
                       in_team & pads.field("study_instance_uid").isin(sorted(fp.studies)))
        for slide, path, size in zip(*(slides.column(i).to_pylist() for i in range(3))):
            fp.objects.add(slide)
            fp.files[path] = size
    ids = fp.ids
    files = _read(store, "annotation_files", ["object_path", "targets", "size", "kind", "sha256"], in_team)
    for row in files.to_pylist():
        targets = set(row["targets"] or [])
        hit = targets & ids
        if not hit:
            continue
        if targets <= ids or row["kind"] != "label_sheet":
            fp.files[row["object_path"]] = row["size"]
            fp.objects.add(row["object_path"].rsplit("/", 1)[-1])
        else:
            fp.sheets.append(row)
    return fp


def _read(store: DeltaStore, table: str, columns: list[str], flt) -> pa.Table:
    ds = store.dataset("deid", table)
    if ds is None:
        return pa.table({c: pa.array([], pa.string()) for c in columns})
    return ds.to_table(columns=columns, filter=flt)


def _has_rows(store: DeltaStore, team: str, patients: set[str]) -> bool:
    ds = store.dataset("deid", "release_eligibility")
    if ds is None:
        return False
    return ds.count_rows(filter=(pads.field("team") == team)
                         & pads.field("patient_pseudonym").isin(sorted(patients))) > 0


def _delete_rows(store: DeltaStore, table: str, team: str, column: str, values: set[str]) -> int:
    """Rewrite the team's slice without the rows. Not a Delta DELETE: its predicate, pseudonyms and
    all, would stay in the table's commit log for good; this one names only the team."""
    if not values:
        return 0
    ds = store.dataset("deid", table)
    if ds is None:
        return 0
    doomed = pads.field(column).isin(sorted(values))
    n = ds.count_rows(filter=(pads.field("team") == team) & doomed)
    if n:
        kept = ds.to_table(filter=(pads.field("team") == team) & ~doomed)
        store.replace_where("deid", table, kept, where(team=team), ["team"])
    return n


def _delete_annotations(store: DeltaStore, team: str, fp: PatientFootprint) -> int:
    ds = store.dataset("deid", "annotations")
    if ds is None:
        return 0
    t = ds.to_table(columns=["annotation_id", "target_study_uid", "target_series_uid", "target_instance_uid",
                             "target_case"], filter=pads.field("team") == team)
    doomed = set()
    for aid, study, series, inst, case in zip(*(t.column(i).to_pylist() for i in range(5))):
        if (study in fp.studies or series in fp.series or inst in fp.instances or case in fp.cases
                or aid.split("#", 1)[0] in fp.objects):
            doomed.add(aid)
    return _delete_rows(store, "annotations", team, "annotation_id", doomed)


def _rewrite_sheets(store: DeltaStore, team: str, fp: PatientFootprint) -> int:
    """A label sheet covers many cases: drop the patient's rows and keep the file for the others."""
    files = store.lake.objects()
    ids = fp.ids
    rows = []
    for row in fp.sheets:
        path = files.fetch(row["object_path"])
        lines = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
        kept = [lines[0]] + [r for r in lines[1:] if r and r[0] not in ids]
        buf = io.StringIO(newline="")
        csv.writer(buf, lineterminator="\n").writerows(kept)
        data = buf.getvalue().encode("utf-8")
        # A new inode: releases that hard-linked the old file keep it until they are purged.
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        files.upload([row["object_path"]])
        rows.append({**row, "targets": sorted(set(row["targets"]) - ids), "size": len(data),
                     "sha256": hashlib.sha256(data).hexdigest()})
    if rows:
        t = store.table("deid", "annotation_files")
        full = t.to_pyarrow_dataset().to_table(filter=(pads.field("team") == team)
                                               & pads.field("object_path").isin([r["object_path"] for r in rows]))
        updated = []
        by_path = {r["object_path"]: r for r in rows}
        for old in full.to_pylist():
            new = by_path[old["object_path"]]
            updated.append({**old, "targets": new["targets"], "size": new["size"], "sha256": new["sha256"]})
        store.upsert("deid", "annotation_files", pa.Table.from_pylist(updated, schema=full.schema),
                     ["team", "dataset", "object_path"])
    return len(rows)


def vacuum(store: DeltaStore, zone: str, table: str) -> int:
    """Physically delete every file no longer in the table's current version; returns files removed."""
    t = store.table(zone, table)
    if t is None:
        return 0
    removed = t.vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False)
    return len(removed)
