"""Tables of sharing: which case may go to which tier, every release made, and access applications."""

from __future__ import annotations

import pyarrow as pa

from medlake.lake.tables import Column, TableDef

_STR = pa.string()
_DATE = pa.date32()
_TS = pa.timestamp("us", tz="UTC")

RELEASE_ELIGIBILITY = TableDef(
    zone="deid",
    name="release_eligibility",
    doc="For every case and sharing tier: whether it may be released, and every reason it may not "
        "(dataset sharing status and tiers, the hospital's shareable flag, consent, the identifier "
        "checker's verdict on the batches that brought it). Pseudonymous.",
    keys=("team", "dataset", "tier", "case_pseudonym"),
    partition_by=("team",),
    columns=(
        Column("team", _STR, "team id", False),
        Column("dataset", _STR, "dataset id", False),
        Column("tier", _STR, "collaboration, review or public", False),
        Column("case_pseudonym", _STR, "case pseudonym", False),
        Column("patient_pseudonym", _STR, "patient pseudonym", False),
        Column("eligible", pa.bool_(), "the case may be released at this tier", False),
        Column("reasons", pa.list_(_STR), "why not: tier_not_offered, part_not_shared, hospital_withheld, "
                                          "consent_*, identifier_check_failed, identifier_check_missing, "
                                          "no_objects", False),
        Column("content", _STR, "images_and_annotations or images_only (registry release_content)", False),
        Column("consent_class", _STR, "A, B, C or null"),
    ),
)

RELEASE_LOG = TableDef(
    zone="program",
    name="release_log",
    doc="The audit log of releases: every version published, refused, revoked or purged, and for whom. "
        "Counts and paths only.",
    keys=("logged_at", "path", "action"),
    columns=(
        Column("logged_at", _TS, "when", False),
        Column("released_on", _DATE, "the release date written into release.json (MEDLAKE_AS_OF when set)", False),
        Column("action", _STR, "published, refused, purged (a superseded version deleted) or revoked "
                               "(an application's release removed at expiry)", False),
        Column("kind", _STR, "tier (a per-team dataset release) or application", False),
        Column("tier", _STR, "collaboration, review or public", False),
        Column("team", _STR, "team id (null for an application's release)"),
        Column("dataset", _STR, "dataset id (null for an application's release)"),
        Column("application_id", _STR, "the application, for application releases"),
        Column("recipient", _STR, "who may read it: the tier's audience or the applicant's institution", False),
        Column("version", _STR, "version folder name", False),
        Column("path", _STR, "folder relative to MEDLAKE_RELEASES", False),
        Column("reason", _STR, "why refused or purged; for published: new, content_changed or withdrawal"),
        Column("cases", pa.int64(), "cases in the version", False),
        Column("objects", pa.int64(), "files under objects/", False),
        Column("bytes", pa.int64(), "bytes under objects/", False),
        Column("k_min", pa.int64(), "smallest equivalence class after the gate (null when empty)"),
        Column("suppressed", pa.int64(), "cases suppressed by the re-identification gate", False),
        Column("content_digest", _STR, "sha256 over the manifest: equal digests, equal content", False),
    ),
)

APPLICATIONS = TableDef(
    zone="program",
    name="applications",
    doc="Data-access applications from the landing zone's _applications/ folders, with the programme's "
        "eligibility rules applied, the committee's decision and scores, and the resulting status.",
    keys=("application_id",),
    columns=(
        Column("application_id", _STR, "folder name under _applications/", False),
        Column("applicant", _STR, "the applicant (a researcher, not a patient)"),
        Column("institution", _STR, "applicant's institution"),
        Column("institution_type", _STR, "academic, government or company"),
        Column("academic_partner", _STR, "a company's academic partner"),
        Column("purpose_category", _STR, "medical_research, public_health or other"),
        Column("datasets", pa.list_(_STR), "datasets applied for", False),
        Column("access_mode", _STR, "onsite, vpn or download"),
        Column("submitted", _DATE, "submission date"),
        Column("eligible", pa.bool_(), "the applicant and purpose meet the programme's rules", False),
        Column("ineligible_reasons", pa.list_(_STR), "why not", False),
        Column("decision", _STR, "approved, rejected, revise, or null before the committee decides"),
        Column("decided", _DATE, "decision date"),
        Column("score_scientific_basis", pa.int8(), "1-5"),
        Column("score_data_literacy", pa.int8(), "1-5"),
        Column("score_reasonableness_and_security", pa.int8(), "1-5"),
        Column("score_social_impact", pa.int8(), "1-5"),
        Column("score_reciprocity", pa.int8(), "1-5"),
        Column("agreement_signed", _DATE, "data-use agreement signed"),
        Column("pledges_signed", pa.int32(), "people who signed the confidentiality pledge", False),
        Column("expires", _DATE, "access expiry"),
        Column("released_datasets", pa.list_(_STR), "approved datasets offered at the review tier", False),
        Column("status", _STR, "invalid, ineligible, under_review, rejected, revise, "
                               "approved_awaiting_agreement, active, expired", False),
        Column("as_of", _DATE, "the date status is as of", False),
    ),
)

USAGE_REPORTS = TableDef(
    zone="program",
    name="usage_reports",
    doc="Usage reports an active application owes: one every six months after its first release; "
        "the dashboard lists overdue ones.",
    keys=("application_id", "due"),
    columns=(
        Column("application_id", _STR, "application", False),
        Column("period", pa.int32(), "1 for the first six months, 2 for the next...", False),
        Column("due", _DATE, "due date", False),
        Column("received_file", _STR, "usage-*.yaml that covers the period"),
        Column("publications", pa.int32(), "publications listed in the report"),
        Column("status", _STR, "received, due (not yet late) or overdue", False),
        Column("as_of", _DATE, "the date status is as of", False),
    ),
)

APPLICATION_PROBLEMS = TableDef(
    zone="program",
    name="application_problems",
    doc="Application folders and files that could not be used (unreadable YAML, missing fields, unknown "
        "datasets, a decision without an application, a bad date or score), with the reason.",
    keys=("application_id", "file", "code"),
    columns=(
        Column("application_id", _STR, "folder name", False),
        Column("file", _STR, "application.yaml, decision.yaml or usage-*.yaml", False),
        Column("code", _STR, "application_unreadable, application_invalid, application_unknown_dataset, "
                             "decision_without_application, decision_invalid, usage_invalid", False),
        Column("message", _STR, "what is wrong", False),
    ),
)

SHARING_TABLES = (RELEASE_ELIGIBILITY, RELEASE_LOG, APPLICATIONS, USAGE_REPORTS, APPLICATION_PROBLEMS)
