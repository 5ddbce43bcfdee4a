"""Table definitions: zone, natural key, partitioning and documented columns.

One place says what every table holds, so the writers, the README's schema section and the
great-expectations suites cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa


@dataclass(frozen=True)
class Column:
    name: str
    type: pa.DataType
    doc: str
    nullable: bool = True


@dataclass(frozen=True)
class TableDef:
    """A lake table: the one place its schema, natural key and partitioning are declared. The table
    API (medlake.lake.delta.DeltaStore) takes these, never names."""

    zone: str
    name: str
    doc: str
    keys: tuple[str, ...]
    columns: tuple[Column, ...]
    partition_by: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        names = [c.name for c in self.columns]
        missing = [k for k in (*self.keys, *self.partition_by) if k not in names]
        if missing or len(set(names)) != len(names):
            raise ValueError(f"table {self.zone}/{self.name}: keys or partitions {missing} not among its "
                             "columns, or a column declared twice")
        if _DEFINED.setdefault((self.zone, self.name), self) is not self:
            raise ValueError(f"table {self.zone}/{self.name} is defined twice")

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns])

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def from_rows(self, rows: list[dict]) -> pa.Table:
        return pa.Table.from_pylist(rows, schema=self.schema)


_DEFINED: dict[tuple[str, str], TableDef] = {}


def every_table() -> tuple[TableDef, ...]:
    """Every table of the lake, whichever module defines it."""
    # Tables defined beside the code that owns them register when their module is imported.
    import medlake.alerts  # noqa: F401
    import medlake.consent.tables  # noqa: F401
    import medlake.sharing.tables  # noqa: F401
    import medlake.validation.history  # noqa: F401

    return tuple(_DEFINED[k] for k in sorted(_DEFINED))


def table_named(zone: str, name: str) -> TableDef:
    """The definition of a table named in configuration (an expectation suite's file name)."""
    every_table()
    try:
        return _DEFINED[(zone, name)]
    except KeyError:
        raise KeyError(f"no table {zone}/{name} is defined (medlake/lake/tables.py)") from None


def _c(name: str, type_: pa.DataType, doc: str, nullable: bool = True) -> Column:
    return Column(name, type_, doc, nullable)


_STR = pa.string()
_BATCH_KEY = (
    _c("team", _STR, "team id from the programme registry (or the folder name of a refused batch)", False),
    _c("dataset", _STR, "dataset id from the programme registry (or the folder name of a refused batch)", False),
    _c("batch", _STR, "export batch folder name, unique within the dataset", False),
)
_TS = pa.timestamp("us", tz="UTC")

LANDED_FILES = TableDef(
    zone="restricted",
    name="landed_files",
    doc="Every file of every ingested batch, with what became of it.",
    keys=("team", "dataset", "batch", "path"),
    partition_by=("team",),
    columns=_BATCH_KEY + (
        _c("path", _STR, "path relative to the batch folder (may contain identifiers: restricted)", False),
        _c("size", pa.int64(), "bytes", False),
        _c("sha256", _STR, "sha256 of the file's bytes, hex"),
        _c("kind", _STR, "detected kind: dicom_image, dicom_waveform, rtstruct, seg, sr, presentation_state, "
                         "kos, wsi, aim, mask_image, label_sheet, cases_manifest, ready_marker, unknown", False),
        _c("status", _STR, "catalogued | quarantined | duplicate", False),
        _c("ingested_at", _TS, "when the batch was ingested", False),
    ),
)

SOURCE_INSTANCES = TableDef(
    zone="restricted",
    name="source_instances",
    doc="One row per catalogued DICOM object, as the hospital sent it (identifiers included).",
    keys=("team", "dataset", "sop_instance_uid"),
    partition_by=("team",),
    columns=_BATCH_KEY + (
        _c("path", _STR, "path relative to the batch folder", False),
        _c("sha256", _STR, "sha256 of the file, hex", False),
        _c("size", pa.int64(), "bytes", False),
        _c("kind", _STR, "dicom_image, dicom_waveform, rtstruct, seg, sr, presentation_state or kos", False),
        _c("patient_id", _STR, "PatientID (0010,0020)", False),
        _c("patient_name", _STR, "PatientName (0010,0010)"),
        _c("patient_birth_date", _STR, "PatientBirthDate (0010,0030), as sent"),
        _c("patient_sex", _STR, "PatientSex (0010,0040)"),
        _c("patient_age", _STR, "PatientAge (0010,1010), as sent"),
        _c("accession_number", _STR, "AccessionNumber (0008,0050)"),
        _c("study_instance_uid", _STR, "StudyInstanceUID (0020,000D)", False),
        _c("series_instance_uid", _STR, "SeriesInstanceUID (0020,000E)", False),
        _c("sop_instance_uid", _STR, "SOPInstanceUID (0008,0018)", False),
        _c("sop_class_uid", _STR, "SOPClassUID (0008,0016)", False),
        _c("modality", _STR, "Modality (0008,0060)"),
        _c("transfer_syntax_uid", _STR, "TransferSyntaxUID (0002,0010)", False),
        _c("rows", pa.int32(), "Rows (0028,0010)"),
        _c("columns", pa.int32(), "Columns (0028,0011)"),
        _c("number_of_frames", pa.int32(), "NumberOfFrames (0028,0008); null for single-frame objects"),
        _c("study_date", pa.date32(), "StudyDate (0008,0020), original (not shifted)"),
        _c("series_date", pa.date32(), "SeriesDate (0008,0021), original"),
        _c("manufacturer", _STR, "Manufacturer (0008,0070)"),
        _c("manufacturer_model_name", _STR, "ManufacturerModelName (0008,1090)"),
        _c("body_part_examined", _STR, "BodyPartExamined (0018,0015)"),
        _c("pixel_spacing_row", pa.float64(), "PixelSpacing (0028,0030) row spacing, mm (ImagerPixelSpacing "
                                               "or the shared functional group when absent)"),
        _c("pixel_spacing_col", pa.float64(), "PixelSpacing column spacing, mm"),
        _c("slice_thickness", pa.float64(), "SliceThickness (0018,0050), mm"),
        _c("burned_in_annotation", _STR, "BurnedInAnnotation (0028,0301): YES, NO or null"),
        _c("series_number", pa.int32(), "SeriesNumber (0020,0011)"),
        _c("instance_number", pa.int32(), "InstanceNumber (0020,0013)"),
        _c("frame_of_reference_uid", _STR, "FrameOfReferenceUID (0020,0052)"),
        _c("pixel_data_offset", pa.int64(), "byte offset of the pixel data element, so de-identification "
                                           "can copy unchanged pixels without decoding them"),
    ),
)

SOURCE_SLIDES = TableDef(
    zone="restricted",
    name="source_slides",
    doc="One row per catalogued whole-slide image (TIFF family), from its tags only.",
    keys=("team", "dataset", "batch", "path"),
    partition_by=("team",),
    columns=_BATCH_KEY + (
        _c("path", _STR, "path relative to the batch folder", False),
        _c("sha256", _STR, "sha256 of the file, hex", False),
        _c("size", pa.int64(), "bytes", False),
        _c("study_instance_uid", _STR, "the case link: StudyInstanceUID from the first page's "
                                      "|key = value metadata, when the scanner export carries it"),
        _c("width", pa.int64(), "level-0 width, pixels", False),
        _c("height", pa.int64(), "level-0 height, pixels", False),
        _c("levels", pa.int32(), "pyramid levels", False),
        _c("has_label", pa.bool_(), "a label image is present (it carries patient labels)", False),
        _c("has_macro", pa.bool_(), "a macro (overview) image is present", False),
    ),
)

SOURCE_CASES = TableDef(
    zone="restricted",
    name="source_cases",
    doc="cases.csv rows that passed validation (the note column is never copied).",
    keys=("team", "dataset", "case_id"),
    partition_by=("team",),
    columns=_BATCH_KEY + (
        _c("case_id", _STR, "hospital-side case number, unique within the dataset", False),
        _c("patient_id", _STR, "hospital chart number / national ID; the consent key", False),
        _c("study_instance_uids", pa.list_(_STR), "the case's studies", False),
        _c("label_source", _STR, "physician | ehr_code", False),
        _c("shareable", pa.bool_(), "false when the hospital withholds the case from every release", False),
        _c("consent_class", _STR, "A, B, C or null when not given"),
        _c("line", pa.int32(), "line number in cases.csv (1 = header)", False),
    ),
)

QUARANTINE = TableDef(
    zone="restricted",
    name="quarantine",
    doc="Everything refused, with a reason code and a message that never repeats an identifier value.",
    keys=("team", "dataset", "batch", "path", "scope", "line", "reason_code"),
    partition_by=("team",),
    columns=_BATCH_KEY + (
        _c("path", _STR, "file relative to the batch folder; '' for a whole-batch refusal", False),
        _c("scope", _STR, "file (the file is not catalogued), row (one cases.csv row), batch (the whole batch)", False),
        _c("line", pa.int32(), "cases.csv line for scope=row, else 0", False),
        _c("reason_code", _STR, "machine-readable reason, e.g. not_dicom, truncated_or_corrupt, "
                                "conflicting_sop_instance, unknown_team, batch_changed", False),
        _c("message", _STR, "what is wrong and what to do, free of identifier values", False),
        _c("detected_at", _TS, "when it was found", False),
    ),
)

BATCHES = TableDef(
    zone="restricted",
    name="batches",
    doc="One row per export batch delivery: the batch summary, including refusals.",
    keys=("team", "dataset", "batch", "content_digest"),
    columns=_BATCH_KEY + (
        _c("content_digest", _STR, "sha256 over the sorted (path, sha256) pairs of every file", False),
        _c("listing_fingerprint", _STR, "sha256 over (path, size, mtime) of every file, for cheap change checks", False),
        _c("status", _STR, "ingested | refused", False),
        _c("reason_code", _STR, "why the batch was refused; null when ingested"),
        _c("message", _STR, "the refusal in words; null when ingested"),
        _c("files_landed", pa.int64(), "files in the batch", False),
        _c("files_catalogued", pa.int64(), "files accepted into the catalogue", False),
        _c("files_quarantined", pa.int64(), "files refused (see quarantine)", False),
        _c("files_duplicate", pa.int64(), "exact duplicates of an object already catalogued", False),
        _c("dicom_objects", pa.int64(), "rows this batch added to source_instances", False),
        _c("slides", pa.int64(), "rows this batch added to source_slides", False),
        _c("cases", pa.int64(), "valid cases.csv rows", False),
        _c("case_rows_rejected", pa.int64(), "cases.csv rows refused (see quarantine, scope=row)", False),
        _c("bytes", pa.int64(), "total bytes landed", False),
        _c("ingested_at", _TS, "when the batch was ingested", False),
        _c("duration_s", pa.float64(), "seconds the ingestion took", False),
    ),
)

BATCH_COMPLETIONS = TableDef(
    zone="restricted",
    name="batch_completions",
    doc="One row per batch delivery whose whole batch job (ingestion, de-identification, identifier "
        "check, annotations and cases) finished. A delivery without one was interrupted (a killed "
        "run, a machine lost) and is run again.",
    keys=("team", "dataset", "batch", "listing_fingerprint"),
    columns=_BATCH_KEY + (
        _c("listing_fingerprint", _STR, "the delivery, as in restricted/batches", False),
        _c("completed_at", _TS, "when its last step finished", False),
    ),
)

RESTRICTED_INGEST_TABLES = (LANDED_FILES, SOURCE_INSTANCES, SOURCE_SLIDES, SOURCE_CASES, QUARANTINE, BATCHES)

# --- de-identification -------------------------------------------------------------------------

VAULT = TableDef(
    zone="restricted",
    name="vault",
    doc="The pseudonym vault: which patient each pseudonym stands for, per team. It is what lets a "
        "withdrawal reach de-identified data; it never leaves the restricted zone.",
    keys=("team", "patient_id"),
    partition_by=("team",),
    columns=(
        _c("team", _STR, "team id", False),
        _c("patient_id", _STR, "hospital patient id (identifier)", False),
        _c("pseudonym", _STR, "the patient's pseudonym in every de-identified output", False),
        _c("date_shift_days", pa.int32(), "days added to every date of this patient (negative)", False),
        _c("key_check", _STR, "fingerprint of the secret key that derived the pseudonym; a run with "
                              "another key is refused", False),
        _c("first_batch", _STR, "the batch that first brought the patient", False),
        _c("recorded_at", _TS, "when the row was written", False),
    ),
)

DEID_QUARANTINE = TableDef(
    zone="restricted",
    name="deid_quarantine",
    doc="Objects that could not be de-identified safely (undecodable pixels, text that cannot be "
        "located, volumes that cannot be defaced...): they are never shipped.",
    keys=("team", "dataset", "batch", "path", "reason_code"),
    partition_by=("team",),
    columns=_BATCH_KEY + (
        _c("path", _STR, "file relative to the batch folder", False),
        _c("reason_code", _STR, "machine-readable reason", False),
        _c("message", _STR, "what went wrong, free of identifier values", False),
        _c("detected_at", _TS, "when", False),
    ),
)

_DEID_KEY = (
    _c("team", _STR, "team id", False),
    _c("dataset", _STR, "dataset id", False),
    _c("batch_ref", _STR, "keyed pseudonym of the export batch (batch folder names are hospital text)", False),
)

INSTANCES = TableDef(
    zone="deid",
    name="instances",
    doc="One row per de-identified DICOM object, read back from the de-identified file itself.",
    keys=("team", "dataset", "sop_instance_uid"),
    partition_by=("team",),
    columns=_DEID_KEY + (
        _c("patient_pseudonym", _STR, "PatientID of the de-identified object", False),
        _c("study_instance_uid", _STR, "keyed 2.25 UID", False),
        _c("series_instance_uid", _STR, "keyed 2.25 UID", False),
        _c("sop_instance_uid", _STR, "keyed 2.25 UID", False),
        _c("sop_class_uid", _STR, "SOP class (not remapped)", False),
        _c("kind", _STR, "dicom_image, dicom_waveform, rtstruct, seg, sr, presentation_state, kos", False),
        _c("modality", _STR, "Modality"),
        _c("transfer_syntax_uid", _STR, "transfer syntax of the de-identified file", False),
        _c("rows", pa.int32(), "Rows"),
        _c("columns", pa.int32(), "Columns"),
        _c("number_of_frames", pa.int32(), "NumberOfFrames"),
        _c("study_date", pa.date32(), "StudyDate, shifted by the patient's date shift"),
        _c("patient_sex", _STR, "PatientSex (retained patient characteristic)"),
        _c("patient_age", _STR, "PatientAge as written (ages above 89 grouped as 090Y)"),
        _c("manufacturer", _STR, "Manufacturer"),
        _c("manufacturer_model_name", _STR, "ManufacturerModelName"),
        _c("body_part_examined", _STR, "BodyPartExamined"),
        _c("pixel_spacing_row", pa.float64(), "mm"),
        _c("pixel_spacing_col", pa.float64(), "mm"),
        _c("slice_thickness", pa.float64(), "mm"),
        _c("burned_in_annotation", _STR, "BurnedInAnnotation after cleaning"),
        _c("frame_of_reference_uid", _STR, "keyed 2.25 UID"),
        _c("pixels_cleaned", pa.bool_(), "burned-in text was blanked", False),
        _c("defaced", pa.bool_(), "face voxels were replaced with air", False),
        _c("object_path", _STR, "the file, relative to the lake root", False),
        _c("sha256", _STR, "sha256 of the de-identified file", False),
        _c("size", pa.int64(), "bytes", False),
    ),
)

SERIES = TableDef(
    zone="deid",
    name="series",
    doc="One row per de-identified series, summarised from deid/instances.",
    keys=("team", "dataset", "series_instance_uid"),
    partition_by=("team",),
    columns=(
        _c("team", _STR, "team id", False),
        _c("dataset", _STR, "dataset id", False),
        _c("study_instance_uid", _STR, "keyed 2.25 UID", False),
        _c("series_instance_uid", _STR, "keyed 2.25 UID", False),
        _c("patient_pseudonym", _STR, "PatientID of the series' objects", False),
        _c("modality", _STR, "Modality"),
        _c("kinds", pa.list_(_STR), "object kinds in the series", False),
        _c("instances", pa.int64(), "objects", False),
        _c("frames", pa.int64(), "frames (single-frame objects count one)", False),
        _c("bytes", pa.int64(), "bytes of the de-identified files", False),
        _c("pixels_cleaned", pa.int64(), "objects whose burned-in text was blanked", False),
        _c("defaced", pa.int64(), "objects defaced", False),
    ),
)

STUDIES = TableDef(
    zone="deid",
    name="studies",
    doc="One row per de-identified study, summarised from deid/instances.",
    keys=("team", "dataset", "study_instance_uid"),
    partition_by=("team",),
    columns=(
        _c("team", _STR, "team id", False),
        _c("dataset", _STR, "dataset id", False),
        _c("study_instance_uid", _STR, "keyed 2.25 UID", False),
        _c("patient_pseudonym", _STR, "PatientID of the study's objects", False),
        _c("study_date", pa.date32(), "StudyDate, shifted"),
        _c("modalities", pa.list_(_STR), "modalities in the study", False),
        _c("series", pa.int64(), "series", False),
        _c("instances", pa.int64(), "objects", False),
        _c("frames", pa.int64(), "frames", False),
        _c("bytes", pa.int64(), "bytes of the de-identified files", False),
    ),
)

SLIDES = TableDef(
    zone="deid",
    name="slides",
    doc="De-identified whole-slide images: label and macro images removed, metadata stripped.",
    keys=("team", "dataset", "slide_id"),
    partition_by=("team",),
    columns=_DEID_KEY + (
        _c("slide_id", _STR, "keyed id of the slide", False),
        _c("study_instance_uid", _STR, "keyed 2.25 UID of the study the slide belongs to"),
        _c("levels", pa.int32(), "pyramid levels kept", False),
        _c("object_path", _STR, "the file, relative to the lake root", False),
        _c("sha256", _STR, "sha256 of the de-identified file", False),
        _c("size", pa.int64(), "bytes", False),
    ),
)

ANNOTATION_FILES = TableDef(
    zone="deid",
    name="annotation_files",
    doc="De-identified non-DICOM annotation files (AIM XML, masks, label sheets as CSV).",
    keys=("team", "dataset", "object_path"),
    partition_by=("team",),
    columns=_DEID_KEY + (
        _c("kind", _STR, "aim, mask_image or label_sheet", False),
        _c("targets", pa.list_(_STR), "keyed UIDs or case pseudonyms the file refers to", False),
        _c("object_path", _STR, "the file, relative to the lake root", False),
        _c("sha256", _STR, "sha256 of the de-identified file", False),
        _c("size", pa.int64(), "bytes", False),
    ),
)

DEID_AUDIT = TableDef(
    zone="deid",
    name="deid_audit",
    doc="What de-identification did to every object: options applied and actions counted. No values.",
    keys=("team", "dataset", "object_id"),
    partition_by=("team",),
    columns=_DEID_KEY + (
        _c("object_id", _STR, "the object's new SOP Instance UID, slide id or file name", False),
        _c("object_kind", _STR, "landed-file kind", False),
        _c("options", pa.list_(_STR), "PS3.15 options applied", False),
        _c("actions", _STR, "JSON object: action -> count", False),
        _c("fast_path", pa.bool_(), "pixel data copied byte for byte without decoding", False),
        _c("pixels_cleaned", pa.bool_(), "burned-in text blanked", False),
        _c("defaced", pa.bool_(), "face removed", False),
        _c("processed_at", _TS, "when", False),
    ),
)

DEID_TABLES = (INSTANCES, SERIES, STUDIES, SLIDES, ANNOTATION_FILES, DEID_AUDIT)


ANNOTATIONS = TableDef(
    zone="deid",
    name="annotations",
    doc="One row per annotation found in the de-identified annotation objects, normalised across formats.",
    keys=("team", "dataset", "annotation_id"),
    partition_by=("team",),
    columns=_DEID_KEY + (
        _c("annotation_id", _STR, "<object id>#<n>: the object's new SOP Instance UID or keyed file name", False),
        _c("kind", _STR, "contour, mask, measurement or label", False),
        _c("source_format", _STR, "rtstruct, seg, sr, presentation_state, aim, mask_image or label_sheet", False),
        _c("label", _STR, "ROI name, segment label, concept name or label-sheet label"),
        _c("code", _STR, "coded label, e.g. SCT:27925004, when the source codes it"),
        _c("value", pa.float64(), "numeric value (measurements; voxel count of masks)"),
        _c("value_text", _STR, "categorical value"),
        _c("unit", _STR, "unit of value"),
        _c("target_study_uid", _STR, "keyed 2.25 UID of the study annotated"),
        _c("target_series_uid", _STR, "keyed 2.25 UID of the series annotated"),
        _c("target_instance_uid", _STR, "keyed 2.25 UID of the instance annotated"),
        _c("target_case", _STR, "case pseudonym, for label sheets keyed on case ids"),
        _c("reader_role", _STR, "reader role or reader pseudonym"),
        _c("resolved", pa.bool_(), "the target exists among the dataset's de-identified objects or cases", False),
    ),
)

ANNOTATION_PROBLEMS = TableDef(
    zone="deid",
    name="annotation_problems",
    doc="Annotation objects that could not be read, or read with problems, and annotations whose target "
        "does not exist: reported, never silently dropped. Messages carry no identifier values.",
    keys=("team", "dataset", "batch_ref", "object_id", "code"),
    partition_by=("team",),
    columns=_DEID_KEY + (
        _c("object_id", _STR, "keyed object id (new SOP Instance UID or file name)", False),
        _c("code", _STR, "e.g. aim_malformed, rtstruct_empty_contour, sr_unknown_template, target_missing", False),
        _c("message", _STR, "what is wrong", False),
    ),
)

CASES = TableDef(
    zone="deid",
    name="cases",
    doc="One row per case: what the programme counts, with its annotation status computed from the "
        "annotations actually found against the registry's required kinds.",
    keys=("team", "dataset", "case_pseudonym"),
    partition_by=("team",),
    columns=(
        _c("team", _STR, "team id", False),
        _c("dataset", _STR, "dataset id", False),
        _c("case_pseudonym", _STR, "keyed pseudonym of the hospital's case id", False),
        _c("patient_pseudonym", _STR, "keyed pseudonym of the patient", False),
        _c("part", _STR, "seed table 5 part: shared, partially_not_shared or not_shared", False),
        _c("study_instance_uids", pa.list_(_STR), "keyed 2.25 UIDs of the case's studies", False),
        _c("instances", pa.int64(), "de-identified DICOM image objects of the case", False),
        _c("frames", pa.int64(), "frames (single-frame objects count one)", False),
        _c("slides", pa.int64(), "de-identified whole-slide images of the case", False),
        _c("modalities", pa.list_(_STR), "modalities of its images", False),
        _c("annotation_kinds", pa.list_(_STR), "kinds found (contour, mask, measurement, label)", False),
        _c("annotation_status", _STR, "image_only, partial or full (labels from diagnosis codes: partial)", False),
        _c("label_source", _STR, "physician or ehr_code", False),
        _c("shareable", pa.bool_(), "the hospital's shareable flag", False),
        _c("consent_class", _STR, "A, B, C or null"),
    ),
)

IDENTIFIER_CHECKS = TableDef(
    zone="program",
    name="identifier_checks",
    doc="Every run of the independent identifier checker over a de-identified batch: counts and kinds, "
        "never values. The dashboard's validation status reads it.",
    keys=("team", "dataset", "batch_ref", "checked_at"),
    partition_by=("team",),
    columns=_DEID_KEY + (
        _c("passed", pa.bool_(), "no finding and every object readable", False),
        _c("objects_scanned", pa.int64(), "objects and tables scanned", False),
        _c("findings", pa.int64(), "identifier findings", False),
        _c("by_kind", _STR, "JSON object: identifier kind -> findings", False),
        _c("checked_at", _TS, "when", False),
    ),
)

CASE_TABLES = (ANNOTATIONS, ANNOTATION_PROBLEMS, CASES)

# --- programme progress (program zone) ----------------------------------------------------------

_AS_OF = (
    _c("as_of", pa.date32(), "the date the figures are as of", False),
    _c("elapsed_ratio", pa.float64(), "share of the programme period elapsed on as_of (0..1)", False),
)

PROGRESS_BY_DATASET = TableDef(
    zone="program",
    name="progress_by_dataset",
    doc="Seed table 5: per dataset and sharing part, cases by annotation status against the milestone targets.",
    keys=("as_of", "dataset", "part"),
    columns=_AS_OF + (
        _c("table5_no", pa.int32(), "row number of the dataset in seed table 5", False),
        _c("dataset", _STR, "dataset id", False),
        _c("name_zh", _STR, "dataset name (Chinese)", False),
        _c("name_en", _STR, "dataset name (English)", False),
        _c("organ", _STR, "organ group", False),
        _c("team", _STR, "team id", False),
        _c("sharing", _STR, "dataset sharing status: shared, partially_shared or not_shared", False),
        _c("part", _STR, "shared, partially_not_shared or not_shared", False),
        _c("image_only", pa.int64(), "cases with no required annotation kind", False),
        _c("partial", pa.int64(), "cases with some required kinds (or labels from diagnosis codes)", False),
        _c("full", pa.int64(), "cases with every required kind", False),
        _c("total", pa.int64(), "all cases of the part", False),
        _c("target_2019_11", pa.int64(), "milestone target 2019-11 for this part (0 when none)", False),
        _c("target_2020_11", pa.int64(), "milestone target 2020-11 (on the shared part of a split dataset)", False),
        _c("achievement_2019_11", pa.float64(), "total / target_2019_11 (null without a target)"),
        _c("avg_images_per_case", pa.float64(), "registry figure", False),
        _c("est_annotated_images", pa.int64(), "(partial + full) x avg_images_per_case", False),
    ),
)

PROGRESS_BY_TEAM = TableDef(
    zone="program",
    name="progress_by_team",
    doc="Seed table 4: per team and overall, built cases and shared cases against the 2019-11 target, "
        "with and without image-only cases and diagnosis-code-labelled datasets.",
    keys=("as_of", "scope", "view", "team"),
    columns=_AS_OF + (
        _c("scope", _STR, "built (every case) or shared (cases of the shared parts)", False),
        _c("view", _STR, "all; annotated (without image-only cases); annotated_without_ehr_labels "
                         "(also without datasets whose labels are diagnosis codes)", False),
        _c("team", _STR, "team id, or 'all'", False),
        _c("team_name_zh", _STR, "team name (Chinese), or 總計", False),
        _c("datasets", pa.int64(), "datasets counted", False),
        _c("cases", pa.int64(), "cases", False),
        _c("target", pa.int64(), "2019-11 target", False),
        _c("achievement", pa.float64(), "cases / target"),
    ),
)

CONSENT_EVENTS = TableDef(
    zone="restricted",
    name="consent_events",
    doc="Consent events from the landing zone's _consent/*.csv files, as sent (identifiers included).",
    keys=("team", "file", "line"),
    partition_by=("team",),
    columns=(
        _c("team", _STR, "team id", False),
        _c("file", _STR, "file name under <team>/_consent/", False),
        _c("line", pa.int32(), "line number in the file (1 = header)", False),
        _c("patient_id", _STR, "as in cases.csv", False),
        _c("consent_class", _STR, "A, B or C"),
        _c("event", _STR, "notice_sent, undelivered, consented, opted_out, withdrawn, deceased", False),
        _c("event_date", pa.date32(), "event date", False),
        _c("reference", _STR, "letter or form number"),
    ),
)

CONSENT_SUMMARY = TableDef(
    zone="program",
    name="consent_summary",
    doc="Seed table 7 per team and overall: notices sent, undelivered, opt-out requests, deaths, and the "
        "opt-out ratio = opt-outs / (sent - undelivered).",
    keys=("as_of", "team"),
    columns=_AS_OF + (
        _c("team", _STR, "team id, or 'all'", False),
        _c("notices_sent", pa.int64(), "notice_sent events", False),
        _c("undelivered", pa.int64(), "undelivered events", False),
        _c("opt_outs", pa.int64(), "opted_out and withdrawn events", False),
        _c("deaths", pa.int64(), "deceased events", False),
        _c("opt_out_ratio", pa.float64(), "opt_outs / (notices_sent - undelivered)"),
    ),
)

PROGRESS_HISTORY = TableDef(
    zone="program",
    name="progress_history",
    doc="A dated snapshot of every progress figure, appended by every run, for the dashboard's trend.",
    keys=("snapshot_at", "level", "key"),
    columns=(
        _c("snapshot_at", _TS, "when the snapshot was taken", False),
        _c("as_of", pa.date32(), "the figures' as-of date", False),
        _c("level", _STR, "dataset or team", False),
        _c("key", _STR, "dataset id or team id ('all' for the programme)", False),
        _c("cases", pa.int64(), "cases", False),
        _c("target", pa.int64(), "2019-11 target", False),
        _c("achievement", pa.float64(), "cases / target"),
        _c("elapsed_ratio", pa.float64(), "share of the programme period elapsed", False),
    ),
)

PROGRESS_TABLES = (PROGRESS_BY_DATASET, PROGRESS_BY_TEAM, CONSENT_SUMMARY, PROGRESS_HISTORY)
