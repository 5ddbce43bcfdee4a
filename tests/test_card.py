"""DATASET_CARD.md: every section present and filled, derived limitations, the completeness check."""

from __future__ import annotations

import dataclasses
import datetime as dt
import html
import re
from collections import Counter

import pyarrow as pa

from medlake.sharing.card import CARD_SECTIONS, CardFacts, missing_sections, render_card
from medlake.sharing.kanon import describe, k_anonymise

from conftest import registry_with

PROGRAMME = "National medical-imaging AI dataset programme"


def _kanon_paragraph() -> str:
    rows = [(42 + i % 10, "MF"[i % 2], 2016 + i % 3) for i in range(1200)]
    cases = pa.table({
        "case_pseudonym": [f"CASE-{i}" for i in range(len(rows))],
        "age_years": [r[0] for r in rows], "sex": [r[1] for r in rows],
        "study_year": [r[2] for r in rows], "team": ["ntu"] * len(rows),
    })
    return describe(k_anonymise(cases, 5), 5)


def _full() -> CardFacts:
    return CardFacts(
        programme_name_en=PROGRAMME, programme_name_zh="醫療影像專案計畫",
        dataset_id="ccta", name_en="Coronary CT angiography (CCTA)", name_zh="冠狀動脈電腦斷層 CCTA",
        organ="heart", team_id="ntu", team_name_en="National Taiwan University Hospital",
        team_name_zh="臺大醫院", sites=["National Taiwan University Hospital", "NTU Hospital Hsinchu"],
        modalities=["CT"], manufacturers=["SIEMENS", "Philips"], slice_thickness_mm=(0.5, 3.0),
        pixel_spacing_mm=(0.3, 0.49), image_sizes=["512x512"], image_format="DICOM",
        case_definition="One coronary CT angiography study of one patient.",
        cases_by_status={"full": 1180, "partial": 15, "image_only": 5}, cases=1200,
        instances=4_800_000, annotation_kinds=["contour"],
        annotation_description="DICOM RT (RTSTRUCT)", annotation_tool="Philips IntelliSpace Portal",
        label_source="physician", readers=3, annotation_formats=["rtstruct"],
        deid_options=["retain_longitudinal_temporal_information_modified_dates",
                      "retain_patient_characteristics", "clean_descriptors", "clean_structured_content",
                      "clean_graphics", "clean_pixel_data", "clean_recognizable_visual_features"],
        consent_cases={"A": 1000, "B": 150, "C": 50}, opt_outs=35, withdrawals=2, notices_sent=1783,
        notices_undelivered=104, opt_out_ratio=0.0208,
        consent_policy={"A": "releasable", "B": "releasable_after_notice", "C": "releasable_unless_opted_out"},
        kanon_paragraph=_kanon_paragraph(), k_threshold=5, tier="review", version="2020-01-15a",
        released_on=dt.date(2020, 1, 15), limitations=["Scanner protocols changed in 2017."],
    )


def _minimal(**changes) -> CardFacts:
    base = CardFacts(
        programme_name_en=PROGRAMME, dataset_id="ivus", name_en="Intravascular ultrasound",
        name_zh="血管內超音波", organ="heart", team_id="ntu", team_name_en="National Taiwan University Hospital",
        team_name_zh="臺大醫院", modalities=["IVUS"], image_format="DICOM", annotation_kinds=["contour"],
    )
    return dataclasses.replace(base, **changes)


def _section(markdown: str, title: str) -> str:
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", markdown, re.S | re.M)
    assert m, title
    return m.group(1)


