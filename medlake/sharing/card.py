"""DATASET_CARD.md: the programme's description of a dataset, in every release folder and in the
programme zone.

The card is rendered from CardFacts alone, which holds aggregate facts (counts, ranges, names of
teams and tools, policy): there is no field a patient identifier could travel in. Every text from
data enters the card through _inline (or _code for an id in a code span), once: on one line, HTML
and Markdown escaped (medlake.sharing.markdown_text), so it renders as written and cannot open a
heading, break a table or become a tag or a link.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from medlake.sharing.markdown_text import code as _code
from medlake.sharing.markdown_text import inline as _inline

CARD_SECTIONS: tuple[str, ...] = (
    "Purpose",
    "Source",
    "Modality and protocol",
    "Case definition and counts",
    "Annotation",
    "Formats",
    "De-identification",
    "Consent",
    "Re-identification assessment",
    "Known limitations",
    "How to apply",
    "How to cite",
)

Tier = Literal["collaboration", "review", "public"]


@dataclass(frozen=True, kw_only=True)
class CardFacts:
    """Everything a card says, filled by the caller from the registry, the lake tables and the release.

    Ranges are (min, max) or None when not recorded. readers 0 or None means not recorded.
    consent_cases maps consent class (A, B, C, or "none" for no record) to cases released;
    consent_policy maps class to the registry's rule. tier None is the programme-zone card.
    """

    programme_name_en: str
    programme_name_zh: str = ""
    dataset_id: str
    name_en: str
    name_zh: str
    organ: str
    team_id: str
    team_name_en: str
    team_name_zh: str
    sites: Sequence[str] = ()
    modalities: Sequence[str]
    manufacturers: Sequence[str] = ()
    slice_thickness_mm: tuple[float, float] | None = None
    pixel_spacing_mm: tuple[float, float] | None = None
    image_sizes: Sequence[str] = ()
    image_format: str
    case_definition: str = ""
    cases_by_status: Mapping[str, int] = field(default_factory=dict)
    cases: int = 0
    instances: int = 0
    slides: int = 0
    annotation_kinds: Sequence[str]
    annotation_description: str = ""
    annotation_tool: str = ""
    label_source: Literal["physician", "ehr_code"] = "physician"
    readers: int | None = None
    annotation_formats: Sequence[str] = ()
    release_content: Literal["images_and_annotations", "images_only"] = "images_and_annotations"
    annotated_outside_export: bool = False
    deid_options: Sequence[str] = ()
    consent_cases: Mapping[str, int] = field(default_factory=dict)
    opt_outs: int = 0
    withdrawals: int = 0
    notices_sent: int = 0
    notices_undelivered: int = 0
    opt_out_ratio: float | None = None
    consent_policy: Mapping[str, str] = field(default_factory=dict)
    release_without_consent_record: bool = False
    kanon_paragraph: str = ""
    k_threshold: int | None = None
    tier: Tier | None = None
    version: str | None = None
    released_on: dt.date | None = None
    limitations: Sequence[str] = ()


# DICOM PS3.15 E.3 option names, keyed by the registry's option ids (medlake.deid.table.Option),
# with what each means for a user of the data.
PS315_OPTIONS: dict[str, tuple[str, str]] = {
    "clean_pixel_data": ("Clean Pixel Data Option", "burned-in identifying text is removed from the pixels"),
    "clean_recognizable_visual_features": (
        "Clean Recognizable Visual Features Option", "faces are removed from head CT and MR series (defacing)"),
    "clean_graphics": ("Clean Graphics Option", "identifying text in graphics and overlays is removed"),
    "clean_structured_content": (
        "Clean Structured Content Option", "identifying content of structured reports is removed"),
    "clean_descriptors": (
        "Clean Descriptors Option", "free-text descriptions and comments are cleaned of identifying text"),
    "retain_longitudinal_temporal_information_full_dates": (
        "Retain Longitudinal Temporal Information with Full Dates Option", "dates and times are kept as recorded"),
    "retain_longitudinal_temporal_information_modified_dates": (
        "Retain Longitudinal Temporal Information with Modified Dates Option",
        "dates and times are shifted by a per-patient offset, so intervals within a patient are preserved"),
    "retain_patient_characteristics": (
        "Retain Patient Characteristics Option", "age, sex, size and weight are kept; ages above 89 are given as 90"),
    "retain_device_identity": ("Retain Device Identity Option", "device identifiers are kept"),
    "retain_institution_identity": ("Retain Institution Identity Option", "institution names are kept"),
    "retain_uids": ("Retain UIDs Option", "original UIDs are kept"),
    "retain_safe_private": ("Retain Safe Private Option", "private attributes known to be safe are kept"),
}

_MODALITIES = {
    "CT": "computed tomography", "MR": "magnetic resonance imaging", "CR": "computed radiography",
    "DX": "digital radiography", "NM": "nuclear medicine", "PT": "positron emission tomography",
    "US": "ultrasound", "XA": "X-ray angiography", "IVUS": "intravascular ultrasound",
    "IVOCT": "intravascular optical coherence tomography", "OCT": "optical coherence tomography",
    "OP": "ophthalmic photography", "SM": "whole-slide microscopy", "HD": "haemodynamic waveform",
    "ECG": "electrocardiography", "MG": "mammography", "SC": "secondary capture",
}
_ANNOTATION_FORMATS = {
    "rtstruct": "DICOM RT Structure Set (RTSTRUCT)", "seg": "DICOM Segmentation (SEG)",
    "sr": "DICOM Structured Report (SR, TID 1500)",
    "presentation_state": "DICOM Grayscale Softcopy Presentation State",
    "aim": "AIM 4 XML", "mask_image": "mask images (PNG or NIfTI)", "label_sheet": "label sheet (CSV)",
}
_KINDS = {"contour": "contour", "mask": "segmentation mask", "measurement": "measurement", "label": "label"}
_STATUSES = (("full", "Full"), ("partial", "Partial"), ("image_only", "Image only"))
_CONSENT_CLASSES = {
    "A": "informed consent", "B": "earlier broad consent, with a notice",
    "C": "public notice with the right to opt out", "none": "no consent record",
}
_CONSENT_RULES = {
    "releasable": "released",
    "releasable_after_notice": "released once a notice has been sent",
    "releasable_unless_opted_out": "released unless the patient opted out",
    "never": "never released",
}
# The five criteria of the review committee (the programme's 2019 report; decision.yaml scores).
REVIEW_CRITERIA = ("scientific basis", "data literacy", "reasonableness and security of the data use",
                   "social impact", "reciprocity")


def _n(x: int) -> str:
    return f"{x:,}"


def _join(items: Sequence[str], empty: str = "none") -> str:
    """Data text (raw: it is escaped here) as "a, b and c"."""
    items = [_inline(i) for i in items if str(i).strip()]
    if not items:
        return empty
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _range(r: tuple[float, float] | None, unit: str) -> str:
    if r is None:
        return "not recorded"
    lo, hi = r
    return f"{lo:g} {unit}" if lo == hi else f"{lo:g}–{hi:g} {unit}"


def _modality(code: str) -> str:
    """Raw, for _join: a known code is programme vocabulary, an unknown one is data text."""
    name = _MODALITIES.get(code.upper())
    return f"{name} ({code})" if name else code


def _team(f: CardFacts) -> str:
    return f"{_inline(f.team_name_en)} ({_inline(f.team_name_zh)})" if f.team_name_zh else _inline(f.team_name_en)


def _programme(f: CardFacts) -> str:
    zh = f" ({_inline(f.programme_name_zh)})" if f.programme_name_zh else ""
    return f"{_inline(f.programme_name_en)}{zh}"


def _readers(f: CardFacts) -> int:
    return f.readers or 0


def _purpose(f: CardFacts) -> str:
    organ = "" if f.organ.strip().lower() in ("", "other") else f" of the {_inline(f.organ)}"
    if f.release_content == "images_only":
        what = "released as images only, without annotations"
    elif f.label_source == "ehr_code":
        what = "with labels taken from diagnosis codes in the health record"
    else:
        what = f"with {_join([_KINDS.get(k, k) for k in f.annotation_kinds])} annotations by physicians"
    return (
        f"{_inline(f.name_en)} ({_inline(f.name_zh)}) is a de-identified "
        f"{_join([_modality(m) for m in f.modalities], 'medical-imaging')} dataset{organ}, {what}. "
        f"It was built by {_team(f)} for the {_programme(f)}, a national programme that builds annotated "
        f"medical-imaging datasets and shares them for artificial-intelligence (AI) research on medical "
        f"images; it is meant for developing and evaluating such AI methods."
    )


def _source(f: CardFacts) -> str:
    sites = list(f.sites) or [f.team_name_en]
    return "\n".join([
        f"- Building team: {_team(f)}, team id {_code(f.team_id)}",
        f"- Sites: {_join(sites)}",
        f"- Programme: {_programme(f)}",
        "",
        "The images were exported by the building team's hospital(s) and de-identified by the "
        "programme's platform before leaving the hospital's restricted zone.",
    ])


def _protocol(f: CardFacts) -> str:
    sizes = list(f.image_sizes)
    shown = _join(sizes[:12], "not recorded") + (f" and {_n(len(sizes) - 12)} more" if len(sizes) > 12 else "")
    return "\n".join([
        f"- Modalities: {_join([_modality(m) for m in f.modalities], 'not recorded')}",
        f"- Manufacturers: {_join(sorted(f.manufacturers), 'not recorded')}",
        f"- Slice thickness: {_range(f.slice_thickness_mm, 'mm')}",
        f"- Pixel spacing: {_range(f.pixel_spacing_mm, 'mm')}",
        f"- Image sizes: {shown}",
        f"- Image format: {_inline(f.image_format) or 'not recorded'}",
    ])


def _counts(f: CardFacts) -> str:
    lines = [
        _inline(f.case_definition) or "The building team has not stated a case definition.",
        "",
        f"- Cases: {_n(f.cases)}",
        f"- DICOM instances: {_n(f.instances)}",
    ]
    if f.slides:
        lines.append(f"- Whole-slide images: {_n(f.slides)}")
    lines += ["", "| annotation status | cases | share |", "| --- | ---: | ---: |"]
    for key, title in _STATUSES:
        n = int(f.cases_by_status.get(key, 0))
        share = f"{100 * n / f.cases:.1f}%" if f.cases else "–"
        lines.append(f"| {title} | {_n(n)} | {share} |")
    lines += ["", f"Full: every required annotation kind ({_join(list(f.annotation_kinds))}) is present; "
                  "partial: some are; image only: none."]
    if f.label_source == "ehr_code":
        lines[-1] += " Labels from diagnosis codes count as partial."
    return "\n".join(lines)


def _annotation(f: CardFacts) -> str:
    source = ("physicians" if f.label_source == "physician"
              else "diagnosis codes in the electronic health record, not confirmed by a physician")
    readers = _readers(f)
    lines = [
        f"- Required for a full annotation: {_join([_KINDS.get(k, k) for k in f.annotation_kinds])}",
        f"- Method: {_inline(f.annotation_description) or 'not described'}",
        f"- Tool: {_inline(f.annotation_tool) or 'not recorded'}",
        f"- Labels from: {source}",
        f"- Readers: {_n(readers) + ' distinct' if readers else 'not recorded'}",
    ]
    if f.release_content == "images_only":
        outside = (" The cases were annotated on the building team's own platform; those annotations are "
                   "not part of the export." if f.annotated_outside_export else "")
        lines += ["", f"This release contains images only: no annotation is distributed.{outside}"]
    return "\n".join(lines)


def _formats(f: CardFacts) -> str:
    if f.release_content == "images_only":
        annotations = "none released"
    elif not f.annotation_formats:
        annotations = "none listed"
    else:
        annotations = _join([_ANNOTATION_FORMATS.get(a, a) for a in f.annotation_formats])
    return "\n".join([
        f"- Images: {_inline(f.image_format) or 'not recorded'}",
        f"- Annotations: {annotations}",
    ])


def _deid(f: CardFacts) -> str:
    lines = [
        "Every DICOM object was de-identified with the DICOM PS3.15 Annex E Basic Application Level "
        "Confidentiality Profile and the options below, and records them in its De-identification "
        "Method Code Sequence. Patient names and identifiers are replaced by keyed pseudonyms, and UIDs "
        "are replaced consistently so that annotations still reference their images.",
        "",
    ]
    for opt in f.deid_options or ():
        name, meaning = PS315_OPTIONS.get(opt, (_inline(opt), ""))
        lines.append(f"- {name} ({_code(opt)})" + (f": {meaning}" if meaning else ""))
    if not f.deid_options:
        lines.append("- No options: the basic profile only.")
    if "retain_safe_private" not in f.deid_options:
        lines += ["", "Private attributes are removed."]
    if f.slides or "SM" in (m.upper() for m in f.modalities):
        lines += ["", "Whole-slide images lose their label and macro images and their identifying tags."]
    return "\n".join(lines)


def _consent(f: CardFacts) -> str:
    order = {"A": 0, "B": 1, "C": 2, "none": 3}
    classes = sorted(set(f.consent_policy) | set(f.consent_cases), key=lambda c: (order.get(c, 9), c))
    lines = ["| class | basis | policy | cases released |", "| --- | --- | --- | ---: |"]
    for c in classes:
        rule = f.consent_policy.get(c)
        lines.append(f"| {_inline(c)} | {_CONSENT_CLASSES.get(c, '–')} | "
                     f"{_CONSENT_RULES.get(rule, _inline(rule)) if rule else '–'} | "
                     f"{_n(int(f.consent_cases.get(c, 0)))} |")
    if not classes:
        lines = ["No consent class is recorded for this dataset."]
    ratio = "not available" if f.opt_out_ratio is None else f"{100 * f.opt_out_ratio:.1f}%"
    lines += [
        "",
        f"Among the dataset's patients: {_n(f.opt_outs)} opt-outs and {_n(f.withdrawals)} withdrawals; "
        f"{_n(f.notices_sent)} notices sent, {_n(f.notices_undelivered)} undelivered; opt-out ratio "
        f"{ratio}. Patients who opted out or withdrew are excluded from every release.",
        "",
        "Cases without a consent record are released, as the dataset's policy allows."
        if f.release_without_consent_record else "Cases without a consent record are not released.",
    ]
    return "\n".join(lines)


def _risk(f: CardFacts) -> str:
    text = _inline(f.kanon_paragraph) or (
        "No re-identification assessment accompanies this card: it describes the dataset, not a "
        "release. Every release is assessed as k-anonymity over age band, sex, study year and team.")
    if f.k_threshold is not None:
        tier = f" for the {_inline(f.tier)} tier" if f.tier else ""
        text += f"\n\nThreshold{tier}: k = {f.k_threshold}."
    return text


def derived_limitations(f: CardFacts) -> list[str]:
    """Limitations that follow from the facts themselves, before the caller's own."""
    out: list[str] = []
    if f.cases == 0:
        out.append("No case is included yet.")
    if f.label_source == "ehr_code":
        out.append("Labels come from diagnosis codes in the health record and were not confirmed by a "
                   "physician; treat them as weak labels.")
    if f.release_content == "images_only":
        out.append("Images only: no annotation is released"
                   + (", although the cases were annotated on the building team's platform."
                      if f.annotated_outside_export else "."))
    elif f.cases and int(f.cases_by_status.get("full", 0)) < f.cases:
        out.append(f"Not every case is fully annotated: {_n(f.cases - int(f.cases_by_status.get('full', 0)))} "
                   f"of {_n(f.cases)} are partial or image only.")
    if not _readers(f):
        out.append("The number of readers is not recorded, so inter-reader agreement cannot be assessed.")
    # Only when the caller says so: an empty `sites` means not recorded, and a team may span hospitals.
    if len(set(f.sites)) == 1:
        out.append("All cases come from one institution; models may not generalise to other hospitals "
                   "and scanners.")
    if "retain_longitudinal_temporal_information_modified_dates" in f.deid_options:
        out.append("Dates are shifted per patient: calendar dates, weekdays and study years are not the "
                   "real ones, although intervals within a patient are.")
    if "clean_recognizable_visual_features" in f.deid_options:
        out.append("Defacing registers a face template to each head series; it has not been validated "
                   "on real heads, so facial features may remain or nearby anatomy may be removed.")
    if "clean_pixel_data" in f.deid_options:
        out.append("Burned-in text is found by per-modality region rules and a text detector; text in an "
                   "unusual place or style may be missed, and blanked regions hide the pixels beneath.")
    return out


