import json
import os
import shutil
import subprocess
import sys
import textwrap

import datasets
import pytest
import yaml

import regen_dataset.export as export
from regen_dataset.export import build_folder, find_sources
from regen_dataset.release import ReleaseFormatError
from regen_dataset.schema import CONFIG_NAMES, ITEMS_CONFIG_NAMES, SPLIT_NAMES
from tests.conftest import SAMPLES, entry, user, write_lines


@pytest.fixture(scope="module")
def sample_folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("built") / "regen"
    report = build_folder(find_sources([str(SAMPLES)]), out, progress=False)
    return out, report


def test_folder_layout_and_card(sample_folder):
    out, report = sample_folder
    assert sorted(os.listdir(out / "data")) == sorted(CONFIG_NAMES + ITEMS_CONFIG_NAMES)
    for config in CONFIG_NAMES:
        files = sorted(os.listdir(out / "data" / config))
        assert files == sorted(f"{split}-00000-of-00001.parquet" for split in SPLIT_NAMES)
        assert report.rows[config] == {"train": 300, "validation": 300, "test": 300}
    card = (out / "README.md").read_text()
    header = yaml.safe_load(card.split("---\n")[1])
    assert [c["config_name"] for c in header["configs"]] == list(report.rows)
    assert header["configs"][0]["data_files"][0] == {
        "split": "train",
        "path": f"data/{next(iter(report.rows))}/train-*.parquet",
    }
    assert header["dataset_info"][0]["splits"][2]["num_examples"] == 300
    # The sources came clothing first (sorted file names); the default is office all the same.
    assert next(iter(report.rows)) == "clothing"
    assert [c["config_name"] for c in header["configs"] if c.get("default")] == ["office"]
    assert datasets.load_dataset_builder(str(out)).config.name == "office"
    assert "SYNTHETIC DATA" in card and "## Splits, targets and what may be an input" in card
    assert "has no critiques" not in card and "no narratives" not in card
    build = json.loads((out / "build_report.json").read_text())
    assert build["synthetic"] is True and build["read"]["office"]["users"] == 300
    assert not [p for p in os.listdir(out.parent) if p.startswith(".regen")]


def test_card_metadata_is_what_the_hub_reads(sample_folder):
    """Plain YAML (the Hub's reader does not follow anchors), the size bucket of the rows, no
    task id that does not fit, and loading examples that name this folder, not "regen"."""
    out, report = sample_folder
    card = (out / "README.md").read_text()
    metadata = card.split("---\n")[1]
    assert "&id" not in metadata and "*id" not in metadata
    header = yaml.safe_load(metadata)
    assert header["dataset_info"][0]["features"] == header["dataset_info"][1]["features"]
    # 300 users in each of office and clothing, three splits each: 1,800 rows, not 300 users.
    assert header["size_categories"] == ["1K<n<10K"]
    assert "document-retrieval" not in header.get("task_ids", [])
    assert "text-generation" in header["task_categories"]
    descriptions = {entry["config_name"]: entry["description"] for entry in header["configs"]}
    assert descriptions["office"].startswith("REGEN office, with critiques;")
    assert f'load_dataset("{out}", "office")' in card
    assert 'load_dataset("regen"' not in card
    pushed = export.render_card(report, repo_id="org/regen-office")
    assert 'load_dataset("org/regen-office", "office")' in pushed and str(out) not in pushed


@pytest.mark.parametrize(
    ("rows", "bucket"),
    [(999, "n<1K"), (1_000, "1K<n<10K"), (268_467, "100K<n<1M"), (3_506_205, "1M<n<10M")],
)
def test_size_category(rows, bucket):
    assert export._size_category(rows) == bucket