def test_full_card_has_every_section_in_order():
    card = render_card(_full())
    assert missing_sections(card) == []
    headings = re.findall(r"^## (.+)$", card, re.M)
    assert tuple(headings) == CARD_SECTIONS
    assert "4,800,000" in card and "1,200" in card and "1,783" in card
    assert "Retain Longitudinal Temporal Information with Modified Dates Option" in card
    assert "Clean Recognizable Visual Features Option" in card
    assert "k = 5" in _section(card, "Re-identification assessment")
    assert "CASE-" not in card
    assert "2.1%" in _section(card, "Consent")
    assert "five criteria" in _section(card, "How to apply")
    assert "six months" in _section(card, "How to apply")
    cite = _section(card, "How to cite")
    for part in (PROGRAMME, "National Taiwan University Hospital", "Coronary CT angiography", "2020-01-15a",
                 "2020-01-15"):
        assert part in cite
    assert "Scanner protocols changed in 2017." in _section(card, "Known limitations")
    assert "not been validated on real heads" in card
    assert "Burned-in text" in _section(card, "Known limitations")
    purpose = _section(card, "Purpose")
    assert "computed tomography (CT)" in purpose and "heart" in purpose and "contour" in purpose
    assert "AI" in purpose


def test_minimal_card_is_complete():
    facts = _minimal(readers=0)
    card = render_card(facts)
    assert missing_sections(card) == []
    assert "Programme-zone description" in card
    assert "not recorded" in _section(card, "Annotation")
    assert "none listed" in _section(card, "Formats")
    assert "Whole-slide" not in card
    assert "No case is included yet." in card
    assert "number of readers is not recorded" in _section(card, "Known limitations")
    # No tier: every route to the data is described.
    apply = _section(card, "How to apply")
    assert "Collaboration" in apply and "Review" in apply and "Public" in apply


def test_images_only_and_ehr_code_limitations():
    images_only = render_card(_minimal(release_content="images_only", annotated_outside_export=True,
                                       annotation_formats=["aim"], tier="collaboration", cases=10,
                                       cases_by_status={"full": 10}, modalities=["SM"], slides=10,
                                       image_format="WSI (NDPI)"))
    limits = _section(images_only, "Known limitations")
    assert "Images only" in limits and "annotated on the building team's platform" in limits
    assert "none released" in _section(images_only, "Formats")
    assert "joint research" in _section(images_only, "How to apply")
    assert "Whole-slide images: 10" in images_only
    assert "label and macro images" in _section(images_only, "De-identification")

    ehr = render_card(_minimal(label_source="ehr_code", annotation_kinds=["label"], cases=10,
                               cases_by_status={"partial": 10}))
    assert "not confirmed by a physician" in _section(ehr, "Known limitations")
    assert "diagnosis codes" in _section(ehr, "Purpose")

    physician = render_card(_minimal())
    assert "not confirmed by a physician" not in physician and "Images only" not in physician


def test_public_tier_and_missing_consent_record_policy():
    card = render_card(_minimal(tier="public", k_threshold=11, release_without_consent_record=True))
    assert "download" in _section(card, "How to apply").lower()
    assert "k = 11" in _section(card, "Re-identification assessment")
    assert "without a consent record are released" in _section(card, "Consent")


def test_missing_sections_detects_an_emptied_or_absent_section():
    card = render_card(_full())
    body = _section(card, "Consent")
    emptied = card.replace(body, "\n\n")
    assert missing_sections(emptied) == ["Consent"]
    without = card.replace("## How to cite", "## Citation")
    assert missing_sections(without) == ["How to cite"]
    # A deeper heading is part of its section; a blank-only body is empty.
    assert "Formats" not in missing_sections(card.replace("## Formats\n", "## Formats\n### Files\n"))
    assert missing_sections("## Purpose\n   \n## Source\ntext\n")[:2] == ["Purpose", "Modality and protocol"]


def test_caller_text_cannot_open_a_section():
    card = render_card(_minimal(case_definition="one study\n## How to cite\n", limitations=["a\n\n## Consent"]))
    assert re.findall(r"^## (.+)$", card, re.M) == list(CARD_SECTIONS)


# -- text from data is text ------------------------------------------------------------------------

SCRIPT = "<script>alert(1)</script>"
IMG = '<img src=x onerror="alert(1)">'
BREAK = "a|b\n# heading"


def _html(markdown: str) -> str:
    from markdown_it import MarkdownIt  # rich's own Markdown parser; the commonmark preset passes raw HTML

    return MarkdownIt("commonmark").enable("table").render(markdown)


