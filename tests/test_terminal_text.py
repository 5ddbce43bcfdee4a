"""Text from data reaches the terminal literally: rich markup in an institution name, a query value or
a path is printed as written, and never crashes the command."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import yaml
from click.testing import CliRunner

from medlake.catalog import default_db_path
from medlake.lake import DeltaStore, Lake
from medlake.settings import Settings
from medlake.sharing.run import process_applications
from pipelines.cli import main

from conftest import REGISTRY_PATH

MARKUP = "Lab [/] of [bold]X"


def _env(home: Path) -> dict[str, str]:
    return {"MEDLAKE_HOME": str(home), "MEDLAKE_PROGRAM": str(REGISTRY_PATH)}


def _flat(text: str) -> str:
    """The output without the line breaks and padding the console adds when it wraps."""
    return "".join(text.split())


def _cli(home: Path, *args: str):
    return CliRunner().invoke(main, list(args), env=_env(home))


def test_releases_prints_an_institution_holding_markup(tmp_path, registry):
    home = tmp_path / "home"
    folder = home / "landing" / "_applications" / "app-markup"
    folder.mkdir(parents=True)
    (folder / "application.yaml").write_text(yaml.safe_dump({
        "applicant": "Someone", "institution": MARKUP, "institution_type": "academic",
        "purpose_category": "medical_research", "datasets": ["ccta"], "access_mode": "vpn",
        "submitted": "2019-06-01"}), encoding="utf-8")
    s = Settings.from_env(_env(home)).absolute()
    process_applications(DeltaStore(Lake.from_root(s.lake)), registry, s.landing, s.releases, dt.date(2019, 9, 15))

    result = _cli(home, "releases")
    assert result.exit_code == 0, result.output
    assert MARKUP in result.output


def _catalogue(home: Path) -> None:
    """An empty DuckDB catalogue file: enough for a query that reads no view."""
    s = Settings.from_env(_env(home)).absolute()
    db = default_db_path(DeltaStore(Lake.from_root(s.lake)))
    db.parent.mkdir(parents=True)
    duckdb.connect(str(db)).close()


def test_query_table_mode_prints_values_and_headers_holding_markup(tmp_path):
    home = tmp_path / "home"
    _catalogue(home)
    result = _cli(home, "query", """SELECT '[/]' AS x, '[bold]y[/bold] :smile:' AS "[red]h" """)
    assert result.exit_code == 0, result.output
    assert "[/]" in result.output and "[bold]y[/bold] :smile:" in result.output and "[red]h" in result.output

    csv_mode = _cli(home, "query", "--csv", "SELECT '[/]' AS x")
    assert csv_mode.exit_code == 0 and csv_mode.output == "\"x\"\n\"[/]\"\n"


def test_an_error_quoting_markup_is_printed_as_written(tmp_path):
    home = tmp_path / "home"
    _catalogue(home)
    result = _cli(home, "query", 'SELECT * FROM "t[/]"')
    assert result.exit_code == 2, result.output
    assert "medlake:" in result.stderr and "t[/]" in _flat(result.stderr)
    assert "Traceback" not in result.output


def test_paths_holding_markup_are_printed_as_written(tmp_path):
    # Two folders, "a[" and "]b": the path reads a[/]b, which rich would take for a closing tag.
    home = tmp_path / "a[" / "]b"
    home.mkdir(parents=True)
    result = _cli(home, "status")
    assert result.exit_code == 0, result.output
    assert f"{home}/lake" in _flat(result.output)
