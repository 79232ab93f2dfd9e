"""The language-model trainers go on from a checkpoint with the weights it holds
(`--resume_from_checkpoint last`); FLARE's resume, refusals and overwrite are in
test_train_flare.py."""

import json

import pytest
from torch.optim.optimizer import register_optimizer_step_post_hook

from tests.conftest import REPO, build_sample_folder
from training import train_fusion, train_lumen, train_narrator

# (script, steps per half): each run trains that many steps, saves, and the resumed run as many
# again.
TRAINERS = {"lumen": (train_lumen, 4), "narrator": (train_narrator, 3), "fusion": (train_fusion, 4)}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_sample_folder(tmp_path_factory.mktemp("resume") / "regen", "user_disjoint")


def losses(checkpoint) -> dict[int, float]:
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    return {entry["step"]: entry["loss"] for entry in state["log_history"] if "loss" in entry}


@pytest.mark.parametrize("name", TRAINERS)
def test_resuming_goes_on_from_the_checkpoints_weights(name, folder, tiny_gemma_base, tmp_path):
    script, half = TRAINERS[name]
    out = tmp_path / name
    arguments = [
        "--config", str(REPO / "training" / "recipes" / name / "tiny.yaml"),
        "--dataset_name", str(folder), "--dataset_config", "office",
        "--base_model", str(tiny_gemma_base), "--output_dir", str(out),
        "--save_strategy", "steps", "--save_steps", str(half), "--eval_steps", str(half),
        "--lr_scheduler_type", "constant",
    ]  # fmt: skip
    script.run([*arguments, "--max_steps", str(half)])
    steps = []
    hook = register_optimizer_step_post_hook(lambda *_: steps.append(1))
    try:
        script.run([*arguments, "--max_steps", str(2 * half), "--resume_from_checkpoint", "last"])
    finally:
        hook.remove()
    assert len(steps) == half  # the second half only
    resumed = losses(out / f"checkpoint-{2 * half}")
    again = tmp_path / "uninterrupted"
    script.run([*arguments, "--max_steps", str(2 * half), "--output_dir", str(again)])
    uninterrupted = losses(again / f"checkpoint-{2 * half}")
    assert resumed.keys() == uninterrupted.keys() == set(range(1, 2 * half + 1))
    assert list(resumed.values()) == pytest.approx(list(uninterrupted.values()), rel=1e-4)


def test_resuming_another_model_names_the_difference(folder, tiny_gemma_base, tmp_path):
    out = tmp_path / "lumen"
    arguments = [
        "--config", str(REPO / "training" / "recipes" / "lumen" / "tiny.yaml"),
        "--dataset_name", str(folder), "--dataset_config", "office",
        "--base_model", str(tiny_gemma_base), "--output_dir", str(out), "--max_steps", "4",
    ]  # fmt: skip
    train_lumen.run(arguments)
    with pytest.raises(ValueError, match="--item_embedding_dim 16 there, 8 here"):
        train_lumen.run(
            [*arguments, "--resume_from_checkpoint", "last", "--item_embedding_dim", "8"]
        )


def test_resuming_the_narrator_with_another_adapter_is_refused(folder, tiny_gemma_base, tmp_path):
    """Its checkpoints hold no config.json: the run's recorded arguments say what it was."""
    arguments = [
        "--config", str(REPO / "training" / "recipes" / "narrator" / "tiny.yaml"),
        "--dataset_name", str(folder), "--dataset_config", "office",
        "--base_model", str(tiny_gemma_base), "--output_dir", str(tmp_path / "narrator"),
        "--save_strategy", "steps", "--save_steps", "3", "--max_steps", "3",
    ]  # fmt: skip
    train_narrator.run(arguments)
    resume = [*arguments, "--max_steps", "6", "--resume_from_checkpoint", "last"]
    with pytest.raises(ValueError, match="--lora_alpha 8 there, 16 here"):
        train_narrator.run([*resume, "--lora_alpha", "16"])
    with pytest.raises(ValueError, match="--dataset_config 'office' there, 'clothing' here"):
        train_narrator.run([*resume, "--dataset_config", "clothing"])
