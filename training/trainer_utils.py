"""Small helpers the training scripts share: the first rows of a split, a base model's Hub id
for a card, and the loss figures a card reports."""

from __future__ import annotations

import os


def first_rows(split, count: int | None):
    """The first `count` rows of a `datasets` split (all of them for None)."""
    return split if count is None else split.select(range(min(count, len(split))))


def hub_id(name: str) -> str | None:
    """The base model's Hub id for a card's metadata (None for the embedded model or a path)."""
    return None if name == "embedded" or os.path.exists(name) else name


def loss_summary(
    log_history: list[dict], keys: tuple[str, ...] = ("loss",), with_eval: bool = True
) -> dict[str, float]:
    """The first and last logged value of each training loss in `keys` ("loss" reported as
    train_loss) and, with `with_eval`, the first validation loss."""
    summary = {}
    for key in keys:
        values = [entry[key] for entry in log_history if key in entry]
        if values:
            name = "train_loss" if key == "loss" else key
            summary |= {f"first_{name}": values[0], f"last_{name}": values[-1]}
    evals = [entry["eval_loss"] for entry in log_history if "eval_loss" in entry]
    if with_eval and evals:
        summary |= {"first_eval_loss": evals[0]}
    return summary


def final_eval_loss(trainer) -> float:
    """The validation loss of the trained model: logged at the last step, or computed now."""
    last = [entry for entry in trainer.state.log_history if "eval_loss" in entry]
    if last and last[-1].get("step") == trainer.state.global_step:
        return last[-1]["eval_loss"]
    return trainer.evaluate()["eval_loss"]
