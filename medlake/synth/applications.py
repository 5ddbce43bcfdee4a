"""Example data-access applications (EXPORT_FORMAT.md `_applications/<id>/`), one per status worth showing.

Dates are fixed so every status holds for any as_of from the synthetic landing date 2019-09-15 to
the end of the programme period, 2020-11-30. Usage reports are due from the first release, which is
the agreement's signing date for these (medlake counts access from the signature when it predates
its own first release); each description names the date its expected usage rows assume.
"""

from __future__ import annotations

import copy
import datetime as dt
from pathlib import Path

import yaml

from medlake.landing.zone import APPLICATIONS_DIR
from medlake.program import Registry

AS_OF = dt.date(2019, 9, 15)
_UNKNOWN = "knee-mri"           # the one dataset id the programme must not have
_OUTSIDE_REVIEW = "lung-ct"     # the one dataset named that is offered at collaboration only
D = dt.date.fromisoformat

_SCORES = {"scientific_basis": 4, "data_literacy": 4, "reasonableness_and_security": 5, "social_impact": 4,
           "reciprocity": 3}

# (folder, files, description). Free text (purpose, reasons, notes) is deliberately recognisable so
# tests can check it never reaches a problem message. Names are invented.
_APPLICATIONS: list[tuple[str, dict[str, dict], dict]] = [
    ("app-2019-001", {
        "application.yaml": {
            "applicant": "Chen Wei-ting", "institution": "Example University College of Medicine",
            "institution_type": "academic",
            "purpose": "Free text: deep-learning coronary plaque quantification across two hospitals.",
            "purpose_category": "medical_research", "datasets": ["ccta", "af-cardiac-ct"],
            "access_mode": "vpn", "submitted": D("2018-12-03")},
        "decision.yaml": {
            "decision": "approved", "decided": D("2019-01-20"),
            "reasons": "Free text: sound protocol, experienced team.", "scores": _SCORES,
            "agreement_signed": D("2019-02-15"), "pledges_signed": ["Chen Wei-ting", "Lai Yu-chen", "Ho Pei-shan"],
            "expires": D("2021-06-30")},
        "usage-2019-h1.yaml": {
            "period": "2019-02-15..2019-08-15",
            "publications": ["Example et al., Plaque segmentation on CCTA, J Example Imaging 2019"],
            "notes": "Free text: model trained; second site validation next."},
    }, {"scenario": "academic medical research, two review-tier datasets of two teams, approved, "
                    "signed, one usage report (date-range period)",
        "expected_status": "active", "released_datasets": ["ccta", "af-cardiac-ct"],
        "first_release": "2019-02-15",
        "expected_usage": [{"period": 1, "due": "2019-08-15", "status": "received"},
                           {"period": 2, "due": "2020-02-15", "status": "due"}]}),
    ("app-2019-002", {
        "application.yaml": {
            "applicant": "Wu Chia-hao", "institution": "Example Imaging AI Co., Ltd.", "institution_type": "company",
            "purpose": "Free text: train a commercial aneurysm detector.", "purpose_category": "medical_research",
            "datasets": ["aneurysm-mra"], "access_mode": "download", "submitted": D("2019-06-10")},
    }, {"scenario": "company without an academic partner", "expected_status": "ineligible",
        "ineligible_reasons": ["company_without_academic_partner"]}),
    ("app-2019-003", {
        "application.yaml": {
            "applicant": "Tsai Shu-fen", "institution": "Example Centers for Disease Control",
            "institution_type": "government",
            "purpose": "Free text: liver cancer screening yield by region.", "purpose_category": "public_health",
            "datasets": ["liver-ct", "fundus-glaucoma"], "access_mode": "onsite", "submitted": D("2019-08-20")},
    }, {"scenario": "government public health, no decision yet", "expected_status": "under_review"}),
    ("app-2019-004", {
        "application.yaml": {
            "applicant": "Lee Ming-hsuan", "institution": "Example Medical University", "institution_type": "academic",
            "purpose": "Free text: knee cartilage mapping.", "purpose_category": "medical_research",
            "datasets": ["ccta", "knee-mri"], "access_mode": "onsite", "submitted": D("2019-07-01")},
    }, {"scenario": "names a dataset the programme does not have", "expected_status": "invalid",
        "expected_problems": ["application_unknown_dataset"]}),
    ("app-2019-005", {
        "decision.yaml": {"decision": "rejected", "decided": D("2019-05-05"), "reasons": "Free text: no protocol."},
    }, {"scenario": "a decision.yaml without its application.yaml", "expected_status": None,
        "expected_problems": ["decision_without_application"]}),
    ("app-2019-006", {
        "application.yaml": {
            "applicant": "Huang Yi-jun", "institution": "Example University Hospital Research Institute",
            "institution_type": "academic", "purpose": "Free text: SPECT perfusion defect grading.",
            "purpose_category": "medical_research", "datasets": ["spect-perfusion"], "access_mode": "onsite",
            "submitted": D("2018-05-02")},
        "decision.yaml": {
            "decision": "approved", "decided": D("2018-06-15"), "reasons": "Free text: approved for one year.",
            "scores": _SCORES, "agreement_signed": D("2018-07-01"), "pledges_signed": ["Huang Yi-jun"],
            "expires": D("2019-06-30")},
    }, {"scenario": "approved and signed, access expired before 2019-09-15", "expected_status": "expired",
        "released_datasets": ["spect-perfusion"], "first_release": "2018-07-01",
        "expected_usage": [{"period": 1, "due": "2019-01-01", "status": "overdue"}]}),
    ("app-2019-007", {
        "application.yaml": {
            "applicant": "Kuo Hsin-yi", "institution": "Example Health Analytics Inc.", "institution_type": "company",
            "academic_partner": "Example Medical University",
            "purpose": "Free text: small-vessel disease burden and stroke risk.", "purpose_category": "public_health",
            "datasets": ["svd-mri", "lung-ct"], "access_mode": "download", "submitted": D("2019-07-15")},
        "decision.yaml": {
            "decision": "approved", "decided": D("2019-08-30"), "reasons": "Free text: partner supervises.",
            "scores": _SCORES, "expires": D("2021-08-31")},
    }, {"scenario": "company with an academic partner, approved, agreement not yet signed; one dataset "
                    "is not offered at the review tier",
        "expected_status": "approved_awaiting_agreement", "released_datasets": ["svd-mri"],
        "ineligible_reasons": ["dataset_not_in_review_tier:lung-ct"]}),
    ("app-2019-008", {
        "application.yaml": {
            "applicant": "Lin Kuan-yu", "institution": "Example National Research Institute",
            "institution_type": "government", "purpose": "Free text: tumour growth modelling.",
            "purpose_category": "medical_research", "datasets": ["brain-tumor-mri"], "access_mode": "vpn",
            "submitted": D("2019-04-01")},
        "decision.yaml": {
            "decision": "rejected", "decided": D("2019-05-20"), "reasons": "Free text: insufficient security plan.",
            "scores": {**_SCORES, "reasonableness_and_security": 1}},
    }, {"scenario": "rejected by the committee", "expected_status": "rejected"}),
]


