"""Typed loader for the programme registry.

A bad registry must stop everything before any data moves, with a message a data engineer can act
on: the file, the entry (by its id where it has one) and the field.
"""

from __future__ import annotations

import datetime as dt
from functools import cached_property
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

ANNOTATION_KINDS = ("contour", "mask", "measurement", "label")
ANNOTATION_FORMATS = ("rtstruct", "seg", "sr", "presentation_state", "aim", "mask_image", "label_sheet")
DEID_OPTIONS = (
    "retain_longitudinal_temporal_information_modified_dates",
    "retain_patient_characteristics",
    "clean_descriptors",
    "clean_structured_content",
    "clean_graphics",
    "clean_pixel_data",
    "clean_recognizable_visual_features",
)

AnnotationKind = Literal["contour", "mask", "measurement", "label"]
AnnotationFormat = Literal[
    "rtstruct", "seg", "sr", "presentation_state", "aim", "mask_image", "label_sheet"
]
DeidOption = Literal[
    "retain_longitudinal_temporal_information_modified_dates",
    "retain_patient_characteristics",
    "clean_descriptors",
    "clean_structured_content",
    "clean_graphics",
    "clean_pixel_data",
    "clean_recognizable_visual_features",
]
ConsentRule = Literal["releasable", "releasable_after_notice", "releasable_unless_opted_out", "never"]
PartSharing = Literal["shared", "partially_not_shared", "not_shared"]