def _limitations(f: CardFacts) -> str:
    items = list(dict.fromkeys(derived_limitations(f) + [_inline(x) for x in f.limitations if str(x).strip()]))
    return "\n".join(f"- {x}" for x in items) or "- None recorded."


def _apply(f: CardFacts) -> str:
    # The report sets these terms for both the collaboration and the review scheme.
    purpose = ("Under the programme's rules, collaboration and review use is limited to academic research "
               "for medical or public-health purposes, by academic research institutions or government "
               "agencies (a company may take part with an academic partner).")
    collaboration = (f"Collaboration: the data are used in joint research with the building team, {_team(f)}. "
                     "Contact the team to agree a joint project, including who owns the intellectual "
                     "property of the results.")
    review = ("Review: apply to the programme's data review committee. The committee scores each "
              f"application on five criteria: {_join(list(REVIEW_CRITERIA))}. Before release the "
              "applicant's institution signs a data-use agreement with the building team, the applicant "
              "signs a declaration of use and everyone who handles the data signs a confidentiality "
              "pledge; access is on site, over VPN or by download. A usage report is due every six months "
              "after release.")
    public = "Public: download the release under the terms of use published with it."
    if f.tier == "collaboration":
        return f"{collaboration} {purpose}"
    if f.tier == "review":
        return f"{review} {purpose}"
    if f.tier == "public":
        return public
    return "\n".join(["This card describes the dataset; the data are obtained through a release:", "",
                      f"- {collaboration}", f"- {review}", f"- {public}", "", purpose])


