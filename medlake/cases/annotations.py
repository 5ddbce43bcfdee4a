"""Read one de-identified batch's annotation objects into the normalised deid/annotations rows."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pyarrow.dataset as pads

from medlake.annotations import AnnotationProblem, mask_shape, read_annotation
from medlake.lake.delta import DeltaStore, matching
from medlake.lake.tables import ANNOTATION_FILES, INSTANCES

DICOM_ANNOTATION_KINDS = ("rtstruct", "seg", "sr", "presentation_state")


def batch_annotations(store: DeltaStore, team: str, dataset: str, batch_ref: str,
                      case_pseudonyms: set[str]) -> tuple[list[dict], list[dict]]:
    """(annotation rows, problem rows) for the batch's de-identified annotation objects."""
    lake_files = store.lake.objects()  # fetch() brings an object of a remote lake to this machine once
    key = {"team": team, "dataset": dataset, "batch_ref": batch_ref}
    dataset_filter = matching(team=team, dataset=dataset)
    batch_filter = dataset_filter & (pads.field("batch_ref") == batch_ref)
    instances = store.dataset(INSTANCES)
    objects: list[tuple[str, str, str]] = []  # (object id, kind, path)
    if instances is not None:
        for r in instances.to_table(columns=["kind", "sop_instance_uid", "object_path"], filter=batch_filter
                                    & pads.field("kind").isin(list(DICOM_ANNOTATION_KINDS))).to_pylist():
            objects.append((r["sop_instance_uid"], r["kind"], r["object_path"]))
    files = store.dataset(ANNOTATION_FILES)
    if files is not None:
        for r in files.to_table(columns=["kind", "object_path"], filter=batch_filter).to_pylist():
            objects.append((Path(r["object_path"]).name, r["kind"], r["object_path"]))

    read: list[tuple[str, str, str, object]] = []   # the annotation read, or the problem that stopped it
    for object_id, kind, rel in sorted(objects):
        try:
            read.append((object_id, kind, rel, read_annotation(lake_files.fetch(rel), kind)))
        except AnnotationProblem as e:
            read.append((object_id, kind, rel, e))
    # Only what the batch's annotations point at is looked up: the dataset may hold hundreds of
    # thousands of images from earlier batches.
    targets = {u for *_, result in read if not isinstance(result, AnnotationProblem) for a in result.rows
               for u in (a.target_instance_uid, a.target_series_uid, a.target_study_uid) if u}
    known_uids, geometry = _lookups(instances, dataset_filter, targets)

    rows: list[dict] = []
    problems: list[dict] = []
    for object_id, kind, rel, result in read:
        if isinstance(result, AnnotationProblem):
            problems.append({**key, "object_id": object_id, "code": result.code, "message": result.message})
            continue
        for code, message in result.problems:
            problems.append({**key, "object_id": object_id, "code": code, "message": message})
        if kind == "mask_image":
            mismatch = _mask_mismatch(lake_files.fetch(rel), result.rows, geometry)
            if mismatch:
                problems.append({**key, "object_id": object_id, "code": "mask_size_mismatch", "message": mismatch})
        missing = 0
        for a in result.rows:
            row = {**key, **asdict(a)}
            row.pop("region", None)
            targets = [row["target_instance_uid"], row["target_series_uid"], row["target_study_uid"]]
            row["resolved"] = (row["target_case"] in case_pseudonyms if row["target_case"]
                               else any(t in known_uids for t in targets if t))
            missing += not row["resolved"]
            rows.append(row)
        if missing:
            problems.append({**key, "object_id": object_id, "code": "target_missing",
                             "message": f"{missing} annotation(s) point at objects or cases that do not exist"})
    return rows, _unique(problems)


def _lookups(instances, dataset_filter, targets: set[str]) -> tuple[set[str], dict[str, tuple]]:
    """Which of `targets` are UIDs of the dataset's instances, series or studies, and the geometry
    of the targeted instances (rows, columns) and series (slices, rows, columns)."""
    if instances is None or not targets:
        return set(), {}
    wanted = sorted(targets)
    t = instances.to_table(columns=["sop_instance_uid", "series_instance_uid", "study_instance_uid", "rows",
                                    "columns"],
                           filter=dataset_filter & (pads.field("sop_instance_uid").isin(wanted)
                                                    | pads.field("series_instance_uid").isin(wanted)
                                                    | pads.field("study_instance_uid").isin(wanted)))
    known = set()
    for c in ("sop_instance_uid", "series_instance_uid", "study_instance_uid"):
        known |= set(t.column(c).to_pylist())
    geometry: dict[str, tuple] = {}
    slices: dict[str, int] = {}
    for r in t.to_pylist():
        sop, series = r["sop_instance_uid"], r["series_instance_uid"]
        if sop in targets:
            geometry[sop] = (r["rows"], r["columns"])
        if series in targets:
            slices[series] = slices.get(series, 0) + 1
            geometry[series] = (slices[series], r["rows"], r["columns"])
    return known & targets, geometry


def _mask_mismatch(path: Path, rows, geometry: dict[str, tuple]) -> str | None:
    """A mask must have its image's rows and columns (2D) or its series' slices too (3D)."""
    target = next((r.target_instance_uid or r.target_series_uid for r in rows
                   if r.target_instance_uid or r.target_series_uid), None)
    expected = geometry.get(target) if target else None
    if expected is None:
        return None
    shape = tuple(mask_shape(path))
    if len(shape) == 2:
        expected = expected[-2:]
    if shape != tuple(expected):
        return f"the mask is {'x'.join(map(str, shape))} but its image is {'x'.join(map(str, expected))}"
    return None


def _unique(problems: list[dict]) -> list[dict]:
    seen: dict[tuple, dict] = {}
    for p in problems:
        seen.setdefault((p["object_id"], p["code"]), p)
    return list(seen.values())
