"""medlake's additions to Table E.1-1: what the table leaves open and the project decided.

Kept apart from table.py so the table stays a faithful copy of the standard.
"""

from __future__ import annotations

import re

from pydicom.datadict import dictionary_keyword

from medlake.deid.table import Action, Option

PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
PATIENT_BIRTH_DATE = 0x00100030
PATIENT_AGE = 0x00101010
ACCESSION_NUMBER = 0x00080050
SOP_INSTANCE_UID = 0x00080018
SOP_CLASS_UID = 0x00080016
ICON_IMAGE_SEQUENCE = 0x00880200
TEXT_VALUE = 0x0040A160

WELL_KNOWN_UID_ROOT = "1.2.840.10008."


def is_repeating_group_to_remove(group: int) -> bool:
    """Curves (50xx) and overlays (60xx), even groups only: overlays can hold burned-in text and
    medlake does not clean overlay bitmaps, so they go whatever Clean Graphics says."""
    return group & 0xFF01 in (0x5000, 0x6000)


def extra_action(tag: int, options: frozenset[Option]) -> Action | None:
    """Actions for attributes Table E.1-1 does not list but the project treats as identifying."""
    if tag == TEXT_VALUE:
        # SR TEXT content: free text with names and dates; Type 1 in the item, hence D not X.
        if Option.CLEAN_STRUCTURED_CONTENT in options or Option.CLEAN_DESCRIPTORS in options:
            return Action.C
        return Action.D
    return None


# Attributes whose UIDs name a kind of thing, not an instance: remapping them would break the
# object (SOP Class, Transfer Syntax) or they are not about the patient (coding schemes).
_WELL_KNOWN_KEYWORD = re.compile(
    r"Class|TransferSyntax|SOPClasses|CodingScheme|ContextGroupExtensionCreator|ContextUID|"
    r"MappingResource|PrivateInformationCreator|CreatorVersion|RetrieveLocation|RepositoryUnique|"
    r"HomeCommunity|SegmentationTemplate")


def uid_tag_is_well_known(tag: int) -> bool:
    """True when a UI attribute not listed in the table holds a class/scheme UID, not an instance's.

    Everything else (instance, series, study, frame of reference, any Referenced* UID, unknown
    public UI attributes) is remapped: an unmapped instance UID would leak and break references.
    """
    return _well_known_tag(tag)


_cache: dict[int, bool] = {}


def _well_known_tag(tag: int) -> bool:
    hit = _cache.get(tag)
    if hit is None:
        try:
            kw = dictionary_keyword(tag)
        except KeyError:
            kw = ""
        hit = _cache[tag] = bool(kw and _WELL_KNOWN_KEYWORD.search(kw))
    return hit


def uid_value_is_well_known(uid: str) -> bool:
    """UIDs the standard defines (SOP classes, transfer syntaxes, well-known frames of reference,
    coding schemes): they identify nobody and must stay as they are."""
    return uid.startswith(WELL_KNOWN_UID_ROOT)
