"""SOP classes that ingestion tells apart: annotation objects versus images and the rest."""

from __future__ import annotations

RTSTRUCT = {"1.2.840.10008.5.1.4.1.1.481.3"}
SEG = {"1.2.840.10008.5.1.4.1.1.66.4", "1.2.840.10008.5.1.4.1.1.66.7"}
SR = {
    "1.2.840.10008.5.1.4.1.1.88.11",  # Basic Text SR
    "1.2.840.10008.5.1.4.1.1.88.22",  # Enhanced SR
    "1.2.840.10008.5.1.4.1.1.88.33",  # Comprehensive SR
    "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR
    "1.2.840.10008.5.1.4.1.1.88.35",  # Extensible SR
}
PRESENTATION_STATE_PREFIX = "1.2.840.10008.5.1.4.1.1.11."
KOS = {"1.2.840.10008.5.1.4.1.1.88.59"}
WAVEFORM_PREFIX = "1.2.840.10008.5.1.4.1.1.9."


def dicom_kind(sop_class_uid: str) -> str:
    """The landed-file kind of a DICOM object, from its SOP class."""
    if sop_class_uid in RTSTRUCT:
        return "rtstruct"
    if sop_class_uid in SEG:
        return "seg"
    if sop_class_uid in SR:
        return "sr"
    if sop_class_uid.startswith(PRESENTATION_STATE_PREFIX):
        return "presentation_state"
    if sop_class_uid in KOS:
        return "kos"
    if sop_class_uid.startswith(WAVEFORM_PREFIX):
        return "dicom_waveform"
    return "dicom_image"


ANNOTATION_KINDS = frozenset({"rtstruct", "seg", "sr", "presentation_state", "kos"})
