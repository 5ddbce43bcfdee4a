"""What one release holds: the eligible cases of a dataset at a tier, their objects and rows, after
the re-identification gate. Pure reads of the deid zone; nothing is written here."""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from medlake.cases.build import IMAGE_KINDS
from medlake.lake.delta import DeltaStore
from medlake.lake.tables import ANNOTATION_FILES, ANNOTATIONS, CASES, INSTANCES, SLIDES
from medlake.sharing.tables import RELEASE_ELIGIBILITY
from medlake.program import Registry
from medlake.sharing.kanon import KResult, age_in_years, k_anonymise

# Tables a release is built from; their Delta versions go into release.json.
SOURCE_TABLES = (CASES, INSTANCES, SLIDES, ANNOTATION_FILES, ANNOTATIONS, RELEASE_ELIGIBILITY)

CASE_COLUMNS = ["case_pseudonym", "patient_pseudonym", "study_instance_uids", "instances", "frames", "slides",
                "modalities", "annotation_kinds", "annotation_status", "label_source"]
INSTANCE_COLUMNS = ["study_instance_uid", "series_instance_uid", "sop_instance_uid", "sop_class_uid", "kind",
                    "modality", "transfer_syntax_uid", "rows", "columns", "number_of_frames", "manufacturer",
                    "manufacturer_model_name", "body_part_examined", "pixel_spacing_row", "pixel_spacing_col",
                    "slice_thickness", "burned_in_annotation", "pixels_cleaned", "defaced"]
ANNOTATION_COLUMNS = ["annotation_id", "kind", "source_format", "label", "code", "value", "value_text", "unit",
                      "target_study_uid", "target_series_uid", "target_instance_uid", "target_case", "reader_role"]


@dataclass
class ReleasedFile:
    source: str        # lake-relative path of the de-identified object
    path: str          # release-relative path
    sha256: str
    size: int
    data: bytes | None = None   # set when the release holds a filtered copy instead of a link


@dataclass
class Selection:
    team: str
    dataset: str
    tier: str
    k: int
    cases: pa.Table
    instances: pa.Table
    slides: pa.Table
    annotation_files: pa.Table
    annotations: pa.Table
    files: list[ReleasedFile]
    kres: KResult
    eligible: int
    content: str
    versions: dict[str, int | None] = field(default_factory=dict)

    @property
    def tables(self) -> dict[str, pa.Table]:
        out = {"cases": self.cases, "instances": self.instances}
        if self.slides.num_rows:
            out["slides"] = self.slides
        if self.content == "images_and_annotations":
            out["annotations"] = self.annotations
            out["annotation_files"] = self.annotation_files
        return out


def release_path(source: str, team: str, dataset: str) -> str:
    """deid/objects/<team>/<dataset>/<rest> -> objects/<rest>."""
    prefix = f"deid/objects/{team}/{dataset}/"
    return "objects/" + (source[len(prefix):] if source.startswith(prefix) else Path(source).name)


def select_release(store: DeltaStore, registry: Registry, eligibility: pa.Table, team: str, dataset: str,
                   tier: str) -> Selection:
    spec = registry.dataset(dataset)
    k = registry.tier(tier).min_k
    in_ds = (pads.field("team") == team) & (pads.field("dataset") == dataset)
    versions = {f"{t.zone}/{t.name}": store.version(t) for t in SOURCE_TABLES}
    mask = pc.and_(pc.and_(pc.equal(eligibility["team"], team), pc.equal(eligibility["dataset"], dataset)),
                   pc.and_(pc.equal(eligibility["tier"], tier), eligibility["eligible"]))
    chosen = set(eligibility.filter(mask).column("case_pseudonym").to_pylist())

    cases = store.read(CASES, where=in_ds)
    cases = cases.filter(pc.is_in(cases["case_pseudonym"], pa.array(sorted(chosen), pa.string())))
    instances = store.read(INSTANCES, where=in_ds)
    studies = pa.array(sorted({s for ss in cases.column("study_instance_uids").to_pylist() for s in ss}), pa.string())
    instances = instances.filter(pc.is_in(instances["study_instance_uid"], studies))

    kres = k_anonymise(_quasi_identifiers(cases, instances, team), k)
    kept = set(kres.table.column("case_pseudonym").to_pylist())
    if len(kept) != cases.num_rows:
        cases = cases.filter(pc.is_in(cases["case_pseudonym"], pa.array(sorted(kept), pa.string())))
        studies = pa.array(sorted({s for ss in cases.column("study_instance_uids").to_pylist() for s in ss}),
                           pa.string())
        instances = instances.filter(pc.is_in(instances["study_instance_uid"], studies))
    images_only = spec.release_content == "images_only"
    if images_only:
        instances = instances.filter(pc.is_in(instances["kind"], pa.array(IMAGE_KINDS)))
    slides = store.read(SLIDES, where=in_ds)
    slides = slides.filter(pc.is_in(slides["study_instance_uid"], studies))

    ids = set(studies.to_pylist()) | set(instances.column("series_instance_uid").to_pylist()) \
        | set(instances.column("sop_instance_uid").to_pylist()) | kept
    files = [ReleasedFile(r["object_path"], release_path(r["object_path"], team, dataset), r["sha256"], r["size"])
             for t in (instances, slides) for r in t.select(["object_path", "sha256", "size"]).to_pylist()]
    annotation_files = ANNOTATION_FILES.schema.empty_table()
    annotations = ANNOTATIONS.schema.empty_table()
    if not images_only:
        annotation_files, extra = _annotation_files(store, in_ds, ids, team, dataset)
        files += extra
        annotations = store.read(ANNOTATIONS, where=in_ds)
        hit = pc.or_(pc.or_(pc.is_in(annotations["target_study_uid"], pa.array(sorted(ids), pa.string())),
                            pc.is_in(annotations["target_instance_uid"], pa.array(sorted(ids), pa.string()))),
                     pc.or_(pc.is_in(annotations["target_series_uid"], pa.array(sorted(ids), pa.string())),
                            pc.is_in(annotations["target_case"], pa.array(sorted(ids), pa.string()))))
        annotations = annotations.filter(pc.fill_null(hit, False)).select(ANNOTATION_COLUMNS)

    released_cases = _released_cases(cases, kres, images_only)
    released_instances = instances.select(INSTANCE_COLUMNS).append_column(
        "path", pa.array([release_path(p, team, dataset) for p in instances.column("object_path").to_pylist()],
                         pa.string())).append_column("sha256", instances["sha256"]).append_column(
        "size", instances["size"])
    released_slides = slides.select(["slide_id", "study_instance_uid", "levels"]).append_column(
        "path", pa.array([release_path(p, team, dataset) for p in slides.column("object_path").to_pylist()],
                         pa.string())).append_column("sha256", slides["sha256"]).append_column("size", slides["size"])
    return Selection(team, dataset, tier, k, released_cases, released_instances, released_slides, annotation_files,
                     annotations, sorted(files, key=lambda f: f.path), kres, len(chosen), spec.release_content,
                     versions)


