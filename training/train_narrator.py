"""Train the narrator: a LoRA adapter on a base LM that writes REGEN narratives from the history.

    # the demo recipe on the office sample, built with the user-disjoint protocol (minutes on
    # 2 CPU cores with the embedded Gemma 3 270M)
    regen dataset build --source regen_dataset/samples --out demo_out/regen-users \
        --protocol user_disjoint
    regen train narrator --dataset_name demo_out/regen-users --dataset_config office \
        --output_dir checkpoints/narrator-office --config training/recipes/narrator/cpu.yaml

    # the paper's setting (Gemma 2B) on GPUs; QLoRA with --load_in_4bit
    accelerate launch training/train_narrator.py --config training/recipes/narrator/paper.yaml \
        --dataset_name YOUR_ORG/regen --dataset_config clothing --output_dir checkpoints/narrator

Each training row and narrative kind (`--kinds`, default all six) gives one prompt-completion
pair: the prompt is the user's history and the next item (`regen_models/prompts.py`, the target's
review never enters), the completion the reference narrative. TRL's `SFTTrainer` puts the loss
on the completion only. One adapter serves every kind: the kind is in the prompt. The validation
loss is logged during training. The output folder holds the adapter (peft), the tokenizer,
`narrator_config.json` (base model, kinds, prompt budget, `max_new_tokens` per kind from the
reference lengths) and a model card; `--push_to_hub` uploads it once all of these are written.

Leave-one-out folders built from Google's release carry narratives in the test split only, so
train on a folder built with `--protocol user_disjoint` (each user in one split, all six
narratives on every row), as "Beyond Retrieval" does for narrative generation.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from transformers import set_seed
from trl import SFTTrainer, TrlParser

from regen_dataset.schema import config_has_critiques
from regen_models.narrator import formatting
from regen_models.narrator.configuration_narrator import (
    NarratorConfig,
    base_signature,
    max_new_tokens_per_kind,
)
from regen_models.narrator.loading import add_lora, base_model_name, four_bit_problem, load_base
from regen_models.prompts import PromptStats, build_prompt_completions
from training.arguments import (
    LanguageModelArguments,
    NarrativeScriptArguments,
    RegenSFTConfig,
    check_dtype,
    check_kinds,
    check_paths,
    check_splits,
    prepare_output_dir,
    recipe_parser,
    refuse_untaught_kinds,
)
from training.model_card import command_options, training_summary, write_model_card
from training.trainer_utils import (
    final_eval_loss,
    first_rows,
    hub_id,
    loss_summary,
    push_output_dir,
    save_on_every_process,
    train,
)


@dataclass
class NarratorScriptArguments(NarrativeScriptArguments):
    dataset_test_split: str = field(
        default="validation", metadata={"help": "split for the validation loss"}
    )
    max_prompt_tokens: int = field(
        default=1024,
        metadata={"help": "token budget of a prompt; longer histories lose their oldest purchases"},
    )
    max_eval_rows: int | None = field(
        default=None, metadata={"help": "compute the validation loss on the first N rows only"}
    )


@dataclass
class NarratorModelArguments(LanguageModelArguments):
    load_in_4bit: bool = field(
        default=False,
        metadata={"help": "QLoRA: load the base in 4 bits with bitsandbytes (needs a CUDA GPU)"},
    )


@dataclass
class NarratorTrainingArguments(RegenSFTConfig):
    output_dir: str | None = field(default=None, metadata={"help": "the adapter folder"})
    completion_only_loss: bool | None = True
    learning_rate: float = 2e-4
    per_device_train_batch_size: int = 4
    per_device_eval_batch_size: int = 4
    eval_steps: float | None = 50
    save_strategy: str = "no"


class QuantizationUnavailableError(ValueError):
    """--load_in_4bit where bitsandbytes cannot run 4-bit layers."""


def make_parser() -> TrlParser:
    return recipe_parser(
        "narrator", (NarratorScriptArguments, NarratorModelArguments, NarratorTrainingArguments)
    )


def check_arguments(script_args, model_args, training_args) -> None:
    """Everything that can be wrong with the arguments, before anything loads."""
    check_paths(script_args, training_args, "adapter")
    check_kinds(script_args.kinds)
    check_dtype(model_args.dtype)
    if model_args.load_in_4bit:
        problem = four_bit_problem()
        if problem:
            raise QuantizationUnavailableError(
                f"--load_in_4bit cannot run here: {problem}; train without it (LoRA on the "
                "full-precision base) or on a machine with a CUDA GPU"
            )


def main(script_args, model_args, training_args, options: str | None = None) -> dict:
    check_arguments(script_args, model_args, training_args)
    resume_from = prepare_output_dir(training_args)
    # Before any weight is drawn: the Trainer seeds only once the model exists.
    set_seed(training_args.seed)
    import datasets

    config_name = script_args.dataset_config
    with_critiques = config_has_critiques(config_name)
    rows = datasets.load_dataset(script_args.dataset_name, config_name)
    check_splits(rows, script_args)
    train_rows = first_rows(rows[script_args.dataset_train_split], script_args.max_train_rows)
    eval_rows = None
    if training_args.eval_strategy != "no":
        eval_rows = first_rows(rows[script_args.dataset_test_split], script_args.max_eval_rows)
    else:
        training_args.eval_on_start = False  # a recipe's, overridden by --eval_strategy no

    model, tokenizer = load_base(
        model_args.base_model,
        load_in_4bit=model_args.load_in_4bit,
        dtype=getattr(torch, model_args.dtype),
    )
    signature = base_signature(model.config)

    def pairs_of(split_rows, split_name: str):
        stats = PromptStats()
        pairs, _ = build_prompt_completions(
            split_rows,
            script_args.kinds,
            with_critiques=with_critiques,
            count_tokens=formatting.prompt_token_counter(tokenizer),
            max_tokens=script_args.max_prompt_tokens,
            stats=stats,
        )
        if training_args.process_index == 0:
            print(f"{split_name} ({config_name}): {stats.summary()}")
        if not pairs:
            raise ValueError(
                f"the {split_name} split of {script_args.dataset_name} ({config_name}) has no "
                f"reference narrative of the kinds {script_args.kinds}. Leave-one-out folders "
                "built from Google's release carry narratives in the test split only: build the "
                "folder with `regen dataset build --protocol user_disjoint` to train a narrator"
            )
        return pairs

    train_pairs = pairs_of(train_rows, script_args.dataset_train_split)
    eval_pairs = pairs_of(eval_rows, script_args.dataset_test_split) if eval_rows else None
    lengths = max_new_tokens_per_kind(train_pairs, formatting.completion_token_counter(tokenizer))
    refuse_untaught_kinds(script_args, lengths, "the narrator")

    model = add_lora(
        model,
        model_args.base_model,
        r=model_args.lora_r,
        alpha=model_args.lora_alpha,
        dropout=model_args.lora_dropout,
        target_modules=_target_modules(model_args.lora_target_modules),
    )

    trainer = make_trainer(model, tokenizer, train_pairs, eval_pairs, training_args)
    train(trainer, resume_from, {"script": asdict(script_args), "model": asdict(model_args)})
    metrics = loss_summary(trainer.state.log_history)
    if eval_pairs:
        metrics["eval_loss"] = final_eval_loss(trainer)

    out = training_args.output_dir
    save_on_every_process(trainer, out)  # the adapter (peft) and the tokenizer
    if trainer.is_world_process_zero():
        NarratorConfig(
            base_model=base_model_name(model_args.base_model),
            base_signature=signature,
            kinds=list(script_args.kinds),
            max_new_tokens=lengths,
            max_prompt_tokens=script_args.max_prompt_tokens,
            with_critiques=with_critiques,
            dataset_config=config_name,
        ).save(out)
        write_model_card(
            out,
            model_name="Narrator",
            script="training/train_narrator.py",
            dataset_name=script_args.dataset_name,
            dataset_config=config_name,
            arguments={
                "script": asdict(script_args),
                "model": asdict(model_args),
                "training": training_summary(training_args),
            },
            metrics=metrics,
            metrics_split=script_args.dataset_test_split,
            results_note="training loss, and the loss on this split (completion tokens only)",
            options=options,
            description=_card_description(model_args.base_model, script_args.kinds),
            load_snippet=LOAD_SNIPPET,
            predict_command=(
                "regen predict --model FLARE_CHECKPOINT --narrator PATH --dataset_name "
                f"{script_args.dataset_name} --dataset_config {config_name} --split test "
                "--out predictions.jsonl"
            ),
            library_name="peft",
            base_model=hub_id(model_args.base_model),
        )
        push_output_dir(trainer)
        table = "\n".join(f"| {key} | {value:.4f} |" for key, value in metrics.items())
        print(f"\n| loss | value |\n| --- | ---: |\n{table}\nadapter: {out}")
    return metrics


class NarratorTrainer(SFTTrainer):
    """TRL's `SFTTrainer` whose loss, off CUDA, projects only the completion through the LM head.

    Where Triton is missing (a CPU), TRL's fused LM head scores every position of the sequence,
    the prompt's too, against the whole vocabulary (262,144 tokens for Gemma 3), and discards the
    prompt's. A narrator's prompt is several times longer than its completion, so asking the
    model for the logits of the completion's positions alone (`logits_to_keep`) makes a CPU step
    about three times faster (BENCHMARKS.md, narrator). The loss is the same: the plain
    cross-entropy (`loss_type: nll`, no label smoothing); other losses go through TRL's own.
    """

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        plain = self.args.loss_type == "nll" and not self.args.label_smoothing_factor
        if inputs["input_ids"].device.type == "cuda" or not plain:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        labels = inputs["labels"]
        scored = labels != -100
        # The state before the first scored token of any row, and everything after it.
        first = int(scored.int().argmax(dim=1)[scored.any(dim=1)].min()) if scored.any() else 1
        first = max(first, 1)  # the first token has no state before it
        kept = labels.shape[1] - first + 1
        forward = {key: value for key, value in inputs.items() if key != "labels"}
        outputs = model(**forward, use_cache=False, logits_to_keep=kept)
        logits = outputs.logits[:, :-1].float()
        targets = labels[:, first:]
        total = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")
        count = scored[:, first:].sum() if num_items_in_batch is None else num_items_in_batch
        loss = total / torch.as_tensor(count).clamp(min=1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        self._log_token_metrics(logits.detach(), targets, inputs)
        return (loss, outputs) if return_outputs else loss

    def _log_token_metrics(self, logits, targets, inputs) -> None:
        """The entropy, top-1 accuracy and token count that TRL's own loss logs."""
        mode = "train" if self.model.training else "eval"
        scored = targets != -100
        log_probs = logits[scored].log_softmax(dim=-1)
        entropy = -(log_probs.exp() * log_probs).sum(dim=-1)
        correct = log_probs.argmax(dim=-1) == targets[scored]
        gather = self.accelerator.gather_for_metrics
        valid = gather(scored.sum()).sum()
        if valid > 0:
            self._metrics[mode]["entropy"].append((gather(entropy.sum()).sum() / valid).item())
            accuracy = gather(correct.sum()).sum() / valid
            self._metrics[mode]["mean_token_accuracy"].append(accuracy.item())
        if mode == "train":
            mask = inputs.get("attention_mask", torch.ones_like(inputs["input_ids"]))
            tokens = gather(mask.sum()).sum().item()
            self._total_train_tokens += tokens
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]


