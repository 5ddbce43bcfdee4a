"""Restricted-zone tables of consent: each patient's status, the rows that could not be used, and
the audit of what a withdrawal removed."""

from __future__ import annotations

import pyarrow as pa

from medlake.lake.tables import Column, TableDef

_STR = pa.string()
_DATE = pa.date32()
_TS = pa.timestamp("us", tz="UTC")

CONSENT_STATUS = TableDef(
    zone="restricted",
    name="consent_status",
    doc="Each patient's consent status, folded from every consent event received and the patient's "
        "cases.csv class, with the registry's policy for that class applied. The release gates read it "
        "by pseudonym; it never leaves the restricted zone.",
    keys=("team", "patient_id"),
    partition_by=("team",),
    columns=(
        Column("team", _STR, "team id", False),
        Column("patient_id", _STR, "hospital patient id (identifier)", False),
        Column("patient_pseudonym", _STR, "the patient's pseudonym in every de-identified output", False),
        Column("consent_class", _STR, "A, B or C: the latest event's class, else the cases.csv class"),
        Column("has_record", pa.bool_(), "at least one consent event was received", False),
        Column("notified", pa.bool_(), "a notice was sent and not returned undelivered afterwards", False),
        Column("undelivered", pa.bool_(), "the latest notice came back undelivered", False),
        Column("consented", pa.bool_(), "a consented event was received", False),
        Column("opted_out_on", _DATE, "date of the first opted_out event"),
        Column("withdrawn_on", _DATE, "date of the first withdrawn event"),
        Column("deceased_on", _DATE, "date of the deceased event"),
        Column("rule", _STR, "the registry's policy for the class: releasable, releasable_after_notice, "
                             "releasable_unless_opted_out, never; none without a class"),
        Column("releasable", pa.bool_(), "the class policy allows release (a dataset may still release "
                                         "patients without a record: release_without_consent_record)", False),
        Column("reason", _STR, "why not releasable: consent_opted_out, consent_withdrawn, consent_no_record, "
                               "consent_not_notified, consent_policy_never, consent_no_class"),
        Column("in_cases", pa.bool_(), "the patient appears in a cases.csv of the team", False),
        Column("last_event_date", _DATE, "date of the latest event"),
    ),
)

CONSENT_PROBLEMS = TableDef(
    zone="restricted",
    name="consent_problems",
    doc="Consent rows and files that could not be used as sent (unknown event or class, bad date, "
        "unknown patient, a class that contradicts cases.csv): reported with file and line, never "
        "silently dropped. Messages carry no identifier values.",
    keys=("team", "file", "line", "code"),
    partition_by=("team",),
    columns=(
        Column("team", _STR, "team id", False),
        Column("file", _STR, "file name under <team>/_consent/", False),
        Column("line", pa.int32(), "line number (1 = header, 0 = the whole file)", False),
        Column("code", _STR, "consent_file_unreadable, consent_file_columns, consent_row_invalid, "
                             "consent_unknown_patient (kept: applies once the patient's case lands), "
                             "consent_class_conflict", False),
        Column("message", _STR, "what is wrong", False),
    ),
)

WITHDRAWAL_AUDIT = TableDef(
    zone="restricted",
    name="withdrawal_audit",
    doc="What each opt-out or withdrawal removed from the shareable zones: one row per patient and "
        "place (a deid table, the de-identified objects, a release version), with the event that "
        "caused it. Written by the run that removed it.",
    keys=("team", "patient_pseudonym", "scope", "target", "removed_at"),
    partition_by=("team",),
    columns=(
        Column("team", _STR, "team id", False),
        Column("patient_pseudonym", _STR, "the patient's pseudonym", False),
        Column("event", _STR, "opted_out or withdrawn", False),
        Column("event_date", _DATE, "the event's date", False),
        Column("event_file", _STR, "consent file that carried the event", False),
        Column("event_line", pa.int32(), "its line", False),
        Column("scope", _STR, "deid_table, deid_objects, release or application_release", False),
        Column("target", _STR, "table name, or release folder relative to MEDLAKE_RELEASES", False),
        Column("removed_rows", pa.int64(), "rows deleted", False),
        Column("removed_objects", pa.int64(), "files deleted (or rewritten without the patient)", False),
        Column("removed_bytes", pa.int64(), "bytes of those files", False),
        Column("removed_at", _TS, "when", False),
    ),
)

CONSENT_TABLES = (CONSENT_STATUS, CONSENT_PROBLEMS, WITHDRAWAL_AUDIT)
