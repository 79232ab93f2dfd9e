"""`regen train narrator` on the shipped sample with a tiny random Gemma 3: the loss falls, the
loss is on the completion only, the adapter folder loads, bad arguments fail before any model
loads, two processes under `accelerate launch`; one smoke run on the embedded Gemma."""

import functools
import json

import pytest

from regen_models.narrator import Narrator, formatting
from regen_models.narrator.loading import add_lora, load_base
from regen_models.prompts import build_prompt
from tests.conftest import REPO, build_sample_folder, launch_on_two_cpu_processes
from training import cli, train_narrator

TINY = str(REPO / "training" / "recipes" / "narrator" / "tiny.yaml")
CPU = str(REPO / "training" / "recipes" / "narrator" / "cpu.yaml")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_sample_folder(tmp_path_factory.mktemp("narrator") / "regen", "user_disjoint")


@pytest.fixture(scope="module")
def trained(folder, tiny_gemma_base):
    out = folder.parent / "narrator-office"
    metrics = train_narrator.run(
        ["--config", TINY, "--dataset_name", str(folder), "--dataset_config", "office",
         "--base_model", str(tiny_gemma_base), "--output_dir", str(out)]
    )  # fmt: skip
    return out, metrics


def test_the_loss_falls(trained):
    _, metrics = trained
    assert metrics["last_train_loss"] < metrics["first_train_loss"] - 0.5, metrics
    assert metrics["eval_loss"] < metrics["first_eval_loss"], metrics


def test_the_adapter_folder_and_its_card(trained, tiny_gemma_base):
    out, _ = trained
    for name in ("adapter_config.json", "adapter_model.safetensors", "narrator_config.json",
                 "tokenizer.json", "README.md"):  # fmt: skip
        assert (out / name).exists(), name
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(tiny_gemma_base.resolve())
    assert adapter["r"] == 4 and adapter["peft_type"] == "LORA"
    settings = json.loads((out / "narrator_config.json").read_text())
    assert settings["kinds"] == ["purchase_reason", "user_profile"]
    assert settings["max_prompt_tokens"] == 768 and settings["with_critiques"] is True
    assert (
        settings["max_new_tokens"]["purchase_reason"] > settings["max_new_tokens"]["user_profile"]
    )
    card = (out / "README.md").read_text()
    assert "# Narrator on REGEN `office`" in card and f"--config {TINY}" in card
    assert "| eval_loss |" in card and "Narrator.from_pretrained" in card
    assert "library_name: peft" in card


def test_the_trained_adapter_loads_and_writes(trained, folder):
    import datasets

    out, _ = trained
    narrator = Narrator.from_pretrained(out)
    row = datasets.load_dataset(str(folder), "office", split="test")[0]
    prompt = build_prompt(
        row["history"], row["target"], "user_profile", critique=row["critique"],
        count_tokens=narrator.count_prompt_tokens(), max_tokens=narrator.max_prompt_tokens,
    )  # fmt: skip
    [text] = narrator.generate([prompt.text], kind="user_profile")
    assert isinstance(text, str)
    lora = [p for n, p in narrator.model.named_parameters() if "lora_B" in n]
    assert lora and any(p.abs().sum() > 0 for p in lora)  # trained: B starts at zero


def test_prompt_tokens_are_not_in_the_loss(tiny_gemma_base, tmp_path):
    model, tokenizer = load_base(str(tiny_gemma_base))
    model = add_lora(model, str(tiny_gemma_base), r=2)
    pairs = [
        {"prompt": "PROMPT-ONE about pens", "completion": "Bought for the office."},
        {"prompt": "PROMPT-TWO about paper, a longer one", "completion": "Thrifty."},
    ]
    args = train_narrator.NarratorTrainingArguments(
        output_dir=str(tmp_path), max_steps=1, eval_strategy="no"
    )
    trainer = train_narrator.make_trainer(model, tokenizer, pairs, None, args)
    for example, pair in zip(trainer.train_dataset, pairs, strict=True):
        ids, labels = example["input_ids"], example["labels"]
        prompt_length = len(formatting.encode_for_generation(tokenizer, pair["prompt"]))
        assert all(label == -100 for label in labels[:prompt_length])
        scored = tokenizer.decode(
            [t for t, label in zip(ids, labels, strict=True) if label != -100]
        )
        assert scored == pair["completion"] + "<end_of_turn>\n"


