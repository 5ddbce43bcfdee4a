"""Read one de-identified batch's annotation objects into the normalised deid/annotations rows."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import pyarrow.dataset as pads

from medlake.annotations import AnnotationProblem, mask_shape, read_annotation
from medlake.lake.delta import DeltaStore

DICOM_ANNOTATION_KINDS = ("rtstruct", "seg", "sr", "presentation_state")


def batch_annotations(store: DeltaStore, team: str, dataset: str, batch_ref: str,
                      case_pseudonyms: set[str]) -> tuple[list[dict], list[dict]]:
    """(annotation rows, problem rows) for the batch's de-identified annotation objects."""
    lake_files = store.lake.objects()  # fetch() brings an object of a remote lake to this machine once
    key = {"team": team, "dataset": dataset, "batch_ref": batch_ref}
    objects: list[tuple[str, str, str]] = []  # (object id, kind, path)
    dataset_filter = (pads.field("team") == team) & (pads.field("dataset") == dataset)
    instances = store.dataset("deid", "instances")
    known_uids: set[str] = set()
    geometry: dict[str, tuple] = {}  # instance or series UID -> (rows, columns[, slices])
    if instances is not None:
        t = instances.to_table(columns=["batch_ref", "kind", "sop_instance_uid", "series_instance_uid",
                                        "study_instance_uid", "object_path", "rows", "columns"],
                               filter=dataset_filter)
        for c in ("sop_instance_uid", "series_instance_uid", "study_instance_uid"):
            known_uids |= set(t.column(c).to_pylist())
        slices: dict[str, int] = {}
        for r in t.to_pylist():
            geometry[r["sop_instance_uid"]] = (r["rows"], r["columns"])
            slices[r["series_instance_uid"]] = slices.get(r["series_instance_uid"], 0) + 1
            geometry[r["series_instance_uid"]] = (slices[r["series_instance_uid"]], r["rows"], r["columns"])
        for r in t.to_pylist():
            if r["batch_ref"] == batch_ref and r["kind"] in DICOM_ANNOTATION_KINDS:
                objects.append((r["sop_instance_uid"], r["kind"], r["object_path"]))
    files = store.dataset("deid", "annotation_files")
    if files is not None:
        for r in files.to_table(columns=["kind", "object_path"], filter=dataset_filter
                                & (pads.field("batch_ref") == batch_ref)).to_pylist():
            objects.append((Path(r["object_path"]).name, r["kind"], r["object_path"]))
    rows: list[dict] = []
    problems: list[dict] = []
    for object_id, kind, rel in sorted(objects):
        try:
            result = read_annotation(lake_files.fetch(rel), kind)
        except AnnotationProblem as e:
            problems.append({**key, "object_id": object_id, "code": e.code, "message": e.message})
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
