"""Small helpers the training scripts share: the first rows of a split, training (or going on
from a checkpoint), a base model's Hub id for a card, and the loss figures a card reports."""

from __future__ import annotations

import json
import os
from pathlib import Path

from regen_models.vocabulary_io import VOCABULARY_FILE, VocabularyMismatchError


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


# Written by whichever transformers (and machine) saved the checkpoint; not the model.
_CONFIG_BOOKKEEPING = {
    "transformers_version",
    "architectures",
    "dtype",
    "torch_dtype",
    "auto_map",
    # where the base model lay, which differs between machines (its shape is compared)
    "_name_or_path",
    "base_model",
}


# The arguments of a run, written into each of its checkpoints: a resume must use the same.
ARGUMENTS_FILE = "regen_arguments.json"
# What may differ on resume: how long and where it runs, the data's location, how often it
# validates (everything else of the script and model arguments must match).
_MAY_CHANGE = {"dataset_name", "base_model", "max_eval_rows", "early_stopping_patience"}
# The training arguments that decide the optimisation (the rest say how long, where, how shown).
_OPTIMISATION = (
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "warmup_ratio",
    "weight_decay",
    "max_grad_norm",
    "optim",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "seed",
)


def gathered_ranks(accelerator, logits, targets):
    """The targets' ranks of every process, for validation metrics. Float32 on the
    accelerator's device: NCCL gathers no CPU tensor, MPS holds no float64; float32 keeps ranks
    exact up to 2**24 items, and inf for a target outside the catalog."""
    import torch

    from regen_models.metrics import target_ranks

    ranks = target_ranks(logits, targets).to(torch.float32).to(accelerator.device)
    return accelerator.gather_for_metrics(ranks)


def base_dtype(dtype: str, tuned_whole: bool):
    """The dtype a base LM loads in: `--dtype` for a frozen or LoRA-tuned LM, float32 for one
    tuned whole (it trains: see `trainable_in_float32`)."""
    import torch

    return torch.float32 if tuned_whole else getattr(torch, dtype)


def trainable_in_float32(model) -> None:
    """Cast the trainable parameters of `model` to float32 in place (the frozen ones keep their
    dtype). The Trainer keeps no float32 master copy: a bfloat16 weight near 0.05 takes no update
    below about 2e-4, so a learning rate of 1e-5 would mostly round away. `--bf16 true` then
    computes in bfloat16 under autocast."""
    for parameter in model.parameters():
        if parameter.requires_grad and parameter.is_floating_point():
            parameter.data = parameter.data.float()


def save_on_every_process(trainer, out: str) -> None:
    """The final model, saved by the Trainer. Every process takes part (FSDP and DeepSpeed ZeRO-3
    gather the weights here; the Trainer writes on process zero). `_internal_call` keeps the
    Trainer from pushing: the Hub gets the folder once our files are in it (`push_output_dir`)."""
    trainer.save_model(out, _internal_call=True)


def push_output_dir(trainer) -> None:
    """With `--push_to_hub`: the whole output folder (the model, our config files and card) to
    the run's Hub repository in one commit, as `save_pretrained(push_to_hub=True)` uploads a
    checkpoint. The Trainer's own push would upload before our files are written and replace our
    card with TRL's."""
    from regen_models.vocabulary_io import upload_folder

    args = trainer.args
    if not args.push_to_hub:
        return
    upload_folder(
        args.output_dir,
        repo_id=trainer.hub_model_id,  # created by the Trainer as it started
        private=args.hub_private_repo,
        token=args.hub_token,
        commit_message="End of training",
        revision=args.hub_revision,
        # as the Trainer's push leaves them out, and partial files
        ignore_patterns=["_*", "checkpoint-*", ".*"],
    )
    print(f"pushed {args.output_dir} to the Hub: {trainer.hub_model_id}")


