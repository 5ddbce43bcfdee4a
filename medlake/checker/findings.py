"""What the checker reports: where an identifier is and what kind it is, never the value itself."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Finding:
    """One identifier found.

    object: the file path or table URI scanned; "(path)" when the path itself (under the scanned
        root) contains an identifier, so that the report never repeats it.
    location: where inside the object: a DICOM attribute path ("ReferencedSeriesSequence[0].
        ReferencedInstanceSequence[2].ReferencedSOPInstanceUID", private elements as
        (gggg,"CREATOR",ee)), "column[row]" for tables and CSV, "delta_log:<file>:stats.minValues.
        <col>", "parquet_stats:row_group[i].<col>.min", a JSON pointer, "line 12", "path", ...
        Parts of a location that would themselves carry an identifier (a JSON key, a column name,
        a private creator) are replaced by a placeholder such as "<key 3>".
    identifier_kind: the kind of the identifier that matched ("patient_name", "patient_id", ...,
        "national_id_pattern", "phone_pattern", "email_pattern", "birth_date", "private_tag").
    """

    object: str
    location: str
    identifier_kind: str

    def __str__(self) -> str:
        return f"{self.object} :: {self.location} :: {self.identifier_kind}"


@dataclass
class CheckReport:
    """The result of a scan: how many objects were looked at and what was found where."""

    objects_scanned: int
    findings: list[Finding] = field(default_factory=list)
    by_kind: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)   # objects that could not be read (paths only)

    @classmethod
    def of(cls, objects_scanned: int, findings: list[Finding], errors: list[str] | None = None) -> CheckReport:
        return cls(objects_scanned, list(findings), dict(sorted(Counter(f.identifier_kind for f in findings).items())),
                   list(errors or []))

    @property
    def clean(self) -> bool:
        """No identifier found and every object read: the only state in which a release may go."""
        return not self.findings and not self.errors

    def __str__(self) -> str:
        lines = [f"identifier check: {self.objects_scanned} objects scanned, {len(self.findings)} findings"
                 + (f", {len(self.errors)} unreadable" if self.errors else "")]
        for kind, n in self.by_kind.items():
            lines.append(f"  {kind}: {n}")
        objs = Counter(f.object for f in self.findings)
        for obj, n in objs.most_common(20):
            lines.append(f"  {n:6d}  {obj}")
        if len(objs) > 20:
            lines.append(f"  ... and {len(objs) - 20} more objects")
        for e in self.errors[:20]:
            lines.append(f"  unreadable: {e}")
        return "\n".join(lines)
