import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from regen_dataset.export import build_folder, find_sources
from regen_dataset.schema import ITEM_FEATURES
from regen_models.items import catalog_item_ids
from regen_models.predictions import PredictionFormatError, write_predictions
from tests.conftest import SAMPLES, WordCountEncoder, user, write_lines
from training import evaluate
from training.cli import main


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "regen"
    build_folder(find_sources([str(SAMPLES / "office_synthetic.jsonl")]), out, progress=False)
    return out


def test_an_oracle_scores_perfectly_and_a_partial_file_is_refused(folder, tmp_path):
    test = evaluate.load_split(folder, "office", "test")
    narratives = {
        kind: [n[kind] for n in test["narratives"]]
        for kind in ("product_endorsement", "user_profile")
    }
    ranked = [[t["item_id"]] + [f"X{i}" for i in range(9)] for t in test["target"]]
    path = tmp_path / "oracle.jsonl"
    write_predictions(path, test["user_id"], ranked, narratives)
    catalog = evaluate.catalog_item_ids(folder, "office") + [f"X{i}" for i in range(9)]
    result = evaluate.evaluate_run(
        test, evaluate.read_predictions(path), catalog, WordCountEncoder()
    )
    assert {key: result["ranking"][key] for key in evaluate.TABLE_RANKING_METRICS} == (
        pytest.approx({"Recall@10": 1, "NDCG@10": 1, "MRR@10": 1})
    )
    endorsement = result["text"]["product_endorsement"]
    assert endorsement["BLEU"] == pytest.approx(100) and endorsement["ROUGE"] == pytest.approx(100)
    assert endorsement["SemSim"] == pytest.approx(1, abs=1e-6) and endorsement["n"] == 300
    write_predictions(path, test["user_id"][:-1], ranked[:-1])
    with pytest.raises(PredictionFormatError, match="no prediction for 1 users"):
        evaluate.evaluate_run(test, evaluate.read_predictions(path), catalog)


def test_a_validation_file_is_not_scored_as_the_test_split(folder, tmp_path):
    # under leave-one-out every user is in both splits: only the file's own stamp tells
    validation = evaluate.load_split(folder, "office", "validation")
    ranked = [[t["item_id"]] + [f"X{i}" for i in range(9)] for t in validation["target"]]
    path = tmp_path / "validation.jsonl"
    write_predictions(path, validation["user_id"], ranked, config="office", split="validation")
    test = evaluate.load_split(folder, "office", "test")
    with pytest.raises(PredictionFormatError, match="made for office validation, not office test"):
        evaluate.evaluate_run(test, evaluate.read_predictions(path), [])
    plain = evaluate.load_split(folder, "office_no_critique", "validation")
    with pytest.raises(PredictionFormatError, match="not office_no_critique validation"):
        evaluate.evaluate_run(plain, evaluate.read_predictions(path), [])


def test_rows_without_a_reference_are_skipped_and_counted(folder, tmp_path):
    validation = evaluate.load_split(folder, "office", "validation")
    path = tmp_path / "p.jsonl"
    write_predictions(
        path, validation["user_id"], narratives={"user_profile": ["x"] * validation.num_rows}
    )
    result = evaluate.evaluate_run(
        validation, evaluate.read_predictions(path), [], WordCountEncoder()
    )
    assert result["text"]["user_profile"] == {"n": 0, "skipped": 300}


def test_a_blank_reference_is_no_reference(folder, tmp_path):
    test = evaluate.load_split(folder, "office", "test")

    def blank_first_two(row, index):
        if index < 2:
            row["narratives"]["user_profile"] = ["", "  "][index]
        return row

    blanked = test.map(blank_first_two, with_indices=True)
    path = tmp_path / "p.jsonl"
    profiles = [n["user_profile"] for n in test["narratives"]]
    write_predictions(path, test["user_id"], narratives={"user_profile": profiles})
    result = evaluate.evaluate_run(blanked, evaluate.read_predictions(path), [], WordCountEncoder())
    assert result["text"]["user_profile"]["n"] == test.num_rows - 2
    assert result["text"]["user_profile"]["skipped"] == 2


