"""The one exception the de-identifier raises."""

from __future__ import annotations


class DeidError(Exception):
    """An object medlake cannot de-identify safely.

    `code` is a stable reason (for quarantine tables); the message names tags and VRs only, never a
    value, because these messages end up in logs outside the restricted zone.
    """

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
