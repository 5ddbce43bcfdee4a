"""Keyed pseudonyms, UIDs and date shifts (HMAC-SHA256 of a secret key).

Every derivation is a pure function of (secret, purpose, inputs): the same key gives the same
pseudonym/UID/shift in every batch and run, so objects de-identified months apart still link, and
without the key nobody can recompute or confirm a mapping (unlike unkeyed hashes of UIDs).
Each purpose has its own label so a value derived for one purpose is never equal to another's.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

MIN_SECRET_BYTES = 16
MAX_SHIFT_DAYS = 3650

_UID_CACHE_MAX = 1 << 18


class DeidKeys:
    def __init__(self, secret: bytes):
        if not isinstance(secret, (bytes, bytearray)) or len(secret) < MIN_SECRET_BYTES:
            raise ValueError(f"the de-identification secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = bytes(secret)
        # The same UIDs recur in every object of a series (study, series, frame of reference) and
        # in every reference to them: caching saves an HMAC per occurrence.
        self._uids: dict[str, str] = {}

    @classmethod
    def from_env(cls) -> "DeidKeys":
        """From MEDLAKE_SECRET_KEY (medlake.settings says what a usable key is)."""
        from medlake.settings import secret_key

        return cls(secret_key())

    def __repr__(self) -> str:  # never show the secret
        return "DeidKeys(<secret>)"

    def _mac(self, purpose: str, *parts: str) -> bytes:
        # Length-prefixed parts: ("ab", "c") and ("a", "bc") must not collide.
        msg = purpose.encode() + b"".join(
            len(b).to_bytes(4, "big") + b for b in (p.encode("utf-8") for p in parts))
        return hmac.new(self._secret, msg, hashlib.sha256).digest()

    @staticmethod
    def _b32(digest: bytes, n: int) -> str:
        # Only the first n characters are kept: encoding just the whole 5-byte groups they come from
        # gives the same characters at half the cost (b32encode is pure Python; a pseudonym per row).
        return base64.b32encode(digest[:5 * ((n + 7) // 8)]).decode("ascii")[:n]

    def patient_pseudonym(self, team: str, patient_id: str) -> str:
        """"PSN-" + 20 base32 characters (100 bits): fits PatientID (LO) and PatientName (PN)."""
        return "PSN-" + self._b32(self._mac("patient", team, patient_id), 20)

    def opaque_id(self, purpose: str, *parts: str) -> str:
        """A 20-character keyed id for things that need a stable, meaningless name (batches, slides,
        annotation files, readers): the same inputs give the same id, nothing links it back."""
        return self._b32(self._mac("opaque:" + purpose, *parts), 20)

    def batch_ref(self, team: str, dataset: str, batch: str) -> str:
        """The deid zone's id of an export batch (folder names are hospital text)."""
        return self.opaque_id("batch", team, dataset, batch)

    def accession(self, team: str, value: str) -> str:
        """16 characters: fits AccessionNumber (SH)."""
        return "ACC-" + self._b32(self._mac("accession", team, value), 12)

    def case_id(self, team: str, dataset: str, case_id: str) -> str:
        return "CASE-" + self._b32(self._mac("case", team, dataset, case_id), 20)

    def date_shift_days(self, team: str, patient_id: str) -> int:
        """A per-patient shift in [-MAX_SHIFT_DAYS, -1]: never 0, so no original date survives."""
        n = int.from_bytes(self._mac("date-shift", team, patient_id)[:8], "big")
        return -(1 + n % MAX_SHIFT_DAYS)

    def uid(self, original_uid: str) -> str:
        """"2.25." + a 128-bit UUID (RFC 9562 version 8, custom) derived from the UID alone.

        Keyed on the UID only, not on the object or patient holding it: a reference to an image
        from an RTSTRUCT, SR or presentation state maps to the same new UID as the image itself.
        """
        original_uid = original_uid.strip().rstrip("\x00").strip()
        out = self._uids.get(original_uid)
        if out is None:
            n = int.from_bytes(self._mac("uid", original_uid)[:16], "big")
            n = (n & ~(0xF << 76)) | (0x8 << 76)  # version 8
            n = (n & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
            out = f"2.25.{n}"
            if len(self._uids) >= _UID_CACHE_MAX:
                self._uids.clear()
            self._uids[original_uid] = out
        return out
