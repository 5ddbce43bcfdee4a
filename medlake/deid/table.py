"""PS3.15 Table E.1-1 as a typed table, and the resolution of one attribute's action for a set of options.

The table is data (data/ps3_15_e1_1.csv, see data/PROVENANCE.md); this module only knows how to
read it and how the standard combines the basic profile with options.
"""

from __future__ import annotations

import csv
import enum
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from pydicom.datadict import dictionary_VR

from medlake.packaged import packaged_file

TABLE_FILE = ("medlake.deid", "data/ps3_15_e1_1.csv")


class Action(str, enum.Enum):
    """A resolved (single) action."""

    X = "X"  # remove
    Z = "Z"  # empty (zero length)
    D = "D"  # dummy value of the VR
    K = "K"  # keep (sequences are still walked)
    C = "C"  # clean: shift dates, group ages, scrub descriptors
    U = "U"  # map UIDs through DeidKeys.uid


class Option(str, enum.Enum):
    """Options medlake can apply. The value is the option's column name in ps3_15_e1_1.csv."""

    RETAIN_LONGITUDINAL_MODIFIED_DATES = "retain_longitudinal_temporal_information_modified_dates"
    RETAIN_PATIENT_CHARACTERISTICS = "retain_patient_characteristics"
    CLEAN_DESCRIPTORS = "clean_descriptors"
    CLEAN_STRUCTURED_CONTENT = "clean_structured_content"
    CLEAN_GRAPHICS = "clean_graphics"
    # Pixel options: no column in Table E.1-1. pixels.py / deface.py do the work; the caller puts
    # them in DeidContext.options only for objects whose pixels were cleaned, so they are recorded.
    CLEAN_PIXEL_DATA = "clean_pixel_data"
    CLEAN_RECOGNIZABLE_VISUAL_FEATURES = "clean_recognizable_visual_features"


TABLE_OPTIONS = (
    Option.RETAIN_LONGITUDINAL_MODIFIED_DATES,
    Option.RETAIN_PATIENT_CHARACTERISTICS,
    Option.CLEAN_DESCRIPTORS,
    Option.CLEAN_STRUCTURED_CONTENT,
    Option.CLEAN_GRAPHICS,
)
ALL_OPTIONS = frozenset(Option)

# When two options both name an attribute (only Retain Patient Characteristics + Clean Descriptors
# do, and then both say C) the more protective action wins.
_PROTECTIVENESS = {Action.X: 0, Action.Z: 1, Action.D: 2, Action.C: 3, Action.U: 4, Action.K: 5}


def resolve_compound(code: str, vr: str | None) -> Action:
    """Pick one action from a basic-profile code.

    The standard's rule for compound codes is Z if the attribute is Type 2 in the IOD, D if Type 1,
    X otherwise. The table does not carry Types per IOD and objects of many IODs pass through, so
    medlake picks the strictest choice that is valid whatever the Type:
      X/Z -> Z (an empty Type 2 or Type 3 attribute is valid; the table never marks X/Z on Type 1)
      X/D, Z/D -> D (a dummy keeps even a Type 1 attribute valid)
      X/Z/D -> D, except sequences -> Z: a "dummy" sequence would mean keeping items whose nested
               attributes the table does not list (Institution Code Sequence's codes name the
               institution), and every X/Z/D sequence in the table is Type 2 or 3 where it occurs
      X/Z/U* -> U: the sequence is kept and its UIDs remapped, so references still resolve
    """
    if code in ("X", "Z", "D", "K", "C", "U"):
        return Action(code)
    if code == "X/Z":
        return Action.Z
    if code in ("X/D", "Z/D"):
        return Action.D
    if code == "X/Z/D":
        return Action.Z if vr == "SQ" else Action.D
    if code == "X/Z/U*":
        return Action.U
    raise ValueError(f"unknown action code {code!r}")


@dataclass(frozen=True)
class Rule:
    """One row of Table E.1-1."""

    tag: str  # "0008103e", a pattern with x for any hex digit ("60xx3000"), or "private"
    name: str
    basic: str  # basic-profile code, possibly compound ("X/Z/D")
    options: tuple[tuple[str, str], ...]  # (option column, code) for non-empty cells
    source: str

    @property
    def is_pattern(self) -> bool:
        return "x" in self.tag or self.tag == "private"

    @property
    def tag_int(self) -> int | None:
        return None if self.is_pattern else int(self.tag, 16)

    @property
    def vr(self) -> str | None:
        t = self.tag_int
        if t is None:
            return None
        try:
            return dictionary_VR(t)
        except KeyError:
            return None

    def option_code(self, option: Option | str) -> str | None:
        name = option.value if isinstance(option, Option) else option
        for col, code in self.options:
            if col == name:
                return code
        return None

    def resolve(self, options: frozenset[Option] | set[Option]) -> Action:
        """The action for this attribute under `options` (options override the basic profile)."""
        vr = self.vr
        picked = [resolve_compound(code, vr) for col, code in self.options
                  if col in {o.value for o in options}]
        if picked:
            return min(picked, key=_PROTECTIVENESS.__getitem__)
        return resolve_compound(self.basic, vr)

    def matches(self, tag: int) -> bool:
        if self.tag == "private":
            return bool((tag >> 16) & 1)
        want = self.tag
        have = f"{tag:08x}"
        return all(w == "x" or w == h for w, h in zip(want, have))


class ProfileTable:
    """All rows, indexed by tag; patterns (50xx, 60xx, private) are matched after exact tags."""

    def __init__(self, rules: list[Rule]):
        self.rules = tuple(rules)
        self._exact = {r.tag_int: r for r in rules if not r.is_pattern}
        self._patterns = tuple(r for r in rules if r.is_pattern)

    def __len__(self) -> int:
        return len(self.rules)

    def rule_for(self, tag: int) -> Rule | None:
        rule = self._exact.get(tag)
        if rule is not None:
            return rule
        for r in self._patterns:
            if r.matches(tag):
                return r
        return None

    def compile(self, options: frozenset[Option]) -> dict[int, Action]:
        """Exact-tag actions for one option set (the walker's hot-path lookup)."""
        return _compile(self, frozenset(options))


@lru_cache(maxsize=32)
def _compile(table: ProfileTable, options: frozenset[Option]) -> dict[int, Action]:
    return {t: r.resolve(options) for t, r in table._exact.items()}


def read_rules(path: Path | None = None) -> list[Rule]:
    """The rules of the table at `path`; the project's table by default."""
    with open(path or packaged_file(*TABLE_FILE), newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    option_cols = [o.value for o in TABLE_OPTIONS] + [
        "retain_safe_private", "retain_uids", "retain_device_identity", "retain_institution_identity",
        "retain_longitudinal_temporal_information_full_dates"]
    return [Rule(tag=r["tag"], name=r["name"], basic=r["basic"],
                 options=tuple((c, r[c]) for c in option_cols if r.get(c)), source=r["source"])
            for r in rows]


@lru_cache(maxsize=1)
def load_table() -> ProfileTable:
    """The project's table (cached: it is read once per process)."""
    return ProfileTable(read_rules())
