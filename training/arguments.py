"""The argument dataclasses the training scripts share. Each script subclasses them with its
own fields and defaults, and parses the three it needs with `TrlParser`, as TRL's scripts do."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
import yaml
from transformers import EarlyStoppingCallback
from transformers.trainer_utils import IntervalStrategy, get_last_checkpoint
from trl import ScriptArguments, SFTConfig, TrlParser

from regen_dataset.schema import NARRATIVE_KINDS, check_user_config
from regen_models.vocabulary_io import check_local_folder
from training.nearest import with_nearest

RECIPES = Path(__file__).with_name("recipes")

_REGEN = "REGEN: A Dataset and Benchmarks with Natural Language Critiques and Narratives"
_BEYOND = "Beyond Retrieval: Generating Narratives in Conversational Recommender Systems"
# What `regen train MODEL --help` opens with: the model, and the paper its "the paper" means.
DESCRIPTIONS = {
    "flare": "Train FLARE, the sequential recommender of the hybrid system in "
    f'"{_REGEN}" (https://arxiv.org/abs/2503.11924), after "FLARE: Fusing Language Models '
    'and Collaborative Architectures for Recommender Enhancement" '
    "(https://arxiv.org/abs/2409.11699).",
    "narrator": "Train the narrator of the hybrid system in "
    f'"{_REGEN}" (https://arxiv.org/abs/2503.11924): a LoRA adapter that writes narratives '
    "about an item from the user's history.",
    "lumen": f'Train LUMEN, the single LLM that names an item and writes about it, of "{_REGEN}" '
    "(https://arxiv.org/abs/2503.11924).",
    "fusion": "Train the fusion narrator, collaborative-filtering and content vectors as soft "
    f'tokens in front of the prompt of an LLM, of "{_BEYOND}".',
}


class RecipeParser(TrlParser):
    """TrlParser that also takes a shipped recipe by name (`--config tiny` for
    `training/recipes/MODEL/tiny.yaml`), and whose error for a recipe key that no argument has
    names the recipe file and the nearest argument (TrlParser lists the key only)."""

    def __init__(self, dataclass_types, model: str, **kwargs):
        self.model = model
        kwargs.setdefault(
            "epilog",
            f"--config RECIPE reads the arguments from a YAML recipe: a file, or a recipe of "
            f"{RECIPES / model} by name ({', '.join(shipped_recipes(model))}); arguments on the "
            "command line override the recipe's.",
        )
        kwargs.setdefault("description", DESCRIPTIONS.get(model))
        super().__init__(dataclass_types, **kwargs)
        for action in self._actions:  # transformers gives `--no_X` the help of `--X`
            negative = next((o for o in action.option_strings if o.startswith("--no_")), None)
            if negative is not None:
                name = negative.removeprefix("--no_")
                action.help = f"turn --{name} off"
                action.default = argparse.SUPPRESS  # --{name}'s default stands, as it is shown

    def parse_args_and_config(self, args=None, *more, **options):
        args = [
            part
            for arg in (list(args) if args is not None else sys.argv[1:])
            for part in (arg.split("=", 1) if arg.startswith("--config=") else [arg])
        ]
        if args and args[-1] == "--config":
            raise ValueError(
                f"--config needs a recipe: a YAML file, or a shipped recipe's name "
                f"({', '.join(shipped_recipes(self.model))})"
            )
        recipe = None
        if "--config" in args:
            at = args.index("--config") + 1
            recipe = args[at] = recipe_file(self.model, args[at], "--config")
        if not {"-h", "--help"} & set(args) and not _names_output_dir(args, recipe):
            # transformers would fill in `trainer_output` and train into it
            raise ValueError("--output_dir is required: the folder the run writes to")
        try:
            return super().parse_args_and_config(args, *more, **options)
        except yaml.YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            where = f", line {mark.line + 1}" if mark is not None else ""
            problem = getattr(error, "problem", None) or "not YAML"
            raise ValueError(f"{recipe}{where}: not a YAML recipe ({problem})") from None
        except ValueError as error:
            if not str(error).startswith("Unknown arguments from config file"):
                raise
            raise ValueError(f"{recipe}: {self._unknown_keys(str(error))}") from None

    def _unknown_keys(self, message: str) -> str:
        keys = re.findall(r"'--([^']+)'", message)
        named = with_nearest(keys, [action.dest for action in self._actions])
        return f"no argument is called {named}; `--help` lists them"


def _names_output_dir(args: list[str], recipe: str | None) -> bool:
    """Whether the command line or its recipe sets --output_dir."""
    if any(arg == "--output_dir" or arg.startswith("--output_dir=") for arg in args):
        return True
    if recipe is None:
        return False
    try:
        settings = yaml.safe_load(Path(recipe).read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return True  # the parser names the broken recipe
    return isinstance(settings, dict) and bool(settings.get("output_dir"))


def shipped_recipes(model: str) -> dict[str, Path]:
    """The recipes of `training/recipes/MODEL/`, by name."""
    return {path.stem: path for path in sorted((RECIPES / model).glob("*.yaml"))}


def recipe_file(model: str, recipe: str, option: str = "--recipe") -> str:
    """A recipe file's path: `recipe` itself where it exists, else the shipped recipe it names
    (`tiny` or `tiny.yaml`)."""
    if os.path.exists(recipe):
        return recipe
    shipped = shipped_recipes(model)
    name = recipe.removesuffix(".yaml")
    if name in shipped:
        return str(shipped[name])
    raise FileNotFoundError(
        f"{option} {recipe}: no such recipe file (the shipped recipes, by name or path: "
        f"{', '.join(shipped)})"
    )


def recipe_parser(model: str, dataclass_types) -> TrlParser:
    """The parser of `training/train_MODEL.py`, whose help names the command it was run as."""
    run_as_cli = os.path.basename(sys.argv[0]) == "regen"
    return RecipeParser(dataclass_types, model, prog=f"regen train {model}" if run_as_cli else None)


@dataclass
class RegenScriptArguments(ScriptArguments):
    """Which REGEN data: the folder or Hub id (`--dataset_name`), the config and the splits."""

    dataset_config: str | None = field(
        default="office", metadata={"help": "REGEN config: office, office_no_critique, ..."}
    )
    dataset_train_split: str = "train"
    dataset_test_split: str = field(default="validation", metadata={"help": "validation split"})
    max_train_rows: int | None = field(
        default=None, metadata={"help": "train on the first N training rows only"}
    )
    max_eval_rows: int | None = field(
        default=None, metadata={"help": "validate on the first N validation rows only"}
    )


@dataclass
class NarrativeScriptArguments(RegenScriptArguments):
    """The data of a model that writes narratives: which kinds."""

    kinds: list[str] = field(
        default_factory=lambda: list(NARRATIVE_KINDS),
        metadata={
            "help": f"narrative kinds to train on (default all: {' '.join(NARRATIVE_KINDS)})"
        },
    )


@dataclass
class LanguageModelArguments:
    """The causal LM a model is built on, and the LoRA adapter it is tuned with."""

    base_model: str = field(
        default="embedded",
        metadata={"help": "'embedded' (Gemma 3 270M, offline), a Hub id or a local path"},
    )
    dtype: str = field(
        default="float32",
        metadata={
            "help": "dtype the base LM loads in: float32, bfloat16 or float16 (what trains is "
            "kept in float32; --bf16 true computes under autocast)"
        },
    )
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: list[str] = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "module names to adapt; 'all-linear' adapts every linear layer"},
    )


def resume_from_checkpoint_field():
    """transformers' `--resume_from_checkpoint`, which the training scripts act on."""
    return field(
        default=None,
        metadata={
            "help": "go on from a checkpoint-N folder of a run, or `last` for the newest in "
            "--output_dir: its weights, optimizer and data position"
        },
    )


