"""Fill a dataset card's facts from the registry, the lake and (for a release) its selection.

Only aggregates leave this module: counts, ranges and names from the registry."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from medlake.lake.delta import DeltaStore
from medlake.lake.tables import ANNOTATIONS, CASES, CONSENT_EVENTS, INSTANCES, SOURCE_CASES
from medlake.program import Registry
from medlake.sharing.card import CardFacts, render_card
from medlake.sharing.kanon import describe
from medlake.sharing.selection import Selection

LIMITATIONS = (
    "The DICOM headers keep the de-identified age, sex and shifted dates (Retain Patient Characteristics, "
    "Retain Longitudinal Temporal Information with Modified Dates); the re-identification gate generalises "
    "the release's tables and suppresses cases, it does not rewrite the headers of the objects it keeps.",
    "Counts are the cases landed and released on the release date, not the programme's targets (seed table 5).",
)


@dataclass
class ConsentFigures:
    notices_sent: int = 0
    undelivered: int = 0
    opt_outs: int = 0
    withdrawals: int = 0

    @property
    def ratio(self) -> float | None:
        delivered = self.notices_sent - self.undelivered
        return (self.opt_outs + self.withdrawals) / delivered if delivered > 0 else None


def consent_figures(store: DeltaStore) -> dict[str, ConsentFigures]:
    """dataset -> notices, undelivered, opt-outs and withdrawals among the dataset's patients."""
    cases = store.read(SOURCE_CASES, ["team", "dataset", "patient_id"])
    datasets_of: dict[tuple[str, str], set[str]] = {}
    for team, ds, pid in zip(*(cases.column(i).to_pylist() for i in range(3))):
        datasets_of.setdefault((team, pid), set()).add(ds)
    events = store.read(CONSENT_EVENTS, ["team", "patient_id", "event"])
    out: dict[str, ConsentFigures] = {}
    field_of = {"notice_sent": "notices_sent", "undelivered": "undelivered", "opted_out": "opt_outs",
                "withdrawn": "withdrawals"}
    for team, pid, event in zip(*(events.column(i).to_pylist() for i in range(3))):
        name = field_of.get(event)
        if name is None:
            continue
        for ds in datasets_of.get((team, pid), ()):
            f = out.setdefault(ds, ConsentFigures())
            setattr(f, name, getattr(f, name) + 1)
    return out


def _protocol(instances: pa.Table) -> dict:
    def rng(col: str) -> tuple[float, float] | None:
        v = pc.drop_null(instances[col]) if instances.num_rows else pa.array([], pa.float64())
        return (pc.min(v).as_py(), pc.max(v).as_py()) if len(v) else None
    sizes = Counter(f"{r}x{c}" for r, c in zip(instances.column("rows").to_pylist(),
                                               instances.column("columns").to_pylist()) if r and c)
    makers = sorted({m for m in instances.column("manufacturer").to_pylist() if m})
    return {"manufacturers": makers, "slice_thickness_mm": rng("slice_thickness"),
            "pixel_spacing_mm": rng("pixel_spacing_row"), "image_sizes": [s for s, _ in sizes.most_common(3)]}


def _case_definition(registry: Registry, dataset: str) -> str:
    spec = registry.dataset(dataset)
    kinds = ", ".join(spec.required_annotation_kinds)
    return (f"A case is one entry of the hospital's cases.csv: one patient's {', '.join(spec.modalities)} "
            f"studies for this dataset, with the annotations that reference them. Its status is computed "
            f"from the annotations actually found: full when every required kind ({kinds}) is present, "
            f"partial when some are (or when labels come from diagnosis codes), image only when none are.")


def _base(registry: Registry, dataset: str, figures: dict[str, ConsentFigures]) -> dict:
    spec = registry.dataset(dataset)
    team = registry.teams_by_id[spec.team]
    f = figures.get(dataset, ConsentFigures())
    return dict(
        programme_name_en=registry.programme.name_en, programme_name_zh=registry.programme.name_zh,
        dataset_id=dataset, name_en=spec.name_en, name_zh=spec.name_zh, organ=spec.organ, team_id=team.id,
        team_name_en=team.name_en, team_name_zh=team.name_zh, sites=(team.name_en,), modalities=spec.modalities,
        image_format=spec.image_format, case_definition=_case_definition(registry, dataset),
        annotation_kinds=spec.required_annotation_kinds, annotation_description=spec.annotation_description,
        annotation_tool=spec.annotation_tool, label_source=spec.label_source,
        annotation_formats=spec.annotation_formats, release_content=spec.release_content,
        annotated_outside_export=spec.annotated_outside_export, deid_options=registry.deid_options(dataset),
        opt_outs=f.opt_outs, withdrawals=f.withdrawals, notices_sent=f.notices_sent,
        notices_undelivered=f.undelivered, opt_out_ratio=f.ratio, consent_policy=dict(registry.consent_policy),
        release_without_consent_record=spec.release_without_consent_record, limitations=LIMITATIONS)


def release_card(registry: Registry, figures: dict[str, ConsentFigures], consent_class: dict[str, str | None],
                 store: DeltaStore, sel: Selection, version: str, today: dt.date) -> str:
    """The card inside a release: counts are the release's own."""
    by_status = Counter(sel.cases.column("annotation_status").to_pylist())
    classes = Counter(consent_class.get(c) or "none" for c in sel.cases.column("case_pseudonym").to_pylist())
    readers = len({r for r in sel.annotations.column("reader_role").to_pylist() if r}) \
        if sel.content != "images_only" else None
    facts = CardFacts(**_base(registry, sel.dataset, figures), **_protocol(sel.instances),
                      cases_by_status=dict(by_status), cases=sel.cases.num_rows,
                      instances=sel.instances.num_rows, slides=sel.slides.num_rows, readers=readers,
                      consent_cases=dict(classes), kanon_paragraph=describe(sel.kres, sel.k), k_threshold=sel.k,
                      tier=sel.tier, version=version, released_on=today)
    return render_card(facts)


def programme_card(registry: Registry, figures: dict[str, ConsentFigures], store: DeltaStore, dataset: str,
                   today: dt.date) -> str:
    """The programme zone's card of a dataset: every case built, whatever may be released."""
    spec = registry.dataset(dataset)
    in_ds = (pads.field("team") == spec.team) & (pads.field("dataset") == dataset)
    cases = store.read(CASES, ["annotation_status", "consent_class", "slides"], where=in_ds)
    instances = store.read(INSTANCES, ["rows", "columns", "manufacturer", "slice_thickness",
                                                 "pixel_spacing_row"], where=in_ds)
    readers = store.read(ANNOTATIONS, ["reader_role"], where=in_ds)
    k_text = ("Not assessed here: the re-identification gate (k-anonymity over age band, sex, study year and "
              "team) runs on each release, and each release's card states its result. This card describes "
              "every case built, including cases that are not released.")
    facts = CardFacts(**_base(registry, dataset, figures), **_protocol(instances),
                      cases_by_status=dict(Counter(cases.column("annotation_status").to_pylist())),
                      cases=cases.num_rows, instances=instances.num_rows,
                      slides=sum(x or 0 for x in cases.column("slides").to_pylist()),
                      readers=len({r for r in readers.column(0).to_pylist() if r}),
                      consent_cases=dict(Counter(c or "none" for c in cases.column("consent_class").to_pylist())),
                      kanon_paragraph=k_text, tier=None, released_on=today)
    return render_card(facts)