def test_rater_scores_off_the_scale_are_reported_not_clamped(tmp_path, monkeypatch):
    import datasets

    scores = [5, 9, 0, 6]
    rows = {
        "user_id": [f"U{i}" for i in range(4)],
        "rater": [{"user": {"veracity": score}} for score in scores],
    }
    monkeypatch.setattr(datasets, "load_dataset", lambda *args, **kwargs: {"test": rows})
    table = evaluate.rater_report(tmp_path, "office", str(tmp_path / "out"))
    assert "| user | veracity | 2 | 0% | 0% | 0% | 0% | 50% | 50% | 0% | 50% |" in table
    assert "off the 1-7 scale, left out of the shares: user/veracity 2." in table


def test_baselines_table_and_plots(folder, tmp_path):
    runs = []
    for config in ("office", "office_no_critique"):
        runs += evaluate.write_baselines(
            folder, config, "test", str(tmp_path / "preds"), encoder=WordCountEncoder()
        )
    assert [(m, c) for m, c, _ in runs[:3]] == [
        ("most_popular", "office"),
        ("random", "office"),
        ("nearest_neighbour", "office"),
    ]
    popular = [json.loads(line)["ranked_items"] for line in open(runs[0][2])]
    assert len(popular) == 300 and len(popular[0]) == 93 and popular[0] == popular[-1]
    neighbour = [json.loads(line) for line in open(runs[2][2])]
    assert set(neighbour[0]["narratives"]) == {
        "purchase_reason",
        "purchase_reason_explanation",
        "product_endorsement",
        "user_summary_brief",
        "user_summary_long",
        "user_profile",
    }
    out = tmp_path / "eval"
    table = evaluate.run_table(folder, "test", runs, str(out), encoder=WordCountEncoder())
    assert table.startswith("**SYNTHETIC data")
    assert "| History + critique -> ID + narrative (office) | Recall@10 |" in table
    assert "| History -> ID + narrative (office_no_critique) | Recall@10 |" in table
    assert "most_popular (ranking)" in table and "Product endorsement: nearest_neighbour" in table
    header = table.splitlines()[2]
    columns = [f"{title}: nearest_neighbour" for title in ("Purchase reason", "User summary",
               "Product endorsement", "Purchase reason expl.", "Long user summary")]  # fmt: skip
    assert [header.index(c) for c in columns] == sorted(header.index(c) for c in columns)
    assert "SemSim: mean cosine of WordCountEncoder embeddings" in table
    results = json.loads((out / "results.json").read_text())
    assert results["semantic_similarity_encoder"] == "WordCountEncoder"
    with pytest.raises(ValueError, match="SemSim figures of WordCountEncoder, this call computes"):
        evaluate.run_table(folder, "test", runs[:1], str(out), encoder="other-encoder")
    assert len(results["runs"]) == 6 and results["synthetic"] is True
    random_office = results["runs"][1]
    assert 0 <= random_office["ranking"]["Recall@10"] <= 1
    assert (out / "table.md").read_text().strip() == table.strip()
    assert (out / "plots.png").stat().st_size > 20_000


def test_nearest_neighbour_is_never_the_user_themselves(tmp_path):
    lines = [user(f"U{i}", 5) for i in range(4)]
    for i, line in enumerate(lines):
        line["user"]["profile"] = f"profile of U{i}"
    source = write_lines(tmp_path / "office.jsonl", lines)
    build_folder({"office": [str(source)]}, tmp_path / "regen", progress=False)
    runs = evaluate.write_baselines(
        tmp_path / "regen", "office", "test", str(tmp_path / "preds"), encoder=WordCountEncoder()
    )
    predicted = [json.loads(line) for line in open(runs[2][2])]
    for record in predicted:
        assert record["narratives"]["user_profile"] != f"profile of {record['user_id']}"