def test_the_cpu_loss_is_trl_loss_on_fewer_positions(tiny_gemma_base, tmp_path):
    import torch
    from trl import SFTTrainer

    torch.manual_seed(0)
    model, tokenizer = load_base(str(tiny_gemma_base))
    model = add_lora(model, str(tiny_gemma_base), r=2)
    with torch.no_grad():  # LoRA's B starts at zero: give the adapter a say in the gradient
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.normal_(std=0.1)
    pairs = [
        {"prompt": "PROMPT-ONE about pens", "completion": "Bought for the office, twice."},
        {"prompt": "PROMPT-TWO about paper, a much longer one than the first", "completion": "A"},
    ]
    args = train_narrator.NarratorTrainingArguments(
        output_dir=str(tmp_path), max_steps=1, eval_strategy="no", report_to=[]
    )
    trainer = train_narrator.make_trainer(model, tokenizer, pairs, None, args)
    assert isinstance(trainer, train_narrator.NarratorTrainer)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    assert batch["attention_mask"].sum(1).tolist()[0] != batch["attention_mask"].shape[1]

    model.eval()  # no dropout: both losses see the same network

    def loss_and_grads(compute_loss):
        model.zero_grad()
        loss = compute_loss(model, dict(batch), num_items_in_batch=None)
        loss.backward()
        grads = [p.grad.clone() for p in model.parameters() if p.requires_grad]
        return loss.detach(), grads

    ours, our_grads = loss_and_grads(trainer.compute_loss)
    theirs, their_grads = loss_and_grads(lambda *a, **k: SFTTrainer.compute_loss(trainer, *a, **k))
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
    for mine, trl_grad in zip(our_grads, their_grads, strict=True):
        torch.testing.assert_close(mine, trl_grad, rtol=1e-4, atol=1e-6)
    assert trainer._metrics["eval"]["mean_token_accuracy"]
    # Another loss (DFT) or label smoothing is TRL's own, here as on CUDA.
    for changed in ({"loss_type": "dft"}, {"label_smoothing_factor": 0.2}):
        other_args = train_narrator.NarratorTrainingArguments(
            output_dir=str(tmp_path), max_steps=1, eval_strategy="no", report_to=[], **changed
        )
        other = train_narrator.make_trainer(model, tokenizer, pairs, None, other_args)
        loss, _ = loss_and_grads(other.compute_loss)
        trl_loss, _ = loss_and_grads(functools.partial(SFTTrainer.compute_loss, other))
        torch.testing.assert_close(loss, trl_loss)
        assert not torch.isclose(loss, ours), changed


