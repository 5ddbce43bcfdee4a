"""Replacement values: dummies per VR, shifted dates, grouped ages, scrubbed descriptors.

Pure functions on strings; the walker decides which one applies.
"""

from __future__ import annotations

import datetime as dt
import re

DUMMY_TEXT = "DEIDENTIFIED"
DUMMY_DA = "19000101"
DUMMY_TM = "000000"
DUMMY_DT = "19000101000000"

_TEXT_DUMMIES = {
    "AE": DUMMY_TEXT, "CS": DUMMY_TEXT, "LO": DUMMY_TEXT, "SH": DUMMY_TEXT, "LT": DUMMY_TEXT,
    "ST": DUMMY_TEXT, "UT": DUMMY_TEXT, "UC": DUMMY_TEXT, "PN": DUMMY_TEXT,
    "DA": DUMMY_DA, "TM": DUMMY_TM, "DT": DUMMY_DT, "DS": "0", "IS": "0", "AS": "000Y",
    "UR": "urn:deidentified",
}
# Binary dummies: zeros, 8 bytes so the length suits every element size (2, 4, 8).
_BINARY = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "AT": 4, "FD": 8, "SV": 8, "UV": 8}
TEXT_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM",
                      "UC", "UI", "UR", "UT"})
FREE_TEXT_VRS = frozenset({"LT", "ST", "UT"})
MAX_LEN = {"SH": 16, "CS": 16, "AE": 16, "LO": 64, "PN": 64}


def dummy_bytes(vr: str) -> bytes:
    """A non-empty value conformant with `vr`, already padded to even length."""
    if vr in _TEXT_DUMMIES:
        return pad(_TEXT_DUMMIES[vr].encode("ascii"), vr)
    return b"\x00" * _BINARY.get(vr, 8)


def pad(value: bytes, vr: str) -> bytes:
    if len(value) % 2:
        value += b"\x00" if vr in ("UI", "OB", "UN") else b" "
    return value


# --- dates -----------------------------------------------------------------------------------

_DA = re.compile(r"^(\d{4})\.?(\d{2})\.?(\d{2})$")  # also the ACR-NEMA "YYYY.MM.DD" form
_DT = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(.*)$")


def shift_da(value: str, days: int) -> str | None:
    """Shift each DA value (and both ends of a range); None if any part is not a date."""
    out = []
    for v in value.split("\\"):
        parts = []
        for p in v.strip().split("-") if "-" in v else [v.strip()]:
            if p == "" and "-" in v:
                parts.append("")
                continue
            m = _DA.match(p)
            if not m:
                return None
            try:
                d = dt.date(int(m[1]), int(m[2]), int(m[3])) + dt.timedelta(days=days)
            except (ValueError, OverflowError):
                return None
            parts.append(f"{d.year:04d}{d.month:02d}{d.day:02d}")
        out.append("-".join(parts))
    return "\\".join(out)


def shift_dt(value: str, days: int) -> str | None:
    """Shift the date part of each DT value, keeping its precision, time and UTC offset."""
    out = []
    for v in value.split("\\"):
        m = _DT.match(v.strip())
        if not m:
            return None
        year, month, day, rest = m[1], m[2], m[3], m[4]
        if rest and not month or rest and not day:
            return None
        try:
            d = dt.date(int(year), int(month or 1), int(day or 1)) + dt.timedelta(days=days)
        except (ValueError, OverflowError):
            return None
        text = f"{d.year:04d}"
        if month:
            text += f"{d.month:02d}"
        if day:
            text += f"{d.day:02d}"
        out.append(text + rest)
    return "\\".join(out)


# --- ages ------------------------------------------------------------------------------------

_AS = re.compile(r"^(\d{3})([DWMY])$")


def group_age(value: str, max_years: int, grouped: str) -> str | None:
    """Ages above max_years become `grouped`; None if the value is not an Age String."""
    m = _AS.match(value.strip())
    if not m:
        return None
    n, unit = int(m[1]), m[2]
    years = {"D": n / 365.25, "W": n * 7 / 365.25, "M": n / 12, "Y": n}[unit]
    return grouped if years > max_years else value.strip()


# --- descriptors -----------------------------------------------------------------------------

_TOKEN = re.compile(r"[^\s_\-/,;:()\[\]^|+]+")


def identifier_tokens(texts) -> frozenset[str]:
    """Lower-case tokens of identifying values (names, ids) to scrub from descriptors."""
    out = set()
    for t in texts:
        for tok in _TOKEN.findall(str(t).replace("^", " ").replace("=", " ")):
            if len(tok) >= 2:
                out.add(tok.lower())
    return frozenset(out)


def scrub_descriptor(value: str, vr: str, identifiers: frozenset[str]) -> str:
    """Keep a descriptor's meaning, drop what could identify.

    Dropped tokens: any naming the patient or staff of this object (`identifiers`), anything with
    4+ digits (dates, ids, phone numbers; "5mm", "T2", "3D" survive), e-mail addresses. Not NLP: a
    name the object does not hold elsewhere survives, which is why the release checker exists.
    """

    def keep(m: re.Match) -> str:
        tok = m.group(0)
        if tok.lower() in identifiers or sum(c.isdigit() for c in tok) >= 4 or "@" in tok:
            return ""
        return tok

    out = _TOKEN.sub(keep, value)
    out = re.sub(r"\s{2,}", " ", out).strip()
    limit = MAX_LEN.get(vr)
    return out[:limit].rstrip() if limit else out
