"""A patient withdraws after being released: the next `medlake run` removes every object and row of
theirs from the deid zone, the catalogue and every release (new versions, the old ones purged, old
Delta files vacuumed), audits it, and leaves every other patient where they were."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from medlake.lake.tables import table_named
from medlake.deid.keys import DeidKeys
from medlake.sharing.publish import latest_version, versions
from pipelines.runner import run_pending
from test_sharing import AS_OF, release_cases, run_programme
from medlake.lake.tables import ANNOTATIONS, CASES, INSTANCES, SOURCE_CASES
from medlake.sharing.tables import RELEASE_LOG
from medlake.consent.tables import CONSENT_STATUS, WITHDRAWAL_AUDIT

RELEASES = (("collaboration", "ntu", "ccta"), ("review", "ntu", "ccta"))


@pytest.fixture(scope="module")
def withdrawn(tmp_path_factory, registry):
    settings, truth, store = run_programme(tmp_path_factory.mktemp("withdrawal"), registry)
    keys = DeidKeys.from_env()
    released = release_cases(Path(settings.releases) / "collaboration" / "ntu" / "ccta" / "latest")
    source = store.read(SOURCE_CASES).to_pylist()
    patient = next(c["patient_id"] for c in source if c["dataset"] == "ccta"
                   and keys.case_id("ntu", "ccta", c["case_id"]) in released)
    pseudonym = keys.patient_pseudonym("ntu", patient)
    before = {
        "objects": [r for r in store.read(INSTANCES).to_pylist() if r["patient_pseudonym"] == pseudonym],
        "cases": {c["case_pseudonym"] for c in store.read(CASES).to_pylist()
                  if c["patient_pseudonym"] == pseudonym},
        "released": {r: release_cases(Path(settings.releases).joinpath(*r, "latest")) for r in RELEASES},
        "versions": {r: latest_version(Path(settings.releases).joinpath(*r)) for r in RELEASES},
        "app": latest_version(Path(settings.releases) / "applications" / "app-2019-001"),
        "all_cases": store.read(CASES).num_rows,
    }
    assert before["objects"] and before["cases"]
    consent = Path(settings.landing) / "ntu" / "_consent" / "2019-10-01.csv"
    consent.write_text(f"patient_id,consent_class,event,event_date,reference\n"
                       f"{patient},,withdrawn,2019-10-01,WDR-000001\n")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDLAKE_AS_OF", AS_OF)
        run = run_pending(settings)
    assert run.ok and run.programme is not None, run.failed
    return settings, store, patient, pseudonym, before


def shareable_files(settings):
    """Every file outside the landing and restricted zones."""
    lake = Path(settings.lake)
    for top in [p for p in lake.iterdir() if p.name != "restricted"] + [Path(settings.releases)]:
        yield from (p for p in top.rglob("*") if p.is_file())


def test_no_byte_of_the_patients_objects_remains_shareable(withdrawn):
    settings, _, _, _, before = withdrawn
    digests = {o["sha256"] for o in before["objects"]}
    for o in before["objects"]:
        assert not (Path(settings.lake) / o["object_path"]).exists()
    for f in shareable_files(settings):
        assert hashlib.sha256(f.read_bytes()).hexdigest() not in digests, f


def test_no_row_of_the_patient_remains_in_deid_catalogue_or_releases(withdrawn):
    settings, store, _, pseudonym, before = withdrawn
    for table in ("cases", "instances", "series", "studies", "release_eligibility"):
        rows = store.read(table_named("deid", table)).to_pylist()
        assert rows and not [r for r in rows if r["patient_pseudonym"] == pseudonym], table
    cases = before["cases"]
    annotations = store.read(ANNOTATIONS).to_pylist()
    assert not [a for a in annotations if a["target_case"] in cases]
    catalogue = [p for p in (Path(settings.lake) / "catalog").rglob("*.parquet")]
    assert catalogue
    for p in catalogue:
        table = pq.read_table(p)
        if "patient_pseudonym" in table.column_names:
            assert pseudonym not in table.column("patient_pseudonym").to_pylist(), p
    for p in Path(settings.releases).rglob("cases.parquet"):
        assert pseudonym not in pq.read_table(p).column("patient_pseudonym").to_pylist(), p
    # Nothing of the patient's rows is left in data files either: the old Delta files were vacuumed.
    for f in (Path(settings.lake) / "deid").rglob("*.parquet"):
        assert pseudonym.encode() not in f.read_bytes(), f


def test_releases_get_new_versions_and_the_old_ones_are_purged(withdrawn):
    settings, store, _, pseudonym, before = withdrawn
    for r in RELEASES:
        folder = Path(settings.releases).joinpath(*r)
        assert latest_version(folder) != before["versions"][r]
        assert versions(folder) == [latest_version(folder)], "the version with the patient is gone"
        now = release_cases(folder / "latest")
        assert now == before["released"][r] - before["cases"], "everyone else stays"
        meta = json.loads((folder / "latest" / "release.json").read_text())
        assert meta["counts"]["cases"] == len(now)
    app = Path(settings.releases) / "applications" / "app-2019-001"
    assert latest_version(app) != before["app"] and versions(app) == [latest_version(app)]
    log = store.read(RELEASE_LOG).to_pylist()
    purged = {r["path"] for r in log if r["action"] == "purged"}
    assert {f"{'/'.join(r)}/{before['versions'][r]}" for r in RELEASES} <= purged
    assert f"applications/app-2019-001/{before['app']}" in purged


def test_other_patients_stay_in_the_lake(withdrawn):
    _, store, _, _, before = withdrawn
    assert store.read(CASES).num_rows == before["all_cases"] - len(before["cases"])


def test_audit_rows_say_what_went_when_and_why(withdrawn):
    _, store, _, pseudonym, before = withdrawn
    rows = [r for r in store.read(WITHDRAWAL_AUDIT).to_pylist() if r["patient_pseudonym"] == pseudonym]
    scopes = {r["scope"] for r in rows}
    assert {"deid_objects", "deid_table", "release", "application_release"} <= scopes
    assert all(r["event"] == "withdrawn" and r["event_file"] == "2019-10-01.csv" and r["event_line"] == 2
               for r in rows)
    objects = next(r for r in rows if r["scope"] == "deid_objects")
    assert objects["removed_objects"] >= len(before["objects"])
    status = [s for s in store.read(CONSENT_STATUS).to_pylist() if s["patient_pseudonym"] == pseudonym]
    assert [(s["releasable"], s["reason"]) for s in status] == [(False, "consent_withdrawn")]


def test_a_further_run_changes_nothing(withdrawn):
    settings, store, _, _, _ = withdrawn
    log_before = store.read(RELEASE_LOG).num_rows
    audit_before = store.read(WITHDRAWAL_AUDIT).num_rows
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDLAKE_AS_OF", AS_OF)
        mp.setattr("pipelines.runner.programme_stale", lambda *_: True)  # force the programme run
        run = run_pending(settings)
    assert run.ok and run.programme is not None
    assert store.read(RELEASE_LOG).num_rows == log_before
    assert store.read(WITHDRAWAL_AUDIT).num_rows == audit_before