def write_applications(out: Path, registry: Registry) -> list[dict]:
    """Write the example folders under <out>/_applications/; return one description per folder.

    Each description has application_id, scenario, expected_status (as of 2019-09-15; None when the
    folder yields no application row), expected_problems, released_datasets, ineligible_reasons and,
    where usage reports apply, the first_release date they assume and the expected_usage rows.
    """
    _check_datasets(registry)
    root = Path(out) / APPLICATIONS_DIR
    described = []
    for app_id, files, desc in _APPLICATIONS:
        folder = root / app_id
        folder.mkdir(parents=True, exist_ok=True)
        for name, doc in files.items():
            (folder / name).write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
        described.append({"application_id": app_id, "as_of": AS_OF.isoformat(), "expected_problems": [],
                          "released_datasets": [], "ineligible_reasons": [], **copy.deepcopy(desc)})
    return described


def _check_datasets(registry: Registry) -> None:
    """The examples' statuses depend on the registry's tiers: fail loudly if it no longer matches."""
    for app_id, files, _ in _APPLICATIONS:
        for d in files.get("application.yaml", {}).get("datasets", []):
            ds = registry.datasets_by_id.get(d)
            review = ds is not None and "review" in ds.offered_tiers
            if (d == _UNKNOWN) != (ds is None) or review != (d not in (_UNKNOWN, _OUTSIDE_REVIEW)):
                raise ValueError(f"synth applications: {app_id}: dataset {d!r} is no longer what the example "
                                 f"needs (unknown: {d == _UNKNOWN}, outside the review tier: {d == _OUTSIDE_REVIEW})")