def overwrite_output_dir_field():
    """The `--overwrite_output_dir` of every training script (transformers 5 dropped its own)."""
    return field(
        default=False,
        metadata={
            "help": "train into an --output_dir that is not empty: its checkpoint-N folders are "
            "removed, its model files replaced at the end (without it, such a folder is refused)"
        },
    )


_GPU_BF16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()


class KeepsTheBestEvaluated:
    """For training arguments that keep the best validated checkpoint: `load_best_model_at_end`
    defaults to whether there are evaluations at all, so `--eval_strategy no` trains without
    validation (no early stopping; the last weights are kept) with nothing else to set."""

    def __post_init__(self):
        if self.load_best_model_at_end is None:
            no = IntervalStrategy.NO
            self.load_best_model_at_end = IntervalStrategy(self.eval_strategy) != no
        super().__post_init__()


def early_stopping(training_args, patience: int) -> list:
    """The early-stopping callback, where there are evaluations to stop on."""
    if IntervalStrategy(training_args.eval_strategy) == IntervalStrategy.NO:
        return []
    return [EarlyStoppingCallback(patience)]


@dataclass
class RegenSFTConfig(SFTConfig):
    """TRL's `SFTConfig` with defaults that also suit a CPU: TRL trains in bf16 and checkpoints
    activations by default, which needs a GPU and slows a small model on a CPU; float32 there,
    no pinned memory (a warning per evaluation on a CPU), no activation checkpointing.
    (Defaults are values, not factories: the argument parser ignores a default_factory of a
    boolean.)"""

    output_dir: str | None = field(default=None, metadata={"help": "the checkpoint folder"})
    overwrite_output_dir: bool = overwrite_output_dir_field()
    resume_from_checkpoint: str | None = resume_from_checkpoint_field()
    # The scripts cut prompts themselves (oldest purchases first): a cut by TRL would fall on
    # the completion.
    max_length: int | None = None
    num_train_epochs: float = 1
    eval_strategy: str = "steps"
    logging_steps: float = 10
    bf16: bool | None = _GPU_BF16
    dataloader_pin_memory: bool = torch.cuda.is_available()
    # `gradient_checkpointing` is the deprecated name of `activation_checkpointing`: with both
    # unset, transformers resolves them to False; a recipe that sets the old name is honoured.
    gradient_checkpointing: bool | None = None
    activation_checkpointing: bool | None = None


