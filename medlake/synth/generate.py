"""Orchestration: plan cases per dataset, write each batch (images, annotations, cases.csv, _READY last),
then consent files and the truth file."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from medlake.program.registry import Dataset, Registry

from . import annotations as A
from .applications import write_applications
from .consent import write_consent
from .context import CaseContext
from .identities import Patient, Site, make_patient, make_site
from .ids import rng_for
from .images import write_images
from .status import kinds_by_format, possible_statuses
from .truth import IdentifierLog, write_truth
from .wsi import write_wsi

PARTS = ("shared", "partially_not_shared", "not_shared")
BATCH_SHEET_TARGET = {"lung-xray": "case_id", "fundus-glaucoma": "study_instance_uid"}


@dataclass(frozen=True)
class SynthSpec:
    datasets: tuple[str, ...] | None = None   # None: every dataset in the registry (or in status_counts)
    cases: int = 4                            # cases per dataset, spread over the statuses it can have
    status_counts: dict | None = None         # {dataset: {part: {"image_only": n, "partial": n, "full": n}}}
    batches: int = 1                          # batches per dataset
    tiny: bool = False                        # 8x8 pixels, one image object per case
    seed: int = 0
    consent: bool = True                      # write <team>/_consent/*.csv
    applications: bool = True                 # write _applications/ examples (every status and fault)


@dataclass
class SynthReport:
    teams: int = 0
    datasets: int = 0
    batches: int = 0
    cases: int = 0
    files: int = 0
    bytes: int = 0
    identifiers: int = 0
    truth_path: Path | None = None
    status_counts: dict = field(default_factory=dict)   # {dataset: {status: n}}


@dataclass
class _PlannedCase:
    dataset: Dataset
    index: int
    part: str
    status: str
    batch: str
    case_id: str
    patient: Patient | None = None


def _batch_name(b: int) -> str:
    return f"{dt.date(2019, 9, 15) + dt.timedelta(days=14 * b):%Y-%m-%d}-{'abcdefghij'[b % 10]}"


def _interleave(groups: list[list[tuple[str, str]]]) -> list[tuple[str, str]]:
    """Round-robin over (part, status) groups, so every batch gets a mix."""
    out, groups = [], [g[:] for g in groups if g]
    while groups:
        for g in groups:
            out.append(g.pop(0))
        groups = [g for g in groups if g]
    return out


def _slots(ds: Dataset, spec: SynthSpec) -> list[tuple[str, str]]:
    parts = [p.sharing for p in ds.parts]
    counts = (spec.status_counts or {}).get(ds.id)
    if counts is not None:
        groups = []
        for part, by_status in counts.items():
            if part not in parts:
                raise ValueError(f"synth: dataset {ds.id} has no {part} part (it has {parts})")
            for status, n in by_status.items():
                if n and status not in possible_statuses(ds):
                    raise ValueError(f"synth: dataset {ds.id} cannot have {status} cases "
                                     f"(possible: {possible_statuses(ds)})")
                groups.append([(part, status)] * int(n))
        return _interleave(groups)
    statuses = possible_statuses(ds)
    return [(parts[i % len(parts)], statuses[i % len(statuses)]) for i in range(spec.cases)]


def _selected(registry: Registry, spec: SynthSpec) -> list[Dataset]:
    if spec.datasets is not None:
        ids = list(spec.datasets)
    elif spec.status_counts:
        ids = list(spec.status_counts)
    else:
        ids = [d.id for d in registry.datasets]
    unknown = [i for i in ids if i not in registry.datasets_by_id]
    if unknown:
        raise ValueError(f"synth: unknown dataset(s) {unknown}")
    return [registry.dataset(i) for i in ids]


def plan(registry: Registry, spec: SynthSpec) -> dict[str, list[_PlannedCase]]:
    """team -> planned cases, patients assigned (a few patients appear in two datasets of a team)."""
    by_team: dict[str, list[_PlannedCase]] = {}
    for ds in _selected(registry, spec):
        slots = _slots(ds, spec)
        n_batches = max(1, min(spec.batches, len(slots) or 1))
        per = -(-len(slots) // n_batches) if slots else 0
        for i, (part, status) in enumerate(slots):
            by_team.setdefault(ds.team, []).append(_PlannedCase(
                ds, i, part, status, _batch_name(i // per if per else 0), f"{ds.id.upper()}-{i + 1:05d}"))
    for team, cases in by_team.items():
        charts: set[str] = set()
        names: set[str] = set()
        pool: list[tuple[Patient, str]] = []   # (patient, first dataset)
        reused: set[str] = set()
        for n, c in enumerate(cases):
            if n % 8 == 7:
                other = [p for p, d in pool if d != c.dataset.id and p.chart_no not in reused]
                if other:
                    c.patient = other[0]
                    reused.add(other[0].chart_no)
                    continue
            c.patient = make_patient(rng_for(spec.seed, team, "patient", n), team, charts, names)
            pool.append((c.patient, c.dataset.id))
    return by_team


def _case_context(out: Path, spec: SynthSpec, c: _PlannedCase, site: Site, plant) -> CaseContext:
    r = rng_for(spec.seed, c.dataset.team, c.dataset.id, c.case_id)
    p = c.patient
    style = r.random()
    if style < 0.25:
        folder = f"{p.name_file}_{p.chart_no}"
        plant("name_file", p.name_file, "path")
        plant("chart_no", p.chart_no, "path")
    elif style < 0.4:
        folder = p.chart_no
        plant("chart_no", p.chart_no, "path")
    else:
        folder = c.case_id
    return CaseContext(seed=spec.seed, team=c.dataset.team, dataset=c.dataset, batch=c.batch, case_id=c.case_id,
                       patient=p, site=site, tiny=spec.tiny, rng=r,
                       batch_dir=out / c.dataset.team / c.dataset.id / c.batch, plant=plant,
                       chinese=r.random() < 0.75, case_folder=folder, file_style=r.choice(["IM", "IM", "uid", "bare"]))


def _note(ctx: CaseContext) -> str:
    p = ctx.patient
    if ctx.chinese:
        ctx.plant("name_zh", p.name_zh, "cases.csv:note")
        return f"{p.name_zh} 門診追蹤, 聯絡 {p.phone}"
    ctx.plant("name_text", p.name_text, "cases.csv:note")
    return f"{p.name_text} - outpatient follow-up"


def generate(out: Path, registry: Registry, spec: SynthSpec, truth_path: Path | None = None,
             progress: Callable[[int, int], None] | None = None) -> SynthReport:
    out = Path(out)
    truth_path = Path(truth_path) if truth_path else out / "_synth" / "truth.json"
    by_team = plan(registry, spec)
    total = sum(len(v) for v in by_team.values())
    log = IdentifierLog()
    cases_truth, objects, consent_rows, written = [], [], [], []
    report = SynthReport()
    done = 0
    for team_id, cases in by_team.items():
        team = registry.teams_by_id[team_id]
        site = make_site(rng_for(spec.seed, team_id, "site"), team.code, team.name_en, team.name_zh)
        batches: dict[tuple[str, str], list[_PlannedCase]] = {}
        for c in cases:
            batches.setdefault((c.dataset.id, c.batch), []).append(c)
        for (ds_id, batch), bcases in batches.items():
            ds = bcases[0].dataset
            batch_dir = out / team_id / ds_id / batch
            br = rng_for(spec.seed, team_id, ds_id, batch)
            sheet_target = BATCH_SHEET_TARGET.get(ds_id) if "label_sheet" in ds.annotation_formats else None
            sheet_id, sheet_name = br.random() < 0.7, br.random() < 0.4
            sheet_rows: list[dict] = []
            sheet_cases: list[str] = []
            manifest = []
            for c in bcases:
                plant = log.planter(team_id, c.patient.chart_no)
                ctx = _case_context(out, spec, c, site, plant)
                if "SM" in ds.modalities:
                    ctx.studies.append(_wsi_study(ctx))
                    write_wsi(ctx)
                else:
                    write_images(ctx)
                n_images = len(ctx.objects)
                kinds = kinds_by_format(ds, c.status)
                in_sheet = False
                for fmt, ks in kinds.items():
                    if fmt == "label_sheet":
                        if sheet_target:
                            A.plant_sheet_identifiers(ctx, sheet_id, sheet_name)
                            sheet_rows += A.sheet_rows(ctx, ks, sheet_target)
                            sheet_cases.append(c.case_id)
                            in_sheet = True
                        else:
                            A.write_case_sheet(ctx, ks)
                    else:
                        A.WRITERS[fmt](ctx, ks)
                study_uids = [s.uid for s in ctx.studies]
                shareable = "no" if c.part == "partially_not_shared" else "yes"
                manifest.append({"case_id": c.case_id, "patient_id": c.patient.chart_no,
                                 "study_instance_uids": ";".join(study_uids), "label_source": ds.label_source,
                                 "shareable": shareable, "consent_class": c.patient.consent_class,
                                 "note": _note(ctx)})
                plant("chart_no", c.patient.chart_no, "cases.csv:patient_id")
                cases_truth.append({
                    "team": team_id, "dataset": ds_id, "batch": batch, "case_id": c.case_id,
                    "patient_id": c.patient.chart_no, "part": c.part, "study_instance_uids": study_uids,
                    "series_instance_uids": [se.uid for st in ctx.studies for se in st.series],
                    "sop_instance_uids": [i.sop_uid for i in ctx.all_instances()],
                    "expected_status": c.status,
                    "annotation_kinds": sorted({k for ks in kinds.values() for k in ks}),
                    "label_source": ds.label_source, "shareable": shareable,
                    "consent_class": c.patient.consent_class, "image_files": n_images,
                    "annotation_files": len(ctx.objects) - n_images + (1 if in_sheet else 0)})
                objects += ctx.objects
                written += [batch_dir / o["path"] for o in ctx.objects]
                report.status_counts.setdefault(ds_id, {}).setdefault(c.status, 0)
                report.status_counts[ds_id][c.status] += 1
                done += 1
                if progress:
                    progress(done, total)
            if sheet_rows:
                rel = f"annotations/ehr_labels_{batch}.csv" if ds.label_source == "ehr_code" else f"annotations/labels_{batch}.csv"
                cols = A.sheet_columns(sheet_target, sheet_id, sheet_name)
                (batch_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                (batch_dir / rel).write_bytes(A.csv_bytes(cols, sheet_rows, bom=br.random() < 0.3))
                objects.append({"team": team_id, "dataset": ds_id, "batch": batch, "path": rel, "kind": "label_sheet",
                                "sop_instance_uid": None, "case_id": None, "case_ids": sheet_cases,
                                "burned_in_text": False})
                written.append(batch_dir / rel)
            cols = ["case_id", "patient_id", "study_instance_uids", "label_source", "shareable", "consent_class", "note"]
            batch_dir.mkdir(parents=True, exist_ok=True)
            (batch_dir / "cases.csv").write_bytes(A.csv_bytes(cols, manifest, bom=br.random() < 0.4))
            (batch_dir / "_READY").write_bytes(b"")    # last: the batch is complete
            written += [batch_dir / "cases.csv", batch_dir / "_READY"]
            report.batches += 1
        if spec.consent:
            patients = list({c.patient.chart_no: c.patient for c in cases}.values())
            rows = write_consent(out, spec.seed, team_id, patients)
            consent_rows += rows
            written += sorted({out / r["file"] for r in rows})
    applications = write_applications(out, registry) if spec.applications else []
    identifiers = log.rows()
    write_truth(truth_path, spec.seed, _spec_json(spec), identifiers, cases_truth, objects, consent_rows,
                applications)
    report.teams = len(by_team)
    report.datasets = len({c["dataset"] for c in cases_truth})
    report.cases = len(cases_truth)
    report.files = len(written)
    report.bytes = sum(p.stat().st_size for p in written)
    report.identifiers = len(identifiers)
    report.truth_path = truth_path
    return report


def _wsi_study(ctx: CaseContext):
    """Pathology cases still need a study UID for cases.csv (the LIS accession's study)."""
    from .context import Study
    r = ctx.rng
    date = dt.date(2017, 11, 1) + dt.timedelta(days=r.randrange(0, 700))
    accession = f"P{date:%y}{r.randrange(10_000_000, 99_999_999)}"
    return Study(uid=ctx.uid("study", 1), date=date, time="100000", accession=accession,
                 study_id="1", description="LUNG BIOPSY WSI")


def _spec_json(spec: SynthSpec) -> dict:
    d = dataclasses.asdict(spec)
    d["datasets"] = list(spec.datasets) if spec.datasets is not None else None
    return d
