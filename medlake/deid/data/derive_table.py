"""Regenerate `ps3_15_e1_1.csv`, the table medlake loads, from the merged research CSV.

    python medlake/deid/data/derive_table.py [path/to/ps3.15_table_E.1-1_merged.csv]

The input defaults to the copy beside this script (itself copied from
/work/shared/notes/deid-tables/). The output keeps every row and every option column, renamed to
the option names medlake uses, with the tag normalised to eight hex digits or a pattern (x = any
hex digit) so the loader need not understand the standard's prose ("(GGGG,EEEE) WHERE GGGG IS
ODD" becomes the keyword `private`). Names are flattened to one line. Nothing else changes: the
action codes are copied verbatim, so a diff of the output against a new edition shows exactly what
the standard changed.
"""

from __future__ import annotations

import csv
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_INPUT = HERE / "ps3.15_table_E.1-1_merged.csv"
OUTPUT = HERE / "ps3_15_e1_1.csv"

# research-CSV column (innolitics naming) -> medlake option name
OPTION_COLUMNS = {
    "rtnSafePrivOpt": "retain_safe_private",
    "rtnUIDsOpt": "retain_uids",
    "rtnDevIdOpt": "retain_device_identity",
    "rtnInstIdOpt": "retain_institution_identity",
    "rtnPatCharsOpt": "retain_patient_characteristics",
    "rtnLongFullDatesOpt": "retain_longitudinal_temporal_information_full_dates",
    "rtnLongModifDatesOpt": "retain_longitudinal_temporal_information_modified_dates",
    "cleanDescOpt": "clean_descriptors",
    "cleanStructContOpt": "clean_structured_content",
    "cleanGraphOpt": "clean_graphics",
}
ACTIONS = {"D", "Z", "X", "K", "C", "U", "X/Z", "X/D", "X/Z/D", "X/Z/U*", "Z/D"}
_TAG = re.compile(r"^\(([0-9A-FX]{4}),([0-9A-FX]{4})\)$")


def normalise_tag(text: str) -> str:
    text = text.strip().upper()
    if text.startswith("(GGGG,EEEE)") and "ODD" in text:
        return "private"
    m = _TAG.match(text)
    if not m:
        raise ValueError(f"unrecognised tag {text!r}")
    return (m.group(1) + m.group(2)).lower()


def derive(src: Path = DEFAULT_INPUT, dst: Path = OUTPUT) -> int:
    with open(src, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for r in rows:
        basic = r["basicProfile"].strip()
        if basic not in ACTIONS:
            raise ValueError(f"{r['tag']}: unknown basic-profile action {basic!r}")
        row = {"tag": normalise_tag(r["tag"]), "name": " ".join(r["name"].split()), "basic": basic}
        for col, name in OPTION_COLUMNS.items():
            cell = r[col].strip()
            if cell and cell not in ACTIONS:
                raise ValueError(f"{r['tag']}: unknown {col} action {cell!r}")
            row[name] = cell
        row["in_std_comp_iod"] = r["stdCompIOD"].strip()
        row["source"] = r["source"].strip()
        out.append(row)
    out.sort(key=lambda row: row["tag"])
    with open(dst, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(out[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(out)
    return len(out)


if __name__ == "__main__":
    n = derive(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_INPUT)
    print(f"wrote {n} rows to {OUTPUT}")