def test_load_in_4bit_without_cuda_says_so_before_any_model_loads(folder, tmp_path, capsys,
                                                                   monkeypatch):  # fmt: skip
    if train_narrator.four_bit_problem() is None:
        pytest.skip("bitsandbytes can run 4-bit here")

    def no_loading(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr(train_narrator, "load_base", no_loading)
    with pytest.raises(SystemExit):
        cli.main(
            ["train", "narrator", "--config", TINY, "--dataset_name", str(folder),
             "--load_in_4bit", "--output_dir", str(tmp_path / "out")]
        )  # fmt: skip
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("regen: error: --load_in_4bit cannot run here")
    assert "Traceback" not in captured.err and not (tmp_path / "out").exists()


def test_unknown_kinds_fail_before_any_model_loads(folder, tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(
            ["train", "narrator", "--config", TINY, "--dataset_name", str(folder),
             "--kinds", "purchase_reason", "summary", "--output_dir", str(tmp_path / "out")]
        )  # fmt: skip
    assert "--kinds ['summary']: expected some of" in capsys.readouterr().err


def test_a_folder_without_training_narratives_names_the_fix(tiny_gemma_base, tmp_path, capsys):
    leave_one_out = build_sample_folder(tmp_path / "regen")  # narratives in test rows only
    with pytest.raises(SystemExit):
        cli.main(
            ["train", "narrator", "--config", TINY, "--dataset_name", str(leave_one_out),
             "--base_model", str(tiny_gemma_base), "--output_dir", str(tmp_path / "out")]
        )  # fmt: skip
    error = capsys.readouterr().err
    assert "has no reference narrative" in error and "--protocol user_disjoint" in error


def test_a_kind_without_training_narratives_is_refused(folder, tiny_gemma_base, tmp_path,
                                                      monkeypatch):  # fmt: skip
    import datasets

    load_dataset = datasets.load_dataset

    def without_user_profiles(*args, **kwargs):
        rows = load_dataset(*args, **kwargs)
        rows["train"] = rows["train"].map(
            lambda row: {"narratives": {**row["narratives"], "user_profile": None}}
        )
        return rows

    monkeypatch.setattr(datasets, "load_dataset", without_user_profiles)
    with pytest.raises(ValueError) as error:
        train_narrator.run(
            ["--config", TINY, "--dataset_name", str(folder), "--dataset_config", "office",
             "--base_model", str(tiny_gemma_base), "--output_dir", str(tmp_path / "out")]
        )  # fmt: skip
    assert (
        f"the train split of {folder} (office) has no reference narrative of the kinds "
        "['user_profile'] in its first 16 rows: the narrator would never learn to write them"
    ) in str(error.value)
    assert not (tmp_path / "out" / "narrator_config.json").exists()


TRAIN_PUSH_AND_LOAD = """
import sys
from regen_models.narrator import Narrator
from training import train_narrator
train_narrator.run(sys.argv[2:])
narrator = Narrator.from_pretrained(sys.argv[1])
print("loaded from the Hub:", narrator.kinds, sorted(narrator.config.max_new_tokens))
"""


def test_push_to_hub_uploads_an_adapter_that_loads(folder, tiny_gemma_base, tmp_path):
    """Against the loopback Hub: --push_to_hub uploads the folder once narrator_config.json and
    the card are in it, and `Narrator.from_pretrained(repo_id)` loads it."""
    import subprocess
    import sys

    from tests.fake_hub import FakeHub, hub_env

    repo = "test-org/narrator-office"
    with FakeHub() as hub:
        result = subprocess.run(
            [sys.executable, "-c", TRAIN_PUSH_AND_LOAD, repo, "--config", TINY,
             "--dataset_name", str(folder), "--dataset_config", "office",
             "--base_model", str(tiny_gemma_base), "--max_steps", "1", "--eval_strategy", "no",
             "--output_dir", str(tmp_path / "out"), "--push_to_hub", "true",
             "--hub_model_id", repo],
            cwd=REPO, env=hub_env(tmp_path, hf_endpoint=hub.url), capture_output=True,
            text=True, timeout=300, check=False,
        )  # fmt: skip
    assert result.returncode == 0, f"{hub.errors}\n{result.stderr[-3000:]}"
    kinds = "['purchase_reason', 'user_profile']"
    assert f"loaded from the Hub: {kinds} {kinds}" in result.stdout
    files = hub.repo_files[repo]
    assert {"adapter_config.json", "adapter_model.safetensors", "narrator_config.json",
            "tokenizer.json"} <= files.keys()  # fmt: skip
    assert "# Narrator on REGEN `office`" in files["README.md"].decode()  # our card, not TRL's
    assert [commit.summary for commit in hub.commits if commit.repo == repo] == ["End of training"]


def test_two_processes_with_accelerate(folder, tiny_gemma_base, tmp_path):
    """The same script under `accelerate launch` on two CPU processes (gloo), as on GPUs: one
    process writes the folder and pushes it."""
    from tests.fake_hub import FakeHub, hub_env

    out = tmp_path / "narrator-ddp"
    with FakeHub() as hub:
        result = launch_on_two_cpu_processes(
            REPO / "training" / "train_narrator.py",
            [
                "--config", TINY,
                "--dataset_name", str(folder), "--dataset_config", "office_no_critique",
                "--base_model", str(tiny_gemma_base), "--max_steps", "2", "--eval_strategy", "no",
                "--per_device_train_batch_size", "2", "--output_dir", str(out),
                "--push_to_hub", "true", "--hub_model_id", "test-org/narrator-ddp",
            ],
            env=hub_env(tmp_path, hf_endpoint=hub.url),
        )  # fmt: skip
    assert (out / "adapter_model.safetensors").exists()
    settings = json.loads((out / "narrator_config.json").read_text())
    assert (
        settings["with_critiques"] is False and settings["dataset_config"] == "office_no_critique"
    )
    assert result.stdout.count("train (office_no_critique):") == 1  # printed by one process
    assert [commit.repo for commit in hub.commits] == ["test-org/narrator-ddp"]
    assert "narrator_config.json" in hub.repo_files["test-org/narrator-ddp"]


def test_every_process_saves_the_model_and_the_main_one_writes_our_files(
    folder, tiny_gemma_base, tmp_path, monkeypatch
):
    """Under FSDP or DeepSpeed ZeRO-3, `save_model` gathers the weights from every process, so
    each must call it; narrator_config.json and the card are the main process's to write. Here
    the one process plays another than the main one."""
    saved, save_model = [], train_narrator.NarratorTrainer.save_model

    def recording(self, *args, **kwargs):
        saved.append(args)
        return save_model(self, *args, **kwargs)

    monkeypatch.setattr(train_narrator.NarratorTrainer, "save_model", recording)
    monkeypatch.setattr(train_narrator.NarratorTrainer, "is_world_process_zero", lambda self: False)
    out = tmp_path / "out"
    train_narrator.run(
        ["--config", TINY, "--dataset_name", str(folder), "--dataset_config", "office",
         "--base_model", str(tiny_gemma_base), "--max_steps", "1", "--eval_strategy", "no",
         "--output_dir", str(out)]
    )  # fmt: skip
    assert saved == [(str(out),)]
    assert not (out / "narrator_config.json").exists()
    assert "# Narrator on REGEN" not in (out / "README.md").read_text()  # peft's card, not ours


@pytest.mark.smoke
def test_cpu_recipe_steps_on_the_embedded_gemma(folder, tmp_path):
    out = tmp_path / "narrator-embedded"
    metrics = train_narrator.run(
        ["--config", CPU, "--dataset_name", str(folder), "--dataset_config", "office",
         "--max_steps", "2", "--max_train_rows", "4", "--eval_strategy", "no", "--logging_steps", "1",
         "--kinds", "user_profile", "--output_dir", str(out)]
    )  # fmt: skip
    assert metrics["first_train_loss"] > 0
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == (
        "embedded"
    )
    narrator = Narrator.from_pretrained(out)
    assert narrator.base_model == "embedded"
    [text] = narrator.generate(
        ["A shopper's purchases ... Task: write a profile of this shopper in a few words."],
        kind="user_profile",
    )
    assert text.strip()
