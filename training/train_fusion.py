"""Train the fusion narrator: WALS and content vectors of a user's purchases as soft tokens in
front of a causal LM's prompt ("Beyond Retrieval: Generating Narratives in Conversational
Recommender Systems", section 4.2).

    # the demo recipe on the office sample, built with the user-disjoint protocol (minutes on
    # 2 CPU cores with the embedded Gemma 3 270M)
    regen dataset build --source regen_dataset/samples --out demo_out/regen-users \
        --protocol user_disjoint
    regen train fusion --dataset_name demo_out/regen-users --dataset_config office \
        --output_dir checkpoints/fusion-office --config training/recipes/fusion/cpu.yaml

    # one variant of the paper's ablation: CF vectors only (or content, or both: the default)
    regen train fusion ... --signals cf

    # the paper's setting on GPUs (WALS of dimension 128, an MLP adapter, Gemma 2B)
    accelerate launch training/train_fusion.py --config training/recipes/fusion/paper.yaml \
        --dataset_name YOUR_ORG/regen-users --dataset_config office --output_dir checkpoints/fusion

The WALS item factors are fitted with `implicit` on the train split's interactions (cached per
dataset config, `regen_models/fusion/wals.py`); validation and test users get their vectors by
fold-in from their own purchases. The content vectors are the cached sentence embeddings of each
item's texts; as in the paper, a history purchase's content vector also holds the user's review
of it (`--use_reviews`, on by default: the unit-norm mean of the item's and the review's
embedding; the target's review is a label and never enters), each distinct review encoded once
and cached under `$REGEN_CACHE/content/reviews/`. Each training row and narrative kind
(`--kinds`) gives one example: the row's purchases and target as soft tokens, the kind's fixed
task prompt, the reference narrative as the completion (`regen_models/fusion/data.py`); what
each split gave, skipped and cut is printed per kind, and a requested kind without a training
reference is refused. The loss is the completion's cross-entropy (`FusionTrainer.compute_loss`:
TRL's own loss would call the LM without the soft tokens). The adapter always trains; the LM
stays frozen (`--lm_tuning frozen`), gets LoRA (merged at the end) or is fully tuned. `--dtype`
is the dtype of a frozen or LoRA-tuned base LM; whatever trains (the adapter, LoRA's weights, an
LM tuned whole) is float32, with `--bf16` computing in bfloat16 under autocast. The output folder
holds `config.json`, the weights (adapter, LM and both tables), the item vocabulary, the
tokenizer and a model card; `AutoModel.from_pretrained` loads it after
`import regen_models.fusion`.

"Beyond Retrieval" trains and tests on different users: train on a folder built with
`--protocol user_disjoint` (each user in one split, all six narratives on every row).
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from transformers import set_seed
from trl import SFTTrainer, TrlParser

from regen_dataset.schema import config_category
from regen_models.fusion import ADAPTERS, SIGNALS, FusionForCausalLM, wals
from regen_models.fusion.configuration_fusion import check_signals
from regen_models.fusion.data import (
    FusionCollator,
    FusionEncoder,
    ReviewVectors,
    item_content_table,
)
from regen_models.items import DEFAULT_ENCODER, ItemVocabulary
from regen_models.narrator import formatting
from regen_models.narrator.configuration_narrator import max_new_tokens_of_references
from regen_models.narrator.loading import base_model_name, load_base
from training.arguments import (
    LanguageModelArguments,
    NarrativeScriptArguments,
    TokenizedSFTConfig,
    check_dtype,
    check_kinds,
    check_paths,
    check_splits,
    give_own_learning_rate,
    prepare_output_dir,
    recipe_parser,
    refuse_untaught_kinds,
)
from training.model_card import command_options, training_summary, write_model_card
from training.trainer_utils import (
    base_dtype,
    final_eval_loss,
    first_rows,
    hub_id,
    loss_summary,
    push_output_dir,
    save_on_every_process,
    train,
    trainable_in_float32,
)

LM_TUNING = ("frozen", "lora", "full")
# Training users whose folded-in vectors give the mean user norm (more add nothing but time).
USER_NORM_SAMPLE = 2048


@dataclass
class FusionScriptArguments(NarrativeScriptArguments):
    dataset_test_split: str = field(
        default="validation", metadata={"help": "split for the validation loss"}
    )
    max_train_rows: int | None = field(
        default=None, metadata={"help": "train the LM side on the first N training rows only"}
    )
    max_eval_rows: int | None = field(
        default=None, metadata={"help": "compute the validation loss on the first N rows only"}
    )


@dataclass
class FusionModelArguments(LanguageModelArguments):
    signals: str = field(
        default="both",
        metadata={"help": f"what represents an interaction: one of {SIGNALS}"},
    )
    adapter: str = field(default="mlp", metadata={"help": f"one of {ADAPTERS}"})
    adapter_hidden_size: int | None = field(
        default=None, metadata={"help": "the MLP adapter's hidden width (unset: the LM's)"}
    )
    adapter_dropout: float = 0.0
    adapter_learning_rate: float | None = field(
        default=None, metadata={"help": "learning rate of the adapter (unset: --learning_rate)"}
    )
    user_token: bool = field(
        default=False,
        metadata={
            "help": "open the soft tokens with one for the user (their folded-in WALS vector); "
            "not in the paper, which has one soft token per interaction"
        },
    )
    max_interactions: int = field(
        default=50, metadata={"help": "newest interactions kept per user (one soft token each)"}
    )
    wals_dim: int = field(default=128, metadata={"help": "WALS factor dimension (paper: 128)"})
    wals_regularization: float = wals.REGULARIZATION
    wals_alpha: float = field(
        default=wals.ALPHA,
        metadata={"help": "WALS confidence of an interaction: alpha x its count"},
    )
    wals_iterations: int = 15
    encoder_name: str | None = field(
        default=None,
        metadata={"help": f"sentence encoder of the content vectors (unset: {DEFAULT_ENCODER})"},
    )
    use_reviews: bool = field(
        default=True,
        metadata={
            "help": "add the user's review of each history purchase to its content vector, as "
            "the paper does (the target's review is a label and never enters)"
        },
    )
    lm_tuning: str = field(
        default="lora", metadata={"help": f"the LM: one of {LM_TUNING} (LoRA is merged at the end)"}
    )


@dataclass
class FusionTrainingArguments(TokenizedSFTConfig):
    prediction_loss_only: bool = True
    learning_rate: float = 2e-4
    per_device_train_batch_size: int = 4
    per_device_eval_batch_size: int = 8
    eval_steps: float | None = 50
    save_strategy: str = "no"


class FusionTrainer(SFTTrainer):
    """TRL's `SFTTrainer` with the fusion model's own loss (soft tokens, then text)."""

    def __init__(self, *args, adapter_learning_rate=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.adapter_learning_rate = adapter_learning_rate

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # TRL's compute_loss runs the LM on the token ids alone: the soft tokens would be lost.
        outputs = model(**inputs)
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def create_optimizer(self, model=None):
        return give_own_learning_rate(
            super().create_optimizer(model),
            getattr(self.model, "module", self.model).adapter.parameters(),
            self.adapter_learning_rate,
        )


def make_parser() -> TrlParser:
    return recipe_parser(
        "fusion", (FusionScriptArguments, FusionModelArguments, FusionTrainingArguments)
    )


def check_arguments(script_args, model_args, training_args) -> None:
    """Everything that can be wrong with the arguments, before anything loads."""
    check_paths(script_args, training_args)
    check_kinds(script_args.kinds)
    check_signals(model_args.signals)
    if model_args.adapter not in ADAPTERS:
        raise ValueError(f"--adapter {model_args.adapter!r}: expected one of {ADAPTERS}")
    if model_args.lm_tuning not in LM_TUNING:
        raise ValueError(f"--lm_tuning {model_args.lm_tuning!r}: expected one of {LM_TUNING}")
    check_dtype(model_args.dtype)
    if model_args.max_interactions < 2:
        raise ValueError("--max_interactions must be at least 2 (a purchase and the next item)")
    check_protocol(script_args.dataset_name)


def check_protocol(dataset_name: str) -> None:
    """Refuse a local folder built with leave-one-out splits: the paper's protocol keeps each
    user in one split. (A Hub dataset has no build report: once loaded, `check_users_disjoint`
    refuses splits that share users, and `refuse_untaught_kinds` a train split without
    narratives.)"""
    report = Path(dataset_name) / "build_report.json"
    if not report.exists():
        return
    protocol = json.loads(report.read_text(encoding="utf-8")).get("protocol")
    if protocol and protocol != "user_disjoint":
        raise ValueError(
            f"{dataset_name} was built with the {protocol} protocol; the fusion narrator trains "
            'and tests on different users, as "Beyond Retrieval" does: build the folder with '
            "`regen dataset build --protocol user_disjoint`"
        )


def check_users_disjoint(rows, script_args) -> None:
    """Refuse splits that share users (a leave-one-out build, say one from the Hub, which has no
    build report): the fusion narrator is tested on users it never trained on."""
    import pyarrow.compute as pc

    train_split = script_args.dataset_train_split
    train_users = rows[train_split].data.column("user_id")
    for split in rows:
        if split == train_split:
            continue
        users = rows[split].data.column("user_id")
        shared = pc.is_in(users, value_set=train_users.combine_chunks())
        count = pc.sum(shared).as_py() or 0
        if count:
            example = users.filter(shared)[0].as_py()
            raise ValueError(
                f"{count:,} users of the {split} split of {script_args.dataset_name} "
                f"({script_args.dataset_config}) are in its {train_split} split too (user "
                f"{example}, ...); the fusion narrator trains and tests on different users, as "
                '"Beyond Retrieval" does: build the folder with `regen dataset build --protocol '
                "user_disjoint`"
            )


def split_examples(rows, tokenizer, vocabulary, reviews, script_args, model_args):
    """(the examples of a split's rows and kinds, the encoder that made and counted them)."""
    encoder = FusionEncoder(
        tokenizer, vocabulary, model_args.max_interactions, model_args.user_token, reviews
    )
    return encoder.training_examples(rows, script_args.kinds), encoder


def main(script_args, model_args, training_args, options: str | None = None) -> dict:
    check_arguments(script_args, model_args, training_args)
    resume_from = prepare_output_dir(training_args)
    # Before any weight is drawn: the Trainer seeds only once the model exists.
    set_seed(training_args.seed)
    import datasets

    config_name = script_args.dataset_config
    rows = datasets.load_dataset(script_args.dataset_name, config_name)
    check_splits(rows, script_args)
    check_users_disjoint(rows, script_args)
    all_train = rows[script_args.dataset_train_split]
    train_rows = first_rows(all_train, script_args.max_train_rows)
    eval_rows = None
    if training_args.eval_strategy != "no":
        eval_rows = first_rows(rows[script_args.dataset_test_split], script_args.max_eval_rows)
    else:
        training_args.eval_on_start = False
    vocabulary = ItemVocabulary.from_dataset(script_args.dataset_name, config_name)
    main_process = training_args.process_index == 0

    tuned_whole = model_args.lm_tuning == "full"
    language_model, tokenizer = load_base(
        model_args.base_model, dtype=base_dtype(model_args.dtype, tuned_whole)
    )
    uses_content = model_args.signals in ("content", "both")
    reviews = None
    if uses_content and model_args.use_reviews:
        reviews = ReviewVectors(model_args.encoder_name)
    train_examples, train_encoder = split_examples(
        train_rows, tokenizer, vocabulary, reviews, script_args, model_args
    )
    splits = [(script_args.dataset_train_split, train_encoder)]
    eval_examples = None
    if eval_rows:
        eval_examples, eval_encoder = split_examples(
            eval_rows, tokenizer, vocabulary, reviews, script_args, model_args
        )
        splits.append((script_args.dataset_test_split, eval_encoder))
    if main_process:
        for split, encoder in splits:
            print(f"{config_name}: {split} split: {encoder.summary()}")
    taught = [kind for kind, count in train_encoder.stats.examples.items() if count]
    refuse_untaught_kinds(script_args, taught, "the fusion narrator")

    # The frozen tables (WALS on every training interaction, content vectors of the catalog)
    # and the history reviews' vectors, computed by the main process and cached on disk first.
    cf_factors = user_norm = content = None
    with training_args.main_process_first(local=False, desc="fusion tables"):
        if model_args.signals in ("cf", "both"):
            cf_factors, user_norm = wals_tables(all_train, vocabulary, model_args, main_process)
        if uses_content:
            content = item_content_table(vocabulary, model_args.encoder_name, progress=main_process)
        if reviews is not None:
            reviews.encode(cache=True, progress=main_process)
    lengths = max_new_tokens_of_references(
        train_rows, script_args.kinds, formatting.completion_token_counter(tokenizer)
    )
    model = FusionForCausalLM.from_base(
        language_model,
        tokenizer,
        num_items=len(vocabulary),
        cf_factors=cf_factors,
        content_vectors=content,
        signals=model_args.signals,
        cf_user_norm=user_norm,
        wals_regularization=model_args.wals_regularization,
        wals_alpha=model_args.wals_alpha,
        encoder_name=model_args.encoder_name,
        use_reviews=model_args.use_reviews,
        user_token=model_args.user_token,
        prompt_names_user_token=model_args.user_token,
        adapter=model_args.adapter,
        adapter_hidden_size=model_args.adapter_hidden_size,
        adapter_dropout=model_args.adapter_dropout,
        max_interactions=model_args.max_interactions,
        base_model=base_model_name(model_args.base_model),
        category=config_category(config_name),
        kinds=list(script_args.kinds),
        max_new_tokens=lengths,
    )
    model.attach_item_vocabulary(vocabulary)
    lora = prepare_for_training(model, model_args)

    def as_dataset(examples):
        keep = ("input_ids", "labels", "item_ids", "review_ids")
        return datasets.Dataset.from_list([{k: e[k] for k in keep if k in e} for e in examples])

    trainer = FusionTrainer(
        model=model,
        args=training_args,
        train_dataset=as_dataset(train_examples),
        eval_dataset=as_dataset(eval_examples) if eval_examples else None,
        data_collator=FusionCollator(_pad_id(tokenizer), reviews),
        adapter_learning_rate=model_args.adapter_learning_rate,
        processing_class=tokenizer,
    )
    train(trainer, resume_from, {"script": asdict(script_args), "model": asdict(model_args)})
    if lora is not None:
        lora.merge_and_unload()  # in place: the LM's layers get their plain weights back
    metrics = loss_summary(trainer.state.log_history)
    if eval_examples:
        metrics["eval_loss"] = final_eval_loss(trainer)

    out = training_args.output_dir
    model.language_model.requires_grad_(True)  # saved as a plain model, whatever trained
    save_on_every_process(trainer, out)  # weights, tables, item vocabulary and tokenizer
    if trainer.is_world_process_zero():
        write_model_card(
            out,
            model_name="Fusion",
            script="training/train_fusion.py",
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
            description=_card_description(model_args, script_args.kinds),
            load_snippet=LOAD_SNIPPET,
            predict_command=(
                f"regen predict --model PATH --dataset_name {script_args.dataset_name} "
                f"--dataset_config {config_name} --split test --out predictions.jsonl"
            ),
            base_model=hub_id(model_args.base_model),
        )
        push_output_dir(trainer)
        table = "\n".join(f"| {key} | {value:.4f} |" for key, value in metrics.items())
        print(f"\n| loss | value |\n| --- | ---: |\n{table}\ncheckpoint: {out}")
    return metrics


def wals_tables(
    train_split, vocabulary, model_args, verbose: bool
) -> tuple[np.ndarray, float | None]:
    """(WALS item factors of the train split; with a user token, the mean norm of its users'
    vectors, folded in from the interactions the model reads: the newest `max_interactions`)."""
    settings = wals.WalsSettings(
        dim=model_args.wals_dim,
        regularization=model_args.wals_regularization,
        alpha=model_args.wals_alpha,
        iterations=model_args.wals_iterations,
    )
    factors, path = wals.item_factors(train_split, vocabulary, settings)
    user_norm = None
    if model_args.user_token:
        sample = wals.split_items(
            first_rows(train_split, USER_NORM_SAMPLE), vocabulary, "train split"
        )
        sequences = [
            sample.sequence(row, model_args.max_interactions) for row in range(len(sample))
        ]
        user_norm = wals.mean_user_norm(factors, sequences, settings.regularization, settings.alpha)
    if verbose:
        seen = int((np.abs(factors).sum(axis=1) > 0).sum())
        print(
            f"WALS: {len(train_split):,} training users, {seen:,} of {len(vocabulary):,} items "
            f"seen, dimension {settings.dim} ({path})"
        )
    return factors, user_norm


def prepare_for_training(model: FusionForCausalLM, model_args):
    """Freeze the LM, inject LoRA into it (returned, to merge at the end) or leave it whole.
    Whatever trains is float32 (the adapter already is, like the CF table): in bfloat16, AdamW's
    small updates would round away. A frozen base stays in `--dtype`."""
    lora = None
    if model_args.lm_tuning == "frozen":
        model.language_model.requires_grad_(False)
    elif model_args.lm_tuning == "lora":
        lora = _add_lora(model, model_args)
    trainable_in_float32(model)
    return lora


def _add_lora(model: FusionForCausalLM, model_args):
    """LoRA layers injected into the LM in place; the adapter stays fully trainable."""
    from peft import LoraConfig, LoraModel

    names = model_args.lora_target_modules
    config = LoraConfig(
        r=model_args.lora_r,
        lora_alpha=model_args.lora_alpha,
        lora_dropout=model_args.lora_dropout,
        target_modules=names[0] if names == ["all-linear"] else names,
        task_type="CAUSAL_LM",
    )
    return LoraModel(model.language_model, config, "default")


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


LOAD_SNIPPET = """\
import regen_models.fusion  # registers the model with AutoModel
from regen_models.fusion.narrator import FusionNarrator

narrator = FusionNarrator.from_pretrained("PATH_OR_REPO_ID")  # model, tables, vocabulary
texts = narrator.write(rows, "purchase_reason")  # split rows: history and target"""


def _card_description(model_args, kinds: list[str]) -> str:
    signals = {
        "cf": "WALS vectors",
        "content": "content vectors",
        "both": "WALS and content vectors",
    }
    return (
        f"The fusion narrator on `{model_args.base_model}` (LM {model_args.lm_tuning}, "
        f"{model_args.adapter} adapter): the {signals[model_args.signals]} of a user's purchases "
        f"as soft tokens before a fixed prompt, writing {', '.join(kinds)}, after [Beyond "
        "Retrieval: Generating Narratives in Conversational Recommender Systems]"
        "(https://arxiv.org/abs/2410.16780) (section 4.2). "
        "Trained with `training/train_fusion.py` (TRL's `SFTTrainer`, loss on the completion)."
    )


def run(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args, model_args, training_args = make_parser().parse_args_and_config(argv)
    return main(script_args, model_args, training_args, command_options(argv))


if __name__ == "__main__":
    run(sys.argv[1:])
