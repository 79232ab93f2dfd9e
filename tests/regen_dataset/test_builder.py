import pytest

from regen_dataset.builder import Regen
from regen_dataset.export import build_folder
from regen_dataset.schema import CONFIG_NAMES, FEATURES
from tests.conftest import SAMPLES


@pytest.mark.parametrize("config", ["office", "clothing_no_critique"])
def test_builder_matches_the_exported_folder(tmp_path, config):
    category = config.removesuffix("_no_critique")
    source = str(SAMPLES / f"{category}_synthetic.jsonl")
    builder = Regen(config_name=config, data_files=source, cache_dir=str(tmp_path / "cache"))
    builder.download_and_prepare()
    built = builder.as_dataset()
    assert built["test"].features == FEATURES
    report = build_folder({category: [source]}, tmp_path / "regen", progress=False)
    import datasets

    folder = datasets.load_dataset(str(tmp_path / "regen"), config, cache_dir=str(tmp_path / "c2"))
    for split in ("train", "validation", "test"):
        assert built[split].num_rows == report.rows[config][split] == 300
        assert built[split].to_list() == folder[split].to_list()


def test_builder_configs_and_errors(tmp_path):
    assert [c.name for c in Regen.BUILDER_CONFIGS] == list(CONFIG_NAMES)
    with pytest.raises(ValueError, match="needs the release file"):
        Regen(config_name="office", cache_dir=str(tmp_path)).download_and_prepare()
    with pytest.raises(ValueError, match="unknown split protocol"):
        Regen(
            config_name="office",
            protocol="shuffle",
            data_files=str(SAMPLES / "office_synthetic.jsonl"),
            cache_dir=str(tmp_path),
        ).download_and_prepare()


def test_builder_user_disjoint(tmp_path):
    builder = Regen(
        config_name="office",
        protocol="user_disjoint",
        data_files=str(SAMPLES / "office_synthetic.jsonl"),
        cache_dir=str(tmp_path),
    )
    builder.download_and_prepare()
    splits = builder.as_dataset()
    users = [set(splits[s]["user_id"]) for s in ("train", "validation", "test")]
    assert sum(map(len, users)) == 300 and not users[0] & users[2]
    assert all(n["user_profile"] for n in splits["train"]["narratives"])