@pytest.mark.parametrize(
    "command, expected",
    [
        (["baselines", "--config", "office", "--split", "dev"],
         "--split 'dev': config office of"),
        (["baselines", "--config", "office_items"], "office_items is the catalog of office"),
        (["rater", "--config", "office_items"], "office_items is the catalog of office"),
    ],
)  # fmt: skip
def test_a_wrong_split_or_a_catalog_config_is_named(folder, tmp_path, capsys, command, expected):
    with pytest.raises(SystemExit):
        main(["eval", command[0], "--dataset", str(folder), *command[1:],
              "--out", str(tmp_path / "out")])  # fmt: skip
    assert expected in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_eval_and_rater(folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        evaluate.metrics.definitions, "load_encoder", lambda name: WordCountEncoder()
    )
    main(
        [
            "eval",
            "baselines",
            "--dataset",
            str(folder),
            "--config",
            "office",
            "--out",
            str(tmp_path / "preds"),
        ]
    )
    printed = capsys.readouterr().out
    assert f"--run most_popular office {tmp_path}/preds/most_popular/office.jsonl" in printed
    runs = [
        arg for line in printed.splitlines() if line.startswith("--run") for arg in line.split()
    ]
    main(["eval", "--dataset", str(folder), "--out", str(tmp_path / "eval"), *runs])
    assert "| Metric |" in capsys.readouterr().out
    main(
        [
            "eval",
            "rater",
            "--dataset",
            str(folder),
            "--config",
            "office",
            "--out",
            str(tmp_path / "eval"),
        ]
    )
    printed = capsys.readouterr().out
    assert (
        "| last_purchase | veracity | 300 |" in printed
        and "| example | richness | 300 |" in printed
    )
    assert (tmp_path / "eval" / "rater_office.png").stat().st_size > 10_000
    with pytest.raises(SystemExit):
        main(["eval", "--dataset", str(folder)])
    assert "at least one --run" in capsys.readouterr().err


def _copy(folder, tmp_path, *, synthetic: bool | None = None):
    """A copy of a built folder, its build's synthetic mark set to `synthetic` where given."""
    copy = tmp_path / "regen"
    shutil.copytree(folder, copy)
    if synthetic is not None:
        report = json.loads((copy / "build_report.json").read_text())
        (copy / "build_report.json").write_text(json.dumps({**report, "synthetic": synthetic}))
    return copy


def _add_items_config(folder, item_ids):
    """The catalog config a current build writes, with these item ids."""
    directory = folder / "data" / "office_items"
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    rows = [
        {"item_id": i, "title": i, "categories": [], "description": None, "price": None}
        for i in item_ids
    ]
    table = pa.Table.from_pylist(rows, schema=ITEM_FEATURES.arrow_schema)
    pq.write_table(table, directory / "train-00000-of-00001.parquet")
    card = (folder / "README.md").read_text()
    _, header, body = card.split("---\n", 2)
    meta = yaml.safe_load(header)
    meta["configs"] = [c for c in meta["configs"] if c["config_name"] != "office_items"]
    meta.pop("dataset_info", None)
    meta["configs"].append(
        {
            "config_name": "office_items",
            "data_files": [{"split": "train", "path": "data/office_items/train-*.parquet"}],
        }
    )
    (folder / "README.md").write_text("---\n" + yaml.safe_dump(meta) + "---\n" + body)


def _ranked_by_target(split, extra):
    return [[t["item_id"]] + [i for i in extra if i != t["item_id"]][:9] for t in split["target"]]


def test_the_catalog_comes_from_the_items_config_when_the_folder_has_one(folder, tmp_path):
    from_histories = catalog_item_ids(folder, "office")
    assert len(from_histories) == 93 and catalog_item_ids(folder, "office_no_critique") == (
        from_histories
    )
    copy = _copy(folder, tmp_path)
    _add_items_config(copy, from_histories + ["B0NEVERSOLD"])
    assert catalog_item_ids(copy, "office") == sorted(from_histories + ["B0NEVERSOLD"])
    # An item of the catalog that nobody bought is a fair guess: the file is scored.
    test = evaluate.load_split(copy, "office", "test")
    path = tmp_path / "p.jsonl"
    write_predictions(
        path, test["user_id"], _ranked_by_target(test, ["B0NEVERSOLD"] + from_histories)
    )
    evaluate.run_table(copy, "test", [("m", "office", str(path))], str(tmp_path / "eval"))


