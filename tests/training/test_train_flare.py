"""`regen train flare`, `regen predict` and `regen eval` end to end on the shipped sample."""

import json

import pytest
import torch

from regen_dataset.export import build_folder
from tests.conftest import REPO, WordCountEncoder, build_sample_folder, launch_on_two_cpu_processes
from training import cli, train_flare
from training.evaluate import run_table

TINY = str(REPO / "training" / "recipes" / "flare" / "tiny.yaml")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_sample_folder(tmp_path_factory.mktemp("flare") / "regen")


@pytest.fixture(scope="module")
def checkpoint(folder):
    out = folder.parent / "flare-office"
    cli.main(
        ["train", "flare", "--config", TINY, "--dataset_name", str(folder),
         "--dataset_config", "office", "--output_dir", str(out), "--logging_steps", "7"]
    )  # fmt: skip
    return out


def test_checkpoint_folder_and_card(checkpoint):
    for name in ("config.json", "model.safetensors", "item_vocabulary.parquet", "README.md"):
        assert (checkpoint / name).exists(), name
    config = json.loads((checkpoint / "config.json").read_text())
    assert config["model_type"] == "flare" and config["num_items"] == 93
    assert config["category"] == "office" and config["use_critiques"] is True
    card = (checkpoint / "README.md").read_text()
    assert "## Results (validation split" in card and "| NDCG@10 |" in card
    assert "AutoModel.from_pretrained" in card
    # the command repeats the recipe and the overrides of the run
    assert (
        f"--dataset_config office --output_dir flare-office --config {TINY} --logging_steps 7\n"
        in card
    )


def test_a_card_command_keeps_the_overrides_and_leaves_out_data_and_folder():
    from training.model_card import command_options

    argv = ["--config", "cpu", "--dataset_name", "d", "--dataset-config=office", "--max_steps",
            "2", "--output_dir", "o", "--overwrite_output_dir", "--kinds", "a", "b",
            "--resume_from_checkpoint", "last", "--learning_rate=0.1"]  # fmt: skip
    assert command_options(argv) == "--config cpu --max_steps 2 --kinds a b --learning_rate=0.1"
    assert command_options(["--dataset_name", "d"]) is None


def test_same_seed_same_weights(folder, checkpoint, tmp_path):
    from safetensors.torch import load_file

    again = tmp_path / "again"
    cli.main(
        ["train", "flare", "--config", TINY, "--dataset_name", str(folder),
         "--dataset_config", "office", "--output_dir", str(again)]
    )  # fmt: skip
    first, second = (load_file(path / "model.safetensors") for path in (checkpoint, again))
    assert first.keys() == second.keys()
    assert all(first[name].equal(second[name]) for name in first)


def test_predict_then_evaluate(folder, checkpoint, tmp_path, capsys):
    runs = []
    for config, quiet in (("office", []), ("office_no_critique", ["--no-progress"])):
        out = tmp_path / f"{config}.jsonl"
        cli.main(
            ["predict", "--model", str(checkpoint), "--dataset_name", str(folder),
             "--dataset_config", config, "--split", "test", "--out", str(out), "--device", "cpu",
             *quiet]
        )  # fmt: skip
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(lines) == 300 and len(lines[0]["ranked_items"]) == 93
        assert {(line["config"], line["split"]) for line in lines} == {(config, "test")}
        # a bar over the users on stderr, unless asked not to
        bars = capsys.readouterr().err
        assert ("FLARE ranks: 100%" in bars) is not bool(quiet)
        assert ("Loading weights" in bars) is not bool(quiet)  # transformers' bar too
        runs.append(("flare", config, str(out)))
    table = run_table(folder, "test", runs, str(tmp_path / "eval"), encoder=WordCountEncoder())
    assert "flare" in table and "Recall@10" in table


