"""Read the dashboard's tables from the lake and write the page atomically."""

from __future__ import annotations

import datetime as dt
import logging
import os
import tempfile
from pathlib import Path

import pyarrow as pa

from medlake.dashboard.render import TABLES, render_dashboard
from medlake.lake.tables import table_named

log = logging.getLogger(__name__)


def read_tables(store) -> dict[str, pa.Table]:
    """The dashboard's tables from a DeltaStore, by name; absent or unreadable tables are left out
    (the page then shows a placeholder for them)."""
    out: dict[str, pa.Table] = {}
    for zone, name in TABLES:
        try:
            ds = store.dataset(table_named(zone, name))
        except Exception:  # a damaged table must not stop the page
            log.exception("dashboard: cannot open %s/%s", zone, name)
            continue
        if ds is None:
            continue
        try:
            out[name] = ds.to_table()
        except Exception:
            log.exception("dashboard: cannot read %s/%s", zone, name)
    return out


def write_dashboard(store, out_path: str | os.PathLike, generated_at: dt.datetime | None = None) -> Path:
    """Render the dashboard from `store` (a medlake.lake.DeltaStore) and write it to `out_path`.

    The file is written to a temporary file in the same folder and renamed over the old page, so a
    reader never sees half a page. Returns the path written.
    """
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    at = generated_at or dt.datetime.now(dt.UTC)
    html = render_dashboard(read_tables(store), at, store.lake.root)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(html)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out
