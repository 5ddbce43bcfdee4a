"""Label sheets (csv, xlsx): keep an allow-list of columns, pseudonymise targets and readers.

Output is always CSV: an xlsx file carries author names and edit history in its package metadata,
none of which a recipient needs. It is released as it is, so a cell a spreadsheet would run as a
formula is neutralised (medlake.formula_cells).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Callable
from dataclasses import dataclass

from medlake.deid.errors import DeidError
from medlake.formula_cells import neutralise_cell

TARGET_COLUMNS = ("case_id", "study_instance_uid", "sop_instance_uid")
KEPT_COLUMNS = ("label", "value", "region", "reader", "read_date")



@dataclass
class SheetResult:
    data: bytes
    target_column: str
    targets: list[str]  # pseudonymous targets, one per row
    rows: int
    dropped_columns: int


def read_sheet(data: bytes, suffix: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a csv or xlsx label sheet, as strings."""
    if suffix == ".xlsx":
        return _read_xlsx(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DeidError("label_sheet_unreadable", "the csv label sheet is not UTF-8") from None
    rows = list(csv.reader(io.StringIO(text, newline="")))
    if not rows:
        raise DeidError("label_sheet_empty", "the label sheet has no header row")
    return [h.strip() for h in rows[0]], [r for r in rows[1:] if any(c.strip() for c in r)]


def _read_xlsx(data: bytes) -> tuple[list[str], list[list[str]]]:
    import openpyxl

    try:
        wb = openpyxl.load_workbook(io.BytesIO(data), read_only=False, data_only=True)
    except Exception as e:  # noqa: BLE001 - openpyxl raises many kinds for a bad package
        raise DeidError("label_sheet_unreadable", f"the xlsx file cannot be opened ({type(e).__name__})") from None
    ws = wb.worksheets[0]
    if any(r.min_row == 1 for r in ws.merged_cells.ranges):
        raise DeidError("label_sheet_merged_header", "the header row has merged cells; one column per header")
    values = [["" if v is None else _cell(v) for v in row] for row in ws.iter_rows(values_only=True)]
    if not values:
        raise DeidError("label_sheet_empty", "the label sheet has no header row")
    return [h.strip() for h in values[0]], [r for r in values[1:] if any(c.strip() for c in r)]


def _cell(v) -> str:
    if isinstance(v, dt.datetime):
        return v.date().isoformat() if v.time() == dt.time() else v.isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    return str(v)


def deidentify_sheet(
    data: bytes,
    suffix: str,
    target: Callable[[str, str], str],
    reader: Callable[[str], str],
    shift_days_for: Callable[[str, str], int | None],
) -> SheetResult:
    """`target(column, value)` maps a case id or UID; `shift_days_for(column, value)` gives the
    patient's date shift for a row's target (None when the target is unknown)."""
    header, rows = read_sheet(data, suffix)
    targets = [c for c in TARGET_COLUMNS if c in header]
    if len(targets) != 1:
        raise DeidError("label_sheet_columns",
                         "a label sheet needs exactly one of case_id, study_instance_uid, sop_instance_uid")
    missing = [c for c in ("label", "value") if c not in header]
    if missing:
        raise DeidError("label_sheet_columns", f"the label sheet lacks column(s): {', '.join(missing)}")
    tcol = targets[0]
    keep = [c for c in KEPT_COLUMNS if c in header]
    index = {h: i for i, h in enumerate(header)}
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow([tcol, *keep])
    mapped: list[str] = []
    for row in rows:
        cells = {h: (row[i].strip() if i < len(row) else "") for h, i in index.items()}
        original = cells[tcol]
        new_target = target(tcol, original)
        mapped.append(new_target)
        shift = shift_days_for(tcol, original)
        line = [new_target]
        for c in keep:
            v = cells[c]
            if c == "reader" and v:
                v = reader(v)
            elif c == "read_date" and v:
                v = _shift_date(v, shift)
            line.append(v)
        w.writerow([neutralise_cell(v) for v in line])
    return SheetResult(out.getvalue().encode("utf-8"), tcol, mapped, len(rows), len(header) - len(keep) - 1)


def _shift_date(value: str, shift: int | None) -> str:
    if shift is None:
        return ""
    try:
        return (dt.date.fromisoformat(value[:10]) + dt.timedelta(days=shift)).isoformat()
    except ValueError:
        return ""