def test_predict_refuses_another_vocabulary(folder, checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(
            ["predict", "--model", str(checkpoint), "--dataset_name", str(folder),
             "--dataset_config", "clothing", "--out", str(tmp_path / "x.jsonl")]
        )  # fmt: skip
    error = capsys.readouterr().err
    assert "trained on another item vocabulary" in error and "Traceback" not in error
    assert not (tmp_path / "x.jsonl").exists()


def test_unknown_recipe_key_is_a_clear_error(folder, tmp_path, capsys):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text("hidden_sise: 32\n")
    with pytest.raises(SystemExit):
        cli.main(
            ["train", "flare", "--config", str(recipe), "--dataset_name", str(folder),
             "--output_dir", str(tmp_path / "out")]
        )  # fmt: skip
    error = capsys.readouterr().err
    assert f"{recipe}: no argument is called hidden_sise (did you mean hidden_size?)" in error
    assert "Traceback" not in error
    train = ["train", "flare", "--dataset_name", folder]
    recipe.write_text("max_steps: [3\n")
    error = regen_error(capsys, *train, "--output_dir", tmp_path / "out", "--config", recipe)
    assert f"{recipe}, line 2: not a YAML recipe (expected ',' or ']'" in error
    error = regen_error(capsys, *train, "--output_dir", tmp_path / "out", "--config")
    assert "--config needs a recipe: a YAML file, or a shipped recipe's name (cpu," in error
    # transformers fills in `trainer_output` for a missing --output_dir: refused before it does
    error = regen_error(capsys, *train, "--config=tiny")
    assert "--output_dir is required" in error and not (tmp_path / "out").exists()


def test_a_trained_folder_is_resumed_or_replaced_never_clobbered(
    folder, checkpoint, tmp_path, capsys, monkeypatch
):
    import shutil

    from transformers import Trainer

    out = tmp_path / "flare"
    shutil.copytree(checkpoint, out)
    train = ["train", "flare", "--config", TINY, "--dataset_name", folder, "--output_dir", out]
    error = regen_error(capsys, *train)
    assert f"--output_dir {out} is not empty" in error and "--overwrite_output_dir true" in error
    assert "--resume_from_checkpoint last" in error
    error = regen_error(capsys, *train, "--resume_from_checkpoint", "last", "--hidden_size", "32")
    assert "trained with other arguments (--hidden_size 16 there, 32 here" in error
    error = regen_error(
        capsys, *train, "--resume_from_checkpoint", "last", "--learning_rate", "0.1"
    )
    assert "--learning_rate 0.001 there, 0.1 here" in error
    error = regen_error(capsys, *train, "--resume_from_checkpoint", out)
    assert "not a complete Trainer checkpoint (no trainer_state.json)" in error
    # only from the newest checkpoint of the folder itself: the Trainer would take the others'
    # checkpoints for its own
    error = regen_error(capsys, *train, "--resume_from_checkpoint", out / "checkpoint-2")
    assert "a run resumes in its own --output_dir from the newest there" in error
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(out, elsewhere)
    error = regen_error(capsys, *train, "--resume_from_checkpoint", elsewhere / "checkpoint-4")
    assert "a run resumes in its own --output_dir" in error
    shutil.copytree(out / "checkpoint-4", out / "checkpoint-9")
    (out / "checkpoint-9" / "trainer_state.json").unlink()  # a save cut short
    error = regen_error(capsys, *train, "--resume_from_checkpoint", "last")
    assert "checkpoint-9: not a complete Trainer checkpoint" in error
    shutil.rmtree(out / "checkpoint-9")
    # an overwrite that fails on another argument leaves the folder as it was
    error = regen_error(
        capsys, *train, "--overwrite_output_dir", "true", "--dataset_test_split", "valid"
    )
    assert "--dataset_test_split 'valid'" in error
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    error = regen_error(
        capsys, *train, "--resume_from_checkpoint", "last", "--overwrite_output_dir", "true"
    )
    assert "give one" in error
    empty = ["--output_dir", tmp_path / "empty", "--resume_from_checkpoint", "last"]
    error = regen_error(capsys, *train[:-2], *empty)
    assert "holds no checkpoint-N folder" in error

    resumed_from = []
    original = Trainer.train

    def recording_train(self, resume_from_checkpoint=None, **kwargs):
        resumed_from.append(resume_from_checkpoint)
        return original(self, resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    monkeypatch.setattr(Trainer, "train", recording_train)
    cli.main([str(a) for a in (*train, "--resume_from_checkpoint", "last", "--max_steps", 6)])
    assert resumed_from == [str(out / "checkpoint-4")]
    assert f"resuming from {out / 'checkpoint-4'}" in capsys.readouterr().out
    state = json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["global_step"] == 6

    (out / "checkpoint-999").mkdir()  # would outrank the new run's checkpoints
    cli.main([str(a) for a in (*train, "--overwrite_output_dir", "true")])
    assert resumed_from[-1] is None
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]


def test_two_processes_with_accelerate(folder, tmp_path, capsys):
    """The same script under `accelerate launch` on two CPU processes (gloo), as on GPUs."""
    out = tmp_path / "flare-ddp"
    (out / "checkpoint-999").mkdir(parents=True)  # an earlier run's, replaced by this one
    launch_on_two_cpu_processes(
        REPO / "training" / "train_flare.py",
        [
            "--config", TINY,
            "--dataset_name", str(folder), "--dataset_config", "office_no_critique",
            "--output_dir", str(out), "--overwrite_output_dir", "true"
        ],
    )  # fmt: skip
    assert (out / "model.safetensors").exists() and (out / "item_vocabulary.parquet").exists()
    assert not (out / "checkpoint-999").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["use_critiques"] is False  # a _no_critique config trains without them
    # Predicted on the config with critiques, it reads none, and says so.
    cli.main(["predict", "--model", str(out), "--dataset_name", str(folder), "--dataset_config",
              "office", "--split", "test", "--out", str(tmp_path / "p.jsonl"), "--no-progress"])  # fmt: skip
    assert "note: this model was trained without critiques" in capsys.readouterr().out


def test_trains_on_data_without_any_critique(tmp_path):
    """MovieLens has no critiques: FLARE trains without the critique path and says so."""
    from regen_dataset.movielens import write_movielens
    from tests.regen_dataset.test_movielens import write_original

    ratings = [
        (u, 1 + (u * 7 + k) % 3, 1 + k % 5, 880000000 + 1000 * k)
        for u in range(1, 30)
        for k in range(8)
    ]
    source = write_movielens(write_original(tmp_path / "ml", ratings), tmp_path / "ml.jsonl")
    assert source == 29
    build_folder({"office": [str(tmp_path / "ml.jsonl")]}, tmp_path / "folder", progress=False)
    out = tmp_path / "flare"
    cli.main(
        ["train", "flare", "--config", TINY, "--dataset_name", str(tmp_path / "folder"),
         "--dataset_config", "office", "--output_dir", str(out)]
    )  # fmt: skip
    assert json.loads((out / "config.json").read_text())["use_critiques"] is False


def test_ranker_on_composed_rows_and_its_bad_input(folder, checkpoint, tmp_path):
    """What the hybrid system and the Space call: rows as plain dicts rank like the split's own
    rows; a critique typed by a user changes the ranking; bad rows are named."""
    import datasets

    from regen_models.flare.ranking import FlareRanker
    from regen_models.items import UnknownItemError

    test = datasets.load_dataset(str(folder), "office", split="test").select(range(8))
    ranker = FlareRanker.from_pretrained(checkpoint, device="cpu")
    from_split = ranker.rank(test, top_k=5)
    rows = [
        {"user_id": r["user_id"], "history": r["history"], "critique": r["critique"]} for r in test
    ]
    from_dicts = ranker.rank(rows, 5)  # top_k by position too, as LUMEN's rank takes it
    assert [r.item_ids for r in from_dicts] == [r.item_ids for r in from_split]
    assert all(
        len(r.item_ids) == 5 and r.scores == sorted(r.scores, reverse=True) for r in from_dicts
    )
    # Every item's score, in vocabulary order: the ranking's top items and their scores.
    scores = ranker.scores(test, batch_size=3)
    assert scores.shape == (8, len(ranker.vocabulary))
    top = scores.topk(5)
    assert [[ranker.vocabulary.item_ids[i] for i in row] for row in top.indices.tolist()] == [
        r.item_ids for r in from_split
    ]
    torch.testing.assert_close(top.values, torch.tensor([r.scores for r in from_split]))
    assert ranker.scores([]).shape == (0, len(ranker.vocabulary))

    # A user's own history names items only: no critique key, the same as None.
    bare = [
        dict(row, history=[{"item_id": purchase["item_id"]} for purchase in row["history"]])
        for row in rows
    ]
    nones = [
        dict(row, history=[{"item_id": p["item_id"], "critique": None} for p in row["history"]])
        for row in rows
    ]
    assert [r.item_ids for r in ranker.rank(bare)] == [r.item_ids for r in ranker.rank(nones)]
    with pytest.raises(ValueError, match="a dict of columns"):
        ranker.rank(test[:3])
    with pytest.raises(ValueError, match="an iterator, which can be read once"):
        ranker.rank(row for row in rows)

    asked = [dict(rows[0], critique="I would rather have a bright red one for my desk")]
    plain = [dict(rows[0], critique=None)]
    assert ranker.rank(asked, top_k=93)[0].scores != ranker.rank(plain, top_k=93)[0].scores
    assert ranker.rank(asked, top_k=93, with_critiques=False)[0].scores == pytest.approx(
        ranker.rank(plain, top_k=93)[0].scores
    )
    for none in ("   ", "<NO_CRITIQUE>"):  # no critique, as the reader and the prompts read it
        blank = [dict(rows[0], critique=none)]
        assert ranker.rank(blank, top_k=93)[0].scores == ranker.rank(plain, top_k=93)[0].scores

    with pytest.raises(ValueError, match="user u1 has an empty history"):
        ranker.rank([{"user_id": "u1", "history": [], "critique": None}])
    unknown = dict(rows[0], user_id="u2")
    unknown["history"] = [dict(rows[0]["history"][0], item_id="NOT-AN-ITEM")]
    with pytest.raises(UnknownItemError, match="NOT-AN-ITEM.*user u2, history position 0"):
        ranker.rank([unknown])
    with pytest.raises(
        ValueError, match=r"row 1 \(user u3\), history position 0: needs an item_id"
    ):
        ranker.rank([rows[0], {"user_id": "u3", "history": [{"title": "x"}]}])
    with pytest.raises(ValueError, match="row 0: expected a dict with user_id"):
        ranker.rank([{"history": rows[0]["history"]}])
    with pytest.raises(ValueError, match=r"row 0 \(user u4\), critique: a critique is text"):
        ranker.rank([dict(rows[0], user_id="u4", critique=7)])
    long = [dict(rows[0], critique="red and bright " * 400)]
    with pytest.warns(UserWarning, match="1 critiques are longer than the encoder reads"):
        ranker.rank(long)


def regen_error(capsys, *argv) -> str:
    """The one line `regen` prints for bad input (no traceback)."""
    with pytest.raises(SystemExit):
        cli.main([str(arg) for arg in argv])
    error = capsys.readouterr().err
    assert "Traceback" not in error
    return error


def test_bad_training_arguments_are_named(folder, tmp_path, capsys):
    train = ["train", "flare", "--config", TINY, "--dataset_name", folder]
    out = ["--output_dir", tmp_path / "out"]
    recipe = tmp_path / "float.yaml"
    recipe.write_text(open(TINY).read() + "num_latents: 2.5\n")
    error = regen_error(
        capsys, "train", "flare", "--config", recipe, "--dataset_name", folder, *out
    )
    assert "num_latents must be a whole number of at least 1, got 2.5" in error
    error = regen_error(capsys, *train, *out, "--contrastive_temperature", "0")
    assert "contrastive_temperature must be positive" in error
    error = regen_error(capsys, *train, *out, "--dataset_test_split", "tst")
    assert "--dataset_test_split 'tst'" in error and "['test', 'train', 'validation']" in error
    error = regen_error(capsys, *train, *out, "--dataset_config", "office_items")
    assert "office_items is the catalog of office" in error
    error = regen_error(capsys, *train, *out, "--max_train_rows", "0")
    assert "--max_train_rows 0: expected a positive number of rows" in error
    missing = tmp_path / "regen-typo"
    error = regen_error(capsys, "train", "flare", "--dataset_name", missing, *out)
    assert f"{missing}: no such dataset folder" in error
    assert not (tmp_path / "out").exists()


def test_token_vectors_of_another_width_than_the_critiques_are_refused(
    folder, tmp_path, capsys, monkeypatch
):
    import numpy as np

    class DenseAfterPooling(WordCountEncoder):
        """Sentence vectors through a 64 -> 32 layer, as distiluse-base-multilingual-cased-v2's
        768 -> 512; its token vectors keep the transformer's width."""

        layer = np.random.default_rng(0).standard_normal((64, 32)).astype(np.float32)

        def encode(self, texts, output_value="sentence_embedding", **options):
            out = super().encode(texts, output_value=output_value, **options)
            return out if output_value == "token_embeddings" else out @ self.layer

        def get_sentence_embedding_dimension(self):
            return 32

    monkeypatch.setattr(train_flare, "load_encoder", lambda name=None: DenseAfterPooling())
    error = regen_error(
        capsys, "train", "flare", "--config", TINY, "--dataset_name", folder, "--output_dir",
        tmp_path / "out", "--content_tokens", "4", "--encoder_name", "dense-after-pooling",
    )  # fmt: skip
    assert "dense-after-pooling has 64-wide token vectors but 32-wide sentence vectors" in error


def test_bad_prediction_arguments_are_named(folder, checkpoint, tmp_path, capsys):
    predict = ["predict", "--model", checkpoint, "--dataset_name", folder]
    out = ["--out", tmp_path / "p.jsonl"]
    for flag in ("--limit", "--batch_size"):
        error = regen_error(capsys, *predict, *out, flag, "0")
        assert f"argument {flag}" in error and "expected a positive count, got 0" in error
    error = regen_error(capsys, *predict, *out, "--top_k", "9")
    assert "argument --top_k" in error and "9: a prediction file ranks at least 10 items" in error
    error = regen_error(capsys, *predict, *out, "--dataset_config", "office_items")
    assert "office_items is the catalog of office" in error
    error = regen_error(capsys, *predict, *out, "--device", "gpu")
    assert "device 'gpu': expected auto, cpu, cuda, cuda:N or mps" in error
    error = regen_error(capsys, "predict", "--model", checkpoint, "--dataset_name", "../x", *out)
    assert "../x: no such dataset folder" in error
    without_weights = tmp_path / "no-weights"
    without_weights.mkdir()
    for name in ("config.json", "item_vocabulary.parquet"):
        (without_weights / name).write_bytes((checkpoint / name).read_bytes())
    error = regen_error(
        capsys, "predict", "--model", without_weights, "--dataset_name", folder, *out
    )
    assert str(without_weights) in error and "model.safetensors" in error
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{model_type: flare")
    error = regen_error(capsys, "predict", "--model", broken, "--dataset_name", folder, *out)
    assert f"{broken / 'config.json'} is not a model configuration" in error
    assert not (tmp_path / "p.jsonl").exists()


def test_an_unknown_item_is_one_line(monkeypatch, capsys):
    """Rows the vocabulary does not cover (a folder edited after training) reach `regen` as
    bad input: one line naming the item, user and position."""
    from regen_models.items import UnknownItemError
    from training import predict

    def unknown(args):
        raise UnknownItemError("item 'ZZZ' (user u1, history position 0) is not in the ...")

    monkeypatch.setattr(predict, "predict", unknown)
    error = regen_error(capsys, "predict", "--model", "m", "--dataset_name", "d", "--out", "o")
    assert error.startswith("regen: error: item 'ZZZ' (user u1, history position 0)")


TRAIN_PUSH_AND_LOAD = """
import sys
from regen_models.flare.ranking import FlareRanker
from training import train_flare
train_flare.run(sys.argv[2:])
ranker = FlareRanker.from_pretrained(sys.argv[1])
print("loaded from the Hub:", len(ranker.vocabulary), "items")
"""


def test_push_to_hub_uploads_the_checkpoint_with_its_card_once(folder, tmp_path):
    """Against the loopback Hub: --push_to_hub uploads the folder once the card is written (the
    Trainer's own push would come first and put TRL's card there), and it loads by repo id."""
    import subprocess
    import sys

    from tests.fake_hub import FakeHub, hub_env

    repo = "test-org/flare-office"
    with FakeHub() as hub:
        result = subprocess.run(
            [sys.executable, "-c", TRAIN_PUSH_AND_LOAD, repo, "--config", TINY,
             "--dataset_name", str(folder), "--dataset_config", "office", "--max_steps", "2",
             "--eval_strategy", "no", "--save_strategy", "no",
             "--output_dir", str(tmp_path / "out"), "--push_to_hub", "true",
             "--hub_model_id", repo],
            cwd=REPO, env=hub_env(tmp_path, hf_endpoint=hub.url), capture_output=True,
            text=True, timeout=300, check=False,
        )  # fmt: skip
    assert result.returncode == 0, f"{hub.errors}\n{result.stderr[-3000:]}"
    assert "loaded from the Hub: 93 items" in result.stdout
    files = hub.repo_files[repo]
    assert {"config.json", "model.safetensors", "item_vocabulary.parquet"} <= files.keys()
    assert "# FLARE on REGEN `office`" in files["README.md"].decode()
    assert [commit.summary for commit in hub.commits if commit.repo == repo] == ["End of training"]


def test_validation_ranks_in_full_precision_under_bf16_autocast():
    """accelerate wraps the model's forward in autocast under --bf16: validation, which early
    stopping reads, must score as `regen predict` does, in float32."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from tests.regen_models.test_flare import tiny_model
    from training.train_flare import full_precision_logits

    model = tiny_model().eval()
    batch = {"item_ids": torch.tensor([[1, 2, 3, 31], [4, 5, 6, 31]])}
    try:
        with torch.no_grad():
            expected = model(**batch).logits
            Accelerator(mixed_precision="bf16", cpu=True).prepare(model)
            assert model(**batch).logits.dtype == torch.float32  # rounded in bf16, cast back
            assert not torch.equal(model(**batch).logits, expected)
            assert torch.equal(full_precision_logits(model, batch), expected)
    finally:  # the state is process-wide: later tests of this worker train without bf16
        AcceleratorState._reset_state(reset_partial_state=True)


def test_the_help_names_the_papers_and_says_what_no_flags_do():
    parser = train_flare.make_parser()
    assert "FLARE: Fusing Language Models and Collaborative Architectures" in parser.description
    (negative,) = [a for a in parser._actions if "--no_use_critiques" in a.option_strings]
    assert negative.help == "turn --use_critiques off"
    parsed = parser.parse_args_and_config(["--dataset_name", "x", "--output_dir", "o"])
    assert next(a for a in parsed if hasattr(a, "use_critiques")).use_critiques is True
