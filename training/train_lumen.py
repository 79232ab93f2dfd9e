"""Train LUMEN: one LLM that names the next item (a single item token) and writes about it.

    # the demo recipe on the office sample (the embedded Gemma 3 270M, LoRA, a factorised item
    # table; minutes on 2 CPU cores)
    regen train lumen --dataset_name demo_out/regen-users --dataset_config office \
        --output_dir checkpoints/lumen-office --config training/recipes/lumen/cpu.yaml

    # the paper's setting (Gemma 2B, full fine-tuning, the full item table) on GPUs
    accelerate launch training/train_lumen.py --config training/recipes/lumen/paper.yaml \
        --dataset_name YOUR_ORG/regen --dataset_config clothing --output_dir checkpoints/lumen

Each training row gives one example: the history prompt with one item placeholder per purchase
(`regen_models/lumen/data.py`) and the target `ID: <start_of_item><item>`, followed by the row's
narrative of one kind (the kinds taken in turn, with turns for the item alone; a row without that
narrative trains on the item alone, counted). `--history_prefixes N` adds item-only examples for
the latest N purchases of each history, predicted from the purchases before them. The loss is the
text cross-entropy of the target's words plus the item cross-entropy over the whole catalog at the
switch (`LumenTrainer.compute_loss`: TRL's own loss runs a fused LM head that never reaches the
item head). LoRA adapts the LM (merged into its weights at the end); the item table and head, and
the embedding of the switch token LUMEN adds, are trained fully; `--use_lora false` fine-tunes
everything. Validation ranks the whole catalog for each validation row after every evaluation
period (Recall@10, NDCG@10, MRR); training stops early when NDCG@10 stops improving and the best
checkpoint is kept. The output folder holds `config.json`, the weights, the item vocabulary, the
tokenizer (with LUMEN's two tokens) and a model card; `AutoModel.from_pretrained` loads it after
`import regen_models.lumen`.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field

import torch
from transformers import set_seed
from trl import SFTTrainer, TrlParser

from regen_dataset.schema import config_category, config_has_critiques
from regen_models.items import ItemVocabulary
from regen_models.lumen import LumenForCausalLM
from regen_models.lumen.data import (
    LumenCollator,
    LumenEncoder,
    add_item_tokens,
    training_examples,
)
from regen_models.metrics import ranking_metrics
from regen_models.narrator import formatting
from regen_models.narrator.configuration_narrator import max_new_tokens_of_references
from regen_models.narrator.loading import base_model_name, load_base
from training.arguments import (
    KeepsTheBestEvaluated,
    LanguageModelArguments,
    NarrativeScriptArguments,
    TokenizedSFTConfig,
    check_dtype,
    check_kinds,
    check_paths,
    check_splits,
    early_stopping,
    give_own_learning_rate,
    prepare_output_dir,
    recipe_parser,
    refuse_untaught_kinds,
)
from training.model_card import command_options, training_summary, write_model_card
from training.trainer_utils import (
    base_dtype,
    first_rows,
    gathered_ranks,
    hub_id,
    loss_summary,
    push_output_dir,
    save_on_every_process,
    train,
    trainable_in_float32,
)


@dataclass
class LumenScriptArguments(NarrativeScriptArguments):
    dataset_test_split: str = field(
        default="validation", metadata={"help": "split for early stopping and the final table"}
    )
    max_prompt_tokens: int = field(
        default=1024,
        metadata={"help": "token budget of a prompt; longer histories lose their oldest purchases"},
    )
    history_prefixes: int = field(
        default=0,
        metadata={"help": "item-only examples per row for the latest N purchases of its history"},
    )
    max_eval_rows: int | None = field(
        default=None, metadata={"help": "rank for the first N validation rows only"}
    )
    early_stopping_patience: int = field(
        default=3, metadata={"help": "evaluations without a better NDCG@10 before stopping"}
    )


@dataclass
class LumenModelArguments(LanguageModelArguments):
    item_embedding_dim: int | None = field(
        default=None,
        metadata={"help": "item table dimension; unset: the LM's hidden size (the paper)"},
    )
    tie_item_head: bool = field(
        default=True, metadata={"help": "score items against the item table they are read from"}
    )
    item_loss_weight: float = 1.0
    item_learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "learning rate of the item table and head, and under LoRA of the switch "
            "token's embedding (unset: --learning_rate)"
        },
    )
    use_critiques: bool = field(
        default=True, metadata={"help": "put the users' critiques in the prompts (when present)"}
    )
    use_lora: bool = field(
        default=True, metadata={"help": "LoRA on the LM (merged at the end); false: full tuning"}
    )


@dataclass
class LumenTrainingArguments(KeepsTheBestEvaluated, TokenizedSFTConfig):
    learning_rate: float = 1e-4
    per_device_train_batch_size: int = 4
    per_device_eval_batch_size: int = 8
    eval_steps: float | None = 100
    save_strategy: str = "steps"
    save_steps: float = 100
    save_total_limit: int | None = 2
    metric_for_best_model: str | None = "NDCG@10"
    greater_is_better: bool | None = True
    load_best_model_at_end: bool | None = None


class LumenTrainer(SFTTrainer):
    """TRL's `SFTTrainer` with LUMEN's joint loss and a full-catalog ranking evaluation."""

    def __init__(self, *args, eval_collator, item_learning_rate=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.eval_collator = eval_collator
        self.item_learning_rate = item_learning_rate

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        # TRL's compute_loss runs the LM through a fused text head and would never score items.
        inputs = {key: value for key, value in inputs.items() if key != "targets"}
        outputs = model(**inputs)
        mode = "train" if model.training else "eval"
        for name in ("text_loss", "item_loss"):
            value = getattr(outputs, name)
            if value is not None:
                value = self.accelerator.gather_for_metrics(value.reshape(1)).mean().item()
                self._metrics[mode][name].append(value)
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def create_optimizer(self, model=None):
        # LUMEN's new parameters: the item table and head, and the switch token's rows under LoRA.
        lumen = _unwrap(self.model)
        switch_rows = [] if lumen.switch_rows is None else list(lumen.switch_rows.parameters())
        return give_own_learning_rate(
            super().create_optimizer(model),
            [*lumen.items.parameters(), *switch_rows],
            self.item_learning_rate,
        )

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        loader = self.accelerator.prepare(
            torch.utils.data.DataLoader(
                dataset,
                batch_size=self.args.per_device_eval_batch_size,
                collate_fn=self.eval_collator,
            )
        )
        model = _unwrap(self.model)
        model.eval()
        ranks = []
        with torch.no_grad():
            for batch in loader:
                targets = batch.pop("targets")
                logits = model.score_items(**batch)
                ranks.append(gathered_ranks(self.accelerator, logits, targets))
        found = ranking_metrics(torch.cat(ranks).cpu().numpy(), ks=(10,))
        metrics = {f"{metric_key_prefix}_{name}": value for name, value in found.items()}
        self.log(dict(metrics))
        self.control = self.callback_handler.on_evaluate(
            self.args, self.state, self.control, metrics
        )
        return metrics


def _unwrap(model):
    return getattr(model, "module", model)


def make_parser() -> TrlParser:
    return recipe_parser(
        "lumen", (LumenScriptArguments, LumenModelArguments, LumenTrainingArguments)
    )


def check_arguments(script_args, model_args, training_args) -> None:
    """Everything that can be wrong with the arguments, before anything loads."""
    check_paths(script_args, training_args)
    check_kinds(script_args.kinds, allow_none=True)
    check_dtype(model_args.dtype)
    if model_args.item_embedding_dim is not None and model_args.item_embedding_dim < 1:
        raise ValueError(f"--item_embedding_dim {model_args.item_embedding_dim}: must be positive")


def main(script_args, model_args, training_args, options: str | None = None) -> dict:
    check_arguments(script_args, model_args, training_args)
    resume_from = prepare_output_dir(training_args)
    # Before any weight is drawn: the Trainer seeds only once the model exists.
    set_seed(training_args.seed)
    import datasets

    config_name = script_args.dataset_config
    with_critiques = config_has_critiques(config_name) and model_args.use_critiques
    rows = datasets.load_dataset(script_args.dataset_name, config_name)
    check_splits(rows, script_args)
    train_rows = first_rows(rows[script_args.dataset_train_split], script_args.max_train_rows)
    eval_rows = first_rows(rows[script_args.dataset_test_split], script_args.max_eval_rows)
    vocabulary = ItemVocabulary.from_dataset(script_args.dataset_name, config_name)

    # Model: the base LM with LUMEN's two tokens, the item table and head around it.
    language_model, tokenizer = load_base(
        model_args.base_model, dtype=base_dtype(model_args.dtype, not model_args.use_lora)
    )
    add_item_tokens(tokenizer)
    context = getattr(language_model.config, "max_position_embeddings", None)
    if context and script_args.max_prompt_tokens >= context:
        raise ValueError(
            f"--max_prompt_tokens {script_args.max_prompt_tokens} leaves no room in the context "
            f"of {model_args.base_model} ({context} tokens) for the item and the narrative"
        )
    encoder = LumenEncoder(tokenizer, vocabulary, with_critiques, script_args.max_prompt_tokens)
    train_examples = training_examples(
        encoder, train_rows, script_args.kinds, history_prefixes=script_args.history_prefixes
    )
    if training_args.process_index == 0:
        summary = encoder.stats.summary(without_reference="trained on the item alone")
        if encoder.over_budget:
            summary += (
                f"; {encoder.over_budget:,} examples skipped: their newest purchase alone, by "
                f"its title, is over --max_prompt_tokens {script_args.max_prompt_tokens}"
            )
        print(f"{config_name}: {len(train_examples):,} training examples; {summary}")
    eval_examples = [encoder.ranking_example(row) for row in eval_rows]
    lengths = max_new_tokens_of_references(
        train_rows, script_args.kinds, formatting.completion_token_counter(tokenizer)
    )
    refuse_untaught_kinds(script_args, lengths, "LUMEN")
    model = LumenForCausalLM.from_base(
        language_model,
        tokenizer,
        num_items=len(vocabulary),
        item_embedding_dim=model_args.item_embedding_dim,
        tie_item_head=model_args.tie_item_head,
        item_loss_weight=model_args.item_loss_weight,
        base_model=base_model_name(model_args.base_model),
        category=config_category(config_name),
        with_critiques=with_critiques,
        kinds=list(script_args.kinds),
        max_prompt_tokens=script_args.max_prompt_tokens,
        max_new_tokens=lengths,
    )
    model.attach_item_vocabulary(vocabulary)
    lora = None
    if model_args.use_lora:
        lora = _add_lora(model, model_args)
        model.train_switch_rows()  # the LM's own rows are frozen with it
    trainable_in_float32(model)

    trainer = LumenTrainer(
        model=model,
        args=training_args,
        train_dataset=datasets.Dataset.from_list([e.__dict__ for e in train_examples]),
        eval_dataset=datasets.Dataset.from_list([e.__dict__ for e in eval_examples]),
        data_collator=LumenCollator.for_tokenizer(tokenizer, "right"),
        eval_collator=LumenCollator.for_tokenizer(tokenizer, "left"),
        item_learning_rate=model_args.item_learning_rate,
        processing_class=tokenizer,
        callbacks=early_stopping(training_args, script_args.early_stopping_patience),
    )
    train(trainer, resume_from, {"script": asdict(script_args), "model": asdict(model_args)})
    if lora is not None:
        lora.merge_and_unload()  # in place: the LM's layers get their plain weights back
        model.merge_switch_rows()
    metrics = _final_metrics(trainer)
    losses = loss_summary(
        trainer.state.log_history, ("loss", "text_loss", "item_loss"), with_eval=False
    )

    out = training_args.output_dir
    save_on_every_process(trainer, out)  # weights, item vocabulary and tokenizer
    if trainer.is_world_process_zero():
        table = {key.removeprefix("eval_"): value for key, value in metrics.items()}
        write_model_card(
            out,
            model_name="LUMEN",
            script="training/train_lumen.py",
            dataset_name=script_args.dataset_name,
            dataset_config=config_name,
            arguments={
                "script": asdict(script_args),
                "model": asdict(model_args),
                "training": training_summary(training_args),
            },
            metrics={**table, **losses},
            metrics_split=script_args.dataset_test_split,
            results_note="full-catalog ranking; training losses",
            options=options,
            description=_card_description(model_args, script_args.kinds),
            load_snippet=LOAD_SNIPPET,
            base_model=hub_id(model_args.base_model),
        )
        push_output_dir(trainer)
        rows_text = "\n".join(f"| {key} | {value:.4f} |" for key, value in table.items())
        print(
            f"\n{script_args.dataset_test_split} ({config_name}):\n| metric | value |\n"
            f"| --- | ---: |\n{rows_text}\ncheckpoint: {out}"
        )
    return {**metrics, **losses}


def _final_metrics(trainer) -> dict[str, float]:
    """The validation metrics of the model training ends with: those logged for the best (or,
    without reloading the best, the last) evaluation when there was one, else computed now.
    Ranking the validation rows through a large LM is costly: it is not done twice."""
    args = trainer.args
    key = f"eval_{args.metric_for_best_model}"
    logged = [entry for entry in trainer.state.log_history if key in entry]
    if not logged:
        return trainer.evaluate()
    if args.load_best_model_at_end:
        sign = 1 if args.greater_is_better else -1
        entry = max(logged, key=lambda e: sign * e[key])
    elif logged[-1].get("step") == trainer.state.global_step:
        entry = logged[-1]
    else:
        return trainer.evaluate()
    return {name: value for name, value in entry.items() if name.startswith("eval_")}


def _add_lora(model: LumenForCausalLM, model_args):
    """LoRA layers injected into the LM in place; the item table and head stay trainable."""
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


LOAD_SNIPPET = """\
from regen_models.lumen.recommender import Lumen

lumen = Lumen.from_pretrained("PATH_OR_REPO_ID")  # the model, its tokenizer and item vocabulary
ranked = lumen.rank(rows, top_k=10)                 # full-catalog ranking per split row
written = lumen.write(rows, kind="purchase_reason") # the item it names and its narrative"""


def _card_description(model_args, kinds: list[str]) -> str:
    from training.model_card import PAPERS

    table = (
        f"a factorised item table ({model_args.item_embedding_dim} dimensions)"
        if model_args.item_embedding_dim
        else "an item table of the LM's hidden size"
    )
    tuning = "LoRA (merged)" if model_args.use_lora else "full fine-tuning"
    return (
        f"LUMEN on `{model_args.base_model}` ({tuning}, {table}): one model that names the next "
        f"item as a single item token and writes about it ({', '.join(kinds)}), after {PAPERS} "
        "(section 4.2.2). Trained with `training/train_lumen.py` (TRL's `SFTTrainer` with the "
        "joint text and item loss)."
    )


def run(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args, model_args, training_args = make_parser().parse_args_and_config(argv)
    return main(script_args, model_args, training_args, command_options(argv))


if __name__ == "__main__":
    run(sys.argv[1:])
