from conftest import REPO
from medlake.lake.docs import render


def test_table_docs_are_current():
    assert (REPO / "docs" / "tables.md").read_text(encoding="utf-8") == render(), (
        "regenerate with: python -m medlake.lake.docs > docs/tables.md")


def test_readme_gives_the_two_commands():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "make demo" in readme and "make test" in readme