def _quasi_identifiers(cases: pa.Table, instances: pa.Table, team: str) -> pa.Table:
    """One row per case: age, sex and study year from its first image (dates as de-identified)."""
    first: dict[str, tuple] = {}
    for study, age, sex, date in zip(*(instances.column(c).to_pylist() for c in
                                       ("study_instance_uid", "patient_age", "patient_sex", "study_date"))):
        if study not in first or (first[study][0] is None and age is not None):
            first[study] = (age, sex, date)
    rows = []
    for case, studies in zip(cases.column("case_pseudonym").to_pylist(),
                             cases.column("study_instance_uids").to_pylist()):
        facts = [first[s] for s in studies if s in first]
        age, sex, date = facts[0] if facts else (None, None, None)
        years = [f[2].year for f in facts if f[2] is not None]
        rows.append({"case_pseudonym": case, "age_years": age_in_years(age), "sex": sex or None,
                     "study_year": min(years) if years else None, "team": team})
    return pa.Table.from_pylist(rows, schema=pa.schema([("case_pseudonym", pa.string()), ("age_years", pa.int64()),
                                                        ("sex", pa.string()), ("study_year", pa.int64()),
                                                        ("team", pa.string())]))


def _released_cases(cases: pa.Table, kres: KResult, images_only: bool) -> pa.Table:
    qi = {r["case_pseudonym"]: r for r in kres.table.select(["case_pseudonym", "age_band", "sex", "study_year"])
          .to_pylist()}
    out = cases.select(CASE_COLUMNS)
    names = out.column("case_pseudonym").to_pylist()
    if images_only:
        # What is released is what is counted: a dataset released as images only is image only.
        out = out.set_column(out.schema.get_field_index("annotation_kinds"), "annotation_kinds",
                             pa.array([[] for _ in names], pa.list_(pa.string())))
        out = out.set_column(out.schema.get_field_index("annotation_status"), "annotation_status",
                             pa.array(["image_only"] * len(names), pa.string()))
    for col in ("age_band", "sex", "study_year"):
        out = out.append_column(col, pa.array([qi[n][col] for n in names], pa.string()))
    return out


def _annotation_files(store: DeltaStore, in_ds, ids: set[str], team: str, dataset: str
                      ) -> tuple[pa.Table, list[ReleasedFile]]:
    t = store.read(ANNOTATION_FILES, where=in_ds)
    rows, files = [], []
    files_of = store.lake.objects()
    for r in t.to_pylist():
        targets = set(r["targets"] or [])
        if not targets & ids:
            continue
        path = release_path(r["object_path"], team, dataset)
        if targets <= ids:
            files.append(ReleasedFile(r["object_path"], path, r["sha256"], r["size"]))
        elif r["kind"] == "label_sheet":
            # A sheet that also covers cases outside this release goes out filtered, as a copy.
            data = _filtered_sheet(files_of.fetch(r["object_path"]).read_bytes(), ids)
            r = {**r, "targets": sorted(targets & ids), "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
            files.append(ReleasedFile(r["object_path"], path, r["sha256"], r["size"], data))
        else:
            continue  # an AIM file or mask about objects outside the release stays out
        rows.append({"kind": r["kind"], "targets": sorted(targets & ids), "path": path, "sha256": r["sha256"],
                     "size": r["size"]})
    schema = pa.schema([("kind", pa.string()), ("targets", pa.list_(pa.string())), ("path", pa.string()),
                        ("sha256", pa.string()), ("size", pa.int64())])
    return pa.Table.from_pylist(rows, schema=schema), files


def _filtered_sheet(data: bytes, ids: set[str]) -> bytes:
    lines = list(csv.reader(io.StringIO(data.decode("utf-8"), newline="")))
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\n").writerows([lines[0]] + [r for r in lines[1:] if r and r[0] in ids])
    return buf.getvalue().encode("utf-8")