def test_build_report_has_no_local_path(tmp_path):
    (tmp_path / "in").mkdir()
    source = write_lines(tmp_path / "in" / "office.jsonl", [user(f"U{i}", 5) for i in range(3)])
    out = tmp_path / "regen"
    report = build_folder({"office": [str(source)]}, out, progress=False)
    saved = (out / "build_report.json").read_text()
    assert str(tmp_path) not in saved
    card = (out / "README.md").read_text().replace(f'load_dataset("{out}"', "load_dataset(OUT")
    assert str(tmp_path) not in card  # the folder's path only where the card says how to load it
    payload = json.loads(saved)
    assert payload["out"] == "regen" and payload["sources"] == {"office": ["office.jsonl"]}
    assert export.BuildReport.from_dict(payload).to_dict() == payload
    assert report.sources == {"office": [str(source)]}  # the caller's report keeps the paths


def test_card_template_is_found_where_the_package_is_installed(tmp_path, monkeypatch):
    """An installed package has no repository root above it: the wheel carries the card."""
    packaged = tmp_path / "site-packages" / "regen_dataset"
    packaged.mkdir(parents=True)
    (packaged / "dataset_card.md").write_text('---\npretty_name: x\n---\nload_dataset("regen")\n')
    monkeypatch.setattr(export, "__file__", str(packaged / "export.py"))
    assert export.card_template() == packaged / "dataset_card.md"
    (packaged / "dataset_card.md").unlink()
    with pytest.raises(FileNotFoundError, match="dataset_card.md is missing"):
        export.card_template()


