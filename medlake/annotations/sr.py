"""DICOM SR Measurement Reports (TID 1500): NUM -> measurement, CODE -> label, image references -> targets.

Only the measurement content is read: the subtrees of Imaging Measurements (DCM 126010), Derived
Imaging Measurements (DCM 126011), Measurement Group (DCM 125007) and Qualitative Evaluations
(UMLS C0034375). Observation context and TEXT items are never read (TEXT carries free text). A
document without any of those containers is refused as `sr_unknown_template`.
"""

from __future__ import annotations

from pathlib import Path

from medlake.dicom.sop_classes import SR

from .model import AnnotationProblem, AnnotationResult, RowMaker, code_str, first, read_dicom, text, to_float

MEASUREMENT_CONTAINERS = {"DCM:126010", "DCM:126011", "DCM:125007", "UMLS:C0034375"}
REPORT_ROOT = "DCM:126000"
REF_TYPES = {"IMAGE", "COMPOSITE", "WAVEFORM"}
ROLE_CONCEPTS = {"DCM:113875", "DCM:113874"}   # Person Observer's Role in the Procedure / Organization


def _concept(item) -> str | None:
    return code_str(first(getattr(item, "ConceptNameCodeSequence", None)))


def _meaning(code_item) -> str | None:
    return text(getattr(code_item, "CodeMeaning", None)) if code_item is not None else None


def _refs(item) -> list[str]:
    """SOP Instance UIDs referenced by one content item (IMAGE, COMPOSITE, WAVEFORM)."""
    if str(getattr(item, "ValueType", "")).upper() not in REF_TYPES:
        return []
    out = []
    for r in getattr(item, "ReferencedSOPSequence", None) or []:
        u = text(getattr(r, "ReferencedSOPInstanceUID", None))
        if u:
            out.append(u)
    return out


def _all_refs(item) -> list[str]:
    out = _refs(item)
    for child in getattr(item, "ContentSequence", None) or []:
        for u in _all_refs(child):
            if u not in out:
                out.append(u)
    return out


def _evidence(ds) -> dict[str, tuple[str | None, str | None]]:
    out: dict[str, tuple[str | None, str | None]] = {}
    for seq_name in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence"):
        for st in getattr(ds, seq_name, None) or []:
            study = text(getattr(st, "StudyInstanceUID", None))
            for se in getattr(st, "ReferencedSeriesSequence", None) or []:
                series = text(getattr(se, "SeriesInstanceUID", None))
                for r in getattr(se, "ReferencedSOPSequence", None) or []:
                    u = text(getattr(r, "ReferencedSOPInstanceUID", None))
                    if u:
                        out.setdefault(u, (study, series))
    return out


def _is_tid1500(ds) -> bool:
    if _concept(ds) == REPORT_ROOT:
        return True
    return any(str(getattr(t, "TemplateIdentifier", "")).strip() == "1500"
               for t in getattr(ds, "ContentTemplateSequence", None) or [])


def _find_containers(item, found: list) -> None:
    for child in getattr(item, "ContentSequence", None) or []:
        if str(getattr(child, "ValueType", "")).upper() == "CONTAINER":
            if _concept(child) in MEASUREMENT_CONTAINERS:
                found.append(child)
                continue   # its subtree is walked as a whole
            _find_containers(child, found)


def _role(ds) -> str | None:
    for item in getattr(ds, "ContentSequence", None) or []:
        if str(getattr(item, "ValueType", "")).upper() == "CODE" and _concept(item) in ROLE_CONCEPTS:
            return _meaning(first(getattr(item, "ConceptCodeSequence", None)))
    return None


def read_sr(path: Path) -> AnnotationResult:
    ds = read_dicom(path, SR, what="SR")
    mk = RowMaker(str(ds.SOPInstanceUID), "sr")
    problems: list[tuple[str, str]] = []
    containers: list = []
    _find_containers(ds, containers)
    if not containers:
        detail = "a TID 1500 root without" if _is_tid1500(ds) else "no"
        raise AnnotationProblem("sr_unknown_template",
                                f"the SR has {detail} measurement group structure (TID 1500 Imaging Measurements, "
                                "Measurement Group or Qualitative Evaluations container)")
    evidence = _evidence(ds)
    series_set = {v[1] for v in evidence.values() if v[1]}
    only_series = next(iter(series_set)) if len(series_set) == 1 else None
    default_study = text(getattr(ds, "StudyInstanceUID", None))
    role = _role(ds)

    def target(uids: list[str]) -> dict:
        inst = uids[0] if len(set(uids)) == 1 else None
        study, series = None, None
        for u in uids:
            if u in evidence:
                study, series = evidence[u]
                break
        return {"study": study or default_study, "series": series or only_series, "instance": inst}

    def walk(item, group_refs: list[str]) -> None:
        for child in getattr(item, "ContentSequence", None) or []:
            vt = str(getattr(child, "ValueType", "")).upper()
            rel = str(getattr(child, "RelationshipType", "")).upper()
            if rel == "HAS OBS CONTEXT":
                continue
            concept_item = first(getattr(child, "ConceptNameCodeSequence", None))
            if vt == "CONTAINER":
                walk(child, _all_refs(child) or group_refs)
            elif vt == "NUM":
                mv = first(getattr(child, "MeasuredValueSequence", None))
                value = to_float(getattr(mv, "NumericValue", None)) if mv is not None else None
                if value is None:
                    problems.append(("sr_measurement_no_value", "a NUM content item has no numeric value"))
                    continue
                unit_item = first(getattr(mv, "MeasurementUnitsCodeSequence", None))
                unit = text(getattr(unit_item, "CodeValue", None)) if unit_item is not None else None
                mk.add("measurement", label=_meaning(concept_item), code=code_str(concept_item), value=value,
                       unit=unit, reader_role=role, **target(_all_refs(child) or group_refs))
            elif vt == "CODE" and rel in ("CONTAINS", ""):
                value_item = first(getattr(child, "ConceptCodeSequence", None))
                mk.add("label", label=_meaning(concept_item), code=code_str(value_item),
                       value_text=_meaning(value_item), reader_role=role,
                       **target(_all_refs(child) or group_refs))

    for c in containers:
        walk(c, _all_refs(c))
    return AnnotationResult(mk.rows, problems)