@dataclass
class TokenizedSFTConfig(RegenSFTConfig):
    """For examples that are already token and item ids: TRL must not re-tokenize them, nor
    drop their item ids."""

    dataset_kwargs: dict | None = field(default_factory=lambda: {"skip_prepare_dataset": True})
    remove_unused_columns: bool | None = False


def give_own_learning_rate(optimizer, parameters, learning_rate: float | None):
    """Move `parameters` into param groups of their own with `learning_rate` (the other
    settings of the group they leave), e.g. a table that starts from nothing while the LM's
    LoRA adapter moves slowly. None leaves the optimizer as it is."""
    if learning_rate is None:
        return optimizer
    own = {id(p) for p in parameters}
    for group in list(optimizer.param_groups):
        moved = [p for p in group["params"] if id(p) in own]
        if moved:
            group["params"] = [p for p in group["params"] if id(p) not in own]
            settings = {key: value for key, value in group.items() if key != "params"}
            optimizer.add_param_group({**settings, "params": moved, "lr": learning_rate})
    return optimizer


def refuse_unsupported_trl_options(script_args, training_args) -> None:
    """Options TRL's classes bring that these scripts must not take silently. `--max_length`
    cuts an example's end, which is its completion (the narrative or the item token);
    `--packing` joins examples the collators keep apart; the scripts read whole splits
    (`--dataset_streaming`) and train no DPO-style reference model (`--ignore_bias_buffers`)."""
    for option in ("dataset_streaming", "ignore_bias_buffers"):
        if getattr(script_args, option, False):
            raise ValueError(f"--{option} is not supported by the REGEN training scripts")
    if getattr(training_args, "max_length", None) is not None:
        instead = (
            "set the prompt budget with --max_prompt_tokens, which drops the oldest purchases"
            if hasattr(script_args, "max_prompt_tokens")
            else "this model's examples are not cut"
        )
        raise ValueError(f"--max_length is refused: TRL would cut the completions; {instead}")
    if getattr(training_args, "packing", False):
        raise ValueError("--packing is not supported: each example is collated on its own")


def check_paths(script_args, training_args, writes: str = "checkpoint") -> None:
    """The data and output arguments every training script shares, and the TRL options none
    acts on, checked before anything loads."""
    refuse_unsupported_trl_options(script_args, training_args)
    if not training_args.output_dir:
        raise ValueError(f"--output_dir is required: the folder the {writes} is written to")
    if not script_args.dataset_name:
        raise ValueError("--dataset_name is required: a built REGEN folder or a Hub dataset id")
    check_local_folder(script_args.dataset_name, "dataset folder")
    check_user_config(script_args.dataset_config)
    for option in ("max_train_rows", "max_eval_rows"):
        count = getattr(script_args, option)
        if count is not None and count < 1:
            raise ValueError(f"--{option} {count}: expected a positive number of rows")


RESUME_NEWEST = ("true", "last")


