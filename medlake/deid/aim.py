"""AIM 4 XML annotations: drop person and user identity, remap UIDs, shift dates, clear comments.

The parser is defusedxml's: annotation files come from outside, and a crafted entity expansion must
not take the ingestion host down.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.etree.ElementTree import tostring

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from medlake.deid.errors import DeidError

_UID = re.compile(r"^[0-9]+(\.[0-9]+)+$")
_USER_IDENTITY = {"name", "loginName"}
_FREE_TEXT = {"comment"}
_DATE_ELEMENTS = {"dateTime", "startDate", "endDate", "date"}



@dataclass
class AimResult:
    data: bytes
    actions: dict[str, int] = field(default_factory=dict)
    referenced_uids: list[str] = field(default_factory=list)  # new (pseudonymous) image references


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def deidentify_aim(data: bytes, uid: Callable[[str], str], shift_days: int) -> AimResult:
    try:
        root = SafeET.fromstring(data)
    except (SafeET.ParseError, DefusedXmlException, ValueError) as e:
        raise DeidError("aim_malformed", f"the AIM file is not well-formed XML ({type(e).__name__})") from None
    if _local(root.tag) != "ImageAnnotationCollection":
        raise DeidError("not_aim", "the XML root is not an AIM ImageAnnotationCollection")
    actions: dict[str, int] = {}

    def count(action: str) -> None:
        actions[action] = actions.get(action, 0) + 1

    referenced: list[str] = []
    for parent in list(root.iter()):
        for child in list(parent):
            name = _local(child.tag)
            if name == "person":
                parent.remove(child)
                count("person_removed")
            elif _local(parent.tag) == "user" and name in _USER_IDENTITY:
                parent.remove(child)
                count("user_identity_removed")
    for el in root.iter():
        name = _local(el.tag)
        root_attr = el.get("root")
        if root_attr is not None and (name == "uniqueIdentifier" or name.lower().endswith("uid")):
            if _UID.match(root_attr):
                el.set("root", uid(root_attr))
                count("uid_remapped")
                if name in ("sopInstanceUid", "imageReferenceUid", "studyInstanceUid", "seriesInstanceUid"):
                    referenced.append(el.get("root"))
        elif name in _DATE_ELEMENTS and el.get("value"):
            el.set("value", _shift(el.get("value"), shift_days))
            count("date_shifted")
        elif name in _FREE_TEXT and el.get("value"):
            el.set("value", "")
            count("free_text_cleared")
    out = tostring(root, encoding="utf-8", xml_declaration=True)
    return AimResult(out, actions, referenced)


def _shift(value: str, days: int) -> str:
    """Shift an AIM date or datetime (YYYYMMDD[hhmmss] or ISO 8601) by `days`, keeping its form."""
    v = value.strip()
    try:
        if re.fullmatch(r"\d{8}(\d{6})?", v):
            d = dt.datetime.strptime(v[:8], "%Y%m%d") + dt.timedelta(days=days)
            return d.strftime("%Y%m%d") + v[8:]
        d = dt.datetime.fromisoformat(v) + dt.timedelta(days=days)
        return d.isoformat()
    except ValueError:
        return ""  # an unparseable date is dropped rather than passed through unshifted