def test_a_file_for_another_category_is_refused_at_its_line(folder, tmp_path):
    test = evaluate.load_split(folder, "office", "test")
    path = tmp_path / "clothing.jsonl"
    write_predictions(path, test["user_id"], [[f"C{i}" for i in range(100)]] * test.num_rows)
    with pytest.raises(
        PredictionFormatError,
        match=r"clothing.jsonl, line 1: field ranked_items: item 'C0' \(position 1\) is not in "
        r"the office catalog of 93 items; 30,000 of the file's 30,000 ranked items are not: "
        "the file looks made for another category",
    ):
        evaluate.run_table(folder, "test", [("m", "office", str(path))], str(tmp_path / "eval"))
    ranked = _ranked_by_target(test, catalog_item_ids(folder, "office"))
    ranked[7][3] = "B0TYPO"
    write_predictions(path, test["user_id"], ranked)
    with pytest.raises(PredictionFormatError, match=r"line 8: .* item 'B0TYPO' \(position 4\)"):
        evaluate.run_table(folder, "test", [("m", "office", str(path))], str(tmp_path / "eval"))
    assert not (tmp_path / "eval" / "results.json").exists()


def test_a_swapped_user_is_named_at_its_line(folder, tmp_path):
    test = evaluate.load_split(folder, "office", "test")
    users = list(test["user_id"])
    users[41] = "NOT-A-USER"
    path = tmp_path / "p.jsonl"
    write_predictions(path, users, _ranked_by_target(test, catalog_item_ids(folder, "office")))
    with pytest.raises(
        PredictionFormatError, match="p.jsonl, line 42: user 'NOT-A-USER' is not in office test$"
    ):
        evaluate.run_table(folder, "test", [("m", "office", str(path))], str(tmp_path / "eval"))


def test_mrr_has_the_paper_cutoff_of_10(folder, tmp_path):
    test = evaluate.load_split(folder, "office", "test")
    catalog = catalog_item_ids(folder, "office")
    # Every target at position 11 of a 40-item list: MRR@10 is 0 whatever the list length.
    ranked = []
    for target in test["target"]:
        others = [item for item in catalog if item != target["item_id"]]
        ranked.append(others[:10] + [target["item_id"]] + others[10:39])
    path = tmp_path / "p.jsonl"
    write_predictions(path, test["user_id"], ranked)
    table = evaluate.run_table(folder, "test", [("m", "office", str(path))], str(tmp_path / "e"))
    assert "| MRR@10 | 0.0000 |" in table and "| MRR |" not in table
    run = json.loads((tmp_path / "e" / "results.json").read_text())["runs"][0]
    assert run["ranking"]["MRR@10"] == 0


def _baseline_runs(folder, tmp_path):
    return evaluate.write_baselines(
        folder, "office", "test", str(tmp_path / "preds"), encoder=WordCountEncoder()
    )


def test_repeated_runs_are_refused_and_earlier_results_kept(folder, tmp_path):
    popular, random, _ = _baseline_runs(folder, tmp_path)
    out = str(tmp_path / "eval")
    twice = [popular, ("most_popular", "office", random[2])]
    with pytest.raises(
        ValueError,
        match=rf"runs 1 \({popular[2]}\) and 2 \({random[2]}\) are both model 'most_popular' on "
        "config 'office'",
    ):
        evaluate.run_table(folder, "test", twice, out)
    for name in ("", "a|b"):
        with pytest.raises(ValueError, match=f"run 1 .*model name {name!r} cannot head a table"):
            evaluate.run_table(folder, "test", [(name, "office", popular[2])], out)
    evaluate.run_table(folder, "test", [popular], out)
    said = []
    table = evaluate.run_table(folder, "test", [random], out, log=said.append)
    assert said == [f"keeping 1 earlier runs of {out}/results.json: most_popular / office"]
    assert "most_popular (ranking)" in table and "random (ranking)" in table
    assert [
        r["model"] for r in json.loads((tmp_path / "eval" / "results.json").read_text())["runs"]
    ] == [
        "most_popular",
        "random",
    ]
    with pytest.raises(
        ValueError, match="already holds model 'random' on config 'office'.*--overwrite"
    ):
        evaluate.run_table(folder, "test", [random], out)
    said.clear()
    evaluate.run_table(folder, "test", [random], out, overwrite=True, log=said.append)
    assert said[0].startswith("replacing the earlier random / office run")
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert [r["model"] for r in results["runs"]] == ["most_popular", "random"]
    with pytest.raises(ValueError, match="holds results of .* use another --out"):
        evaluate.run_table(folder, "validation", [random], out)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "results.json").write_text('{"runs": [{"model": "m"}], "dataset": "x"}')
    with pytest.raises(ValueError, match="results.json is not a results file of `regen eval`"):
        evaluate.run_table(folder, "test", [random], str(tmp_path / "other"))