# libyaml's loader when PyYAML was built with it: the pure-Python one costs a tenth of a second
# on every command, which is most of a `medlake run` that finds nothing new.
_YamlLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class RegistryError(ValueError):
    """The registry file is missing, unreadable or invalid; the message names file, entry and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Milestone(_Strict):
    id: str
    date: dt.date


class Period(_Strict):
    start: dt.date
    end: dt.date

    @model_validator(mode="after")
    def _ordered(self) -> Period:
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self

    def elapsed_ratio(self, as_of: dt.date) -> float:
        """Share of the programme period that has passed on `as_of`, clamped to [0, 1]."""
        total = (self.end - self.start).days
        done = (as_of - self.start).days
        return min(1.0, max(0.0, done / total))


class Programme(_Strict):
    id: str
    name_zh: str
    name_en: str
    period: Period
    milestones: tuple[Milestone, ...] = Field(min_length=1)
    deid_options: tuple[DeidOption, ...] = ()


class Team(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    code: str
    name_zh: str
    name_en: str


class SharingTier(_Strict):
    id: Literal["collaboration", "review", "public"]
    min_k: int = Field(ge=1)


class DatasetPart(_Strict):
    sharing: PartSharing
    targets: dict[str, int]

    @field_validator("targets")
    @classmethod
    def _non_negative(cls, v: dict[str, int]) -> dict[str, int]:
        bad = [k for k, n in v.items() if n < 0]
        if bad:
            raise ValueError(f"negative target for milestone {bad[0]}")
        return v


class Dataset(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    table5_no: int
    name_zh: str
    name_en: str
    organ: str
    team: str
    modalities: tuple[str, ...] = Field(min_length=1)
    image_format: str
    annotation_formats: tuple[AnnotationFormat, ...]
    annotation_description: str = ""
    annotation_tool: str = ""
    required_annotation_kinds: tuple[AnnotationKind, ...] = Field(min_length=1)
    label_source: Literal["physician", "ehr_code"] = "physician"
    sharing: Literal["shared", "partially_shared", "not_shared"]
    release_content: Literal["images_and_annotations", "images_only"] = "images_and_annotations"
    annotated_outside_export: bool = False
    release_without_consent_record: bool = False
    # Tiers the dataset's shared cases are offered through; None means every tier but public (the
    # report plans public download but has not opened it). A not_shared dataset offers none.
    tiers: tuple[Literal["collaboration", "review", "public"], ...] | None = None
    avg_images_per_case: float = Field(gt=0)
    deid_options_extra: tuple[DeidOption, ...] = ()
    parts: tuple[DatasetPart, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _parts_match_sharing(self) -> Dataset:
        kinds = {p.sharing for p in self.parts}
        if len(kinds) != len(self.parts):
            raise ValueError("parts: each sharing part may appear once")
        expected = {
            "shared": {"shared"},
            "partially_shared": {"shared", "partially_not_shared"},
            "not_shared": {"not_shared"},
        }[self.sharing]
        if kinds != expected:
            raise ValueError(
                f"parts: a {self.sharing} dataset has parts {sorted(expected)}, not {sorted(kinds)}"
            )
        if self.sharing == "not_shared" and self.tiers:
            raise ValueError("tiers: a not_shared dataset is offered through no tier")
        return self

    @property
    def offered_tiers(self) -> tuple[str, ...]:
        if self.sharing == "not_shared":
            return ()
        return self.tiers if self.tiers is not None else ("collaboration", "review")

    def target(self, milestone: str, part: str | None = None) -> int:
        """Target case count at a milestone, for one part or the whole dataset."""
        parts = [p for p in self.parts if part is None or p.sharing == part]
        return sum(p.targets.get(milestone, 0) for p in parts)

    @property
    def withholds_cases(self) -> bool:
        return self.sharing == "partially_shared"


class Registry(_Strict):
    """The parsed registry plus the path it came from (for error messages and provenance)."""

    schema_version: Literal[1]
    programme: Programme
    teams: tuple[Team, ...] = Field(min_length=1)
    consent_policy: dict[Literal["A", "B", "C"], ConsentRule]
    sharing_tiers: tuple[SharingTier, ...]
    datasets: tuple[Dataset, ...] = Field(min_length=1)
    source: str = ""

    @model_validator(mode="after")
    def _cross_references(self) -> Registry:
        team_ids = [t.id for t in self.teams]
        _unique("teams", team_ids)
        _unique("datasets", [d.id for d in self.datasets])
        milestones = {m.id for m in self.programme.milestones}
        tiers = {t.id for t in self.sharing_tiers}
        for i, d in enumerate(self.datasets):
            if d.team not in team_ids:
                raise _EntryError(f"datasets[{i}] (id={d.id})", "team", f"unknown team {d.team!r}")
            missing = [t for t in d.offered_tiers if t not in tiers]
            if missing:
                raise _EntryError(f"datasets[{i}] (id={d.id})", "tiers",
                                  f"tier {missing[0]!r} is not among sharing_tiers")
            for j, p in enumerate(d.parts):
                unknown = set(p.targets) - milestones
                if unknown:
                    raise _EntryError(
                        f"datasets[{i}] (id={d.id})",
                        f"parts[{j}].targets",
                        f"unknown milestone {sorted(unknown)[0]!r}",
                    )
        return self

    @cached_property
    def teams_by_id(self) -> dict[str, Team]:
        return {t.id: t for t in self.teams}

    @cached_property
    def datasets_by_id(self) -> dict[str, Dataset]:
        return {d.id: d for d in self.datasets}

    def dataset(self, dataset_id: str) -> Dataset:
        return self.datasets_by_id[dataset_id]

    def datasets_of(self, team_id: str) -> list[Dataset]:
        return [d for d in self.datasets if d.team == team_id]

    def owns(self, team_id: str, dataset_id: str) -> bool:
        d = self.datasets_by_id.get(dataset_id)
        return d is not None and d.team == team_id

    def tier(self, tier_id: str) -> SharingTier:
        return next(t for t in self.sharing_tiers if t.id == tier_id)

    def deid_options(self, dataset_id: str) -> tuple[str, ...]:
        d = self.dataset(dataset_id)
        return tuple(dict.fromkeys(self.programme.deid_options + d.deid_options_extra))


class _EntryError(ValueError):
    def __init__(self, entry: str, field: str, problem: str):
        super().__init__(f"{entry}: field {field!r}: {problem}")
        self.entry, self.field, self.problem = entry, field, problem


def _unique(what: str, ids: list[str]) -> None:
    seen: set[str] = set()
    for i, x in enumerate(ids):
        if x in seen:
            raise _EntryError(f"{what}[{i}] (id={x})", "id", "duplicate id")
        seen.add(x)


def _describe_location(raw: object, loc: tuple) -> tuple[str, str]:
    """Turn a pydantic location into ('datasets[3] (id=ivus)', 'parts[0].targets')."""
    if not loc:
        return "registry", "(root)"
    entry = str(loc[0])
    rest = list(loc[1:])
    node = raw.get(loc[0]) if isinstance(raw, dict) else None
    if rest and isinstance(rest[0], int):
        idx = rest.pop(0)
        entry = f"{entry}[{idx}]"
        item = node[idx] if isinstance(node, list) and idx < len(node) else None
        if isinstance(item, dict) and "id" in item:
            entry += f" (id={item['id']})"
    field = ""
    for part in rest:
        field += f"[{part}]" if isinstance(part, int) else (f".{part}" if field else str(part))
    return entry, field or "(entry)"


def load_registry(path: str | Path) -> Registry:
    """Load and validate a registry; raise RegistryError naming the file, entry and field."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RegistryError(f"{path}: programme registry not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RegistryError(f"{path}: cannot read the programme registry: {e}") from None
    try:
        raw = yaml.load(text, Loader=_YamlLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise RegistryError(f"{path}:{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(raw, dict):
        raise RegistryError(f"{path}: the registry must be a mapping with programme, teams and datasets")
    try:
        return Registry.model_validate({**raw, "source": str(path)})
    except ValidationError as e:
        err = e.errors()[0]
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, _EntryError):
            raise RegistryError(f"{path}: {cause}") from None
        entry, field = _describe_location(raw, tuple(err["loc"]))
        more = f" (and {e.error_count() - 1} more problems)" if e.error_count() > 1 else ""
        raise RegistryError(f"{path}: {entry}: field {field!r}: {err['msg']}{more}") from None
