"""What one batch's ingestion accumulates: its files, its quarantine rows, its DICOM rows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from medlake.ingest.rows import RowBuffer
from medlake.lake.tables import SOURCE_INSTANCES
from medlake.landing.zone import BatchRef


@dataclass
class LandedRecord:
    path: str
    size: int
    sha256: str | None = None
    kind: str = "unknown"
    status: str = "catalogued"


class QuarantineLog:
    def __init__(self, ref: BatchRef, now: dt.datetime):
        self.ref, self.now, self.rows = ref, now, []

    def add(self, path: str, scope: str, code: str, message: str, line: int = 0) -> None:
        self.rows.append({
            "team": self.ref.team, "dataset": self.ref.dataset, "batch": self.ref.batch,
            "path": path, "scope": scope, "line": line, "reason_code": code, "message": message,
            "detected_at": self.now,
        })


class InstanceRows:
    """Catalogued DICOM rows plus what deduplication needs: which file and which UID each row is."""

    def __init__(self) -> None:
        self.rows = RowBuffer(SOURCE_INSTANCES.schema)
        self.file_index: list[int] = []
        self.sha: list[str] = []
        self.by_uid: dict[str, list[int]] = {}

    def add(self, file_index: int, row: dict) -> None:
        i = self.rows.append(row)
        self.file_index.append(file_index)
        self.sha.append(row["sha256"])
        self.by_uid.setdefault(row["sop_instance_uid"], []).append(i)
