"""cases.csv: parse and validate the case manifest, row by row, without echoing identifiers."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

REQUIRED = ("case_id", "patient_id", "study_instance_uids")
OPTIONAL = ("label_source", "shareable", "consent_class", "note")
LABEL_SOURCES = {"physician", "ehr_code"}
CONSENT_CLASSES = {"A", "B", "C"}
YES_NO = {"yes": True, "no": False}


@dataclass
class RowIssue:
    line: int
    code: str
    message: str


@dataclass
class Manifest:
    rows: list[dict] = field(default_factory=list)  # valid rows (note dropped)
    issues: list[RowIssue] = field(default_factory=list)
    file_problem: tuple[str, str] | None = None  # (code, message) when the file as a whole is unusable


def parse_cases_csv(data: bytes) -> Manifest:
    out = Manifest()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        out.file_problem = ("cases_manifest_invalid", "cases.csv is not UTF-8 text")
        return out
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        out.file_problem = ("cases_manifest_invalid",
                            f"cases.csv lacks the required column(s): {', '.join(missing)}")
        return out
    reader.fieldnames = header
    seen: dict[str, int] = {}
    try:
        for line, raw in enumerate(reader, start=2):
            row = {k: (v or "").strip() for k, v in raw.items() if k is not None}
            if None in raw:
                out.issues.append(RowIssue(line, "case_row_invalid", "the row has more fields than the header"))
                continue
            problem = _row_problem(row)
            if problem:
                out.issues.append(RowIssue(line, *problem))
                continue
            if row["case_id"] in seen:
                out.issues.append(RowIssue(line, "duplicate_case_id",
                                           f"case_id repeats the one on line {seen[row['case_id']]}"))
                continue
            seen[row["case_id"]] = line
            out.rows.append({
                "case_id": row["case_id"],
                "patient_id": row["patient_id"],
                "study_instance_uids": [u.strip() for u in row["study_instance_uids"].split(";") if u.strip()],
                "label_source": row.get("label_source") or "physician",
                "shareable": YES_NO[(row.get("shareable") or "yes").lower()],
                "consent_class": (row.get("consent_class") or "").upper() or None,
                "line": line,
            })
    except csv.Error as e:
        out.file_problem = ("cases_manifest_invalid", f"cases.csv is not valid CSV: {e}")
    return out


def _row_problem(row: dict) -> tuple[str, str] | None:
    empty = [c for c in REQUIRED if not row.get(c)]
    if empty:
        return "case_row_invalid", f"required field(s) empty: {', '.join(empty)}"
    if not any(u.strip() for u in row["study_instance_uids"].split(";")):
        return "case_row_invalid", "study_instance_uids names no study"
    if (row.get("label_source") or "physician") not in LABEL_SOURCES:
        return "case_row_invalid", "label_source must be physician or ehr_code"
    if (row.get("shareable") or "yes").lower() not in YES_NO:
        return "case_row_invalid", "shareable must be yes or no"
    if (row.get("consent_class") or "").upper() not in CONSENT_CLASSES | {""}:
        return "case_row_invalid", "consent_class must be A, B or C"
    return None
