"""The re-identification gate: k-anonymity over age band, sex, study year and team."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest

from medlake.sharing.kanon import (
    LADDER,
    MAX_SUPPRESSED_FRACTION,
    KResult,
    age_in_years,
    describe,
    k_anonymise,
)

QI = ("age_band", "sex", "study_year", "team")


def _cohort(rows: list[tuple[int | None, str | None, int | None, str]]) -> pa.Table:
    return pa.table({
        "case_pseudonym": [f"CASE-{i:05d}" for i in range(len(rows))],
        "age_years": pa.array([r[0] for r in rows], pa.int64()),
        "sex": pa.array([r[1] for r in rows], pa.string()),
        "study_year": pa.array([r[2] for r in rows], pa.int32()),
        "team": [r[3] for r in rows],
    })


def _class_sizes(result: KResult) -> Counter:
    return Counter(tuple(row[c] for c in QI) for row in result.table.select(list(QI)).to_pylist())


def _uniform(n_per_class: int) -> list[tuple[int | None, str | None, int | None, str]]:
    """Every combination of two age bands, two sexes and two years, n_per_class cases each."""
    rows = []
    for age in (42, 67):
        for sex in ("M", "F"):
            for year in (2016, 2017):
                rows += [(age, sex, year, "ntu")] * n_per_class
    return rows


def test_cohort_that_meets_k_is_released_unchanged():
    cohort = _cohort(_uniform(6))
    result = k_anonymise(cohort, 5)
    assert result.changed is False
    assert result.suppressed == []
    assert result.level == {"age_band_years": 5, "study_year_span": 1, "sex": "kept"}
    assert result.k_before == result.k_after == 6
    assert result.classes == 8
    assert result.table.num_rows == cohort.num_rows
    assert "age_years" not in result.table.column_names
    assert set(result.table.column("age_band").to_pylist()) == {"40-44", "65-69"}
    assert set(result.table.column("study_year").to_pylist()) == {"2016", "2017"}
    assert result.table.column("case_pseudonym").to_pylist() == cohort.column("case_pseudonym").to_pylist()
    assert "No generalisation was applied" in describe(result, 5)


def test_rare_ages_widen_to_bands():
    # Two ages per 5-year band, two cases each, per sex: classes of 4 at 5-year bands (all below 5),
    # 8 at 10-year bands.
    rows = [(age, sex, 2018, "tvgh") for age in (42, 44, 45, 47) for sex in ("M", "F") for _ in range(2)]
    result = k_anonymise(_cohort(rows), 5)
    assert result.k_before == 4
    assert result.level["age_band_years"] == 10
    assert result.level["study_year_span"] == 1 and result.level["sex"] == "kept"
    assert result.suppressed == []
    assert result.changed is True
    assert result.k_after is not None and result.k_after >= 5
    assert set(result.table.column("age_band").to_pylist()) == {"40-49"}
    assert min(_class_sizes(result).values()) == result.k_after


def test_an_outlier_is_suppressed_and_the_rest_kept_at_the_finest_level():
    rows = _uniform(13) + [(90, "O", 2003, "ntu")]   # one case in 105, alone in its class
    result = k_anonymise(_cohort(rows), 5)
    assert 1 <= MAX_SUPPRESSED_FRACTION * len(rows)
    assert result.level == LADDER[0].as_dict()
    assert result.suppressed == [f"CASE-{len(rows) - 1:05d}"]
    assert result.k_before == 1 and result.k_after == 13
    assert result.changed is True
    assert "90+" not in result.table.column("age_band").to_pylist()
    text = describe(result, 5)
    assert "1 case of 105" in text and "CASE-" not in text


def test_an_outlier_alone_at_every_level_is_suppressed():
    # A small release where no level gets small classes under the limit, and one case from a
    # team nobody else in the release shares: team is never generalised, so it stays alone.
    rows = [(30 + 7 * i, "MF"[i % 2], 2005 + 3 * i, "tmu") for i in range(8)] + [(50, "F", 2012, "ntu")]
    result = k_anonymise(_cohort(rows), 5)
    assert result.level == LADDER[-1].as_dict()
    assert result.suppressed == [f"CASE-{len(rows) - 1:05d}"]
    assert result.table.column("team").unique().to_pylist() == ["tmu"]
    assert set(result.table.column("age_band").to_pylist()) == {"any"}
    assert set(result.table.column("study_year").to_pylist()) == {"any"}
    assert set(result.table.column("sex").to_pylist()) == {"any"}
    assert result.k_after == 8 and result.classes == 1


def test_stricter_k_generalises_further_on_the_same_data():
    # Ages 40-59 at one per year of age per (sex, year): 5-year bands give classes of 5,
    # 10-year bands 10 and 20-year bands 20.
    rows = [(age, sex, year, "tmu") for age in range(40, 60) for sex in ("M", "F") for year in (2014, 2015)]
    cohort = _cohort(rows)
    k5, k11 = k_anonymise(cohort, 5), k_anonymise(cohort, 11)
    assert k5.changed is False and k5.k_after == 5
    assert k11.changed is True
    assert k11.level["age_band_years"] == 20
    assert k11.k_after is not None and k11.k_after >= 11
    assert set(k11.table.column("age_band").to_pylist()) == {"40-59"}
    assert k11.classes < k5.classes
    assert min(_class_sizes(k11).values()) >= 11


def test_study_years_widen_after_age_and_nulls_are_their_own_value():
    # Ages cannot help (all 5-year bands are already one per class), so years must widen.
    rows = [(45, sex, year, "ntu") for sex in ("M", "F") for year in range(2015, 2020) for _ in range(2)]
    rows += [(None, None, None, "ntu")] * 5
    result = k_anonymise(_cohort(rows), 5)
    assert result.level == {"age_band_years": 20, "study_year_span": 5, "sex": "kept"}
    assert set(result.table.column("study_year").to_pylist()) == {"2015-2019", "unknown"}
    sizes = _class_sizes(result)
    assert sizes[("unknown", "unknown", "unknown", "ntu")] == 5
    assert sizes[("40-59", "M", "2015-2019", "ntu")] == 10
    assert result.suppressed == []


def test_top_age_band_is_open_ended():
    rows = [(90, "F", 2019, "ntu")] * 5 + [(88, "F", 2019, "ntu")] * 5
    result = k_anonymise(_cohort(rows), 5)
    assert sorted(set(result.table.column("age_band").to_pylist())) == ["85-89", "90+"]


def test_empty_release_and_bad_input():
    result = k_anonymise(_cohort([]), 5)
    assert result.table.num_rows == 0 and result.k_before is None and result.k_after is None
    assert result.classes == 0 and result.changed is False
    assert "no cases" in describe(result, 5)
    with pytest.raises(ValueError, match="study_year"):
        k_anonymise(_cohort(_uniform(1)).drop_columns(["study_year"]), 5)
    with pytest.raises(ValueError):
        k_anonymise(_cohort(_uniform(1)), 0)


def test_everything_suppressed_when_the_release_is_smaller_than_k():
    result = k_anonymise(_cohort([(40, "M", 2010, "ntu")] * 3), 5)
    assert result.table.num_rows == 0 and len(result.suppressed) == 3
    assert result.k_after is None and result.classes == 0
    assert "No case could be released" in describe(result, 5)


@pytest.mark.parametrize("value,years", [
    ("045Y", 45), ("090Y", 90), ("006M", 0), ("030M", 2), ("010W", 0), ("104W", 1), ("003D", 0),
    ("800D", 2), ("045Y ", 45), ("45Y", None), ("045X", None), ("04AY", None), ("", None), (None, None),
])
def test_age_in_years(value, years):
    assert age_in_years(value) == years
