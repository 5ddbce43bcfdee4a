"""AIM 4 XML: markup outlines -> contour, imaging observations -> label, calculations -> measurement.

Parsed with defusedxml (the files come from outside). Person and user names are never read; the
reader role is the user's roleInTrial. The ImageAnnotation's own typeCode says what the annotation is
about, not what was found, so it is not a label row.
"""

from __future__ import annotations

from pathlib import Path
from xml.etree.ElementTree import ParseError

from defusedxml import ElementTree as SafeET
from defusedxml.common import DefusedXmlException

from .model import AnnotationProblem, AnnotationResult, RowMaker, text, to_float

XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"
CONTOUR_SHAPES = ("polyline", "circle", "ellipse", "spline")   # matched in the MarkupEntity's xsi:type


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(el, name: str):
    return [c for c in el if _local(c.tag) == name]


def _child(el, name: str):
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _iter(el, name: str):
    return [c for c in el.iter() if _local(c.tag) == name]


def _value(el, name: str) -> str | None:
    c = _child(el, name) if el is not None else None
    return text(c.get("value")) if c is not None else None


def _root(el, name: str) -> str | None:
    c = _child(el, name) if el is not None else None
    return text(c.get("root")) if c is not None else None


def _xsi_type(el) -> str:
    return (el.get(XSI_TYPE) or "").rsplit(":", 1)[-1]


def _type_code(el) -> tuple[str | None, str | None]:
    """(display name, "SCHEME:CODE") of an entity's first typeCode."""
    tc = _child(el, "typeCode")
    if tc is None:
        return None, None
    code = text(tc.get("code"))
    scheme = text(tc.get("codeSystemName")) or text(tc.get("codeSystem"))
    display = _value(tc, "displayName")
    return display, (f"{scheme}:{code}" if scheme and code else code)


def parse_aim(data: bytes):
    try:
        root = SafeET.fromstring(data)
    except ParseError:
        raise AnnotationProblem("aim_malformed", "the AIM file is not well-formed XML") from None
    except DefusedXmlException as e:
        raise AnnotationProblem("aim_malformed", f"the AIM file uses a forbidden XML construct "
                                                 f"({type(e).__name__})") from None
    if _local(root.tag) != "ImageAnnotationCollection":
        raise AnnotationProblem("aim_not_aim", "the XML root is not an AIM 4 ImageAnnotationCollection")
    return root


def read_aim(path: Path) -> AnnotationResult:
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise AnnotationProblem("aim_unreadable", f"the AIM file cannot be read ({type(e).__name__})") from None
    root = parse_aim(data)
    mk = RowMaker(Path(path).name, "aim")
    problems: list[tuple[str, str]] = []
    user = _child(root, "user")
    role = _value(user, "roleInTrial") if user is not None else None
    annotations = _iter(root, "ImageAnnotation")
    if not annotations:
        raise AnnotationProblem("aim_no_annotation", "the AIM collection has no ImageAnnotation")
    for k, ann in enumerate(annotations, start=1):
        where: dict[str, tuple[str | None, str | None]] = {}
        for study_el in _iter(ann, "imageStudy"):
            study = _root(study_el, "instanceUid")
            for series_el in _iter(study_el, "imageSeries"):
                series = _root(series_el, "instanceUid")
                for img in _iter(series_el, "Image"):
                    sop = _root(img, "sopInstanceUid")
                    if sop:
                        where[sop] = (study, series)
        studies = {v[0] for v in where.values() if v[0]}
        series_all = {v[1] for v in where.values() if v[1]}

        def target(sops: list[str]) -> dict:
            sops = [s for s in sops if s]
            inst = sops[0] if len(set(sops)) == 1 else (next(iter(where)) if not sops and len(where) == 1 else None)
            study, series = where.get(inst or "", (None, None)) if inst else (None, None)
            return {"study": study or (next(iter(studies)) if len(studies) == 1 else None),
                    "series": series or (next(iter(series_all)) if len(series_all) == 1 else None),
                    "instance": inst}

        for m in _iter(ann, "MarkupEntity"):
            shape = _xsi_type(m).lower()
            if not any(s in shape for s in CONTOUR_SHAPES):
                continue
            coords = [c for c in m.iter() if _local(c.tag).endswith("SpatialCoordinate")]
            if not coords:
                problems.append(("aim_empty_markup", f"annotation {k} has an outline markup without coordinates"))
                continue
            label = _value(m, "label")
            mk.add("contour", label=label, reader_role=role, **target([_root(m, "imageReferenceUid") or ""]))
        for obs in _iter(ann, "ImagingObservationEntity"):
            display, code = _type_code(obs)
            mk.add("label", label=_value(obs, "label") or display, code=code, value_text=display,
                   reader_role=role, **target([]))
        for calc in _iter(ann, "CalculationEntity"):
            display, code = _type_code(calc)
            name = display or _value(calc, "description")
            for result in _iter(calc, "CalculationResult"):
                unit = text(result.get("unitOfMeasure"))
                raw = _value(result, "value")
                if raw is None:
                    data_el = next(iter(_iter(result, "CalculationData")), None)
                    raw = _value(data_el, "value") if data_el is not None and _child(data_el, "value") is not None \
                        else (text(data_el.get("value")) if data_el is not None else None)
                value = to_float(raw)
                if value is None:
                    problems.append(("aim_calculation_no_value", f"annotation {k} has a calculation without a "
                                                                 "numeric value"))
                    continue
                mk.add("measurement", label=name, code=code, value=value, unit=unit, reader_role=role,
                       **target([]))
    return AnnotationResult(mk.rows, problems)
