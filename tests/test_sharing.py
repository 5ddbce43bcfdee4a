"""Releases end to end: a small synthetic programme through `medlake run` (the real Dagster jobs),
then what the recipients get. Releases hold only eligible cases, images-only datasets hold no
annotations, every card is complete, an application gets only its approved datasets, and the
re-identification gate and the identifier checker change or stop a release that needs it."""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from medlake.lake import DeltaStore, Lake
from medlake.settings import Settings
from medlake.sharing.card import missing_sections
from medlake.sharing.publish import latest_version, versions
from medlake.sharing.releases import release_dataset
from medlake.sharing.run import release_run
from medlake.synth import SynthSpec, generate, load_truth
from pipelines.runner import run_pending

from conftest import registry_with
from medlake.sharing.tables import APPLICATIONS, APPLICATION_PROBLEMS, RELEASE_ELIGIBILITY, RELEASE_LOG
from medlake.lake.tables import CASES, INSTANCES

DATASETS = ("ccta", "af-cardiac-ct", "lung-pathology", "brain-mets-mri", "ivus")
AS_OF = "2019-09-15"


def run_programme(home: Path, registry, datasets=DATASETS, cases=12):
    settings = Settings.from_env({"MEDLAKE_HOME": str(home), "MEDLAKE_PROGRAM": registry.source})
    report = generate(Path(settings.landing), registry, SynthSpec(datasets=datasets, cases=cases, tiny=True, seed=5))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MEDLAKE_AS_OF", AS_OF)
        run = run_pending(settings)
    assert run.ok, run.failed
    return settings, load_truth(report.truth_path), DeltaStore(Lake.from_root(settings.lake))


@pytest.fixture(scope="module")
def programme(tmp_path_factory, registry):
    return run_programme(tmp_path_factory.mktemp("sharing"), registry)


def latest_dirs(root: Path):
    for link in sorted(Path(root).glob("*/*/*/latest")):
        if link.parts[-5] != "applications":
            yield link.parent, link.resolve()


def release_cases(version_dir: Path) -> set[str]:
    return set(pq.read_table(version_dir / "tables" / "cases.parquet").column("case_pseudonym").to_pylist())


def test_releases_hold_only_eligible_cases(programme):
    settings, _, store = programme
    elig = store.read(RELEASE_ELIGIBILITY)
    published = list(latest_dirs(settings.releases))
    assert {(d.parts[-3], d.parts[-1]) for d, _ in published} >= {("collaboration", "ccta"), ("review", "ccta")}
    withheld = elig.filter(pc.greater(pc.list_value_length(elig["reasons"]), 0))
    assert withheld.num_rows, "the synthetic programme should have cases that may not be released"
    for folder, version in published:
        tier, team, dataset = folder.parts[-3:]
        rows = elig.filter(pc.and_(pc.equal(elig["tier"], tier), pc.equal(elig["dataset"], dataset)))
        allowed = {r["case_pseudonym"] for r in rows.to_pylist() if r["eligible"]}
        refused = {r["case_pseudonym"] for r in rows.to_pylist() if not r["eligible"]}
        got = release_cases(version)
        assert got and got <= allowed and not got & refused
        meta = json.loads((version / "release.json").read_text())
        assert (meta["dataset"], meta["tier"], meta["team"]) == (dataset, tier, team)
        assert meta["counts"]["cases"] == len(got)
        assert len(allowed) - len(got) == meta["k_anonymity"]["suppressed"]
        assert set(meta["delta_versions"]) >= {"deid/cases", "deid/instances"}
    # Not-shared datasets and the public tier (offered by no dataset yet) publish nothing.
    assert not list(Path(settings.releases).glob("*/ntu/ivus"))
    assert not (Path(settings.releases) / "public").exists()


def test_no_planted_identifier_in_any_release(programme):
    from test_end_to_end_deid import _truth_index
    from medlake.checker import Checker

    settings, truth, _ = programme
    report = Checker(_truth_index(truth)).check(settings.releases)
    assert report.objects_scanned > 50 and report.clean, str(report)


def test_manifest_covers_and_verifies_every_file(programme):
    settings, _, _ = programme
    for _, version in latest_dirs(settings.releases):
        listed = {}
        for line in (version / "MANIFEST.sha256").read_text().splitlines():
            digest, path = line.split("  ", 1)
            listed[path] = digest
        files = {p.relative_to(version).as_posix() for p in version.rglob("*") if p.is_file()}
        assert files - {"MANIFEST.sha256"} == set(listed)
        for path, digest in listed.items():
            assert hashlib.sha256((version / path).read_bytes()).hexdigest() == digest, path


