import json

import pytest

from regen_dataset.export import build_folder, find_sources
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
    result = evaluate.evaluate_run(test, evaluate.read_predictions(path), WordCountEncoder())
    assert result["ranking"] == pytest.approx(
        {"Recall@10": 1, "HitRate@10": 1, "NDCG@10": 1, "MRR@10": 1}
    )
    endorsement = result["text"]["product_endorsement"]
    assert endorsement["BLEU"] == pytest.approx(100) and endorsement["ROUGE"] == pytest.approx(100)
    assert endorsement["SemSim"] == pytest.approx(1, abs=1e-6) and endorsement["n"] == 300
    write_predictions(path, test["user_id"][:-1], ranked[:-1])
    with pytest.raises(PredictionFormatError, match="no prediction for 1 users"):
        evaluate.evaluate_run(test, evaluate.read_predictions(path))


def test_rows_without_a_reference_are_skipped_and_counted(folder, tmp_path):
    validation = evaluate.load_split(folder, "office", "validation")
    path = tmp_path / "p.jsonl"
    write_predictions(
        path, validation["user_id"], narratives={"user_profile": ["x"] * validation.num_rows}
    )
    result = evaluate.evaluate_run(validation, evaluate.read_predictions(path), WordCountEncoder())
    assert result["text"]["user_profile"] == {"n": 0, "skipped": 300}


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
    results = json.loads((out / "results.json").read_text())
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


def test_cli_eval_and_rater(folder, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(
        evaluate.metrics.definitions, "_load_encoder", lambda name: WordCountEncoder()
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
