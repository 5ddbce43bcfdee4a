"""What de-identification did to one object: counts per kind of action, never values."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class DeidReport:
    # Keys: removed, emptied, dummy, pseudonym, uid_remapped, uid_well_known, kept, shifted,
    # dummy_date, cleaned, age_grouped, private_removed, private_kept, repeating_group_removed,
    # group_length_removed, unparseable_removed, sequences, items, recorded.
    counts: Counter = field(default_factory=Counter)
    max_depth: int = 0
    fast_path: bool | None = None  # set by deidentify_file: pixel bytes copied without pydicom

    def add(self, kind: str, n: int = 1) -> None:
        self.counts[kind] += n

    def __getitem__(self, kind: str) -> int:
        return self.counts.get(kind, 0)

    def as_dict(self) -> dict:
        return {"counts": dict(sorted(self.counts.items())), "max_depth": self.max_depth,
                "fast_path": self.fast_path}