def test_an_out_folder_keeps_one_dataset_by_its_data_not_its_path(folder, tmp_path, monkeypatch):
    popular, random, _ = _baseline_runs(folder, tmp_path)
    out = str(tmp_path / "eval")
    evaluate.run_table(folder, "test", [popular], out)
    # The same folder named from elsewhere (or a copy of it) is the same dataset.
    monkeypatch.chdir(folder.parent)
    evaluate.run_table("regen", "test", [random], out)
    copy = _copy(folder, tmp_path / "copy")
    evaluate.run_table(copy, "test", [random], out, overwrite=True)
    # Another folder under the same name is not, whatever the path that names it.
    lines = (SAMPLES / "office_synthetic.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "fewer").mkdir()
    (tmp_path / "fewer" / "office.jsonl").write_text("".join(lines[:100]))
    other = tmp_path / "fewer" / "regen"
    build_folder({"office": [str(tmp_path / "fewer" / "office.jsonl")]}, other, progress=False)
    monkeypatch.chdir(tmp_path / "fewer")
    with pytest.raises(
        ValueError, match=r"holds results of \S*copy/regen \(test\), not of regen \(test\)"
    ):
        evaluate.run_table("regen", "test", [random], out, overwrite=True)


def test_a_kind_without_reference_texts_is_named_under_the_table(folder, tmp_path):
    validation = evaluate.load_split(folder, "office", "validation")
    assert all(row["user_profile"] is None for row in validation["narratives"])
    path = tmp_path / "profiles.jsonl"
    write_predictions(path, validation["user_id"], None, {"user_profile": ["x"] * 300})
    runs = [("writer", "office", str(path))]
    table = evaluate.run_table(
        folder, "validation", runs, str(tmp_path / "eval"), encoder=WordCountEncoder()
    )
    assert table.endswith(
        "- office, User profile: 300 of 300 validation users have no reference text, so it is "
        "not scored (writer)"
    )


@pytest.mark.parametrize("synthetic", [True, False])
def test_every_table_says_synthetic_from_the_folder_mark_alone(
    folder, tmp_path, capsys, monkeypatch, synthetic
):
    # The sample's file name says "synthetic"; only the build's mark may decide.
    copy = _copy(folder, tmp_path, synthetic=synthetic)
    monkeypatch.setattr(
        evaluate.metrics.definitions, "load_encoder", lambda name: WordCountEncoder()
    )
    out, preds = str(tmp_path / "eval"), str(tmp_path / "preds")
    main(["eval", "baselines", "--dataset", str(copy), "--config", "office", "--out", preds])
    printed = capsys.readouterr().out
    runs = [
        arg for line in printed.splitlines() if line.startswith("--run") for arg in line.split()
    ]
    main(["eval", "--dataset", str(copy), "--out", out, *runs])
    main(["eval", "rater", "--dataset", str(copy), "--config", "office", "--out", out])
    printed += capsys.readouterr().out
    written = [tmp_path / "eval" / name for name in ("table.md", "results.json", "rater_office.md")]
    for text in [printed] + [path.read_text() for path in written]:
        assert ("SYNTHETIC" in text) == synthetic
    assert json.loads(written[1].read_text())["synthetic"] is synthetic


def test_the_neighbour_baseline_is_footnoted_where_its_figures_appear(
    folder, tmp_path, capsys, monkeypatch
):
    monkeypatch.setattr(
        evaluate.metrics.definitions, "load_encoder", lambda name: WordCountEncoder()
    )
    preds = str(tmp_path / "preds")
    main(["eval", "baselines", "--dataset", str(folder), "--config", "office", "--out", preds])
    printed = capsys.readouterr().out
    note = "office: nearest_neighbour borrows, for each test user, the reference narrative of the most similar other test user"
    assert f"note: {note}" in printed
    runs = _baseline_runs(folder, tmp_path)
    table = evaluate.run_table(folder, "test", runs, str(tmp_path / "eval"), WordCountEncoder())
    assert f"\n- {note}" in table
    assert any(
        note in n for n in json.loads((tmp_path / "eval" / "results.json").read_text())["notes"]
    )
    ranking_only = evaluate.run_table(folder, "test", runs[:1], str(tmp_path / "other"))
    assert "nearest_neighbour" not in ranking_only


def test_first_n_users_are_scored_when_stated(folder, tmp_path):
    """Slow text generation covers the first N users only: `first` scores exactly those, says so
    in the caption and results.json, refuses a file that misses one of them, and keeps every
    table on one subset."""
    test = evaluate.load_split(folder, "office", "test")
    users, targets = test["user_id"], [t["item_id"] for t in test["target"]]
    narratives = {"user_profile": [n["user_profile"] for n in test["narratives"]][:20]}
    path = tmp_path / "first20.jsonl"
    catalog = catalog_item_ids(folder, "office")
    others = [item for item in catalog if item not in targets[:20]][:9]
    write_predictions(path, users[:20], [[t, *others] for t in targets[:20]], narratives)

    with pytest.raises(
        PredictionFormatError, match="no prediction for 280 users.*`regen eval --first 20`"
    ):
        evaluate.evaluate_run(test, evaluate.read_predictions(path), catalog)
    result = evaluate.evaluate_run(
        test, evaluate.read_predictions(path), catalog, WordCountEncoder(), first=20
    )
    assert result["users"] == 20 and result["ranking"]["Recall@10"] == pytest.approx(1)
    assert result["text"]["user_profile"]["n"] + result["text"]["user_profile"]["skipped"] == 20
    # Users beyond the subset may be in the file; a user of the subset may not be missing.
    assert (
        evaluate.evaluate_run(test, evaluate.read_predictions(path), catalog, first=10)["users"]
        == 10
    )
    with pytest.raises(PredictionFormatError, match="no prediction for 5 users of the first 25"):
        evaluate.evaluate_run(test, evaluate.read_predictions(path), catalog, first=25)

    out = tmp_path / "eval"
    table = evaluate.run_table(
        folder, "test", [("m", "office", str(path))], str(out), WordCountEncoder(), first=20
    )
    assert "Scored on the first 20 of 300 test users" in table
    saved = json.loads((out / "results.json").read_text())
    assert saved["first_users"] == 20 and saved["runs"][0]["users"] == 20
    assert any("first 20 of 300" in note for note in saved["notes"])
    with pytest.raises(ValueError, match="scores the first 20 users of the split, this call all"):
        evaluate.run_table(folder, "test", [("other", "office", str(path))], str(out))
    with pytest.raises(ValueError, match="--first must be a positive"):
        evaluate.run_table(folder, "test", [("m", "office", str(path))], str(out), first=0)


def test_narratives_about_the_held_out_item_are_footnoted(folder, tmp_path):
    """A narrator given the target (fusion, the hybrid with --narrate-target) beside a system
    that writes about its own pick: the table says which is which."""
    test = evaluate.load_split(folder, "office", "test")
    profiles = {"user_profile": [n["user_profile"] for n in test["narratives"]]}
    runs = []
    for model, narrated in (("given", "target"), ("own", "top_ranked"), ("unsaid", None)):
        path = tmp_path / f"{model}.jsonl"
        write_predictions(path, test["user_id"], None, profiles, narrated_item=narrated)
        runs.append((model, "office", str(path)))
    table = evaluate.run_table(folder, "test", runs, str(tmp_path / "eval"), WordCountEncoder())
    assert "- given (office): narratives about each user's held-out item, given to the model" in (
        table
    )
    assert "own (office)" not in table and "unsaid (office)" not in table
    records = json.loads((tmp_path / "eval" / "results.json").read_text())["runs"]
    assert [r.get("narrated_item") for r in records] == ["target", "top_ranked", None]
