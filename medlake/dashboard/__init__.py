"""The programme dashboard: a self-contained HTML page for the programme office (no Dagster here)."""

from medlake.dashboard.render import TABLES, fmt_int, fmt_pct, render_dashboard
from medlake.dashboard.write import read_tables, write_dashboard

__all__ = ["TABLES", "fmt_int", "fmt_pct", "read_tables", "render_dashboard", "write_dashboard"]
