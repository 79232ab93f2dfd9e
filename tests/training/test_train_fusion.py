"""`regen train fusion` on the shipped sample (user-disjoint) with a tiny random Gemma 3: the loss
falls, the checkpoint loads by name with its tables and vocabulary, `regen predict` writes
narrative-only predictions that `regen eval` scores, a leave-one-out folder and bad arguments are
refused, two processes under `accelerate launch`, and `regen eval fusion-ablation` prints its
table and draws its plot."""

import json

import pytest
import torch
from transformers import AutoModel

from regen_models.fusion import FusionForCausalLM
from tests.conftest import REPO, WordCountEncoder, build_sample_folder, launch_on_two_cpu_processes
from training import cli, train_fusion
from training.evaluate import run_table

TINY = str(REPO / "training" / "recipes" / "fusion" / "tiny.yaml")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_sample_folder(tmp_path_factory.mktemp("fusion") / "regen", "user_disjoint")


@pytest.fixture(scope="module")
def trained(folder, tiny_gemma_base):
    out = folder.parent / "fusion-office"
    # Four rows: one batch seen eight times, so the loss must fall if anything trains.
    metrics = train_fusion.run(
        ["--config", TINY, "--dataset_name", str(folder), "--dataset_config", "office",
         "--base_model", str(tiny_gemma_base), "--max_train_rows", "4",
         "--output_dir", str(out)]
    )  # fmt: skip
    return out, metrics


def test_the_loss_falls(trained):
    _, metrics = trained
    assert metrics["last_train_loss"] < metrics["first_train_loss"] - 0.3, metrics
    assert metrics["eval_loss"] < metrics["first_eval_loss"], metrics


def test_checkpoint_folder_and_card(trained):
    out, _ = trained
    for name in ("config.json", "model.safetensors", "item_vocabulary.parquet",
                 "tokenizer.json", "README.md"):  # fmt: skip
        assert (out / name).exists(), name
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "fusion" and config["num_items"] == 93
    assert config["signals"] == "both" and config["adapter"] == "linear"
    assert config["cf_dim"] == 16 and config["content_dim"] == 384
    assert config["kinds"] == ["purchase_reason", "user_summary_brief"]
    card = (out / "README.md").read_text()
    assert "# Fusion on REGEN `office`" in card and "FusionNarrator.from_pretrained" in card
    model = AutoModel.from_pretrained(out)
    assert type(model) is FusionForCausalLM and len(model.item_vocabulary) == 93
    assert model.inputs.cf_factors.abs().sum() > 0 and model.inputs.content_vectors.abs().sum() > 0
    assert not [name for name in model.state_dict() if "lora" in name]  # merged


def test_predict_writes_narratives_that_eval_scores(folder, trained, tmp_path, capsys):
    out, _ = trained
    predictions = tmp_path / "fusion.jsonl"
    cli.main(
        ["predict", "--model", str(out), "--dataset_name", str(folder), "--dataset_config",
         "office", "--split", "test", "--limit", "2", "--out", str(predictions),
         "--device", "cpu"]
    )  # fmt: skip
    lines = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(lines) == 2 and all("ranked_items" not in line for line in lines)
    printed = capsys.readouterr()
    assert "fusion writes purchase_reason: 100%" in printed.err
    assert "fusion narrator inputs: 4 examples" in printed.out  # 2 users, 2 kinds
    assert set(lines[0]["narratives"]) == {"purchase_reason", "user_summary_brief"}
    assert {line["narrated_item"] for line in lines} == {"target"}  # it writes about the target
    table = run_table(
        folder, "test", [("fusion", "office", str(predictions))], str(tmp_path / "eval"),
        encoder=WordCountEncoder(), first=2,
    )  # fmt: skip
    assert "Purchase reason: fusion" in table and "| SemSim |" in table
    assert "- fusion (office): narratives about each user's held-out item" in table
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["runs"][0]["ranking"] is None and results["runs"][0]["text"]["purchase_reason"]

    short = tmp_path / "short.jsonl"
    cli.main(
        ["predict", "--model", str(out), "--dataset_name", str(folder), "--dataset_config",
         "office", "--split", "test", "--limit", "2", "--max_new_tokens", "2", "--out", str(short)]
    )  # fmt: skip
    import datasets

    from regen_models.fusion.narrator import FusionNarrator

    rows = datasets.load_dataset(str(folder), "office", split="test").select(range(2))
    narrator = FusionNarrator.from_pretrained(out)
    capped = narrator.write(rows, "purchase_reason", max_new_tokens=2)
    narrator.save_pretrained(tmp_path / "again")
    again = FusionNarrator.from_pretrained(tmp_path / "again")
    assert again.write(rows, "purchase_reason", max_new_tokens=2) == capped
    # A cap does not stand in for the kind check.
    with pytest.raises(ValueError, match="not for 'product_endorsement'"):
        narrator.write(rows, "product_endorsement", max_new_tokens=2)
    with pytest.raises(ValueError, match="a dict of columns"):
        narrator.write(rows[:2], "purchase_reason")
    assert [json.loads(line)["narratives"]["purchase_reason"] for line in short.open()] == capped
    full = [json.loads(line)["narratives"]["purchase_reason"] for line in predictions.open()]
    assert full != capped  # the cap is seen
    capsys.readouterr()
    with pytest.raises(SystemExit):  # refused before any kind is written
        cli.main(
            ["predict", "--model", str(out), "--dataset_name", str(folder), "--dataset_config",
             "office", "--split", "test", "--limit", "2", "--out", str(tmp_path / "no.jsonl"),
             "--kinds", "purchase_reason", "product_endorsement"]
        )  # fmt: skip
    printed = capsys.readouterr()
    assert "not for 'product_endorsement'" in printed.err and "fusion writes" not in printed.err


def test_leave_one_out_folders_and_bad_signals_are_refused(
    tmp_path, tiny_gemma_base, folder, capsys
):
    loo = build_sample_folder(tmp_path / "loo")
    with pytest.raises(SystemExit):
        cli.main(["train", "fusion", "--config", TINY, "--dataset_name", str(loo),
                  "--output_dir", str(tmp_path / "a")])  # fmt: skip
    assert "built with the leave_one_out protocol" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["train", "fusion", "--config", TINY, "--dataset_name", str(folder),
                  "--signals", "ids", "--output_dir", str(tmp_path / "b")])  # fmt: skip
    assert "unknown signals 'ids'" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_two_processes_with_accelerate(folder, tiny_gemma_base, tmp_path):
    """The same script under `accelerate launch` on two CPU processes (gloo), as on GPUs."""
    out = tmp_path / "fusion-ddp"
    result = launch_on_two_cpu_processes(
        REPO / "training" / "train_fusion.py",
        [
            "--config", TINY,
            "--dataset_name", str(folder), "--dataset_config", "office",
            "--base_model", str(tiny_gemma_base), "--max_steps", "2", "--eval_steps", "2",
            "--per_device_train_batch_size", "2", "--output_dir", str(out),
        ],
    )  # fmt: skip
    assert (out / "model.safetensors").exists() and (out / "item_vocabulary.parquet").exists()
    assert result.stdout.count("office: train split: ") == 1  # printed by one process


def test_ablation_prints_its_table_and_draws_its_plot(folder, tiny_gemma_base, tmp_path, capsys,
                                                      monkeypatch):  # fmt: skip
    from training import fusion_ablation

    monkeypatch.setattr(fusion_ablation, "DEFAULT_ENCODER", WordCountEncoder())
    out = tmp_path / "ablation"
    cli.main(
        ["eval", "fusion-ablation", "--dataset", str(folder), "--config", "office",
         "--recipe", TINY, "--base_model", str(tiny_gemma_base), "--max_steps", "1",
         "--first", "2", "--max_new_tokens", "8", "--out", str(out)]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert "| Output feature (office) | Metric | CF | Content | CF + Content |" in printed
    for metric in ("BLEU", "ROUGE-LSum", "Similarity"):
        assert f"| {metric} |" in printed
    assert "Purchase reason (n=2)" in printed and "User summary (n=2)" in printed
    assert "the CF part carries" in printed and "SYNTHETIC" in printed
    assert (out / "figure6.png").stat().st_size > 5000
    results = json.loads((out / "results.json").read_text())
    office = results["configs"]["office"]
    assert set(office["variants"]) == {"cf", "content", "both"}
    assert office["projection"]["items"] == 93
    assert 0 < office["projection"]["cf_share_mean"] < 1
    for variant in office["variants"].values():
        assert variant["users"] == 2 and set(variant["text"]) == {
            "purchase_reason",
            "user_summary_brief",
        }


def test_a_frozen_lm_keeps_its_weights_while_the_adapter_learns(
    folder, tiny_gemma_base, tmp_path, monkeypatch
):
    from transformers import AutoModelForCausalLM

    started = {}
    from_base = FusionForCausalLM.from_base.__func__

    def recording_from_base(cls, *args, **kwargs):
        model = from_base(cls, *args, **kwargs)
        started.update({k: v.detach().clone() for k, v in model.adapter.state_dict().items()})
        return model

    monkeypatch.setattr(FusionForCausalLM, "from_base", classmethod(recording_from_base))
    out = tmp_path / "frozen"
    train_fusion.run(
        ["--config", TINY, "--dataset_name", str(folder), "--base_model", str(tiny_gemma_base),
         "--lm_tuning", "frozen", "--signals", "cf", "--adapter", "mlp", "--max_steps", "2",
         "--eval_strategy", "no", "--output_dir", str(out)]
    )  # fmt: skip
    model = FusionForCausalLM.from_pretrained(out)
    base = AutoModelForCausalLM.from_pretrained(tiny_gemma_base).state_dict()
    lm = model.language_model.state_dict()
    assert all(torch.equal(lm[name], base[name]) for name in base)
    trained = model.adapter.state_dict()
    assert started.keys() == trained.keys()
    assert all(not torch.equal(trained[name], started[name]) for name in started)
    assert model.config.signals == "cf" and not hasattr(model.inputs, "content_vectors")
    assert len(model.adapter.layers) == 3


def test_the_ablation_analysis_reads_a_bfloat16_checkpoint(tmp_path):
    """Fails if the analysis hands a bfloat16 tensor to numpy (a TypeError after all three
    variants were trained, so that no table was written)."""
    from tests.regen_models.test_fusion import tiny_fusion
    from tests.tiny_gemma import tiny_tokenizer
    from training.fusion_ablation import signal_shares

    model = tiny_fusion(tiny_tokenizer(), signals="both", adapter="linear")
    expected = signal_shares_of(model)
    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    shares = signal_shares(tmp_path / "bf16")
    assert shares["items"] == 30 and 0 < shares["cf_share_mean"] < 1
    assert shares["cf_share_mean"] == pytest.approx(expected, abs=0.02)


def signal_shares_of(model) -> float:
    cf, content = model.signal_norms(torch.arange(model.config.num_items))
    return float((cf / (cf + content)).mean())


def test_wals_reads_item_ids_with_pyarrow_and_the_user_norm_from_what_the_model_reads(
    folder, monkeypatch
):
    """Fails if the train split is turned into Python rows (about 1.8 KB per interaction with
    its texts), or if the user norm is measured on whole sequences while the model folds users
    in from the newest `max_interactions` only."""
    import datasets
    import numpy as np

    from regen_models.fusion import wals
    from regen_models.items import ItemVocabulary

    split = datasets.load_dataset(str(folder), "office", split="train")
    vocabulary = ItemVocabulary.from_dataset(str(folder), "office")
    rows = split.to_list()
    arguments = train_fusion.FusionModelArguments(
        wals_dim=4, wals_iterations=2, user_token=True, max_interactions=3
    )
    settings = wals.WalsSettings(dim=4, iterations=2)
    expected_factors, _ = wals.item_factors(rows, vocabulary, settings)
    newest = [
        vocabulary.indices(wals.sequence_item_ids(row)[-3:]).tolist()
        for row in rows[: train_fusion.USER_NORM_SAMPLE]
    ]
    assert any(len(row["history"]) > 2 for row in rows)  # some sequences are cut
    expected_norm = wals.mean_user_norm(
        expected_factors, newest, settings.regularization, settings.alpha
    )

    def refuse(*args, **kwargs):
        raise AssertionError("the train split was read row by row")

    for name in ("to_list", "to_dict", "__iter__", "iter"):
        monkeypatch.setattr(datasets.Dataset, name, refuse)
    factors, user_norm = train_fusion.wals_tables(split, vocabulary, arguments, verbose=False)
    assert np.array_equal(factors, expected_factors)
    assert user_norm == pytest.approx(expected_norm, rel=1e-6)


def test_the_arrow_reading_matches_the_rows_and_names_an_unknown_items_user():
    import datasets

    from regen_models.fusion import wals
    from regen_models.items import UnknownItemError
    from tests.regen_models.test_flare import tiny_vocabulary
    from tests.regen_models.test_fusion import NUM_ITEMS, seq_row, training_rows

    vocabulary = tiny_vocabulary(NUM_ITEMS)
    rows = training_rows(12) + [seq_row("twice", [4, 4, 7])]
    split = datasets.Dataset.from_list(rows)
    from_arrow = wals.split_items(split, vocabulary).matrix(NUM_ITEMS)
    from_rows = wals.interaction_matrix(rows, vocabulary)
    assert (from_arrow != from_rows).nnz == 0 and from_arrow[12, 4] == 2
    items = wals.split_items(split, vocabulary)
    assert items.sequence(12) == [4, 4, 7] and items.sequence(12, max_interactions=2) == [4, 7]
    bad = datasets.Dataset.from_list(training_rows(3) + [seq_row("X", [1, 99, 2])])
    with pytest.raises(UnknownItemError, match="item 'I099' \\(train split user X\\)"):
        wals.split_items(bad, vocabulary, "train split")
    bad_target = datasets.Dataset.from_list(training_rows(3) + [seq_row("Y", [1, 98])])
    with pytest.raises(UnknownItemError, match="item 'I098' \\(user Y\\)"):
        wals.split_items(bad_target, vocabulary)


def without_narratives(folder, out, split: str, kind: str, rows: int | None = None):
    """A copy of `folder` whose `split` rows (the first `rows`, or all) lack the `kind`."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.copytree(folder, out)
    path = out / "data" / "office" / f"{split}-00000-of-00001.parquet"
    table = pq.read_table(path)
    records = table.to_pylist()
    for record in records[:rows]:
        record["narratives"][kind] = None
    pq.write_table(pa.Table.from_pylist(records, schema=table.schema), path)
    return out


def test_each_split_reports_its_examples_per_kind_and_an_untaught_kind_is_refused(
    folder, tiny_gemma_base, tmp_path, capsys
):
    """Fails if the skip count mixes the splits or hides the kind, or if a requested kind
    without a training reference trains into a checkpoint that lists it."""
    partial = without_narratives(folder, tmp_path / "partial", "train", "user_profile", rows=3)
    partial = without_narratives(partial, tmp_path / "partial2", "validation", "user_profile")
    arguments = ["--config", TINY, "--base_model", str(tiny_gemma_base), "--dataset_config",
                 "office", "--kinds", "purchase_reason", "user_profile", "--max_steps", "1",
                 "--eval_steps", "1", "--max_eval_rows", "4"]  # fmt: skip
    train_fusion.run([*arguments, "--dataset_name", str(partial), "--output_dir",
                      str(tmp_path / "a")])  # fmt: skip
    printed = capsys.readouterr().out
    assert (
        "office: train split: 13 examples (purchase_reason 8, user_profile 5); 3 rows skipped "
        "without a reference narrative (user_profile 3)"
    ) in printed
    assert (
        "office: validation split: 4 examples (purchase_reason 4, user_profile 0); 4 rows "
        "skipped without a reference narrative (user_profile 4)"
    ) in printed
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert (
        set(config["max_new_tokens"]) == set(config["kinds"]) == {"purchase_reason", "user_profile"}
    )

    untaught = without_narratives(folder, tmp_path / "untaught", "train", "user_profile")
    with pytest.raises(ValueError, match=(
        r"the train split of .*untaught \(office\) has no reference narrative of the kinds "
        r"\['user_profile'\] in its first 8 rows: the fusion narrator would never learn"
    )):  # fmt: skip
        train_fusion.run([*arguments, "--dataset_name", str(untaught), "--output_dir",
                          str(tmp_path / "b")])  # fmt: skip
    assert not (tmp_path / "b" / "config.json").exists()


def test_splits_that_share_users_are_refused_without_a_build_report(tmp_path, tiny_gemma_base):
    """A leave-one-out folder from the Hub has no build report: its splits are checked."""
    loo = build_sample_folder(tmp_path / "loo")
    (loo / "build_report.json").unlink()
    with pytest.raises(ValueError, match=(
        r"users of the validation split of .*loo \(office\) are in its train split too"
    )):  # fmt: skip
        train_fusion.run(["--config", TINY, "--dataset_name", str(loo), "--base_model",
                          str(tiny_gemma_base), "--output_dir", str(tmp_path / "a")])  # fmt: skip


def test_with_a_bfloat16_base_what_trains_stays_float32(
    folder, tiny_gemma_base, tmp_path, monkeypatch
):
    """Fails if the whole model is cast to --dtype: the adapter, LoRA's weights and the CF table
    in bfloat16, where AdamW's small updates round away (0.05 + 1e-4 == 0.05)."""
    from safetensors import safe_open

    dtypes = {}
    compute_loss = train_fusion.FusionTrainer.compute_loss

    def recording(self, model, inputs, *args, **kwargs):
        dtypes.update({name: (p.dtype, p.requires_grad) for name, p in model.named_parameters()})
        dtypes.update({name: (b.dtype, None) for name, b in model.named_buffers()})
        return compute_loss(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(train_fusion.FusionTrainer, "compute_loss", recording)
    out = tmp_path / "bf16"
    train_fusion.run(
        ["--config", TINY, "--dataset_name", str(folder), "--base_model", str(tiny_gemma_base),
         "--dtype", "bfloat16", "--max_steps", "2", "--eval_strategy", "no",
         "--output_dir", str(out)]
    )  # fmt: skip
    trained = {name: dtype for name, (dtype, grad) in dtypes.items() if grad}
    assert any("lora_A" in name for name in trained) and "adapter.layers.0.weight" in trained
    assert set(trained.values()) == {torch.float32}
    assert dtypes["inputs.cf_factors"][0] == torch.float32
    assert dtypes["inputs.content_vectors"][0] == torch.float16  # frozen, half by design
    frozen = {dtype for dtype, grad in dtypes.values() if grad is False}  # the LM's weights
    assert frozen == {torch.bfloat16}
    with safe_open(out / "model.safetensors", "pt") as weights:
        assert str(weights.get_slice("adapter.layers.0.weight").get_dtype()) == "F32"


def test_the_narrator_embeds_the_history_reviews_and_never_the_targets(folder, trained):
    import datasets

    from regen_models.fusion.data import review_text
    from regen_models.fusion.narrator import FusionNarrator

    out, _ = trained
    rows = datasets.load_dataset(str(folder), "office", split="test").select(range(3))
    narrator = FusionNarrator.from_pretrained(out)
    config = narrator.model.config
    assert config.use_reviews and config.encoder_name is None and config.content_dim == 384
    narrator.write(rows, "purchase_reason", max_new_tokens=1)
    kept = config.max_interactions - 1
    history = {review_text(p) for row in rows for p in row["history"][-kept:]} - {""}
    targets = {review_text(row["target"]) for row in rows} - {""}
    assert history and targets and not history & targets
    assert narrator.reviews.table.shape == (len(history), 384)  # all of them, each once
    assert all(text in narrator.reviews for text in history)
    assert not any(text in narrator.reviews for text in targets)  # labels: never read
    narrator.write(rows, "user_summary_brief", max_new_tokens=1)
    assert narrator.reviews.table.shape == (len(history), 384)  # nothing encoded twice