def make_trainer(model, tokenizer, train_pairs, eval_pairs, training_args) -> SFTTrainer:
    """`NarratorTrainer` (TRL's `SFTTrainer`) on prompt-completion pairs
    (`build_prompt_completions`): the loss falls on the completion tokens only."""
    import datasets

    def as_dataset(pairs):
        return datasets.Dataset.from_list(
            [formatting.training_example(tokenizer, p["prompt"], p["completion"]) for p in pairs]
        )

    return NarratorTrainer(
        model=model,
        args=training_args,
        train_dataset=as_dataset(train_pairs),
        eval_dataset=as_dataset(eval_pairs) if eval_pairs else None,
        processing_class=tokenizer,
    )


LOAD_SNIPPET = """\
from regen_models.narrator import Narrator
from regen_models.prompts import build_prompt

narrator = Narrator.from_pretrained("PATH_OR_REPO_ID")  # loads its recorded base model
prompt = build_prompt(row["history"], item, "purchase_reason", critique=row["critique"],
                      with_critiques=narrator.with_critiques,  # as it was trained
                      count_tokens=narrator.count_prompt_tokens(),
                      max_tokens=narrator.max_prompt_tokens)
print(narrator.generate([prompt.text], kind="purchase_reason")[0])"""


def _card_description(base_model: str, kinds: list[str]) -> str:
    from training.model_card import PAPERS

    return (
        f"A LoRA adapter on `{base_model}` that writes REGEN narratives ({', '.join(kinds)}) "
        "from a user's purchase history and the item to write about, as the narrator of the "
        f"hybrid system in {PAPERS}. Trained with `training/train_narrator.py` (TRL's "
        "`SFTTrainer`, loss on the completion only)."
    )


def _target_modules(names: list[str]) -> list[str] | str:
    return names[0] if names == ["all-linear"] else names


def run(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args, model_args, training_args = make_parser().parse_args_and_config(argv)
    return main(script_args, model_args, training_args, command_options(argv))


if __name__ == "__main__":
    try:
        run(sys.argv[1:])
    except QuantizationUnavailableError as error:
        print(f"train_narrator: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None