def prepare_output_dir(training_args) -> str | None:
    """The checkpoint to resume from, if any, once `--output_dir` is checked (nothing is
    removed here: `trainer_utils.train` clears stale checkpoints right before training).

    A run never replaces a folder's earlier results by accident: a folder that is not empty is
    refused unless `--resume_from_checkpoint` goes on from its newest `checkpoint-N` (`last`, or
    that folder's path) or `--overwrite_output_dir` replaces it.
    """
    out = Path(training_args.output_dir)
    resume = training_args.resume_from_checkpoint
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--output_dir {out}: a file, not a folder")
    held = sorted(path.name for path in out.iterdir()) if out.is_dir() else []
    newest = get_last_checkpoint(out) if held else None
    if resume:
        if training_args.overwrite_output_dir:
            raise ValueError(
                "--resume_from_checkpoint and --overwrite_output_dir: give one; the first goes "
                "on from a checkpoint, the second starts again"
            )
        if str(resume).lower() in RESUME_NEWEST:
            if newest is None:
                raise FileNotFoundError(
                    f"--resume_from_checkpoint {resume}: {out} holds no checkpoint-N folder"
                )
            resume = newest
        if not (Path(resume) / "trainer_state.json").is_file():
            raise FileNotFoundError(
                f"--resume_from_checkpoint {resume}: not a complete Trainer checkpoint (no "
                "trainer_state.json); give a checkpoint-N folder, or `last` for the newest in "
                "--output_dir"
            )
        # Checkpoints of another run, or newer ones of this run, would be taken for this run's
        # (the Trainer keeps and reloads its best checkpoint by step number).
        if held and (newest is None or Path(resume).resolve() != Path(newest).resolve()):
            where = "the newest" if newest else "a checkpoint-N folder"
            raise FileExistsError(
                f"--resume_from_checkpoint {resume}: a run resumes in its own --output_dir from "
                f"{where} there ({newest or out}); copy the checkpoint into an empty --output_dir "
                "to go on from it elsewhere"
            )
        return str(resume)
    if held and not training_args.overwrite_output_dir:
        shown = ", ".join(held[:4]) + (f" and {len(held) - 4} more" if len(held) > 4 else "")
        raise FileExistsError(
            f"--output_dir {out} is not empty ({shown}): pass --overwrite_output_dir true to "
            "train again into it, or --resume_from_checkpoint last to go on from its newest "
            "checkpoint"
        )
    return None


def clear_stale_checkpoints(training_args) -> None:
    """With `--overwrite_output_dir`, remove the `checkpoint-N` folders of an earlier run: the
    Trainer's rotation would keep its higher-numbered ones and delete the new ones."""
    out = Path(training_args.output_dir)
    if not (training_args.overwrite_output_dir and out.is_dir()):
        return
    stale = [path for path in out.iterdir() if re.fullmatch(r"checkpoint-\d+", path.name)]
    # Every process enters (its barriers must pair up); the first removes.
    with training_args.main_process_first(local=False, desc="clear --output_dir"):
        if training_args.process_index == 0:
            for path in stale:
                shutil.rmtree(path, ignore_errors=True)


def check_splits(rows, script_args) -> None:
    """The training and validation splits named on the command line exist in `rows`."""
    for option in ("dataset_train_split", "dataset_test_split"):
        name = getattr(script_args, option)
        if name not in rows:
            raise ValueError(
                f"--{option} {name!r}: config {script_args.dataset_config} of "
                f"{script_args.dataset_name} has the splits {sorted(rows)}"
            )


def check_kinds(kinds: list[str], *, allow_none: bool = False) -> None:
    unknown = [kind for kind in kinds if kind not in NARRATIVE_KINDS]
    if unknown or not (kinds or allow_none):
        raise ValueError(f"--kinds {unknown or '(none)'}: expected some of {NARRATIVE_KINDS}")


def refuse_untaught_kinds(script_args, taught, model_name: str) -> None:
    """Refuse to train when a requested kind has no reference narrative in the training rows:
    the checkpoint would list a kind it never learned (and know no length for it)."""
    if untaught := [kind for kind in script_args.kinds if kind not in taught]:
        rows = script_args.max_train_rows
        read = f" in its first {rows:,} rows" if rows is not None else ""
        raise ValueError(
            f"the {script_args.dataset_train_split} split of {script_args.dataset_name} "
            f"({script_args.dataset_config}) has no reference narrative of the kinds {untaught}"
            f"{read}: {model_name} would never learn to write them. Leave-one-out folders carry "
            "narratives in the test split only: build the folder with `regen dataset build "
            "--protocol user_disjoint`, or leave those kinds out of --kinds"
        )


def check_dtype(dtype: str) -> None:
    if dtype not in ("float32", "bfloat16", "float16"):
        raise ValueError(f"--dtype {dtype!r}: expected float32, bfloat16 or float16")
