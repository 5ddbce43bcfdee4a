"""medlake installed from its wheel, outside the checkout, starts and runs a programme.

The wheel is built offline from the checkout's files, installed into a fresh virtualenv without its
dependencies, and the project venv's third-party packages are reached through a .pth file: paths
listed in a .pth are added to sys.path but their own .pth files are not processed, so the editable
install's finder never loads and `import medlake` can only find the installed copy. Then the
installed `medlake` script runs from a folder with no config/ in it, as a new user would run it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
from deltalake import DeltaTable

from conftest import REPO

# The packages the wheel ships (pyproject.toml's packages.find), and every file the code opens at
# run time. A data file added to a package folder but not to package-data fails the first test.
PACKAGE_DIRS = ("medlake", "assets", "sensors", "pipelines", "expectations")
RUNTIME_FILES = (
    "medlake/program/default_program.yaml",
    "medlake/deid/data/ps3_15_e1_1.csv",
    "medlake/deid/data/pixels/mean_reg2mean_2mm.nii.gz",
    "medlake/deid/data/pixels/facemask.nii.gz",
    *(f"expectations/{p.name}" for p in sorted((REPO / "expectations").glob("*.*.json"))),
)
SHIPPED_SUITES = {p.name.removesuffix(".json") for p in (REPO / "expectations").glob("*.*.json")}
# Source files of the checkout that are not runtime data (Python modules ship as code).
NOT_DATA_SUFFIXES = (".py", ".pyc")


def _checkout_files() -> list[str]:
    """What git would commit: tracked and untracked-but-not-ignored files that exist."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=REPO, check=True, capture_output=True).stdout.decode()
    return [p for p in out.split("\0") if p and (REPO / p).exists()]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel, built from a copy of the checkout's files: an in-tree build would reuse build/lib,
    where a file dropped from package-data survives and hides the omission."""
    root = tmp_path_factory.mktemp("wheel")
    src = root / "src"
    for rel in _checkout_files():
        dst = src / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, dst, follow_symlinks=False)
    out = root / "dist"
    # --no-index and --no-build-isolation: the build uses the project venv's setuptools and nothing
    # from a package index, so it works offline.
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--no-index", "--quiet", "-w", str(out), str(src)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (built,) = out.glob("medlake-*.whl")
    return built


def _wheel_record(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        (record,) = [n for n in z.namelist() if n.endswith(".dist-info/RECORD")]
        return {line.rsplit(",", 2)[0] for line in z.read(record).decode().splitlines() if line}


def test_wheel_ships_every_data_file_of_its_packages(wheel):
    record = _wheel_record(wheel)
    data_files = [p for p in _checkout_files()
                  if p.split("/")[0] in PACKAGE_DIRS and not p.endswith(NOT_DATA_SUFFIXES)
                  and not (REPO / p).is_symlink()]
    assert set(RUNTIME_FILES) <= set(data_files), "a runtime file is not in the checkout"
    missing = sorted(p for p in data_files if p not in record)
    assert not missing, f"not in the wheel (add them to [tool.setuptools.package-data]): {missing}"


def test_checkout_registry_is_the_packaged_one():
    """config/program.yaml is where the docs and tests look; it must be the file the wheel ships."""
    link = REPO / "config" / "program.yaml"
    assert link.is_symlink()
    assert link.resolve() == (REPO / "medlake" / "program" / "default_program.yaml").resolve()


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv holding only the wheel; the project venv's site-packages reached through a .pth."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps",
                           "--no-index", "--quiet", str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    site = Path(subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (site / "project_dependencies.pth").write_text("".join(f"{d}\n" for d in deps))
    return venv


def _env(venv: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("MEDLAKE_", "DAGSTER_")) and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**env, "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
            "MEDLAKE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
            "MEDLAKE_SECRET_KEY": "installed-wheel-test-key-0123456789abcdef"}


def _medlake(venv: Path, cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(venv / "bin" / "medlake"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _rows(lake: Path, zone: str, table: str) -> list[dict]:
    return DeltaTable(str(lake / zone / table)).to_pyarrow_table().to_pylist()


def _assert_programme_built(home: Path) -> None:
    lake = home / "lake"
    (batch,) = _rows(lake, "restricted", "batches")
    assert (batch["dataset"], batch["status"]) == ("ccta", "ingested")
    assert batch["files_landed"] == batch["files_catalogued"] + batch["files_quarantined"] + batch["files_duplicate"]
    # The synthetic export plants refused rows and withdrawals, so fewer cases than were written.
    cases = _rows(lake, "deid", "cases")
    assert {r["dataset"] for r in cases} == {"ccta"} and 0 < len(cases) <= batch["cases"] <= 12
    assert _rows(lake, "deid", "instances")
    assert [r["passed"] for r in _rows(lake, "program", "identifier_checks")] == [True]
    history = _rows(lake, "program", "validation_history")
    # Every suite shipped was found and run on the batch (a suite the code could not find has no row).
    assert {r["table"] for r in history} == SHIPPED_SUITES
    assert all(r["success"] for r in history), [r for r in history if not r["success"]]
    assert (lake / "program" / "dashboard" / "index.html").is_file()
    assert (lake / "catalog" / "medlake.duckdb").is_file()


# Every runtime lookup, run by the installed copy: the paths it found, one a line.
LOOKUPS = """
import medlake, pipelines, expectations
from medlake.settings import Settings
from medlake.packaged import packaged_file
from medlake.deid import deface, table
from pipelines.definitions import SUITE_TABLES
print(medlake.__file__, pipelines.__file__, expectations.__file__, Settings.from_env().program, sep="\\n")
print(packaged_file(*table.TABLE_FILE))
assert table.load_table() and deface._template()
print(packaged_file("medlake.deid", deface.TEMPLATE), packaged_file("medlake.deid", deface.FACEMASK), sep="\\n")
print(*(packaged_file("expectations", t + ".json") for t in SUITE_TABLES), sep="\\n")
"""


def test_installed_medlake_imports_and_finds_its_files_in_the_venv_not_the_checkout(installed, tmp_path):
    proc = subprocess.run([str(installed / "bin" / "python"), "-c", LOOKUPS], cwd=tmp_path,
                          env=_env(installed, tmp_path), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    paths = proc.stdout.splitlines()
    assert len(paths) == 4 + 3 + len(SHIPPED_SUITES)
    for path in map(Path, paths):
        assert path.resolve().is_relative_to(installed.resolve()), path
        assert not any(path.resolve().is_relative_to(REPO / d) for d in (*PACKAGE_DIRS, "config")), path


def test_installed_medlake_synthesises_runs_and_reports_from_any_folder(installed, tmp_path):
    home, cwd = tmp_path / "home", tmp_path / "elsewhere"
    cwd.mkdir()
    env = _env(installed, home)

    synth = _medlake(installed, cwd, env, "synth", "--out", str(home / "landing"), "--datasets", "ccta",
                     "--cases", "12", "--tiny", "--batches", "1")
    assert synth.returncode == 0, synth.stdout + synth.stderr
    run = _medlake(installed, cwd, env, "run")
    assert run.returncode == 0, run.stdout + run.stderr
    _assert_programme_built(home)

    status = _medlake(installed, cwd, env, "status")
    assert status.returncode == 0, status.stdout + status.stderr
    assert "ccta" in status.stdout
    releases = _medlake(installed, cwd, env, "releases")
    assert releases.returncode == 0, releases.stdout + releases.stderr
    assert "Access applications" in releases.stdout
    assert not (cwd / "medlake-data").exists()  # every location came from the environment


def test_installed_medlake_demo_of_one_dataset(installed, tmp_path):
    home, cwd = tmp_path / "home", tmp_path / "elsewhere"
    cwd.mkdir()
    env = _env(installed, home)

    demo = _medlake(installed, cwd, env, "demo", "--datasets", "ccta", "--cases", "12")
    assert demo.returncode == 0, demo.stdout + demo.stderr
    _assert_programme_built(home)
    assert "Where to look" in demo.stdout
    # 12 cases pass the collaboration tier's k = 5: the demo publishes a release of ccta.
    assert list((home / "releases").glob("*/*/ccta/latest/release.json")), demo.stdout


def test_installed_medlake_demo_refuses_an_unknown_dataset_before_making_anything(installed, tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in _env(installed, home).items() if k != "MEDLAKE_SECRET_KEY"}

    demo = _medlake(installed, tmp_path, env, "demo", "--datasets", "ccta,no-such-set")
    assert demo.returncode == 2
    assert "unknown dataset(s) no-such-set" in demo.stderr
    assert not home.exists()  # no demo key, no landing zone