def train(trainer, resume_from: str | None, arguments: dict) -> None:
    """`trainer.train()`, or going on from the checkpoint `resume_from` once it is known to
    hold the model these arguments build. `arguments` (`{"script": ..., "model": ...}`, with the
    training arguments that decide the optimisation added here) are written into each
    checkpoint, so that a resume with other ones is refused."""
    from transformers import TrainerCallback

    from training.arguments import clear_stale_checkpoints

    record = {
        **arguments,
        "training": {key: getattr(trainer.args, key, None) for key in _OPTIMISATION},
    }

    class RecordArguments(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if state.is_world_process_zero and folder.is_dir():
                (folder / ARGUMENTS_FILE).write_text(json.dumps(record, indent=1, default=str))

    if resume_from is not None:
        check_resumable(resume_from, trainer.model, record)
        print(f"resuming from {resume_from}")
    clear_stale_checkpoints(trainer.args)
    if trainer.args.world_size > 1 and trainer.is_world_process_zero():
        import torch.distributed

        backend = torch.distributed.get_backend() if torch.distributed.is_initialized() else "?"
        print(f"training on {trainer.args.world_size} processes ({backend})")
    trainer.add_callback(RecordArguments())
    trainer.train(resume_from_checkpoint=resume_from)


def check_resumable(checkpoint: str | os.PathLike, model, arguments: dict) -> None:
    """Name what differs between `checkpoint` and `model` or the run's `arguments` (loading its
    weights would fail deep in torch, or silently train another model)."""
    where = f"--resume_from_checkpoint {os.fspath(checkpoint)}"
    recorded = Path(checkpoint) / ARGUMENTS_FILE
    if recorded.is_file():
        saved = json.loads(recorded.read_text())
        now = json.loads(json.dumps(arguments, default=str))  # as it would be written
        differ = []
        for section, values in now.items():
            before = saved.get(section, {})
            for key, value in values.items():
                if key in before and key not in _MAY_CHANGE and before[key] != value:
                    differ.append((key, before[key], value))
        if differ:
            shown = "; ".join(
                f"--{key} {there!r} there, {here!r} here" for key, there, here in differ[:4]
            )
            raise ValueError(
                f"{where}: that run was trained with other arguments ({shown}); resume with "
                "the arguments (and recipe) it was trained with"
            )
    saved_config = Path(checkpoint) / "config.json"
    if saved_config.is_file() and hasattr(model.config, "to_json_string"):
        saved = _flat(json.loads(saved_config.read_text()))
        built = _flat(json.loads(model.config.to_json_string(use_diff=False)))  # as saved
        differ = sorted(key for key in saved.keys() & built.keys() if saved[key] != built[key])
        if differ:
            shown = "; ".join(
                f"{key}: {saved[key]!r} there, {built[key]!r} here" for key in differ[:4]
            )
            raise ValueError(
                f"{where}: that checkpoint is of another model than these arguments build "
                f"({shown}); resume with the arguments (and recipe) it was trained with"
            )
    vocabulary = getattr(model, "item_vocabulary", None)
    if vocabulary is not None and (Path(checkpoint) / VOCABULARY_FILE).is_file():
        saved = type(vocabulary).load(checkpoint)
        if (saved.category, saved.ids_fingerprint) != (
            vocabulary.category,
            vocabulary.ids_fingerprint,
        ):
            raise VocabularyMismatchError(
                f"{where}: that checkpoint was trained on another item vocabulary "
                f"({saved.category}, {len(saved):,} items) than the dataset's "
                f"({vocabulary.category}, {len(vocabulary):,} items); resume on the data it was "
                "trained on"
            )


def _flat(config: dict, prefix: str = "") -> dict:
    """A configuration's values by dotted name (`text_config.hidden_size`), bookkeeping out."""
    flat = {}
    for key, value in config.items():
        if key in _CONFIG_BOOKKEEPING:
            continue
        if isinstance(value, dict):
            flat |= _flat(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat
