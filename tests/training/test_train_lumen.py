"""`regen train lumen` on the shipped sample with a tiny random Gemma 3: both losses fall (the item
loss is part of what is optimised), validation ranks the catalog, the checkpoint loads by name,
`regen predict` writes rankings and narratives about LUMEN's own top item, `regen eval` shows
them; two processes under `accelerate launch`; one smoke run on the embedded Gemma."""

import json
import math

import datasets
import pytest
import torch
from transformers import AutoModel

from regen_models.lumen import LumenForCausalLM
from regen_models.lumen.recommender import Lumen
from tests.conftest import (
    REPO,
    WordCountEncoder,
    build_sample_folder,
    launch_on_two_cpu_processes,
)
from training import cli, train_lumen
from training.evaluate import run_table

TINY = str(REPO / "training" / "recipes" / "lumen" / "tiny.yaml")
CPU = str(REPO / "training" / "recipes" / "lumen" / "cpu.yaml")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_sample_folder(tmp_path_factory.mktemp("lumen") / "regen", "user_disjoint")


@pytest.fixture(scope="module")
def trained(folder, tiny_gemma_base):
    out = folder.parent / "lumen-office"
    metrics = train_lumen.run(
        ["--config", TINY, "--dataset_name", str(folder), "--dataset_config", "office",
         "--base_model", str(tiny_gemma_base), "--output_dir", str(out)]
    )  # fmt: skip
    return out, metrics


def mean(values):
    return sum(values) / len(values)


def test_both_losses_fall(trained):
    """Fails if the trainer optimises the text loss alone (TRL's own loss never reaches the item
    head: the item loss would then not be logged, or would not fall)."""
    out, _ = trained
    last = max(out.glob("checkpoint-*"), key=lambda path: int(path.name.split("-")[1]))
    history = json.loads((last / "trainer_state.json").read_text())["log_history"]
    items = [entry["item_loss"] for entry in history if "item_loss" in entry]
    texts = [entry["text_loss"] for entry in history if "text_loss" in entry]
    assert len(items) >= 4 and len(texts) >= 4
    # Below a uniform guess over the 93 items, and well below where it started. (With the item
    # loss weighted 0 it stays near 10: the LM's changes alone do not teach the item head.)
    assert mean(items[-2:]) < min(math.log(93), 0.6 * mean(items[:2])), items
    assert mean(texts[-2:]) < mean(texts[:2]), texts


def test_checkpoint_folder_and_card(trained):
    out, metrics = trained
    for name in ("config.json", "model.safetensors", "item_vocabulary.parquet",
                 "tokenizer.json", "README.md"):  # fmt: skip
        assert (out / name).exists(), name
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "lumen" and config["num_items"] == 93
    assert config["category"] == "office" and config["with_critiques"] is True
    assert config["kinds"] == ["purchase_reason", "user_profile"]
    assert config["item_embedding_dim"] == 16 and config["max_prompt_tokens"] == 512
    assert set(config["max_new_tokens"]) == {"purchase_reason", "user_profile"}
    assert {"eval_Recall@10", "eval_NDCG@10", "eval_MRR@10"} <= metrics.keys()
    card = (out / "README.md").read_text()
    assert "# LUMEN on REGEN `office`" in card and f"--config {TINY}" in card
    assert "| NDCG@10 |" in card and "Lumen.from_pretrained" in card
    model = AutoModel.from_pretrained(out)
    assert type(model) is LumenForCausalLM and len(model.item_vocabulary) == 93
    assert not [name for name in model.state_dict() if "lora" in name]  # merged


def test_the_switch_token_learns_under_lora_and_is_merged(trained):
    """LoRA freezes the LM's embeddings, those of the switch token LUMEN added among them: its
    own row trains in the checkpoints and is written into the saved model's embeddings."""
    from safetensors.torch import load_file

    out, _ = trained
    switch = json.loads((out / "config.json").read_text())["switch_token_id"]
    final = load_file(out / "model.safetensors")
    key = next(name for name in final if name.endswith("embed_tokens.weight"))
    assert not [name for name in final if name.startswith("switch_rows")]
    checkpoints = [load_file(path / "model.safetensors") for path in out.glob("checkpoint-*")]
    frozen = checkpoints[0][key][switch]
    assert all(torch.equal(weights[key][switch], frozen) for weights in checkpoints)
    trained_rows = [weights["switch_rows.input_row"] for weights in checkpoints]
    assert not torch.allclose(trained_rows[0], frozen)
    assert any(torch.equal(final[key][switch], row.to(final[key].dtype)) for row in trained_rows)


def test_predict_writes_rankings_and_narratives_about_the_top_item(
    folder, trained, tmp_path, capsys
):
    import datasets

    out, _ = trained
    predictions = tmp_path / "lumen.jsonl"
    cli.main(
        ["predict", "--model", str(out), "--dataset_name", str(folder), "--dataset_config",
         "office", "--split", "test", "--limit", "3", "--top_k", "10", "--out", str(predictions),
         "--max_new_tokens", "3", "--device", "cpu"]
    )  # fmt: skip
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(lines) == 3 and all(len(line["ranked_items"]) == 10 for line in lines)
    assert {line["narrated_item"] for line in lines} == {"top_ranked"}
    printed = capsys.readouterr()
    bars = printed.err
    assert "LUMEN ranks: 100%" in bars and "LUMEN writes user_profile: 100%" in bars
    assert set(lines[0]["narratives"]) == {"purchase_reason", "user_profile"}
    # every prompt counted: 3 rankings and 3 of each kind
    assert "LUMEN prompts: 9 prompts" in printed.out
    rows = datasets.load_dataset(str(folder), "office", split="test").select(range(3))
    lumen = Lumen.from_pretrained(out)
    top = [line["ranked_items"][0] for line in lines]
    written = lumen.write(rows, "user_profile", item_ids=top, max_new_tokens=3)
    assert [w.item_id for w in written] == top
    assert [w.text for w in written] == [line["narratives"]["user_profile"] for line in lines]
    lumen.save_pretrained(tmp_path / "again")
    again = Lumen.from_pretrained(tmp_path / "again", device="cpu").write(
        rows, "user_profile", item_ids=top, max_new_tokens=3
    )
    assert [w.text for w in again] == [w.text for w in written]
    one_kind = tmp_path / "one-kind.jsonl"
    cli.main(
        ["predict", "--model", str(out), "--dataset_name", str(folder), "--limit", "3",
         "--kinds", "user_profile", "--out", str(one_kind), "--max_new_tokens", "3",
         "--no-progress"]
    )  # fmt: skip
    assert set(json.loads(one_kind.read_text().splitlines()[0])["narratives"]) == {"user_profile"}
    for bad, message in ((["--kinds", "product_endorsement"], "trained to write"),
                         (["--top_k", "5"], "ranks at least 10 items")):  # fmt: skip
        with pytest.raises(SystemExit):
            cli.main(["predict", "--model", str(out), "--dataset_name", str(folder),
                      "--out", str(tmp_path / "x.jsonl"), *bad])  # fmt: skip
        assert message in capsys.readouterr().err
    # --max_new_tokens counts the narrative's tokens, not the "Text: " label before it
    limits = []
    generate = lumen.model.generate
    lumen.model.generate = lambda **kwargs: (
        limits.append(kwargs["max_new_tokens"]) or generate(**kwargs)
    )
    lumen.write(rows, "user_profile", max_new_tokens=3)
    label = lumen.tokenizer("\nText: ", add_special_tokens=False)["input_ids"]
    assert limits == [3 + len(label)] and len(label) > 0
    with pytest.raises(ValueError, match="item_ids: 1 items for 3 rows"):
        lumen.write(rows, "user_profile", item_ids=top[:1], max_new_tokens=3)
    with pytest.raises(ValueError, match="a dict of columns"):
        lumen.rank(rows[:2])
    with pytest.raises(ValueError, match="a single row dict"):
        lumen.write(rows[0], "user_profile")
    table = run_table(
        folder, "test", [("lumen", "office", str(predictions))], str(tmp_path / "eval"),
        encoder=WordCountEncoder(), first=3,
    )  # fmt: skip
    assert "lumen" in table and "Recall@10" in table


def test_predict_refuses_another_vocabulary(folder, trained, tmp_path, capsys):
    out, _ = trained
    with pytest.raises(SystemExit):
        cli.main(
            ["predict", "--model", str(out), "--dataset_name", str(folder),
             "--dataset_config", "clothing", "--out", str(tmp_path / "x.jsonl")]
        )  # fmt: skip
    error = capsys.readouterr().err
    assert "trained on another item vocabulary" in error and "Traceback" not in error
    assert not (tmp_path / "x.jsonl").exists()


def test_unknown_kinds_fail_before_any_model_loads(folder, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(
            ["train", "lumen", "--config", TINY, "--dataset_name", str(folder),
             "--kinds", "purchase_reason", "summary", "--output_dir", str(tmp_path / "out")]
        )  # fmt: skip
    assert "--kinds ['summary']: expected some of" in capsys.readouterr().err


def test_a_prompt_budget_over_the_context_is_a_clear_error(folder, tiny_gemma_base, tmp_path,
                                                           capsys):  # fmt: skip
    with pytest.raises(SystemExit):
        cli.main(
            ["train", "lumen", "--config", TINY, "--dataset_name", str(folder),
             "--base_model", str(tiny_gemma_base), "--max_prompt_tokens", "5000",
             "--output_dir", str(tmp_path / "out")]
        )  # fmt: skip
    assert "leaves no room in the context" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_folder_without_training_narratives_is_refused(tiny_gemma_base, tmp_path, capsys):
    """A leave-one-out folder's train rows carry no narrative: LUMEN would train the item alone
    and then write text it never learned."""
    folder = build_sample_folder(tmp_path / "regen")
    with pytest.raises(SystemExit):
        cli.main(
            ["train", "lumen", "--config", TINY, "--dataset_name", str(folder),
             "--base_model", str(tiny_gemma_base), "--output_dir", str(tmp_path / "out")]
        )  # fmt: skip
    error = capsys.readouterr().err
    assert "has no reference narrative of the kinds ['purchase_reason'" in error
    assert "--protocol user_disjoint" in error


def test_two_processes_with_accelerate(folder, tiny_gemma_base, tmp_path):
    """The same script under `accelerate launch` on two CPU processes (gloo), as on GPUs."""
    out = tmp_path / "lumen-ddp"
    result = launch_on_two_cpu_processes(
        REPO / "training" / "train_lumen.py",
        [
            "--config", TINY,
            "--dataset_name", str(folder), "--dataset_config", "office_no_critique",
            "--base_model", str(tiny_gemma_base), "--max_steps", "2", "--eval_steps", "2",
            "--save_steps", "2", "--per_device_train_batch_size", "2", "--output_dir", str(out),
        ],
    )  # fmt: skip
    assert (out / "model.safetensors").exists() and (out / "item_vocabulary.parquet").exists()
    config = json.loads((out / "config.json").read_text())
    assert config["with_critiques"] is False  # a _no_critique config has no critique to read
    assert result.stdout.count("office_no_critique: ") == 1  # printed by one process


@pytest.mark.smoke
@pytest.mark.usefixtures("alone_among_gemma_checkpoint_writers")
def test_cpu_recipe_steps_on_the_embedded_gemma(folder, tmp_path):
    out = tmp_path / "lumen-embedded"
    metrics = train_lumen.run(
        ["--config", CPU, "--dataset_name", str(folder), "--dataset_config", "office",
         "--max_steps", "2", "--max_train_rows", "4", "--max_eval_rows", "2", "--logging_steps", "1",
         "--eval_steps", "2", "--save_steps", "2",
         "--output_dir", str(out)]
    )  # fmt: skip
    assert metrics["first_item_loss"] > 0 and "eval_NDCG@10" in metrics
    config = json.loads((out / "config.json").read_text())
    assert config["base_model"] == "embedded" and config["item_embedding_dim"] == 64
    lumen = Lumen.from_pretrained(out)
    import datasets

    rows = datasets.load_dataset(str(folder), "office", split="test").select(range(1))
    [ranking] = lumen.rank(rows, top_k=5)
    [written] = lumen.write(rows, "purchase_reason", item_ids=ranking.item_ids[:1],
                            max_new_tokens=8)  # fmt: skip
    assert written.item_id == ranking.item_ids[0] and isinstance(written.text, str)


def test_a_bfloat16_lm_trains_its_item_table_in_float32(folder, tiny_gemma_base, tmp_path):
    """The Trainer keeps no float32 master weights: trainable parameters are cast to float32,
    the frozen LM keeps the dtype asked for."""
    from safetensors import safe_open

    out = tmp_path / "bf16"
    train_lumen.run(
        ["--config", TINY, "--dataset_name", str(folder), "--dataset_config", "office",
         "--base_model", str(tiny_gemma_base), "--output_dir", str(out), "--dtype", "bfloat16",
         "--max_steps", "2", "--eval_strategy", "no", "--save_strategy", "no"]
    )  # fmt: skip
    with safe_open(out / "model.safetensors", "pt") as weights:
        dtypes = {name: weights.get_slice(name).get_dtype() for name in weights.keys()}
    assert dtypes["items.embeddings.weight"] == "F32"
    assert "BF16" in set(dtypes.values())  # the LM's frozen weights
    test = datasets.load_dataset(str(folder), "office", split="test").select(range(2))
    assert len(Lumen.from_pretrained(out).rank(list(test), top_k=10)[0].item_ids) == 10