def _cite(f: CardFacts) -> str:
    version = f", version {_inline(f.version)}" if f.version else ""
    released = f", released {f.released_on.isoformat()}" if f.released_on else ""
    lines = [
        f"> {_inline(f.programme_name_en)}; {_inline(f.team_name_en)}. *{_inline(f.name_en)}* "
        f"(dataset {_code(f.dataset_id)}){version}{released}.",
        "",
        f"Publications that use these data must state that the data come from the {_programme(f)} and "
        f"name the building team, {_team(f)}.",
    ]
    if f.tier == "review":
        lines[-1] += " Send the full text of each publication to the review committee."
    return "\n".join(lines)


_BODIES = (_purpose, _source, _protocol, _counts, _annotation, _formats, _deid, _consent, _risk,
           _limitations, _apply, _cite)


def render_card(facts: CardFacts) -> str:
    """DATASET_CARD.md for one dataset: a title, a release line and the CARD_SECTIONS in order."""
    f = facts
    if f.tier:
        release = (f"{_inline(f.tier.capitalize())} tier release"
                   + (f" {_inline(f.version)}" if f.version else "")
                   + (f", released {f.released_on.isoformat()}" if f.released_on else ""))
    else:
        release = "Programme-zone description (not a release)"
    out = [f"# Dataset card: {_inline(f.name_en)}", "",
           f"{_inline(f.name_zh)} · dataset {_code(f.dataset_id)} · {release}"]
    for title, body in zip(CARD_SECTIONS, _BODIES, strict=True):
        out += ["", f"## {title}", "", body(f)]
    return "\n".join(out) + "\n"


_HEADING = re.compile(r"^(#{1,6})[ \t]+(.*?)[ \t#]*$")


def missing_sections(markdown: str) -> list[str]:
    """The CARD_SECTIONS that are absent from `markdown` or whose body is empty, in card order.

    A section's body runs from its `## ` heading to the next heading of level 1 or 2; deeper
    headings are part of it. The first occurrence of a title counts.
    """
    bodies: dict[str, list[str]] = {}
    current: str | None = None
    for line in markdown.splitlines():
        m = _HEADING.match(line)
        if m and len(m.group(1)) <= 2:
            title = m.group(2).strip()
            current = title if len(m.group(1)) == 2 and title not in bodies else None
            if current is not None:
                bodies[current] = []
            continue
        if current is not None:
            bodies[current].append(line)
    return [t for t in CARD_SECTIONS if not "\n".join(bodies.get(t, [])).strip()]