def test_objects_are_hard_links_to_the_deid_zone(programme):
    settings, _, store = programme
    deid = {r["sha256"]: Path(settings.lake) / r["object_path"] for r in store.read(INSTANCES).to_pylist()}
    version = Path(settings.releases) / "collaboration" / "ntu" / "ccta" / "latest"
    instances = pq.read_table(version / "tables" / "instances.parquet").to_pylist()
    assert instances
    for r in instances:
        assert os.path.samefile(version / r["path"], deid[r["sha256"]])


def test_images_only_dataset_releases_no_annotation(programme):
    settings, _, store = programme
    version = (Path(settings.releases) / "collaboration" / "tmu" / "lung-pathology" / "latest").resolve()
    assert not (version / "tables" / "annotations.parquet").exists()
    assert not any(version.glob("objects/annotations/**/*"))
    cases = pq.read_table(version / "tables" / "cases.parquet").to_pylist()
    assert cases and {c["annotation_status"] for c in cases} == {"image_only"}
    assert all(c["annotation_kinds"] == [] for c in cases)
    kinds = set(pq.read_table(version / "tables" / "instances.parquet").column("kind").to_pylist())
    assert kinds <= {"dicom_image", "dicom_waveform"}
    assert pq.read_table(version / "tables" / "slides.parquet").num_rows > 0
    # The lake itself keeps the annotations: only the release leaves them out.
    lake_cases = store.read(CASES).filter(pc.equal(store.read(CASES)["dataset"], "lung-pathology"))
    assert lake_cases.num_rows >= len(cases)


def test_every_dataset_card_is_complete(programme, registry):
    settings, _, _ = programme
    cards = sorted((Path(settings.lake) / "program" / "dataset_cards").glob("*.md"))
    assert {c.stem for c in cards} == {d.id for d in registry.datasets}
    for card in cards:
        assert missing_sections(card.read_text()) == [], card.name
    for _, version in latest_dirs(settings.releases):
        text = (version / "DATASET_CARD.md").read_text()
        assert missing_sections(text) == [], version
        meta = json.loads((version / "release.json").read_text())
        assert f"{meta['counts']['cases']:,}" in text and meta["version"] in text


def test_application_release_holds_only_its_approved_datasets(programme):
    settings, truth, store = programme
    apps = {a["application_id"]: a for a in store.read(APPLICATIONS).to_pylist()}
    for expected in truth["applications"]:
        if expected["expected_status"] is not None:
            assert apps[expected["application_id"]]["status"] == expected["expected_status"]
    active = [a for a in apps.values() if a["status"] == "active"]
    assert len(active) == 1
    app = active[0]
    version = (Path(settings.releases) / "applications" / app["application_id"] / "latest").resolve()
    held = {p.name for p in version.iterdir() if p.is_dir()}
    assert held == set(app["released_datasets"]) == {"ccta", "af-cardiac-ct"}
    for dataset in held:
        team = "ntu" if dataset == "ccta" else "tvgh"
        review = (Path(settings.releases) / "review" / team / dataset / "latest").resolve()
        for f in review.rglob("*"):
            if f.is_file():
                assert os.path.samefile(f, version / dataset / f.relative_to(review))
    others = {p.name for p in (Path(settings.releases) / "applications").iterdir() if p.is_dir()}
    assert others == {app["application_id"]}
    log = store.read(RELEASE_LOG).to_pylist()
    assert any(r["application_id"] == app["application_id"] and r["action"] == "published"
               and r["recipient"] == app["institution"] for r in log)
    codes = {p["code"] for p in store.read(APPLICATION_PROBLEMS).to_pylist()}
    assert {"decision_without_application", "application_unknown_dataset"} <= codes


