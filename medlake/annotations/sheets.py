"""Label sheets (csv, xlsx): one row per sheet row; a numeric value is a measurement, anything else a label.

Columns: `label`, `value`, optionally `region`, `reader`, `read_date`, plus at least one target column
(case_id, study_instance_uid, sop_instance_uid). Other columns (patient_id, patient_name on landing
sheets) are never read. `reader_role` carries the `reader` column: a pseudonym on de-identified
sheets, a name on landing ones. De-identified sheets carry formula-like cells neutralised
(medlake.formula_cells); a csv sheet's cells are restored, so the rows hold the values as landed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path

from medlake.formula_cells import restore_cell

from .model import AnnotationProblem, AnnotationResult, RowMaker, text, to_float

TARGET_COLUMNS = ("case_id", "study_instance_uid", "sop_instance_uid")
REQUIRED_COLUMNS = ("label", "value")
CODED_LABELS = {"icd10": "ICD10", "icd-10": "ICD10", "icd10cm": "ICD10CM", "icd9": "ICD9", "icd-9": "ICD9",
                "icd9cm": "ICD9CM"}


def _cell(v) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dt.datetime, dt.date)):
        return v.date().isoformat() if isinstance(v, dt.datetime) else v.isoformat()
    return str(v)


def _read_csv(data: bytes) -> list[list[str]]:
    try:
        content = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise AnnotationProblem("label_sheet_unreadable", "the csv label sheet is not UTF-8") from None
    try:
        return [[restore_cell(c) for c in row] for row in csv.reader(io.StringIO(content, newline=""))]
    except csv.Error:
        raise AnnotationProblem("label_sheet_unreadable", "the csv label sheet cannot be parsed") from None


def _read_xlsx(data: bytes) -> list[list[str]]:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=False, data_only=True)
    except Exception as e:  # noqa: BLE001 - openpyxl raises many kinds for a bad package
        raise AnnotationProblem("label_sheet_unreadable", f"the xlsx file cannot be opened ({type(e).__name__})") from None
    ws = wb.worksheets[0]
    if any(r.min_row <= 1 <= r.max_row for r in ws.merged_cells.ranges):
        raise AnnotationProblem("label_sheet_merged_header", "the header row has merged cells; one column per header")
    return [["" if v is None else _cell(v) for v in row] for row in ws.iter_rows(values_only=True)]


def read_sheet_table(path: Path) -> tuple[list[str], list[list[str]]]:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise AnnotationProblem("label_sheet_unreadable", f"the label sheet cannot be read ({type(e).__name__})") from None
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        table = _read_xlsx(data)
    elif suffix == ".csv":
        table = _read_csv(data)
    else:
        raise AnnotationProblem("label_sheet_format", "a label sheet must be a .csv or .xlsx file")
    if not table or not any(c.strip() for c in table[0]):
        raise AnnotationProblem("label_sheet_empty", "the label sheet has no header row")
    header = [h.strip().lower() for h in table[0]]
    return header, [r for r in table[1:] if any(str(c).strip() for c in r)]


def read_label_sheet(path: Path) -> AnnotationResult:
    path = Path(path)
    header, rows = read_sheet_table(path)
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    targets = [c for c in TARGET_COLUMNS if c in header]
    if missing or not targets:
        what = []
        if missing:
            what.append("missing " + ", ".join(missing))
        if not targets:
            what.append("no target column (one of " + ", ".join(TARGET_COLUMNS) + ")")
        raise AnnotationProblem("label_sheet_columns", "the label sheet has " + "; ".join(what))
    dupes = sorted({h for h in header if h and header.count(h) > 1})
    if dupes:
        raise AnnotationProblem("label_sheet_columns", "the label sheet repeats column(s): " + ", ".join(dupes))
    idx = {h: i for i, h in enumerate(header)}
    mk = RowMaker(path.name, "label_sheet")
    problems: list[tuple[str, str]] = []

    def get(row: list[str], col: str) -> str | None:
        i = idx.get(col)
        return text(row[i]) if i is not None and i < len(row) else None

    for n, row in enumerate(rows, start=2):
        label, raw = get(row, "label"), get(row, "value")
        tgt = {"case": get(row, "case_id"), "study": get(row, "study_instance_uid"),
               "instance": get(row, "sop_instance_uid")}
        if not any(tgt.values()):
            problems.append(("label_sheet_no_target", f"sheet row {n} has an empty target"))
            continue
        if label is None and raw is None:
            problems.append(("label_sheet_empty_row", f"sheet row {n} has neither label nor value"))
            continue
        common = dict(reader_role=get(row, "reader"), region=get(row, "region"), **tgt)
        value = to_float(raw)
        if value is not None:
            mk.add("measurement", label=label, value=value, **common)
        else:
            scheme = CODED_LABELS.get((label or "").lower().replace(" ", ""))
            mk.add("label", label=label, value_text=raw, code=f"{scheme}:{raw}" if scheme and raw else None, **common)
    return AnnotationResult(mk.rows, problems)
