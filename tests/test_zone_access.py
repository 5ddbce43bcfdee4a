"""Who can read what: the restricted zone, the demo's key and Dagster's folder are owner-only whatever
the umask, and each zone can live in a bucket of its own reached with credentials of its own (two
buckets on a real S3 server that checks every request against its IAM policies)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pyarrow.fs as pafs
import pytest

from medlake.lake import DeltaStore, Lake
from medlake.lake.objects import s3_filesystem
from medlake.lake.tables import BATCHES, CASES, SOURCE_INSTANCES, VAULT
from s3server import S3Server, bucket_user, enforce_access

REPO = Path(__file__).resolve().parent.parent
MEDLAKE = Path(sys.executable).with_name("medlake")


def _modes(root: Path) -> tuple[set[int], set[int]]:
    """(folder modes, file modes) of everything below root, root included."""
    dirs, files = {stat.S_IMODE(root.stat().st_mode)}, set()
    for p in root.rglob("*"):
        (dirs if p.is_dir() else files).add(stat.S_IMODE(p.stat().st_mode))
    return dirs, files


def _loose_umask():
    os.umask(0o022)


def test_restricted_zone_key_and_dagster_home_are_owner_only_whatever_the_umask(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "MEDLAKE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"),
           "MEDLAKE_PROGRAM": str(REPO / "config" / "program.yaml")}
    env.pop("MEDLAKE_SECRET_KEY", None)
    env.pop("MEDLAKE_UMASK", None)
    demo = subprocess.run([str(MEDLAKE), "demo", "--datasets", "ccta", "--cases", "4"], env=env, capture_output=True,
                          text=True, preexec_fn=_loose_umask, timeout=900)
    assert demo.returncode == 0, demo.stdout[-2000:] + demo.stderr[-3000:]
    key = home / "lake" / "restricted" / "_secret_key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    for folder in (home / "lake" / "restricted", home / "dagster"):
        dirs, files = _modes(folder)
        assert dirs == {0o700} and files == {0o600}, (folder, sorted(map(oct, dirs)), sorted(map(oct, files)))

    # A site that shares the de-identified zones with a group opens them, and only them.
    env["MEDLAKE_UMASK"] = "027"
    env["MEDLAKE_SECRET_KEY"] = key.read_text().strip()
    (home / "landing" / "ntu" / "ccta").rename(tmp_path / "ccta-done")
    subprocess.run([str(MEDLAKE), "synth", "--out", str(home / "landing"), "--datasets", "liver-ct", "--cases", "4",
                    "--tiny", "--no-consent", "--no-applications"], env=env, check=True, capture_output=True,
                   preexec_fn=_loose_umask)
    run = subprocess.run([str(MEDLAKE), "run"], env=env, capture_output=True, text=True, preexec_fn=_loose_umask,
                         timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
    dirs, files = _modes(home / "lake" / "restricted")
    assert dirs == {0o700} and files == {0o600}
    assert stat.S_IMODE((home / "dagster").stat().st_mode) == 0o700
    objects = home / "lake" / "deid" / "objects" / "tvgh" / "liver-ct"
    assert {stat.S_IMODE(p.stat().st_mode) for p in objects.rglob("*.dcm")} == {0o640}


def test_a_daemon_process_writes_the_restricted_zone_owner_only_too(tmp_path):
    """The Dagster daemon's runs do not pass through the CLI: the store owns the zone's modes."""
    from pipelines.resources import LakeResource

    old = os.umask(0o022)
    try:
        store = LakeResource(root=str(tmp_path / "lake")).store()
        store.append(VAULT, [{"team": "ntu", "patient_id": "P1", "pseudonym": "PSN-1", "date_shift_days": -3,
                              "key_check": "k", "first_batch": "b", "recorded_at": __import__("datetime").datetime(
                                  2019, 9, 1, tzinfo=__import__("datetime").timezone.utc)}])
    finally:
        os.umask(old)
    dirs, files = _modes(tmp_path / "lake" / "restricted")
    assert dirs == {0o700} and files == {0o600}


@pytest.fixture(scope="module")
def buckets():
    server = S3Server()
    server.start()
    try:
        for b in ("medlake-restricted", "medlake-shared"):
            server.make_bucket(b)
        creds = {b: bucket_user(server, b) for b in ("medlake-restricted", "medlake-shared")}
        enforce_access(server)
        yield server, creds
    finally:
        server.stop()


def test_each_zone_in_its_own_bucket_with_its_own_credentials(tmp_path, buckets):
    server, creds = buckets
    home = tmp_path / "home"
    env = {**os.environ, **server.env(), **creds["medlake-shared"],
           "MEDLAKE_HOME": str(home), "DAGSTER_HOME": str(home / "dagster"), "MEDLAKE_CACHE": str(tmp_path / "cache"),
           "MEDLAKE_PROGRAM": str(REPO / "config" / "program.yaml"), "MEDLAKE_AS_OF": "2019-10-15",
           "MEDLAKE_LAKE": "s3://medlake-shared/lake", "MEDLAKE_RELEASES": "s3://medlake-shared/releases",
           "MEDLAKE_LAKE_RESTRICTED": "s3://medlake-restricted/zone",
           **{f"MEDLAKE_RESTRICTED_{k}": v for k, v in creds["medlake-restricted"].items()}}
    subprocess.run([str(MEDLAKE), "synth", "--out", str(home / "landing"), "--datasets", "ccta", "--cases", "12",
                    "--tiny"], env=env, check=True, capture_output=True)
    run = subprocess.run([str(MEDLAKE), "run"], env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-4000:]

    def listing(bucket: str, who: str) -> set[str]:
        fs = s3_filesystem({**server.env(), **creds[who]})
        return {i.path for i in fs.get_file_info(pafs.FileSelector(bucket, recursive=True))}

    restricted, shared = listing("medlake-restricted", "medlake-restricted"), listing("medlake-shared", "medlake-shared")
    for table in (SOURCE_INSTANCES, VAULT, BATCHES):
        assert any(p.startswith(f"medlake-restricted/zone/{table.name}/_delta_log/") for p in restricted), table.name
        assert not any(f"/{table.name}/" in p for p in shared), f"{table.name} in the shared bucket"
    assert any(p.startswith("medlake-restricted/zone/_locks/") for p in restricted)
    assert any(p.startswith("medlake-shared/lake/deid/cases/_delta_log/") for p in shared)
    assert any(p.startswith("medlake-shared/releases/") for p in shared)
    # The shared zones' credentials cannot read the restricted bucket: the server refuses them.
    with pytest.raises(OSError):
        listing("medlake-restricted", "medlake-shared")
    lake = Lake.from_root(env["MEDLAKE_LAKE"], env)
    assert DeltaStore(lake).read(CASES).num_rows > 0