def test_k_gate_generalises_and_suppresses(programme, registry, tmp_path):
    settings, _, store = programme
    version = (Path(settings.releases) / "collaboration" / "ntu" / "ccta" / "latest").resolve()
    meta = json.loads((version / "release.json").read_text())["k_anonymity"]
    # Twelve synthetic patients of every age cannot be released at 5-year bands: the gate widened them.
    assert meta["k_before"] < 5 <= meta["k_after"]
    assert meta["level"] != {"age_band_years": 5, "study_year_span": 1, "sex": "kept"}
    bands = set(pq.read_table(version / "tables" / "cases.parquet").column("age_band").to_pylist())
    assert all("-" in b or b in ("any", "unknown") or b.endswith("+") for b in bands)
    assert "generalis" in (version / "DATASET_CARD.md").read_text().lower() or "removed" in \
        (version / "DATASET_CARD.md").read_text()
    # The same cases at the public tier's k = 11: fewer than 11 in every class, so none may go.
    public = registry_with(registry, "ccta", tiers=("collaboration", "review", "public"))
    eligible = store.read(RELEASE_ELIGIBILITY)
    eligible = eligible.filter(pc.equal(eligible["tier"], "collaboration"))
    eligible = eligible.set_column(eligible.schema.get_field_index("tier"), "tier",
                                   pc.cast(pc.replace_substring(eligible["tier"], "collaboration", "public"),
                                           eligible.schema.field("tier").type))
    run = release_run(store, public, tmp_path, version_date())
    run.eligibility = eligible
    [outcome] = release_dataset(run, "ntu", "ccta", "public")
    assert len(release_cases(version)) < 11
    assert outcome.action == "empty" and not (tmp_path / "public" / "ntu" / "ccta").exists()


def version_date():
    import datetime as dt
    return dt.date.fromisoformat(AS_OF)


def fresh_run(store, registry, root, **kw):
    return release_run(store, registry, root, version_date(), **kw)


def test_identifier_finding_refuses_the_release(programme, registry, tmp_path):
    settings, truth, store = programme
    patient_id = next(c["patient_id"] for c in truth["cases"] if c["dataset"] == "ccta")
    run = fresh_run(store, registry, tmp_path)
    [first] = release_dataset(run, "ntu", "ccta", "collaboration")
    assert first.action == "published" and first.version == "v1"
    # A card that (by some bug) names a patient: the checker refuses the new version.
    leaky = fresh_run(store, registry, tmp_path)
    leaky.eligibility = _drop_one_case(leaky.eligibility, "ccta")
    leaky.card = lambda sel, version, day: f"# Card\n\nPatient {patient_id}\n"
    [outcome] = release_dataset(leaky, "ntu", "ccta", "collaboration")
    assert outcome.action == "refused" and outcome.findings
    folder = tmp_path / "collaboration" / "ntu" / "ccta"
    assert latest_version(folder) == "v1" and versions(folder) == ["v1"]
    assert not list(folder.glob(".partial-*"))
    assert patient_id not in outcome.reason and patient_id not in json.dumps(outcome.findings)


def _drop_one_case(eligibility, dataset):
    doomed = next(r["case_pseudonym"] for r in eligibility.to_pylist() if r["dataset"] == dataset and r["eligible"])
    return eligibility.filter(pc.invert(pc.equal(eligibility["case_pseudonym"], doomed)))


def test_crash_while_writing_never_becomes_latest(programme, registry, tmp_path):
    _, _, store = programme
    folder = tmp_path / "collaboration" / "ntu" / "ccta"
    with pytest.raises(RuntimeError, match="simulated crash"):
        release_dataset(fresh_run(store, registry, tmp_path, crash_after=3), "ntu", "ccta", "collaboration")
    assert latest_version(folder) is None and versions(folder) == [] and list(folder.glob(".partial-*"))
    [ok] = release_dataset(fresh_run(store, registry, tmp_path), "ntu", "ccta", "collaboration")
    assert ok.action == "published" and latest_version(folder) == "v1" and not list(folder.glob(".partial-*"))
    changed = fresh_run(store, registry, tmp_path, crash_after=2)
    changed.eligibility = _drop_one_case(changed.eligibility, "ccta")
    with pytest.raises(RuntimeError):
        release_dataset(changed, "ntu", "ccta", "collaboration")
    assert latest_version(folder) == "v1" and versions(folder) == ["v1"]


def test_two_runs_releasing_one_dataset_at_once_make_one_version(programme, registry, tmp_path):
    _, _, store = programme
    results, errors = [], []

    def release():
        try:
            results.extend(release_dataset(fresh_run(store, registry, tmp_path), "ntu", "ccta", "collaboration"))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=release) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sorted(r.action for r in results) == ["published", "unchanged"]
    assert versions(tmp_path / "collaboration" / "ntu" / "ccta") == ["v1"]


def test_release_assets_share_one_concurrency_pool(registry):
    from pipelines.definitions import build_definitions
    import dagster as dg

    defs = build_definitions()
    pools = {team: defs.get_assets_def(dg.AssetKey(["releases", team])).op.pool for team in registry.teams_by_id}
    assert set(pools.values()) == {"releases"}
    owners = defs.get_assets_def(dg.AssetKey(["releases", "ntu"])).specs_by_key[
        dg.AssetKey(["releases", "ntu"])].owners
    assert owners == ["team:ntu"]
