"""benchmarks/bench_flare.py's paired bootstrap, which the MovieLens comparisons rest on."""

import argparse
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_flare.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_flare", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def hits(rate: float, users: int, seed: int) -> np.ndarray:
    return (np.random.default_rng(seed).random((users, 1)) < rate).astype(float)


def test_a_run_against_itself_has_no_change_and_a_zero_width_interval(bench):
    base = hits(0.1, 900, 0)
    (figures,) = bench.paired_bootstrap(base, base, resamples=500)
    assert figures["change"] == 0.0
    assert figures["interval_95"] == [0.0, 0.0]
    assert figures["share_at_least_10_percent_ahead"] == 0.0


def test_the_interval_covers_the_true_change_and_pairing_narrows_it(bench):
    base = hits(0.1, 2000, 1)
    better = base.copy()
    better[np.flatnonzero(base[:, 0] == 0)[:100]] = 1.0  # 100 more hits on top of the same ones
    (paired,) = bench.paired_bootstrap(base, better, resamples=2000)
    assert paired["change"] == pytest.approx(100 / base.sum())
    low, high = paired["interval_95"]
    assert low < paired["change"] < high
    assert paired["share_at_least_10_percent_ahead"] > 0.9
    # The same hit rates drawn independently: the same change is far less certain.
    (unpaired,) = bench.paired_bootstrap(base, hits(better.mean(), 2000, 2), resamples=2000)
    assert unpaired["interval_95"][1] - unpaired["interval_95"][0] > 2 * (high - low)


def test_runs_of_different_users_are_refused(bench):
    with pytest.raises(ValueError, match="shapes"):
        bench.paired_bootstrap(np.zeros((10, 3)), np.zeros((9, 3)))


def test_mean_and_spread_reads_nested_keys(bench):
    runs = [{"all": {"Recall@10": 0.1}, "s": 1.0}, {"all": {"Recall@10": 0.3}, "s": 3.0}]
    summary = bench.mean_and_spread(runs, ("all/Recall@10", "s"))
    assert summary["all/Recall@10"]["mean"] == pytest.approx(0.2)
    assert summary["all/Recall@10"]["stdev"] == pytest.approx(0.1414, abs=1e-4)
    assert bench.mean_and_spread(runs[:1], ("s",))["s"] == {"mean": 1.0, "stdev": 0.0}


def split_of(*users: tuple[str, str, str]):
    """A dataset split from (user, history items as one string, target item) triples."""
    import datasets

    def purchase(item):
        return {"item_id": item, "critique": None}

    return datasets.Dataset.from_list(
        [
            {"user_id": user, "history": [purchase(i) for i in history], "target": purchase(target)}
            for user, history, target in users
        ]
    )


def test_prediction_ranks_can_drop_the_most_recent_history_items(bench, tmp_path):
    split = split_of(("u1", "ab", "c"), ("u2", "cd", "a"))
    rest = [f"x{i}" for i in range(6)]  # a prediction file ranks ten items at least
    path = tmp_path / "run.jsonl"
    path.write_text(
        json.dumps({"user_id": "u2", "ranked_items": ["d", "c", "b", "a", *rest]})
        + "\n"
        + json.dumps({"user_id": "u1", "ranked_items": ["b", "a", "c", "d", *rest]})
        + "\n"
    )
    assert bench.prediction_ranks(path, split, "test").tolist() == [3, 4]
    assert bench.prediction_ranks(path, split, "test", drop_seen=1).tolist() == [2, 3]
    assert bench.prediction_ranks(path, split, "test", drop_seen=2).tolist() == [1, 2]
    assert bench.prediction_ranks(path, split, "test", drop_seen="all").tolist() == [1, 2]
    assert bench.history_count("all") == "all" and bench.history_count("49") == 49
    with pytest.raises(argparse.ArgumentTypeError):
        bench.history_count("-1")


def test_recall_by_target_count_groups_users_by_how_often_their_target_was_seen(bench, capsys):
    split = split_of(("u1", "ab", "a"), ("u2", "ac", "b"), ("u3", "c", "z"))
    assert bench.target_counts(split).tolist() == [2, 1, 0]
    hits = np.array([[1.0, 0.5, 0.5], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]])  # Recall@10 first
    table = bench.recall_by_target_count(split, {"run": hits}, [1, 2])
    assert table == {"run": {"0-0": 1.0, "1-1": 0.0, "2+": 1.0}}
    assert "| run | 1.0000 | 0.0000 | 1.0000 |" in capsys.readouterr().out
    for edges in ([0, 2], [1, 1]):  # groups that would stay empty
        with pytest.raises(ValueError, match="distinct counts above 0"):
            bench.recall_by_target_count(split, {"run": hits}, edges)


