"""Keyed pseudonyms, UIDs and date shifts: deterministic per key, different across keys."""

from __future__ import annotations

import base64
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from medlake.deid.keys import DeidKeys

REPO = Path(__file__).resolve().parent.parent
SECRET = bytes(range(32))
_UID_225 = re.compile(r"^2\.25\.(0|[1-9][0-9]*)$")


def _sample(keys: DeidKeys) -> list[str]:
    return [keys.patient_pseudonym("teamA", "12345"), keys.uid("1.2.826.0.1.3680043.8.498.1"),
            str(keys.date_shift_days("teamA", "12345")), keys.accession("teamA", "A0001"),
            keys.case_id("teamA", "lung", "C1")]


def test_same_key_same_outputs_across_calls_and_processes():
    here = _sample(DeidKeys(SECRET))
    assert here == _sample(DeidKeys(SECRET))
    code = ("from medlake.deid.keys import DeidKeys; "
            f"k = DeidKeys(bytes(range(32))); "
            "print('|'.join([k.patient_pseudonym('teamA', '12345'), k.uid('1.2.826.0.1.3680043.8.498.1'), "
            "str(k.date_shift_days('teamA', '12345')), k.accession('teamA', 'A0001'), "
            "k.case_id('teamA', 'lung', 'C1')]))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip().split("|") == here


def test_different_key_gives_different_outputs():
    a, b = _sample(DeidKeys(SECRET)), _sample(DeidKeys(SECRET[::-1]))
    for x, y in zip(a, b):
        if x.lstrip("-").isdigit():
            continue  # a shift has only 3650 values: checked over many patients below
        assert x != y
    shifts_a = [DeidKeys(SECRET).date_shift_days("t", str(i)) for i in range(50)]
    shifts_b = [DeidKeys(SECRET[::-1]).date_shift_days("t", str(i)) for i in range(50)]
    assert shifts_a != shifts_b


def test_pseudonym_form_and_separation():
    k = DeidKeys(SECRET)
    p = k.patient_pseudonym("teamA", "12345")
    assert re.fullmatch(r"PSN-[A-Z2-7]{20}", p)
    # two hospitals' "12345" are different people
    assert p != k.patient_pseudonym("teamB", "12345")
    # length-prefixed inputs: shifting a character between fields changes the output
    assert k.case_id("t", "ab", "c") != k.case_id("t", "a", "bc")
    assert len(k.accession("teamA", "A0001")) <= 16  # AccessionNumber is SH


def test_outputs_never_change_across_versions():
    # An existing lake's pseudonyms, case ids and accessions were made by earlier versions: a faster
    # encoding must give the same characters, or a re-sent batch would become new patients.
    k = DeidKeys(b"known-answer-secret-0123456789ab")
    assert k.patient_pseudonym("ntu", "P0001") == "PSN-P4EFPOCWI6MYRPYUHR4W"
    assert k.accession("ntu", "A123") == "ACC-FGBPNWC6STW5"
    assert k.case_id("ntu", "ccta", "c1") == "CASE-3PJK72XWHJX6G63U3JL5"
    assert k.opaque_id("batch", "ntu", "ccta", "b1") == "Q72HS3BUV6XGGHSKTILW"
    digests = [hashlib.sha256(str(i).encode()).digest() for i in range(2000)]
    for n in (12, 20):
        assert all(DeidKeys._b32(d, n) == base64.b32encode(d).decode()[:n] for d in digests)


def test_uid_form_is_valid_2_25():
    k = DeidKeys(SECRET)
    seen = set()
    for i in range(2000):
        u = k.uid(f"1.2.826.0.1.3680043.8.498.{i}")
        assert _UID_225.match(u), u
        assert len(u) <= 64
        assert all(not (len(c) > 1 and c.startswith("0")) for c in u.split("."))
        n = int(u.split(".")[2])
        assert n < 2 ** 128 and (n >> 76) & 0xF == 8  # a version-8 UUID
        seen.add(u)
    assert len(seen) == 2000
    # keyed on the UID alone: surrounding whitespace/padding does not change it
    assert k.uid("1.2.3.4") == k.uid("1.2.3.4\x00") == DeidKeys(SECRET).uid("1.2.3.4")


def test_date_shift_never_zero_and_stable_per_patient():
    k = DeidKeys(SECRET)
    shifts = [k.date_shift_days("teamA", f"P{i:05d}") for i in range(5000)]
    assert all(-3650 <= s <= -1 for s in shifts)
    assert len(set(shifts)) > 1000  # spread over the range, not a constant
    assert shifts == [DeidKeys(SECRET).date_shift_days("teamA", f"P{i:05d}") for i in range(5000)]


def test_secret_is_checked_and_never_shown():
    with pytest.raises(ValueError):
        DeidKeys(b"short")
    k = DeidKeys(SECRET)
    assert SECRET.hex() not in repr(k) and str(SECRET) not in repr(k)