def test_load_dataset_in_a_fresh_process(sample_folder):
    out, _ = sample_folder
    script = textwrap.dedent(
        """
        import datasets
        from regen_dataset.schema import FEATURES
        office = datasets.load_dataset("regen", "office")
        plain = datasets.load_dataset("regen", "office_no_critique")
        assert set(office) == {"train", "validation", "test"}, office
        assert office["test"].features == FEATURES
        assert office["test"].num_rows == 300
        critiques = sum(i["critique"] is not None for r in office["test"] for i in r["history"])
        assert critiques > 100, critiques
        assert all(i["critique"] is None for r in plain["test"] for i in r["history"] + [r["target"]])
        assert office["test"]["user_id"] == plain["test"]["user_id"]
        print("ok", critiques)
        """
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_CACHE": str(out.parent / "cache")}
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=out.parent, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("ok")


def test_a_folder_rebuilt_with_other_rows_of_the_same_size_is_not_read_from_the_cache(tmp_path):
    """`load_dataset` keys its cache of a local folder on the folder's name and the card's YAML:
    the card carries each config's data fingerprint so that the rows on disk are what loads."""
    lines = [user(f"U{i}", 5) for i in range(4)]
    swapped = [user(f"U{i}", 5) for i in (1, 0, 3, 2)]  # the same rows and sizes, other order
    cache = str(tmp_path / "cache")
    loaded, cards = {}, {}
    for name, rows in (("first", lines), ("second", swapped), ("again", lines)):
        (tmp_path / name).mkdir()
        source = write_lines(tmp_path / name / "office.jsonl", rows)
        report = build_folder({"office": [str(source)]}, tmp_path / name / "regen", progress=False)
        folder = tmp_path / name / "regen"
        loaded[name] = datasets.load_dataset(str(folder), "office", split="test", cache_dir=cache)
        cards[name] = (report.fingerprints["office"], (folder / "README.md").read_text())
    assert loaded["first"]["user_id"] == ["U0", "U1", "U2", "U3"]
    assert loaded["second"]["user_id"] == ["U1", "U0", "U3", "U2"]
    # The same rows give the same fingerprint: a rebuild of the same data reuses the cache.
    assert loaded["again"].cache_files == loaded["first"].cache_files
    assert all(fingerprint in card for fingerprint, card in cards.values())


def test_existing_folder_needs_overwrite(tmp_path):
    source = write_lines(tmp_path / "office.jsonl", [user(f"U{i}", 5) for i in range(3)])
    out = tmp_path / "regen"
    build_folder({"office": [str(source)]}, out, progress=False)
    with pytest.raises(FileExistsError):
        build_folder({"office": [str(source)]}, out, progress=False)
    write_lines(source, [user(f"U{i}", 5) for i in range(5)])
    report = build_folder({"office": [str(source)]}, out, overwrite=True, progress=False)
    assert report.rows["office"]["test"] == 5
    assert json.loads((out / "build_report.json").read_text())["rows"]["office"]["test"] == 5
    assert sorted(os.listdir(tmp_path)) == ["office.jsonl", "regen"]


def test_overwrite_replaces_only_an_earlier_build_that_holds_no_source(tmp_path):
    # Kaggle's layout under the default --out: regen/REGEN/office.jsonl.
    out = tmp_path / "regen"
    (out / "REGEN").mkdir(parents=True)
    source = write_lines(out / "REGEN" / "office.jsonl", [user(f"U{i}", 5) for i in range(3)])
    with pytest.raises(FileExistsError, match="holds the source .*office.jsonl"):
        build_folder({"office": [str(source)]}, out, overwrite=True, progress=False)
    assert source.is_file()
    elsewhere = shutil.copy(source, tmp_path / "office.jsonl")
    with pytest.raises(FileExistsError, match="no earlier build"):
        build_folder({"office": [elsewhere]}, out, overwrite=True, progress=False)
    assert source.is_file()


def test_a_symlinked_folder_is_rebuilt_where_it_points(tmp_path):
    source = write_lines(tmp_path / "office.jsonl", [user(f"U{i}", 5) for i in range(3)])
    target = tmp_path / "elsewhere"
    build_folder({"office": [str(source)]}, target, progress=False)
    (tmp_path / "regen").symlink_to(target)
    build_folder({"office": [str(source)]}, tmp_path / "regen", overwrite=True, progress=False)
    assert (tmp_path / "regen").is_symlink() and (target / "build_report.json").is_file()
    assert sorted(os.listdir(tmp_path)) == ["elsewhere", "office.jsonl", "regen"]


def test_a_build_killed_mid_swap_gets_its_old_folder_back(tmp_path):
    source = write_lines(tmp_path / "office.jsonl", [user(f"U{i}", 5) for i in range(3)])
    build_folder({"office": [str(source)]}, tmp_path / "regen", progress=False)
    os.replace(tmp_path / "regen", tmp_path / ".regen.old-999999999")  # no such process
    with pytest.raises(FileExistsError, match="pass overwrite=True"):  # it is back
        build_folder({"office": [str(source)]}, tmp_path / "regen", progress=False)
    assert sorted(os.listdir(tmp_path)) == ["office.jsonl", "regen"]


def test_a_killed_build_is_cleaned_up_by_the_next(tmp_path):
    source = write_lines(tmp_path / "office.jsonl", [user(f"U{i}", 5) for i in range(3)])
    dead = tmp_path / ".regen.building-999999999"  # no such process
    running = tmp_path / f".regen.building-{os.getppid()}"  # a live process: maybe building
    for folder in (dead, running):
        (folder / "data").mkdir(parents=True)
    build_folder({"office": [str(source)]}, tmp_path / "regen", progress=False)
    assert not dead.exists() and running.exists()


def test_interrupted_build_leaves_nothing(tmp_path, monkeypatch):
    source = write_lines(tmp_path / "office.jsonl", [user(f"U{i}", 5) for i in range(3)])
    calls = []

    def failing_write(writers, rows, without_critiques):
        calls.append(1)
        raise KeyboardInterrupt("interrupted")

    monkeypatch.setattr(export, "_write_rows", failing_write)
    with pytest.raises(KeyboardInterrupt):
        build_folder({"office": [str(source)]}, tmp_path / "regen", progress=False)
    assert calls and sorted(os.listdir(tmp_path)) == ["office.jsonl"]


def test_interrupted_rebuild_keeps_the_old_folder(tmp_path, monkeypatch):
    source = write_lines(tmp_path / "office.jsonl", [user(f"U{i}", 5) for i in range(3)] + ["{bad"])
    out = tmp_path / "regen"
    build_folder({"office": [str(source)]}, out, skip_bad_lines=True, progress=False)
    before = sorted(os.listdir(out / "data" / "office"))
    with pytest.raises(ReleaseFormatError, match="line 4"):
        build_folder({"office": [str(source)]}, out, overwrite=True, progress=False)
    assert sorted(os.listdir(out / "data" / "office")) == before
    assert sorted(os.listdir(tmp_path)) == ["office.jsonl", "regen"]


def test_skipped_lines_and_short_users_are_reported(tmp_path):
    lines = [user("U1", 5), "not json", user("U2", 2), user("U3", 6)]
    lines[2]["purchase_history"][0]["item"]["asin"] = None
    source = write_lines(tmp_path / "office.jsonl", lines + [user("U4", 3)])
    report = build_folder(
        {"office": [str(source)]}, tmp_path / "regen", skip_bad_lines=True, progress=False
    )
    read = report.read["office"]
    assert read["skipped_lines"] == 2 and read["users"] == 3
    assert "line 2, field <json>" in read["skipped_examples"][0]
    assert "line 3, field purchase_history[0].item.asin" in read["skipped_examples"][1]
    assert report.split["office"]["too_short"] == 1
    assert report.rows["office"] == {"train": 2, "validation": 2, "test": 2}
    assert (
        "skipped 2 bad lines" in report.summary()
        and "1 users with fewer than 4" in report.summary()
    )


def test_a_source_without_a_good_line_is_refused(tmp_path):
    """A folder of empty splits cannot be loaded: every line bad is an error, not a folder."""
    good = write_lines(tmp_path / "office.jsonl", [user("U1", 5)])
    bad = write_lines(tmp_path / "more.jsonl", ["not json", {"reviewer_id": "U2"}, "{oops"])
    out = tmp_path / "regen"
    with pytest.raises(ValueError) as error:
        build_folder({"office": [str(good), str(bad)]}, out, skip_bad_lines=True, progress=False)
    message = str(error.value)
    assert message.startswith(f"{bad}: no user to build from: all 3 of its lines were bad")
    assert f"e.g. {bad}, line 1" in message
    empty = write_lines(tmp_path / "clothing.jsonl", ["", "  "])
    with pytest.raises(ValueError, match="no user to build from .it holds no non-blank line"):
        build_folder({"clothing": [str(empty)]}, out, progress=False)
    assert sorted(os.listdir(tmp_path)) == ["clothing.jsonl", "more.jsonl", "office.jsonl"]


def test_a_source_whose_users_are_all_too_short_is_refused(tmp_path):
    short = write_lines(tmp_path / "office.jsonl", [user("U1", 2), user("U2", 1)])
    with pytest.raises(ValueError) as error:
        build_folder({"office": [str(short)]}, tmp_path / "regen", progress=False)
    message = str(error.value)
    assert message.startswith(f"office: no user of {short} makes a row")
    assert "2 users with fewer than" in message and "cannot be loaded" in message
    assert not (tmp_path / "regen").exists()


def test_a_file_whose_users_are_all_too_short_leaves_no_empty_row_group(tmp_path):
    """A batch of no row (a source file of short users) writes no row group: `datasets` fails
    on a parquet file whose first row group has 0 rows ("BatchSize must be greater than 0")."""
    import pyarrow.parquet as pq

    short = write_lines(tmp_path / "office_a.jsonl", [user("S0", 3), user("S1", 2)])
    long = write_lines(tmp_path / "office_b.jsonl", [user(f"U{i}", 6) for i in range(5)])
    out = tmp_path / "regen"
    build_folder({"office": [str(short), str(long)]}, out, progress=False)
    for split in SPLIT_NAMES:
        shard = pq.ParquetFile(out / "data" / "office" / f"{split}-00000-of-00001.parquet")
        groups = [shard.metadata.row_group(i).num_rows for i in range(shard.num_row_groups)]
        assert groups == [5], (split, groups)
    loaded = datasets.load_dataset(str(out), "office", cache_dir=str(tmp_path / "cache"))
    assert {split: loaded[split].num_rows for split in SPLIT_NAMES} == dict.fromkeys(SPLIT_NAMES, 5)


def test_an_empty_split_is_refused_naming_the_configs_and_split(tmp_path):
    """User-disjoint splits of two users leave a split empty, which `datasets` cannot load."""
    source = write_lines(tmp_path / "office.jsonl", [user("U0", 5), user("U1", 5)])
    out = tmp_path / "regen"
    with pytest.raises(ValueError) as error:
        build_folder({"office": [str(source)]}, out, protocol="user_disjoint", progress=False)
    message = str(error.value)
    assert message.startswith("office, office_no_critique: the validation and test splits")
    assert "cannot load an empty split: build from more users" in message
    assert not out.exists() and sorted(os.listdir(tmp_path)) == ["office.jsonl"]


def test_critique_sentinels_reach_the_build_from_the_cli(tmp_path, capsys):
    from regen_dataset.cli import main

    placeholder = "No critique: items are not similar enough."
    lines = [
        user(
            f"U{i}",
            0,
            purchase_history=[
                entry(f"U{i}-{k}", 1_400_000_000 + k, critique=placeholder if k else None)
                for k in range(5)
            ],
        )
        for i in range(3)
    ]
    source = write_lines(tmp_path / "office.jsonl", lines)
    out = tmp_path / "regen"
    args = ["build", "--source", str(source), "--out", str(out)]
    main([*args, "--critique-sentinel", placeholder, "--critique-sentinel", "n/a please"])
    assert "12 sentinel placeholders read as none" in capsys.readouterr().out
    recorded = json.loads((out / "build_report.json").read_text())
    assert recorded["critique_sentinels"] == [placeholder, "n/a please"]
    loaded = datasets.load_dataset(str(out), "office", cache_dir=str(tmp_path / "cache"))
    assert all(c is None for row in loaded["test"] for c in [row["critique"]])


def test_a_folder_source_skips_and_reports_temporary_files_of_writers(tmp_path, capsys):
    from regen_dataset.cli import main

    (tmp_path / "REGEN").mkdir()
    office = write_lines(tmp_path / "REGEN" / "office.jsonl", [user(f"U{i}", 5) for i in range(3)])
    half = tmp_path / "REGEN" / "office.partial-99999.jsonl"  # a killed writer's temporary file
    half.write_text('{"reviewer_id": "half a us')
    skipped = []
    assert find_sources([str(tmp_path / "REGEN")], skipped=skipped) == {"office": [str(office)]}
    assert skipped == [str(half)]
    main(["build", "--source", str(tmp_path / "REGEN"), "--out", str(tmp_path / "regen")])
    printed = capsys.readouterr()
    assert f"skipped 1 temporary files of writers (perhaps half-written), e.g. {half}" in (
        printed.err
    )
    assert "office: train 3, validation 3, test 3" in printed.out


def test_the_user_disjoint_seed_and_fractions_are_recorded(tmp_path):
    source = str(SAMPLES / "office_synthetic.jsonl")
    out = tmp_path / "disjoint"
    build_folder(
        {"office": [source]},
        out,
        protocol="user_disjoint",
        seed=3,
        fractions=(0.7, 0.2, 0.1),
        progress=False,
    )
    recorded = json.loads((out / "build_report.json").read_text())
    assert (recorded["seed"], recorded["fractions"]) == (3, [0.7, 0.2, 0.1])
    assert 150 < recorded["rows"]["office"]["train"] < 270
    card = (out / "README.md").read_text()
    assert "user_disjoint, seed 3, train/validation/test fractions 0.7/0.2/0.1" in card
    plain = build_folder({"office": [source]}, tmp_path / "loo", seed=3, progress=False)
    assert (plain.seed, plain.fractions) == (None, None)  # leave-one-out draws nothing


def test_find_sources_takes_paths_holding_an_equals_sign(tmp_path):
    folder = tmp_path / "seed=3"
    folder.mkdir()
    office = write_lines(folder / "office.jsonl", [user("U", 5)])
    (tmp_path / "x=y").mkdir()
    other = write_lines(tmp_path / "x=y" / "a=b.jsonl", [user("U", 5)])
    assert find_sources([str(folder)]) == {"office": [str(office)]}
    assert find_sources([str(office)]) == {"office": [str(office)]}
    assert find_sources([f"clothing={other}"]) == {"clothing": [str(other)]}
    with pytest.raises(ValueError, match="cannot tell the category"):
        find_sources([str(other)])
    with pytest.raises(FileNotFoundError, match="names one of .* before the '='"):
        find_sources([f"shoes={office}"])


def test_find_sources(tmp_path):
    (tmp_path / "REGEN").mkdir()
    office = write_lines(tmp_path / "REGEN" / "office.jsonl", [user("U", 5)])
    clothing = write_lines(tmp_path / "REGEN" / "clothing.jsonl", [user("U", 5)])
    assert find_sources([str(tmp_path)]) == {"clothing": [str(clothing)], "office": [str(office)]}
    other = write_lines(tmp_path / "users.jsonl", [user("U", 5)])
    with pytest.raises(ValueError, match="cannot tell the category"):
        find_sources([str(other)])
    assert find_sources([f"clothing={other}"]) == {"clothing": [str(other)]}
    with pytest.raises(FileNotFoundError):
        find_sources([str(tmp_path / "missing.jsonl")])


def test_the_synthetic_mark_comes_from_the_rows_not_the_file_name(tmp_path):
    synthetic = [user(f"S{i}", 5, synthetic=True) for i in range(4)]
    real = [user(f"R{i}", 5) for i in range(4)]
    marked = build_folder(
        {"office": [str(write_lines(tmp_path / "office.jsonl", synthetic))]},
        tmp_path / "a",
        progress=False,
    )
    assert marked.synthetic and "SYNTHETIC DATA" in (tmp_path / "a" / "README.md").read_text()
    assert json.loads((tmp_path / "a" / "build_report.json").read_text())["synthetic"] is True
    unmarked = build_folder(
        {"office": [str(write_lines(tmp_path / "office_synthetic.jsonl", real))]},
        tmp_path / "b",
        progress=False,
    )
    assert not unmarked.synthetic
    assert "SYNTHETIC DATA" not in (tmp_path / "b" / "README.md").read_text()
    with pytest.raises(ValueError, match="mix 4 synthetic users with 4 real ones"):
        build_folder(
            {"office": [str(write_lines(tmp_path / "mixed.jsonl", synthetic + real))]},
            tmp_path / "c",
            progress=False,
        )
    assert not (tmp_path / "c").exists()


def test_a_user_in_two_files_of_a_category_is_caught(tmp_path):
    first = write_lines(tmp_path / "office.jsonl", [user("U0", 5), user("U1", 5)])
    second = write_lines(tmp_path / "more.jsonl", [user("U2", 5), user("U0", 5)])
    sources = {"office": [str(first), str(second)]}
    with pytest.raises(ReleaseFormatError) as error:
        build_folder(sources, tmp_path / "regen", progress=False)
    assert (error.value.path, error.value.line) == (str(second), 2)
    assert f"already read at {first}, line 1" in str(error.value)
    report = build_folder(sources, tmp_path / "regen", skip_bad_lines=True, progress=False)
    assert report.read["office"]["duplicate_users"] == 1
    assert report.rows["office"]["test"] == 3
