import datasets
import pytest

from regen_dataset import builder as builder_module
from regen_dataset.builder import Regen
from regen_dataset.export import build_folder
from regen_dataset.release import ReleaseFormatError
from regen_dataset.schema import CONFIG_NAMES, FEATURES, ITEM_FEATURES, ITEMS_CONFIG_NAMES
from tests.conftest import SAMPLES, entry, user, write_lines


@pytest.mark.parametrize("config", ["office", "clothing_no_critique"])
def test_builder_matches_the_exported_folder(tmp_path, config):
    category = config.removesuffix("_no_critique")
    source = str(SAMPLES / f"{category}_synthetic.jsonl")
    builder = Regen(config_name=config, data_files=source, cache_dir=str(tmp_path / "cache"))
    builder.download_and_prepare()
    built = builder.as_dataset()
    assert built["test"].features == FEATURES
    report = build_folder({category: [source]}, tmp_path / "regen", progress=False)
    folder = datasets.load_dataset(str(tmp_path / "regen"), config, cache_dir=str(tmp_path / "c2"))
    for split in ("train", "validation", "test"):
        assert built[split].num_rows == report.rows[config][split] == 300
        assert built[split].to_list() == folder[split].to_list()


def test_builder_configs_and_errors(tmp_path):
    assert [c.name for c in Regen.BUILDER_CONFIGS] == list(CONFIG_NAMES + ITEMS_CONFIG_NAMES)
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