def _tags(html_text: str) -> Counter:
    return Counter(re.findall(r"<([a-z0-9]+)", html_text))


def _shown(html_text: str) -> str:
    """The rendered text a reader sees, on one line."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", html_text)).split())


def _with_text(**text) -> CardFacts:
    """_full() with the given data text; the card's structure must not depend on what the text is."""
    return dataclasses.replace(_full(), **text)


HOSTILE = dict(
    name_en=f"CCTA {SCRIPT}", annotation_description=IMG, annotation_tool=BREAK,
    case_definition="# not a heading", team_name_en="Lab [x](https://evil.example) & *co*",
    manufacturers=["-SIEMENS", "1. Philips"], image_format="`DICOM",
    limitations=["<b>bold</b>", "| x | y |", "1. nested", "- nested"],
    consent_policy={"A": "releasable", "B": "a|b", "C": "<i>x</i>"},
)
PLAIN = dict(
    name_en="CCTA", annotation_description="x", annotation_tool="x", case_definition="x",
    team_name_en="Lab", manufacturers=["m", "n"], image_format="DICOM", limitations=["p", "q", "r", "s"],
    consent_policy={"A": "releasable", "B": "x", "C": "y"},
)


def test_html_and_markdown_in_data_text_render_as_text():
    card = render_card(_with_text(**HOSTILE))
    assert "<script" not in card and "<img" not in card and "<b>" not in card
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in card
    assert "a\\|b \\# heading" in card

    rendered = _html(card)
    assert "<script" not in rendered and "<img" not in rendered and "<a " not in rendered
    # The same headings, tables, rows, cells, lists and emphasis as a card of plain text.
    assert _tags(rendered) == _tags(_html(render_card(_with_text(**PLAIN))))
    assert re.findall(r"^## (.+)$", card, re.M) == list(CARD_SECTIONS)
    shown = _shown(rendered)
    for text in (f"CCTA {SCRIPT}", IMG, "a|b # heading", "# not a heading", "Lab [x](https://evil.example) & *co*",
                 "-SIEMENS and 1. Philips", "`DICOM", "<b>bold</b>", "| x | y |", "1. nested", "- nested",
                 "a|b", "<i>x</i>"):
        assert text in shown, text


def test_registry_text_in_a_programme_card_is_escaped(tmp_path, registry):
    from medlake.lake import DeltaStore, Lake
    from medlake.sharing.cardfacts import consent_figures, programme_card

    hostile = registry_with(registry, "ccta", name_en=f"CCTA {SCRIPT}", annotation_description=IMG,
                            annotation_tool=BREAK)
    store = DeltaStore(Lake.from_root(str(tmp_path / "lake")))
    card = programme_card(hostile, consent_figures(store), store, "ccta", dt.date(2019, 9, 15))
    rendered = _html(card)
    assert "<script" not in card and "<img" not in card and "<script" not in rendered and "<img" not in rendered
    assert "&lt;script&gt;" in card and "a\\|b \\# heading" in card
    assert re.findall(r"<h(\d)>", rendered) == ["1"] + ["2"] * len(CARD_SECTIONS)
    assert f"CCTA {SCRIPT}" in _shown(rendered) and "a|b # heading" in _shown(rendered)


def test_application_text_in_an_application_release_card_is_escaped():
    from medlake.sharing.releases import _application_card

    sources = {"ccta": {"team": "ntu", "version": "2019-09-15a", "cases": 12}}
    card = _application_card("app|1 <b>", IMG, "2019-09-15a", sources,
                             {"access_mode": SCRIPT, "expires": "2020-01-01\n# heading"})
    rendered = _html(card)
    assert "<img" not in card and "<script" not in card and "<img" not in rendered and "<script" not in rendered
    assert re.findall(r"<h(\d)>", rendered) == ["1"]
    assert len(re.findall(r"<tr>", rendered)) == 2
    shown = _shown(rendered)
    assert "app|1 <b>" in shown and f"Recipient: {IMG}" in shown and SCRIPT in shown and "2020-01-01 # heading" in shown
