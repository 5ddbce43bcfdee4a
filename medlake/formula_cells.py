"""CSV cells a spreadsheet would run as a formula (OWASP CSV injection), made inert and restored.

Released label sheets are CSV, and a recipient may open one in Excel or LibreOffice, which run a
cell starting with =, +, -, @, a tab or a carriage return as a formula (`=HYPERLINK(...)`, DDE
commands). Such a cell is written with a single quote in front; a cell that is a plain number
(`-3.5`, `+2`) is left as it is, because a number runs nothing and a quote would turn it into text.
A cell that starts with the quote itself is quoted too, so the rule for every reader is one and
exact: a cell starting with a quote lost one quote at the front.
"""

from __future__ import annotations

import re

QUOTE = "'"
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Plain decimal numbers only: "-inf", "1_000" or "0x1f" are not what a spreadsheet reads as numbers.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def neutralise_cell(cell: str) -> str:
    """The cell as written to a released CSV."""
    if cell.startswith(QUOTE) or (cell.startswith(_FORMULA_START) and not _NUMBER.fullmatch(cell)):
        return QUOTE + cell
    return cell


def restore_cell(cell: str) -> str:
    """The cell as it was before neutralise_cell; a cell neutralise_cell never writes (as in a sheet
    from the landing zone) is returned as it is."""
    if cell.startswith(QUOTE) and neutralise_cell(cell[1:]) == cell:
        return cell[1:]
    return cell
