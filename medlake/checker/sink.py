"""Collects the findings of one object and keeps every location free of identifier values."""

from __future__ import annotations

import re

from medlake.checker.findings import Finding
from medlake.checker.index import IdentifierIndex

# Runs of text inside binary data: anything that is not a control character or U+FFFD.
_TEXT_RUN = re.compile(r"[^\x00-\x08\x0e-\x1f\x7f\ufffd]{4,}|[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff]{2,}")


def text_runs(data: bytes) -> list[str]:
    """The readable stretches of a byte string (ASCII, UTF-8 and Latin-1 text inside binary)."""
    if not data:
        return []
    try:
        if len(data) > 65536:
            raise UnicodeDecodeError("utf-8", b"", 0, 1, "large: take runs")
        s = data.decode("utf-8")
        if sum(c.isprintable() or c in "\r\n\t" for c in s) >= 0.9 * len(s):
            return [s]
    except UnicodeDecodeError:
        pass
    runs = _TEXT_RUN.findall(data.decode("utf-8", errors="replace"))
    if any(b > 0x7F for b in data[:4096]):       # Latin-1 text would have been mangled above
        runs += re.findall(r"[\x20-\x7e]{4,}", data.decode("latin-1"))
    return runs


class Sink:
    """Findings for one object, deduplicated on (location, kind)."""

    def __init__(self, index: IdentifierIndex, obj: str):
        self.index = index
        self.object = obj
        self._seen: set[tuple[str, str]] = set()
        self.findings: list[Finding] = []
        self._keys = 0
        self._pending: list[tuple[str, str]] | None = None

    def batch(self) -> None:
        """Collect text values instead of searching each; `flush` searches them all at once.

        One search over the joined values costs far less than one per value, and a clean object
        (the usual case) needs no more. Joining can only add matches across a boundary, never
        hide one, so when the joined text matches, every value is searched alone to find where.
        """
        self._pending = []

    def flush(self) -> None:
        pending, self._pending = self._pending, None
        if pending:
            for i in self.index.suspects([t for _, t in pending]):
                self.check(*pending[i])

    def add(self, location: str, kind: str) -> None:
        key = (location, kind)
        if key not in self._seen:
            self._seen.add(key)
            self.findings.append(Finding(self.object, location, kind))

    def check(self, location: str, text) -> bool:
        """Scan one text value; True when something was found."""
        if text is None:
            return False
        if not isinstance(text, str):
            text = str(text)
        if self._pending is not None:
            self._pending.append((location, text))
            return False
        kinds = self.index.find(text)
        for k in kinds:
            self.add(location, k)
        return bool(kinds)

    def check_bytes(self, location: str, data: bytes) -> bool:
        found = False
        for run in text_runs(data):
            found |= self.check(location, run)
        return found

    def safe(self, segment: str, what: str = "key") -> str:
        """A location segment (a JSON key, a column name, a private creator) that is reported as
        itself when it holds no identifier, else as a numbered placeholder."""
        if not segment or not self.index.find(segment):
            return segment
        self._keys += 1
        return f"<{what} {self._keys}>"
