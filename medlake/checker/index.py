"""The identifier index: known values (from the vault and the source tables) plus built-in patterns.

Matching rules (what counts as "the same value"):

* Both the identifier and the scanned text are *folded*: Unicode NFKD (full-width digits become
  ASCII, accents are dropped), case-folded, and every character that is not a letter or a digit is
  deleted, except a "." between two digits (UIDs, decimals) and "\\" (the DICOM value separator),
  which stay. So ``CHEN^YI-CHUN``, ``Chen Yi-Chun``, ``CHEN YI CHUN`` and ``chen_yi_chun`` are all
  ``chenyichun``, while ``45.957\\58.290`` never becomes one long number.
* Variants are indexed under the same kind: each ``=`` component group of a DICOM PN and the
  given-name-first order (``YI-CHUN CHEN``); for dates YYYYMMDD and the day-first and month-first
  orders. A date parser recognises dates in text (1960-01-01, 1960/1/1, 1960.01.01, 1960年1月1日,
  01/01/1960) and looks them up; a digit-only value written in dash/space/slash groups
  (1234-5678, 0912 345 678) is looked up whole.
* A folded value is searched as a substring of the folded text (a chart number inside a file name,
  a name inside free text, 陳怡君 inside a Chinese sentence), with guards: if the value starts
  (ends) with a digit, the character before (after) it in the original text must not be a digit;
  if it starts (ends) with a Latin letter, that neighbour must not be a Latin letter (ideographs
  have no guard); a digit-only value must appear as written (contiguous digits); and a match inside
  a hex token of 12 or more characters (a hash, a UUID group) is a coincidence, not a finding. So
  the chart number 12345678 is found in P12345678.dcm but not in 2.25.9912345678123.
* Short values: a folded value of weight < 4 (an ideograph or other wide character weighs 2, any
  other character 1) is never searched as a substring; it matches only a whole text value that
  folds to exactly the same thing. A two-character Chinese name (weight 4) is a substring; a
  three-digit id or a one-ideograph surname is not.

Search: values are hashed on their last 8 folded characters (4 for values of 4..7 characters); the
text's 8- and 4-character slices are intersected with those keys at C speed, and only hits are
verified, so the cost per value hardly depends on the number of identifiers (tests/test_checker.py
prints the rate). Results are cached per distinct text value.

Built-in patterns, independent of any list (kinds ``national_id_pattern``, ``phone_pattern``,
``email_pattern``): a Taiwanese national ID (a letter, 1/2 (citizens) or 8/9 (the 2021 resident
certificate format), eight digits, valid check digit; not inside a longer hex token such as a hash
or a UUID), a Taiwanese mobile number (09xx-xxx-xxx or +886 9xx..., separators optional; never
preceded or followed by a digit or a "digit." so UIDs, DS values and date-times do not match), and
an e-mail address.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

PREFIX = 4          # the hash key length, and the minimum substring weight
_CACHE_MAX = 200_000

_ASCII_DROP = re.compile(r"[^a-z0-9.\\]+")
_ASCII_DOT = re.compile(r"(?<![0-9])\.|\.(?![0-9])")

# --- folding -----------------------------------------------------------------------------------

_fold_cache: dict[str, str] = {}


def _fold_char(c: str) -> str:
    """Letters and digits of one character; "." and "\\" are returned as themselves."""
    r = _fold_cache.get(c)
    if r is None:
        n = unicodedata.normalize("NFKD", c)
        if n in (".", "\\"):
            r = n
        else:
            r = "".join(x for x in n.casefold() if x.isalnum())
        _fold_cache[c] = r
    return r


def fold(text: str) -> str:
    """The comparison form of a value: NFKD, case-folded, letters and digits only, except that a
    "." between two digits (UIDs, decimals) and every "\\" (DICOM value separator) are kept, so that
    no match can glue 45.957\\58.290 into one number."""
    if text.isascii():
        return _ASCII_DROP.sub("", _ASCII_DOT.sub("", text.lower()))
    return _fold_map(text)[0]


def _fold_map(text: str) -> tuple[str, list[int]]:
    """The folded text and, for each folded character, the index of the original it came from."""
    out: list[str] = []
    where: list[int] = []
    folded = [_fold_char(c) for c in text]
    n = len(text)
    for i, f in enumerate(folded):
        if f == ".":
            prev = folded[i - 1] if i > 0 else ""
            nxt = folded[i + 1] if i + 1 < n else ""
            if not (prev[-1:].isdigit() and nxt[:1].isdigit()):
                continue
        for x in f:
            out.append(x)
            where.append(i)
    return "".join(out), where


def _is_wide(c: str) -> bool:
    return unicodedata.east_asian_width(c) in ("W", "F")


def weight(folded: str) -> int:
    if folded.isascii():
        return len(folded)
    return sum(2 if _is_wide(c) else 1 for c in folded)


def _edge_class(c: str) -> str:
    """'d' digit, 'l' Latin-like letter, '' no guard (ideographs, kana, hangul...)."""
    if c.isdigit():
        return "d"
    if c.isalpha() and not _is_wide(c):
        return "l"
    return ""


def _neighbour_class(text: str, i: int) -> str:
    if i < 0 or i >= len(text):
        return ""
    f = _fold_char(text[i])
    return _edge_class(f[-1]) if f else ""


# --- variants ----------------------------------------------------------------------------------

_DATE_FULL = re.compile(r"^\s*(\d{4})[-/.]?(\d{2})[-/.]?(\d{2})(?:[T ].*)?\s*$")
# Dates inside text, with or without zero padding: 1960-1-1, 1960/01/01, 1960.1.1, 1960年1月1日.
_DATE_IN_TEXT = re.compile(r"(?<![\d.])(1[89]\d\d|20\d\d)(?:\s*[-/.年]\s*|\s+)(\d{1,2})(?:\s*[-/.月]\s*|\s+)(\d{1,2})(?!\d)(?!\.\d)")
_DATE_DMY_IN_TEXT = re.compile(r"(?<!\d)(\d{1,2})[-/.](\d{1,2})[-/.](1[89]\d\d|20\d\d)(?!\d)")


def _valid_date(y: int, m: int, d: int) -> bool:
    return 1800 <= y <= 2100 and 1 <= m <= 12 and 1 <= d <= 31


_PLAIN = re.compile(r"[0-9A-Za-z.]+")


def _variants(kind: str, value: str) -> set[str]:
    """Folded forms of one identifier value."""
    v = value.strip()
    if _PLAIN.fullmatch(v) and not (len(v) >= 8 and v[:4].isdigit() and _DATE_FULL.match(v)):
        return {fold(v)}      # UIDs, chart and accession numbers: one form (most of a team's values)
    out = {fold(v)}
    m = _DATE_FULL.match(v)
    if m and _valid_date(int(m[1]), int(m[2]), int(m[3])):
        y, mo, d = m[1], m[2], m[3]
        out |= {y + mo + d, d + mo + y, mo + d + y}
    if "^" in v or "=" in v:                              # DICOM PN: groups and components
        for group in v.split("="):
            comps = [c for c in group.split("^") if c.strip()]
            if comps:
                out.add(fold("".join(comps)))
            if len(comps) >= 2:
                out.add(fold("".join(comps[1:2] + comps[:1] + comps[2:])))
    elif "name" in kind and " " in v.strip():             # "Chen Yi-Chun" -> "Yi-Chun Chen"
        parts = v.split()
        out.add(fold("".join(parts[1:] + parts[:1])))
    out.discard("")
    return out


# --- built-in patterns -------------------------------------------------------------------------

_ID_LETTERS = dict(zip("ABCDEFGHJKLMNPQRSTUVXYWZIO", range(10, 36)))
_NATIONAL_ID = re.compile(r"(?<!\d)([A-Za-z])([1289]\d{8})(?!\d)")
_HEX_TOKEN = re.compile(r"[0-9A-Fa-f]+")
_PHONE = re.compile(r"(?<!\d)(?<!\d\.)(?:\+?886[-\s]?|0)9\d{2}[-\s]?\d{3}[-\s]?\d{3}(?!\d)(?!\.\d)")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
_DIGIT_RUN8 = re.compile(r"\d{8}")


def national_id_valid(letter: str, digits: str) -> bool:
    code = _ID_LETTERS.get(letter.upper())
    if code is None or len(digits) != 9 or not digits.isdigit():
        return False
    d = [int(c) for c in digits]
    total = code // 10 + (code % 10) * 9 + sum(x * w for x, w in zip(d[:8], range(8, 0, -1))) + d[8]
    return total % 10 == 0


def _in_hash_token(text: str, start: int, end: int) -> bool:
    """True when [start, end) is part of a longer letters-and-digits token that is all hex digits
    and at least 12 long: a hash, a UUID group, a hex file name. A coincidence, not an identifier."""
    a, b = start, end
    n = len(text)
    while a > 0 and text[a - 1].isalnum():
        a -= 1
    while b < n and text[b].isalnum():
        b += 1
    return (b - a) > (end - start) and (b - a) >= 12 and _HEX_TOKEN.fullmatch(text, a, b) is not None


def pattern_kinds(text: str, allowed: frozenset[str] = frozenset()) -> set[str]:
    kinds: set[str] = set()
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    has_digits = _DIGIT_RUN8.search(text) is not None
    if has_digits:
        for m in _NATIONAL_ID.finditer(text):
            if m.group(0).upper() in allowed:
                continue
            if national_id_valid(m[1], m[2]) and not _in_hash_token(text, m.start(), m.end()):
                kinds.add("national_id_pattern")
                break
    # a phone has 9 digits after the leading 0 but may carry separators: test cheaply first
    if "09" in text or "886" in text:
        for m in _PHONE.finditer(text):
            if fold(m.group(0)) not in allowed and not _in_hash_token(text, m.start(), m.end()):
                kinds.add("phone_pattern")
                break
    if "@" in text:
        for m in _EMAIL.finditer(text):
            if m.group(0).lower() not in allowed:
                kinds.add("email_pattern")
                break
    return kinds


# --- the index ---------------------------------------------------------------------------------


_DIGIT_GROUPS = re.compile(r"(?<![0-9A-Za-z])\d+(?:[-\s/]\d+)+(?![0-9A-Za-z])")
_SHORT_KEY, _LONG_KEY = 4, 8
# Values that are one keyed token by construction: a 2.25 UID (optionally as a .dcm file name), a
# pseudonym (PSN-..., CASE-..., base32), a sha256. Like a UID in a DICOM header they are compared
# whole: an identifier can only sit inside one by coincidence of digits, which a substring search
# would report as a finding in nearly every UID of a large release.
_KEYED_TOKEN = re.compile(r"2\.25\.\d{10,}(?:\.dcm)?|[A-Z]{2,8}-[A-Z2-7]{16,}(?:\.[a-z]{2,4})?|[0-9a-f]{64}")
_KEYED_PATH_WORDS = frozenset({"objects", "slides", "annotations", "masks", "sheets", "aim", "tables"})
_ANY_DIGIT = re.compile(r"\d")


def _keyed_path(text: str) -> bool:
    parts = text.split("/")
    return all(p in _KEYED_PATH_WORDS or _KEYED_TOKEN.fullmatch(p) for p in parts) and \
        any(p not in _KEYED_PATH_WORDS for p in parts)


def _is_keyed(text: str) -> bool:
    return bool(_KEYED_TOKEN.fullmatch(text)) or ("/" in text and _keyed_path(text))


_NO_KINDS: frozenset[str] = frozenset()


def _put(table: dict[str, list[tuple[str, tuple[str, ...]]]], key: str, f: str, kt: tuple[str, ...],
         known: bool) -> None:
    entries = table.setdefault(key, [])
    if known:
        for i, (g, _kinds) in enumerate(entries):
            if g == f:
                entries[i] = (f, kt)
                return
    entries.append((f, kt))


def _grams(f: str, k: int):
    """Every k-character slice of f, lazily, at C speed."""
    n = len(f)
    return map(f.__getitem__, map(slice, range(n - k + 1), range(k, n + 1)))


class IdentifierIndex:
    """Known identifier values by kind, searchable in any text; see the module docstring."""

    def __init__(self, patterns: bool = True, allowed_values: Iterable[str] = ()):
        # Values are keyed on their last 8 (or, for 4..7 long values, 4) folded characters: the
        # tails of UIDs, dates and chart numbers are far more distinctive than their heads.
        self._long: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        self._short: dict[str, list[tuple[str, tuple[str, ...]]]] = {}
        self._wide: dict[str, tuple[str, ...]] = {}       # 2-3 ideograph values (weight >= 4)
        self._wide_lengths: tuple[int, ...] = ()
        self._exact: dict[str, frozenset[str]] = {}      # short values: whole-value matches only
        self._digits: dict[str, frozenset[str]] = {}     # digit-only values, for 1234-5678 forms
        self._dates: dict[str, frozenset[str]] = {}      # YYYYMMDD -> kinds, for the date parser
        self.patterns = patterns
        self.allowed: frozenset[str] = frozenset()
        self._cache: dict[str, tuple[str, ...]] = {}
        self._whole: dict[str, tuple[str, ...]] = {}
        self._long_keys: frozenset[str] = frozenset()
        self._short_keys: frozenset[str] = frozenset()
        # Kind sets shared by every value that has them (one object per sorted tuple of kinds),
        # and the ways to reach one from another.
        self._as_set: dict[tuple[str, ...], frozenset[str]] = {}
        self._as_tuple: dict[frozenset[str], tuple[str, ...]] = {}
        self._added: dict[tuple[frozenset[str], str], frozenset[str]] = {}
        self.size = 0
        self.set_allowed(allowed_values)

    def set_allowed(self, values: Iterable[str]) -> None:
        """Values that built-in patterns must not report (a programme contact e-mail, say)."""
        allowed = set()
        for v in values:
            allowed |= {v.strip().lower(), v.strip().upper(), fold(v)}
        self.allowed = frozenset(allowed)
        self._cache.clear()

    @classmethod
    def build(cls, identifiers: Iterable[tuple[str, str]], patterns: bool = True,
              allowed_values: Iterable[str] = ()) -> IdentifierIndex:
        """From (kind, value) pairs; empty and None values are skipped, duplicates merged."""
        self = cls(patterns=patterns, allowed_values=allowed_values)
        self.extend(identifiers)
        return self

    def extend(self, identifiers: Iterable[tuple[str, str]]) -> int:
        """Add (kind, value) pairs; returns how many folded forms were added or gained a kind.

        A team's restricted zone holds millions of values (2 million original UIDs at full scale)
        in a handful of kind combinations: the kind sets are shared objects, not one per value,
        which took the full-scale index from 4.5 GiB to 3.0 GiB.
        """
        changed: dict[str, frozenset[str]] = {}
        for kind, value in set(identifiers):
            if value is None:
                continue
            value = str(value)
            if not value.strip():
                continue
            for f in _variants(kind, value):
                old = changed.get(f)
                if old is None:
                    known = self._whole.get(f)
                    old = self._as_set[known] if known is not None else _NO_KINDS
                if kind not in old:
                    changed[f] = self._with(old, kind)
        for f, kinds in changed.items():
            known = f in self._whole
            kt = self._as_tuple[kinds]
            if f.isdigit():
                self._digits[f] = kinds
                if len(f) == 8 and _valid_date(int(f[:4]), int(f[4:6]), int(f[6:])):
                    self._dates[f] = kinds
            if weight(f) < PREFIX:
                self._exact[f] = kinds
            elif len(f) >= _LONG_KEY:
                _put(self._long, f[-_LONG_KEY:], f, kt, known)
            elif len(f) >= _SHORT_KEY:
                _put(self._short, f[-_SHORT_KEY:], f, kt, known)
            else:
                self._wide[f] = kt
            self._whole[f] = kt
        if changed:
            self._long_keys = frozenset(self._long)
            self._short_keys = frozenset(self._short)
            self._wide_lengths = tuple(sorted({len(k) for k in self._wide}))
            self.size = len(self._whole)
            self._cache.clear()
        return len(changed)

    def _with(self, kinds: frozenset[str], kind: str) -> frozenset[str]:
        out = self._added.get((kinds, kind))
        if out is None:
            kt = tuple(sorted(kinds | {kind}))
            out = self._as_set.setdefault(kt, frozenset(kt))
            self._as_tuple[out] = kt
            self._added[(kinds, kind)] = out
        return out

    # ------------------------------------------------------------------------------------------

    def find(self, text: str) -> list[str]:
        """The kinds of every identifier (and built-in pattern) found in one text value, sorted."""
        if not text:
            return []
        if _KEYED_TOKEN.fullmatch(text) or (("/" in text) and _keyed_path(text)):
            return list(self._whole_tokens(text))
        hit = self._cache.get(text)
        if hit is None:
            hit = tuple(sorted(self._find(text)))
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[text] = hit
        return list(hit)

    def _whole_tokens(self, text: str) -> tuple[str, ...]:
        kinds: set[str] = set()
        for part in text.split("/"):
            if part in _KEYED_PATH_WORDS:
                continue
            stem = part[:-4] if part.endswith(".dcm") else part
            # UIDs and hashes fold to themselves (digits, dots, lower-case hex): no fold needed.
            k = self._whole.get(stem) if (stem[:1].isdigit() or stem.islower()) else self.find_whole(stem)
            if k:
                kinds.update(k)
        return tuple(sorted(kinds))

    def suspects(self, texts: list[str], chunk_chars: int = 65536) -> list[int]:
        """Positions of the texts that may hold something: the texts are searched joined, a chunk
        at a time, and only a chunk that matches is searched value by value. A newline between
        values is a boundary, so joining can add a match across two values but never hide one;
        clean data (the usual case) costs one search per chunk instead of one per value."""
        keyed = [bool(t) and _is_keyed(t) for t in texts]
        out: list[int] = [i for i, t in enumerate(texts) if keyed[i] and self._whole_tokens(t)]
        texts = ["" if k else t for t, k in zip(texts, keyed)]
        start, size = 0, 0
        for i, t in enumerate(texts + [None]):
            if t is not None and (size + len(t) + 1 <= chunk_chars or i == start):
                size += len(t) + 1
                continue
            if self._find("\n".join(texts[start:i])):
                out += [j for j in range(start, i) if texts[j] and self.find(texts[j])]
            start, size = i, (len(t) + 1 if t is not None else 0)
        return sorted(out)

    def find_whole(self, text: str) -> tuple[str, ...]:
        """Kinds of identifiers equal to the whole value (after folding): for values that are one
        token by construction, such as a UID, where a substring search adds nothing but cost."""
        return self._whole.get(fold(text), ())

    def _find(self, text: str) -> set[str]:
        kinds: set[str] = set()
        f = fold(text)
        if f:
            k = self._exact.get(f)
            if k:
                kinds |= k
            kinds |= self._substrings(text, f)
        if self._digits and _ANY_DIGIT.search(text):
            for m in _DIGIT_GROUPS.finditer(text):
                k = self._digits.get(fold(m.group(0)))
                if k:
                    kinds |= k
            if self._dates:
                for rx, order in ((_DATE_IN_TEXT, (0, 1, 2)), (_DATE_DMY_IN_TEXT, (2, 1, 0))):
                    for m in rx.finditer(text):
                        y, mo, d = (int(m.group(i + 1)) for i in order)
                        if _valid_date(y, mo, d):
                            k = self._dates.get(f"{y:04d}{mo:02d}{d:02d}")
                            if k:
                                kinds |= k
                        if order == (2, 1, 0) and _valid_date(y, d, mo):   # month-first: 01/31/1960
                            k = self._dates.get(f"{y:04d}{d:02d}{mo:02d}")
                            if k:
                                kinds |= k
        if self.patterns:
            kinds |= pattern_kinds(text, self.allowed)
        return kinds

    def _candidates(self, f: str) -> list[tuple[int, str, tuple[str, ...]]]:
        """(start, folded value, kinds) of every indexed value occurring in the folded text."""
        out: list[tuple[int, str, tuple[str, ...]]] = []
        for keys, table, k in ((self._long_keys, self._long, _LONG_KEY), (self._short_keys, self._short, _SHORT_KEY)):
            if not keys or len(f) < k:
                continue
            if keys.isdisjoint(_grams(f, k)):
                continue
            for key in keys.intersection(_grams(f, k)):
                end = f.find(key)
                while end != -1:
                    stop = end + k
                    for v, kt in table[key]:
                        st = stop - len(v)
                        if st >= 0 and f.startswith(v, st):
                            out.append((st, v, kt))
                    end = f.find(key, end + 1)
        if self._wide_lengths and not f.isascii():
            for L in self._wide_lengths:
                for key in self._wide.keys() & set(_grams(f, L)):
                    p = f.find(key)
                    while p != -1:
                        out.append((p, key, self._wide[key]))
                        p = f.find(key, p + 1)
        return out

    def _substrings(self, text: str, f: str) -> set[str]:
        cands = self._candidates(f)
        if not cands:
            return set()
        folded, where = _fold_map(text)
        if folded != f:                            # cannot happen; be safe rather than wrong
            return {k for _, _, ks in cands for k in ks}
        out: set[str] = set()
        for p, v, kinds in cands:
            start, end = where[p], where[p + len(v) - 1] + 1
            first, last = _edge_class(v[0]), _edge_class(v[-1])
            if first and _neighbour_class(text, start - 1) == first:
                continue
            if last and _neighbour_class(text, end) == last:
                continue
            if v.replace(".", "").isdigit() and end - start != len(v):
                continue                           # digits only as written: 12345678, not 1234-5678
            if _in_hash_token(text, start, end):
                continue
            out.update(kinds)
        return out

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:   # never the values
        return f"IdentifierIndex({self.size} folded values, patterns={self.patterns})"
