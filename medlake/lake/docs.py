"""Render the table definitions as Markdown (docs/tables.md); a test keeps the file current."""

from __future__ import annotations

import sys

from medlake.lake.tables import (
    BATCH_COMPLETIONS,
    CONSENT_EVENTS,
    PROGRESS_TABLES,
    CASE_TABLES,
    DEID_QUARANTINE,
    DEID_TABLES,
    IDENTIFIER_CHECKS,
    RESTRICTED_INGEST_TABLES,
    VAULT,
    TableDef,
)

from medlake.alerts import ALERTS  # noqa: E402 - defined beside their writers
from medlake.consent.tables import CONSENT_TABLES  # noqa: E402
from medlake.sharing.tables import SHARING_TABLES  # noqa: E402
from medlake.validation.history import VALIDATION_HISTORY  # noqa: E402

ALL_TABLES: tuple[TableDef, ...] = (RESTRICTED_INGEST_TABLES + (BATCH_COMPLETIONS, VAULT, DEID_QUARANTINE) + DEID_TABLES + CASE_TABLES
                                    + (IDENTIFIER_CHECKS, VALIDATION_HISTORY, CONSENT_EVENTS) + CONSENT_TABLES
                                    + PROGRESS_TABLES + SHARING_TABLES + (ALERTS,))


def render(tables: tuple[TableDef, ...] = ALL_TABLES) -> str:
    out = [
        "# Tables",
        "",
        "Generated from `medlake/lake/tables.py` by `python -m medlake.lake.docs > docs/tables.md`;",
        "a test fails when this file and the code disagree. Every table is a Delta table under",
        "`$MEDLAKE_LAKE/<zone>/<name>`; re-running a batch replaces its rows (no duplicates).",
        "",
    ]
    for t in tables:
        out += [f"## {t.zone}/{t.name}", "", t.doc, "",
                f"Natural key: `{', '.join(t.keys)}`" + (f"; partitioned by `{', '.join(t.partition_by)}`"
                                                        if t.partition_by else ""), "",
                "| column | type | null | meaning |", "|---|---|---|---|"]
        for c in t.columns:
            out.append(f"| `{c.name}` | {c.type} | {'yes' if c.nullable else 'no'} | {c.doc.replace('|', '/')} |")
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(render())
