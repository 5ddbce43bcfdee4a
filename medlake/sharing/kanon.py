"""The re-identification gate: k-anonymity over the quasi-identifiers of the cases in one release.

The quasi-identifiers are those DESIGN.md names for a release: age band, sex, study year and the
building team. A fixed ladder of generalisations is tried from finest to coarsest (LADDER); the
first level at which the cases in classes smaller than k are at most MAX_SUPPRESSED_FRACTION of the
release is used, and those cases are suppressed. When no level gets there, the coarsest is used
and whatever is still below k is suppressed. Team is never generalised: a release is organised by
team, so hiding it would hide nothing.

Only pseudonymous, aggregate-safe values go in and out; describe() reports numbers, never case ids.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

QUASI_IDENTIFIERS = ("age band", "sex", "study year", "team")

# The share of a release that may be suppressed instead of coarsening further. Suppressing a few
# percent of outliers costs researchers less than wider bands for every case; 5% is the usual
# order of magnitude in statistical disclosure control, and the synthetic-cohort experiment in
# shared/notes/deidentification.md needed about 1% at 10-year bands and 5-year spans.
MAX_SUPPRESSED_FRACTION = 0.05

# De-identified PatientAge above 89 is already "090Y" (Retain Patient Characteristics), so 90 is
# an open-ended top band at every width.
AGE_TOP = 90
UNKNOWN = "unknown"
ANY = "any"
_SEXES = ("M", "F", "O")
_REQUIRED = ("case_pseudonym", "age_years", "sex", "study_year", "team")


@dataclass(frozen=True)
class Level:
    """One rung of the ladder. None means the quasi-identifier is released as "any"."""

    age_band_years: int | None
    study_year_span: int | None
    sex_kept: bool

    def as_dict(self) -> dict[str, int | str]:
        return {
            "age_band_years": ANY if self.age_band_years is None else self.age_band_years,
            "study_year_span": ANY if self.study_year_span is None else self.study_year_span,
            "sex": "kept" if self.sex_kept else ANY,
        }


# Finest to coarsest. Age is widened first (it is the most identifying and the least useful at
# 5-year precision), then the study year, then sex, then age and year are dropped altogether.
LADDER: tuple[Level, ...] = (
    Level(5, 1, True),
    Level(10, 1, True),
    Level(20, 1, True),
    Level(20, 5, True),
    Level(20, 5, False),
    Level(None, 5, False),
    Level(None, None, False),
)


@dataclass
class KResult:
    """What the gate keeps and what it did.

    table: kept rows; age_years replaced by age_band, sex and study_year (a string) as released.
    level: LADDER rung used, as {"age_band_years": 5|10|20|"any", "study_year_span": 1|5|"any",
        "sex": "kept"|"any"}.
    suppressed: pseudonyms of the cases removed, in input order.
    k_before: smallest class at the finest level (None for an empty input).
    k_after: smallest class kept (None when nothing is kept).
    classes: equivalence classes kept.
    changed: generalised beyond the finest level or suppressed anything.
    """

    table: pa.Table
    level: dict[str, int | str]
    suppressed: list[str] = field(default_factory=list)
    k_before: int | None = None
    k_after: int | None = None
    classes: int = 0
    changed: bool = False


@dataclass(frozen=True)
class _Codes:
    """Integer codes of the finest quasi-identifiers, computed once per table."""

    age: np.ndarray        # 0..AGE_TOP, -1 unknown
    sex: np.ndarray        # index in _SEXES, len(_SEXES) unknown
    years: np.ndarray      # distinct known study years (sorted)
    year_idx: np.ndarray   # index into years, -1 unknown
    team: np.ndarray       # 0..teams-1 (null is a value of its own)
    teams: int


def _array(table: pa.Table, name: str, type_: pa.DataType) -> pa.Array:
    return table.column(name).combine_chunks().cast(type_)


def _codes(table: pa.Table) -> _Codes:
    age = _array(table, "age_years", pa.int64())
    age_np = pc.fill_null(age, -1).to_numpy(zero_copy_only=False)
    age_np = np.where(age_np < 0, -1, np.minimum(age_np, AGE_TOP))

    sex = pc.utf8_upper(pc.utf8_trim_whitespace(_array(table, "sex", pa.string())))
    sex_np = pc.fill_null(pc.index_in(sex, value_set=pa.array(_SEXES)), len(_SEXES))
    sex_np = sex_np.to_numpy(zero_copy_only=False).astype(np.int64)

    year = _array(table, "study_year", pa.int64())
    known = year.is_valid().to_numpy(zero_copy_only=False)
    year_np = pc.fill_null(year, 0).to_numpy(zero_copy_only=False)
    years, inv = np.unique(year_np[known], return_inverse=True)
    year_idx = np.full(len(year_np), -1, dtype=np.int64)
    year_idx[known] = inv

    team = pc.dictionary_encode(_array(table, "team", pa.string()), null_encoding="encode")
    return _Codes(age_np, sex_np, years, year_idx,
                  team.indices.to_numpy(zero_copy_only=False).astype(np.int64), len(team.dictionary))


def _age_key(codes: _Codes, width: int | None) -> np.ndarray:
    """Lower bound of each row's band; -1 unknown; 0 for everyone when age is "any"."""
    if width is None:
        return np.zeros(len(codes.age), dtype=np.int64)
    return np.where(codes.age < 0, -1, (codes.age // width) * width)


def _year_bands(codes: _Codes, span: int | None) -> np.ndarray:
    """Lower bound of each distinct year's span (the same order as codes.years)."""
    if span is None:
        return np.zeros(len(codes.years), dtype=np.int64)
    return (codes.years // span) * span


def _year_key(codes: _Codes, span: int | None) -> np.ndarray:
    """Index of each row's year band among the distinct bands; -1 unknown (or "any" for all)."""
    if span is None:
        return np.zeros(len(codes.year_idx), dtype=np.int64)
    _, band_of_year = np.unique(_year_bands(codes, span), return_inverse=True)
    band_of_year = np.append(band_of_year, -1)   # index -1 (unknown) picks the appended -1
    return band_of_year[codes.year_idx]


def _classes(codes: _Codes, level: Level) -> tuple[np.ndarray, np.ndarray]:
    """(class index of each row, size of each class) at `level`."""
    n = len(codes.age)
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    age = _age_key(codes, level.age_band_years) + 1                   # 0..AGE_TOP+1
    sex = codes.sex if level.sex_kept else np.zeros(n, dtype=np.int64)  # 0..len(_SEXES)
    year = _year_key(codes, level.study_year_span) + 1                # 0..len(years)
    # Pack the four codes into one int64 so one np.unique finds the classes.
    key = ((age * (len(_SEXES) + 1) + sex) * (len(codes.years) + 1) + year) * max(codes.teams, 1)
    key += codes.team
    _, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    return inverse, counts


def _age_label(lo: int, width: int) -> str:
    if lo < 0:
        return UNKNOWN
    return f"{lo}+" if lo + width - 1 >= AGE_TOP else f"{lo}-{lo + width - 1}"


def _year_label(lo: int, span: int) -> str:
    return str(lo) if span == 1 else f"{lo}-{lo + span - 1}"


def _labels(keys: np.ndarray, label: Callable[[int], str]) -> pa.Array:
    """Label every row by labelling each distinct key once (a handful of values, many rows)."""
    distinct, inverse = np.unique(keys, return_inverse=True)
    return pc.take(pa.array([label(int(v)) for v in distinct], pa.string()), pa.array(inverse))


def _released(table: pa.Table, codes: _Codes, level: Level, keep: np.ndarray) -> pa.Table:
    n = int(keep.sum())
    w, s = level.age_band_years, level.study_year_span
    if w is None:
        age = pa.array([ANY] * n, pa.string())
    else:
        age = _labels(_age_key(codes, w)[keep], lambda lo: _age_label(lo, w))
    if level.sex_kept:
        names = (*_SEXES, UNKNOWN)
        sex = _labels(codes.sex[keep], lambda i: names[i])
    else:
        sex = pa.array([ANY] * n, pa.string())
    if s is None:
        year = pa.array([ANY] * n, pa.string())
    else:
        bands = np.append(_year_bands(codes, s), -1)
        year = _labels(bands[codes.year_idx][keep], lambda lo: UNKNOWN if lo < 0 else _year_label(lo, s))

    kept = table.filter(pa.array(keep, pa.bool_()))
    replaced = {"sex": sex, "study_year": year}
    names_out, columns = [], []
    for name in kept.column_names:
        if name == "age_years":
            names_out.append("age_band")
            columns.append(pa.chunked_array([age], pa.string()))
        elif name in replaced:
            names_out.append(name)
            columns.append(pa.chunked_array([replaced[name]], pa.string()))
        else:
            names_out.append(name)
            columns.append(kept.column(name))
    return pa.Table.from_arrays(columns, names=names_out)


def k_anonymise(cases: pa.Table, k: int) -> KResult:
    """Generalise and suppress the cases of one release until every class has at least k cases.

    cases: one row per case with case_pseudonym, age_years, sex, study_year and team (other
    columns are carried through unchanged).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    missing = [c for c in _REQUIRED if c not in cases.column_names]
    if missing:
        raise ValueError(f"k_anonymise: the cases table lacks {', '.join(missing)}")

    codes = _codes(cases)
    n = cases.num_rows
    k_before: int | None = None
    chosen = LADDER[-1]
    counts = sizes = np.zeros(0, dtype=np.int64)
    for i, level in enumerate(LADDER):
        inverse, counts = _classes(codes, level)
        sizes = counts[inverse]
        if i == 0 and n:
            k_before = int(sizes.min())
        if int((sizes < k).sum()) <= MAX_SUPPRESSED_FRACTION * n:
            chosen = level
            break
    # The loop leaves `counts` and `sizes` at the chosen level, or at the coarsest when none was
    # good enough. Suppression removes whole classes, so every class kept still has >= k cases.

    keep = sizes >= k
    suppressed = cases.column("case_pseudonym").filter(pa.array(~keep, pa.bool_())).to_pylist()
    kept_sizes = sizes[keep]
    return KResult(
        table=_released(cases, codes, chosen, keep),
        level=chosen.as_dict(),
        suppressed=[str(s) for s in suppressed],
        k_before=k_before,
        k_after=int(kept_sizes.min()) if len(kept_sizes) else None,
        classes=int((counts >= k).sum()),
        changed=chosen != LADDER[0] or bool(suppressed),
    )


def _level_phrase(level: dict[str, int | str]) -> str:
    age, span, sex = level["age_band_years"], level["study_year_span"], level["sex"]
    parts = [
        "age removed" if age == ANY else f"{age}-year age bands",
        "study year removed" if span == ANY else ("exact study year" if span == 1
                                                  else f"{span}-year study-year ranges"),
        "sex as recorded" if sex == "kept" else "sex removed",
    ]
    return f"{parts[0]}, {parts[1]} and {parts[2]}"


def _cases(n: int) -> str:
    return f"{n:,} case" if n == 1 else f"{n:,} cases"


def describe(result: KResult, k: int) -> str:
    """A Markdown paragraph for the dataset card: numbers only, never a case id."""
    kept = result.table.num_rows
    removed = len(result.suppressed)
    total = kept + removed
    finest = _level_phrase(LADDER[0].as_dict())
    out = [
        f"Re-identification risk was assessed as k-anonymity over the quasi-identifiers age band, sex, "
        f"study year and building team, with threshold k = {k}: every released combination of these "
        f"values is shared by at least {k} cases."
    ]
    if total == 0:
        out.append("The release has no cases, so no equivalence class was formed.")
        return " ".join(out)
    out.append(f"At the finest level ({finest}) the smallest equivalence class had "
               f"{_cases(result.k_before or 0)}.")
    if result.level == LADDER[0].as_dict():
        out.append(f"No generalisation was applied: the release keeps {finest}.")
    else:
        out.append(f"To meet the threshold the release uses {_level_phrase(result.level)}.")
    if removed:
        out.append(f"{_cases(removed)} of {total:,} ({100 * removed / total:.1f}%) fell in combinations "
                   f"shared by fewer than {k} cases and {'was' if removed == 1 else 'were'} suppressed.")
    else:
        out.append("No case was suppressed.")
    if kept:
        out.append(f"The {_cases(kept)} released form {result.classes:,} equivalence "
                   f"{'class' if result.classes == 1 else 'classes'}; the smallest has "
                   f"{_cases(result.k_after or 0)}.")
    else:
        out.append("No case could be released.")
    return " ".join(out)


_AS = re.compile(r"(\d{3})([DWMY])")
_DAYS_PER_YEAR = 365.25


def age_in_years(patient_age: str | None) -> int | None:
    """Whole years of a DICOM AS value ("045Y" 45, "006M" 0, "010W" 0, "003D" 0); None if malformed."""
    if not isinstance(patient_age, str):
        return None
    m = _AS.fullmatch(patient_age.strip())
    if m is None:
        return None
    n, unit = int(m.group(1)), m.group(2)
    if unit == "Y":
        return n
    if unit == "M":
        return n // 12
    days = n * 7 if unit == "W" else n
    return int(days // _DAYS_PER_YEAR)
