import shutil

import pytest
import yaml

from conftest import REGISTRY_PATH
from medlake.program import RegistryError, load_registry
from medlake.settings import Settings


def test_registry_holds_the_seed_programme(registry):
    assert {t.id for t in registry.teams} == {"ntu", "tvgh", "tmu"}
    assert len(registry.datasets) == 25
    # Seed table 4: the 2019-11 target of all 25 datasets is 685,295 cases.
    assert sum(d.target("2019-11") for d in registry.datasets) == 685_295
    per_team = {t: sum(d.target("2019-11") for d in registry.datasets_of(t)) for t in ("ntu", "tvgh", "tmu")}
    assert per_team == {"ntu": 3_450, "tvgh": 9_895, "tmu": 671_950}
    assert [len(registry.datasets_of(t)) for t in ("ntu", "tvgh", "tmu")] == [6, 12, 7]


def test_split_dataset_parts_and_policies(registry):
    tumour = registry.dataset("brain-tumor-mri")
    assert tumour.sharing == "partially_shared"
    assert tumour.target("2019-11", "shared") == 500
    assert tumour.target("2019-11", "partially_not_shared") == 1500
    assert tumour.target("2020-11") == 3800
    assert registry.dataset("lung-pathology").release_content == "images_only"
    assert registry.dataset("lung-xray").label_source == "ehr_code"
    assert registry.dataset("ivus").sharing == "not_shared"
    assert "clean_recognizable_visual_features" in registry.deid_options("brain-mets-mri")
    assert "clean_recognizable_visual_features" not in registry.deid_options("ccta")
    assert registry.programme.period.elapsed_ratio(registry.programme.period.end) == 1.0


def _broken(tmp_path, mutate) -> str:
    raw = yaml.safe_load(REGISTRY_PATH.read_text(encoding="utf-8"))
    mutate(raw)
    path = tmp_path / "program.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    with pytest.raises(RegistryError) as e:
        load_registry(path)
    message = str(e.value)
    assert str(path) in message
    return message


def test_unknown_team_names_file_entry_and_field(tmp_path):
    def mutate(raw):
        raw["datasets"][3]["team"] = "nthu"
    m = _broken(tmp_path, mutate)
    assert "datasets[3] (id=ivus)" in m and "'team'" in m and "nthu" in m


def test_missing_field_names_entry_and_field(tmp_path):
    def mutate(raw):
        del raw["datasets"][0]["required_annotation_kinds"]
    m = _broken(tmp_path, mutate)
    assert "datasets[0] (id=ccta)" in m and "required_annotation_kinds" in m


def test_bad_value_and_unknown_milestone(tmp_path):
    def bad_kind(raw):
        raw["datasets"][1]["required_annotation_kinds"] = ["outline"]
    assert "datasets[1] (id=spect-perfusion)" in _broken(tmp_path, bad_kind)

    def bad_milestone(raw):
        raw["datasets"][2]["parts"][0]["targets"] = {"2021-11": 5}
    m = _broken(tmp_path, bad_milestone)
    assert "datasets[2] (id=cag)" in m and "parts[0].targets" in m and "2021-11" in m


def test_parts_must_match_sharing_and_ids_unique(tmp_path):
    def wrong_parts(raw):
        raw["datasets"][0]["sharing"] = "partially_shared"
    assert "datasets[0] (id=ccta)" in _broken(tmp_path, wrong_parts)

    def dup(raw):
        raw["datasets"][1]["id"] = "ccta"
    m = _broken(tmp_path, dup)
    assert "duplicate" in m and "ccta" in m


def test_not_yaml_and_missing_file(tmp_path):
    path = tmp_path / "program.yaml"
    path.write_text("teams: [ntu\n  - x: :\n", encoding="utf-8")
    with pytest.raises(RegistryError, match="not valid YAML"):
        load_registry(path)
    with pytest.raises(RegistryError, match="not found"):
        load_registry(tmp_path / "absent.yaml")


def test_medlake_program_points_at_another_registry(tmp_path):
    other = tmp_path / "other.yaml"
    shutil.copy(REGISTRY_PATH, other)
    settings = Settings.from_env({"MEDLAKE_PROGRAM": str(other), "MEDLAKE_HOME": str(tmp_path / "h")})
    assert settings.program == str(other)
    assert settings.lake == f"{tmp_path / 'h'}/lake"
    assert load_registry(settings.program).source == str(other)
