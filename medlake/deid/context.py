"""Everything the profile engine needs to know about one object besides the object itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from medlake.deid.keys import DeidKeys
from medlake.deid.table import ALL_OPTIONS, TABLE_OPTIONS, Option


@dataclass(frozen=True)
class SafePrivateTag:
    """A private element kept verbatim: (group, creator, element offset in the creator's block).

    The creator string is the key, not the block number: vendors' blocks move between files. Only
    list elements known to hold no identifiers (PS3.15 Table E.3.10-1 is the reference list).
    """

    group: int  # odd
    creator: str
    element: int  # 0x00-0xFF: the low byte of the element number
    note: str = ""


# Default: no private element survives. Named so configs and DATASET_CARDs can cite it.
SAFE_PRIVATE_NONE: tuple[SafePrivateTag, ...] = ()


@dataclass(frozen=True)
class AgeRule:
    """Retain Patient Characteristics keeps PatientAge; ages above `max_years` are grouped into
    `grouped_value` (HIPAA Safe Harbor's 90-or-older bucket)."""

    max_years: int = 89
    grouped_value: str = "090Y"


# The programme's profile (DESIGN.md): basic + all options except the pixel ones, which the
# caller adds per object once pixels.py/deface.py have run on it.
DEFAULT_OPTIONS = frozenset(TABLE_OPTIONS)


@dataclass(frozen=True)
class DeidContext:
    team: str
    patient_id: str  # the catalogue's patient id (restricted zone); the source of the pseudonym
    keys: DeidKeys = field(repr=False)
    options: frozenset[Option] = DEFAULT_OPTIONS
    safe_private: tuple[SafePrivateTag, ...] = SAFE_PRIVATE_NONE
    age_rule: AgeRule = AgeRule()
    # Free text (LT/ST/UT) under a C action: "blank" empties it; short descriptors (LO/SH/CS/UC)
    # are always token-scrubbed. There is no NLP here: the independent checker is the backstop.
    strict: bool = False  # raise DeidError instead of removing an element that cannot be parsed

    def __post_init__(self):
        unknown = set(self.options) - ALL_OPTIONS
        if unknown:
            raise ValueError(f"unsupported options: {sorted(map(str, unknown))}")
        object.__setattr__(self, "options", frozenset(self.options))

    def has(self, option: Option) -> bool:
        return option in self.options

    @cached_property
    def pseudonym(self) -> str:
        return self.keys.patient_pseudonym(self.team, self.patient_id)

    @cached_property
    def shift_days(self) -> int:
        return self.keys.date_shift_days(self.team, self.patient_id)

    @cached_property
    def safe_private_keys(self) -> frozenset[tuple[int, str, int]]:
        return frozenset((s.group, s.creator.strip(), s.element) for s in self.safe_private)
