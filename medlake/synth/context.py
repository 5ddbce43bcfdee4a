"""What one case's writers share: who the patient is, where files go, and what was written so far."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from pathlib import Path

from medlake.program.registry import Dataset

from .identities import Patient, Site
from .ids import uid_for


@dataclass
class Instance:
    sop_uid: str
    sop_class: str
    path: str                 # relative to the batch folder
    number: int
    rows: int = 0
    cols: int = 0
    frames: int = 1
    ipp: tuple[float, float, float] | None = None
    burned_in: bool = False
    kind: str = "dicom_image"


@dataclass
class Series:
    uid: str
    number: int
    modality: str
    sop_class: str
    description: str
    frame_of_ref: str
    rows: int
    cols: int
    pixel_spacing: tuple[float, float] = (1.0, 1.0)
    thickness: float = 1.0
    orientation: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)
    instances: list[Instance] = field(default_factory=list)
    # Lesion in pixel space on each instance/slice it touches: centre (row, col), radius, slice indices.
    lesion_rc: tuple[float, float] = (0.0, 0.0)
    lesion_radius: float = 1.0
    lesion_slices: tuple[int, ...] = (0,)


@dataclass
class Study:
    uid: str
    date: dt.date
    time: str
    accession: str
    study_id: str
    description: str
    series: list[Series] = field(default_factory=list)

    @property
    def date_dicom(self) -> str:
        return self.date.strftime("%Y%m%d")


@dataclass
class CaseContext:
    seed: int
    team: str
    dataset: Dataset
    batch: str
    case_id: str
    patient: Patient
    site: Site
    tiny: bool
    rng: random.Random
    batch_dir: Path
    plant: callable            # plant(kind, value, place): record an identifier occurrence
    chinese: bool              # headers carry the ideographic name (SpecificCharacterSet ISO_IR 192)
    case_folder: str           # images/<case_folder>/..., may hold the name or chart number
    file_style: str            # "IM", "uid" or "bare": how instance files are named
    studies: list[Study] = field(default_factory=list)
    objects: list[dict] = field(default_factory=list)   # truth "objects" rows for this case

    def uid(self, *parts) -> str:
        return uid_for(self.seed, self.team, self.dataset.id, self.case_id, *parts)

    @property
    def physician(self) -> str:
        return self.site.physicians[self.rng.randrange(len(self.site.physicians))]

    def record(self, path: str, kind: str, sop_uid: str | None, burned_in: bool = False) -> None:
        self.objects.append({"team": self.team, "dataset": self.dataset.id, "batch": self.batch, "path": path,
                             "kind": kind, "sop_instance_uid": sop_uid, "case_id": self.case_id,
                             "burned_in_text": burned_in})

    def all_instances(self) -> list[Instance]:
        return [i for st in self.studies for se in st.series for i in se.instances]