def test_a_language_model_encodes_a_text_alike_alone_and_beside_longer_ones(bench, tiny_gemma_base):
    encoder = bench.HiddenStateEncoder(str(tiny_gemma_base), 1)
    for side in ("left", "right"):
        encoder.tokenizer.padding_side = side
        alone = encoder.encode(["pens"])
        beside = encoder.encode(["pens", "a much longer text about paper and pens"])
        np.testing.assert_allclose(beside[0], alone[0], rtol=1e-4, atol=1e-5)
        assert not np.allclose(beside[1], alone[0])


def test_content_signal_ranks_the_validation_targets(
    bench, tiny_gemma_base, tmp_path, capsys, monkeypatch
):
    from tests.conftest import build_sample_folder

    folder = build_sample_folder(tmp_path / "regen")
    monkeypatch.setattr(bench, "OUT", tmp_path / "out")
    args = argparse.Namespace(
        dataset=str(folder), config="office", split="validation",
        encoders=[f"{tiny_gemma_base}:1"],
    )  # fmt: skip
    bench.content_signal(args)
    rows = json.loads((tmp_path / "out" / "content_signal.json").read_text())
    assert [row["fields"] for row in rows] == ["all fields", "title", "categories", "description"]
    assert all(0.0 <= row["Recall@10"] <= 1.0 for row in rows)
    assert all(0.0 <= row["NDCG@10"] <= row["Recall@10"] for row in rows)  # no NaN either
    assert f"| {tiny_gemma_base}:1 | all fields |" in capsys.readouterr().out


def test_content_rescore_chooses_the_affinity_weight_on_validation(
    bench, tmp_path, capsys, monkeypatch
):
    import torch

    import regen_models.items
    from regen_models.flare import FlareConfig, FlareModel
    from regen_models.items import ItemVocabulary
    from tests.conftest import WordCountEncoder, build_sample_folder

    folder = build_sample_folder(tmp_path / "regen")
    vocabulary = ItemVocabulary.from_dataset(folder, "office")
    vectors = regen_models.items.content_vectors(
        vocabulary, "words", encoder_model=WordCountEncoder(), progress=False
    )
    monkeypatch.setattr(regen_models.items, "content_vectors", lambda *a, **k: vectors)
    torch.manual_seed(0)
    config = FlareConfig(
        num_items=len(vocabulary), content_dim=64, hidden_size=16, num_hidden_layers=1,
        intermediate_size=32, max_sequence_length=8, num_latents=2,
    )  # fmt: skip
    model = FlareModel(config)
    model.set_content_vectors(vectors)
    model.item_vocabulary = vocabulary
    model.save_pretrained(tmp_path / "flare")
    monkeypatch.setattr(bench, "OUT", tmp_path / "out")

    def rescore(alphas):
        args = argparse.Namespace(
            runs=[str(tmp_path / "flare")], dataset=str(folder), config="office", recent=6,
            alphas=alphas, betas=[0.0, 0.5, 1.0],
        )  # fmt: skip
        bench.content_rescore(args)
        return json.loads((tmp_path / "out" / "content_rescore.json").read_text())[0]

    untouched = rescore([0.0])
    assert untouched["alpha"] == 0.0
    assert untouched["test rescored"] == untouched["test model"]
    row = rescore([0.0, 0.5, 1000.0])
    assert row["alpha"] in (0.0, 0.5, 1000.0)
    assert row["validation model"] == untouched["validation model"]
    # alpha 0 is among the choices: what validation chose cannot validate worse
    assert row["validation rescored"]["NDCG@10"] >= row["validation model"]["NDCG@10"]
    content_alone = rescore([1000.0])  # alpha 0 is a choice even when not given
    assert content_alone["validation model"] == untouched["validation model"]
    assert content_alone["alpha"] in (0.0, 1000.0)
    assert "| alpha, beta |" in capsys.readouterr().out
