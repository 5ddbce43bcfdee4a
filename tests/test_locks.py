"""Locks in the lake (medlake/lake/locks.py) on a local folder and on a real S3-compatible server:
one holder at a time across processes, who holds it, re-entrant in a process, and free again when a
holder dies however it dies."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import pytest

from medlake.lake.locks import LakeLocks, LockBusy
from s3server import S3Server, s3_environment


def _hold_and_report(root: str, env: dict, ready, release, name: str = "dataset/ntu/ccta") -> None:
    os.environ.update(env)
    with LakeLocks(root).hold(name, "a test holder"):
        ready.set()
        release.wait(120)


def _holder_process(root: str, env: dict | None = None):
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_and_report, args=(root, env or {}, ready, release))
    proc.start()
    assert ready.wait(60), "the holder never got the lock"
    return proc, release


@pytest.fixture(scope="module")
def s3():
    server = S3Server()
    server.start()
    server.make_bucket("locks")
    with s3_environment(server):
        yield server
    server.stop()


def _roots(tmp_path, s3) -> list[str]:
    return [str(tmp_path / "restricted" / "_locks"), "s3://locks/lake/restricted/_locks"]


@pytest.mark.parametrize("where", ["local", "s3"])
def test_one_holder_at_a_time_across_processes(tmp_path, s3, where):
    root = _roots(tmp_path, s3)[where == "s3"]
    proc, release = _holder_process(root, s3.env())
    locks = LakeLocks(root)
    holder = locks.holder("dataset/ntu/ccta")
    assert holder["pid"] == proc.pid and holder["purpose"] == "a test holder"
    with pytest.raises(LockBusy, match=f"process {proc.pid} on"):
        with locks.hold("dataset/ntu/ccta", "second", wait=0):
            pass
    with locks.hold("dataset/ntu/ffr", "another dataset", wait=0):
        pass  # other names are independent
    got = threading.Event()

    def waiter() -> None:
        with locks.hold("dataset/ntu/ccta", "waiting", wait=60):
            got.set()

    t = threading.Thread(target=waiter)
    t.start()
    time.sleep(1)
    assert not got.is_set(), "the waiter got a lock that is held"
    release.set()
    t.join(60)
    assert got.is_set()
    proc.join(30)
    assert locks.holder("dataset/ntu/ccta") is None


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_killed_holder_leaves_no_stale_lock(tmp_path, s3, where):
    root = _roots(tmp_path, s3)[where == "s3"]
    proc, _ = _holder_process(root, s3.env())
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(30)
    with LakeLocks(root).hold("dataset/ntu/ccta", "after the kill", wait=5):
        assert LakeLocks(root).holder("dataset/ntu/ccta")["pid"] == os.getpid()


def test_an_s3_lease_that_is_not_renewed_expires(s3, monkeypatch):
    """A holder on another machine that vanished: its lease runs out (here after a shortened lease)."""
    import json

    import boto3

    root = "s3://locks/other/restricted/_locks"
    client = boto3.client("s3", endpoint_url=s3.endpoint, region_name="us-east-1")
    client.put_object(Bucket="locks", Key="other/restricted/_locks/run/1.json", Body=json.dumps(
        {"host": "another-machine", "pid": 1, "purpose": "medlake run", "since": "x",
         "lease_until": time.time() + 2}).encode())
    with pytest.raises(LockBusy, match="another-machine"):
        with LakeLocks(root).hold("run", "me", wait=0):
            pass
    time.sleep(2.5)
    with LakeLocks(root).hold("run", "me", wait=0):
        assert LakeLocks(root).holder("run")["host"] != "another-machine"


def test_the_lock_is_re_entrant_in_a_thread_and_exclusive_between_threads(tmp_path):
    locks = LakeLocks(str(tmp_path))
    order = []
    with locks.hold("run", "outer", wait=0):
        with locks.hold("run", "inner", wait=0):
            order.append("inner")

        def other() -> None:
            try:
                with locks.hold("run", "other thread", wait=0.2):
                    order.append("other got it")
            except LockBusy:
                order.append("other refused")

        t = threading.Thread(target=other)
        t.start()
        t.join()
    assert order == ["inner", "other refused"]
    assert locks.holder("run") is None


def test_names_from_a_landing_zone_of_any_kind_make_valid_lock_paths(tmp_path):
    locks = LakeLocks(str(tmp_path))
    for odd in ("x" * 300, "第二批", "..", "a b;c"):
        with locks.hold(f"dataset/ntu/{odd}", "odd", wait=0):
            assert locks.holder(f"dataset/ntu/{odd}")["purpose"] == "odd"
    assert all(p.resolve().is_relative_to(tmp_path.resolve()) for p in tmp_path.rglob("*"))