def test_builder_reads_the_file_once(tmp_path, monkeypatch):
    calls = []
    real = builder_module.read_source

    def counting(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(builder_module, "read_source", counting)
    builder = Regen(
        config_name="office",
        data_files=str(SAMPLES / "office_synthetic.jsonl"),
        cache_dir=str(tmp_path / "cache"),
    )
    builder.download_and_prepare()
    assert len(calls) == 1 and builder.as_dataset()["validation"].num_rows == 300
    # The spooled splits are gone once the dataset is written.
    assert not list((tmp_path / "cache").glob("regen-spool-*"))


def test_builder_refuses_a_file_without_a_good_line(tmp_path):
    source = tmp_path / "office.jsonl"
    source.write_text("not json\n{oops\n")
    builder = Regen(
        config_name="office",
        data_files=str(source),
        skip_bad_lines=True,
        cache_dir=str(tmp_path / "cache"),
    )
    with pytest.raises(ValueError, match="no user to build from: all 2 of its lines were bad"):
        builder.download_and_prepare()
    assert not list((tmp_path / "cache").glob("regen-spool-*"))


def test_builder_refuses_a_file_of_another_category(tmp_path):
    builder = Regen(
        config_name="office",
        data_files=str(SAMPLES / "clothing_synthetic.jsonl"),
        cache_dir=str(tmp_path),
    )
    with pytest.raises(ValueError, match="Clothing, Shoes & Jewelry.*build it as clothing="):
        builder.download_and_prepare()


def test_catalog_config_matches_the_folder(tmp_path):
    source = str(SAMPLES / "office_synthetic.jsonl")
    builder = Regen(config_name="office_items", data_files=source, cache_dir=str(tmp_path / "c"))
    builder.download_and_prepare()
    items = builder.as_dataset()["train"]
    assert items.features == ITEM_FEATURES
    build_folder({"office": [source]}, tmp_path / "regen", progress=False)
    folder = datasets.load_dataset(
        str(tmp_path / "regen"), "office_items", cache_dir=str(tmp_path / "c2")
    )
    assert folder["train"].to_list() == items.to_list()
    ids = items["item_id"]
    assert ids == sorted(set(ids))
    rows = datasets.load_dataset(str(tmp_path / "regen"), "office", cache_dir=str(tmp_path / "c2"))
    seen = {i["item_id"] for row in rows["test"] for i in row["history"] + [row["target"]]}
    assert seen == set(ids)
    by_id = {item["item_id"]: item for item in items}
    for row in rows["test"].select(range(20)):
        target = row["target"]
        assert by_id[target["item_id"]] == {k: target[k] for k in ITEM_FEATURES}


@pytest.mark.parametrize("protocol", ["leave_one_out", "user_disjoint"])
def test_protocol_is_visible_when_loaded(tmp_path, protocol):
    source = str(SAMPLES / "office_synthetic.jsonl")
    build_folder({"office": [source]}, tmp_path / "regen", protocol=protocol, progress=False)
    loaded = datasets.load_dataset_builder(str(tmp_path / "regen"), "office")
    assert f"protocol: {protocol}" in loaded.config.description
    builder = Regen(
        config_name="office", protocol=protocol, data_files=source, cache_dir=str(tmp_path / "c")
    )
    assert f"protocol: {protocol}" in builder.info.description


def test_builder_reads_named_critique_sentinels_as_none(tmp_path):
    placeholder = "No critique: items are not similar enough."
    history = [
        entry(f"I{i}", 1_400_000_000 + i, critique=placeholder if i else None) for i in range(5)
    ]
    source = write_lines(tmp_path / "office.jsonl", [user("U", 0, purchase_history=history)])
    builder = Regen(
        config_name="office",
        data_files=str(source),
        critique_sentinels=(placeholder,),
        cache_dir=str(tmp_path / "c"),
    )
    builder.download_and_prepare()
    (row,) = builder.as_dataset()["test"]
    assert row["critique"] is None and all(i["critique"] is None for i in row["history"])


def test_builder_refuses_an_empty_split_naming_the_config_and_split(tmp_path):
    source = write_lines(tmp_path / "office.jsonl", [user("U0", 5), user("U1", 5)])
    builder = Regen(
        config_name="office_no_critique",
        data_files=str(source),
        protocol="user_disjoint",
        cache_dir=str(tmp_path / "c"),
    )
    with pytest.raises(ValueError, match=r"^office_no_critique: the validation and test splits"):
        builder.download_and_prepare()
    assert not list((tmp_path / "c").glob("regen-spool-*"))
    items = Regen(
        config_name="office_items",
        data_files=str(source),
        protocol="user_disjoint",
        cache_dir=str(tmp_path / "c"),
    )
    items.download_and_prepare()  # the catalog has its one split
    assert items.as_dataset()["train"].num_rows == 10


def test_builder_refuses_users_all_too_short_and_warns_of_skips(tmp_path, caplog):
    short = write_lines(tmp_path / "office.jsonl", [user("U1", 2), user("U2", 1)])
    builder = Regen(config_name="office", data_files=str(short), cache_dir=str(tmp_path / "c"))
    with pytest.raises(ValueError, match=r"office: no user of .*office.jsonl makes a row"):
        builder.download_and_prepare()
    assert not list((tmp_path / "c").glob("regen-spool-*"))
    mixed = write_lines(tmp_path / "more.jsonl", [user("U3", 5), "not json", user("U4", 2)])
    builder = Regen(
        config_name="office",
        data_files=str(mixed),
        skip_bad_lines=True,
        cache_dir=str(tmp_path / "c2"),
    )
    builder.download_and_prepare()
    assert builder.as_dataset()["test"]["user_id"] == ["U3"]
    assert "skipped 1 bad lines" in caplog.text and "1 users with fewer than 4" in caplog.text


def test_builder_refuses_a_user_in_two_files(tmp_path):
    first = write_lines(tmp_path / "a.jsonl", [user("U0", 5), user("U1", 5)])
    second = write_lines(tmp_path / "b.jsonl", [user("U2", 5), user("U1", 5)])
    builder = Regen(
        config_name="office", data_files=[str(first), str(second)], cache_dir=str(tmp_path)
    )
    with pytest.raises(
        ReleaseFormatError, match=r"user 'U1' was already read at .*a.jsonl, line 2"
    ):
        builder.download_and_prepare()
