"""Train FLARE, the critique-steerable sequential recommender, on a REGEN config.

    # the demo recipe on the shipped sample (minutes on 2 CPU cores)
    regen train flare --dataset_name demo_out/regen --dataset_config office \
        --output_dir checkpoints/flare-office --config training/recipes/flare/cpu.yaml

    # the same script, directly or on several processes / GPUs
    python training/train_flare.py --config training/recipes/flare/paper.yaml \
        --dataset_name YOUR_ORG/regen --dataset_config clothing --output_dir checkpoints/flare
    accelerate launch training/train_flare.py --config training/recipes/flare/paper.yaml ...

Training rows predict interaction N-2 from the ones before it; the cloze task masks random
positions of each sequence. Validation ranks the whole catalog for interaction N-1 after every
evaluation period; training stops early when NDCG@10 stops improving and the best checkpoint is
kept. `--dataset_config office_no_critique` trains the same model without critiques (nothing of
them enters). The checkpoint folder holds `config.json`, the weights (with the content vectors),
the item vocabulary and a model card with the validation table.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field

import torch
from transformers import Trainer, TrainingArguments, set_seed
from trl import TrlParser

from regen_dataset.schema import config_category, config_has_critiques
from regen_models.flare import FlareConfig, FlareModel
from regen_models.flare.data import (
    CritiqueTable,
    FlareCollator,
    build_examples,
    critique_texts,
    truncation_note,
)
from regen_models.items import (
    DEFAULT_ENCODER,
    ItemVocabulary,
    content_token_vectors,
    content_vectors,
    embedding_dimension,
    load_encoder,
)
from regen_models.metrics import ranking_metrics
from training.arguments import (
    KeepsTheBestEvaluated,
    RegenScriptArguments,
    check_paths,
    check_splits,
    early_stopping,
    overwrite_output_dir_field,
    prepare_output_dir,
    recipe_parser,
    resume_from_checkpoint_field,
)
from training.model_card import command_options, training_summary, write_model_card
from training.trainer_utils import (
    first_rows,
    gathered_ranks,
    push_output_dir,
    save_on_every_process,
    train,
)


@dataclass
class FlareScriptArguments(RegenScriptArguments):
    dataset_test_split: str = field(
        default="validation", metadata={"help": "split for early stopping and the final table"}
    )
    encoder_name: str | None = field(
        default=None,
        metadata={"help": "sentence-transformers id or path; default: offline all-MiniLM-L6-v2"},
    )
    train_windows: bool = field(
        default=True,
        metadata={"help": "cut training sequences longer than max_sequence_length into windows"},
    )
    early_stopping_patience: int = field(
        default=3, metadata={"help": "evaluations without a better NDCG@10 before stopping"}
    )


@dataclass
class FlareModelArguments:
    hidden_size: int = 64
    num_hidden_layers: int = 2
    num_attention_heads: int = 2
    intermediate_size: int = 256
    hidden_dropout_prob: float = 0.2
    attention_probs_dropout_prob: float = 0.2
    max_sequence_length: int = 50
    num_latents: int = 4
    content_tokens: int = field(
        default=0,
        metadata={
            "help": "0: one pooled content vector per item text; N: the encoder's first N token "
            "vectors of each text, read by the Perceiver (N times the memory)"
        },
    )
    tie_item_embeddings: bool = field(
        default=False,
        metadata={"help": "score items against their own input vectors (ID and content fused)"},
    )
    use_content: bool = True
    use_critiques: bool = True
    mask_probability: float = 0.2
    last_item_mask_probability: float = 0.5
    prefix_crop_probability: float = 0.0
    seen_item_bias: bool = False
    contrastive_weight: float = 0.1
    contrastive_temperature: float = 0.07


@dataclass
class FlareTrainingArguments(KeepsTheBestEvaluated, TrainingArguments):
    output_dir: str | None = field(default=None, metadata={"help": "the checkpoint folder"})
    overwrite_output_dir: bool = overwrite_output_dir_field()
    resume_from_checkpoint: str | None = resume_from_checkpoint_field()
    eval_strategy: str = "epoch"
    save_strategy: str = "epoch"
    metric_for_best_model: str | None = "NDCG@10"
    greater_is_better: bool | None = True
    load_best_model_at_end: bool | None = None
    save_total_limit: int | None = 2
    remove_unused_columns: bool = False
    learning_rate: float = 1e-3
    num_train_epochs: float = 50
    per_device_train_batch_size: int = 256
    per_device_eval_batch_size: int = 256
    logging_steps: int = 50
    # Pinned memory only helps a GPU; on a CPU-only machine it is a warning per evaluation.
    dataloader_pin_memory: bool = field(default_factory=torch.cuda.is_available)


class FlareTrainer(Trainer):
    """A `Trainer` whose evaluation ranks the whole catalog for each validation row."""

    def __init__(self, *args, eval_collator: FlareCollator, **kwargs):
        super().__init__(*args, **kwargs)
        self.eval_collator = eval_collator

    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval"):
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        loader = self.accelerator.prepare(
            torch.utils.data.DataLoader(
                dataset,
                batch_size=self.args.per_device_eval_batch_size,
                collate_fn=self.eval_collator,
            )
        )
        model = self.model
        model.eval()
        ranks = []
        with torch.no_grad():
            for batch in loader:
                targets = batch.pop("targets")
                ranks.append(
                    gathered_ranks(self.accelerator, full_precision_logits(model, batch), targets)
                )
        found = ranking_metrics(torch.cat(ranks).cpu().numpy(), ks=(10,))
        metrics = {f"{metric_key_prefix}_{name}": value for name, value in found.items()}
        self.log(dict(metrics))  # `log` adds the epoch to the dict it is given
        self.control = self.callback_handler.on_evaluate(
            self.args, self.state, self.control, metrics
        )
        return metrics


def full_precision_logits(model, batch):
    """The model's scores as `regen predict` computes them: the class's own forward, not the
    autocast wrapper that accelerate puts on the instance under `--bf16` (whose rounding would
    move the ranks that early stopping reads)."""
    return type(model).forward(model, **batch).logits


def make_parser() -> TrlParser:
    return recipe_parser(
        "flare", (FlareScriptArguments, FlareModelArguments, FlareTrainingArguments)
    )


def main(script_args, model_args, training_args, options: str | None = None) -> dict:
    check_paths(script_args, training_args)
    resume_from = prepare_output_dir(training_args)
    # Before any weight is drawn: the Trainer seeds only once the model exists.
    set_seed(training_args.seed)
    import datasets

    config_name = script_args.dataset_config
    category = config_category(config_name)
    with_critiques = config_has_critiques(config_name) and model_args.use_critiques

    # Data: rows, the catalog, content vectors and critique vectors.
    rows = datasets.load_dataset(script_args.dataset_name, config_name)
    check_splits(rows, script_args)
    train_rows = first_rows(rows[script_args.dataset_train_split], script_args.max_train_rows)
    eval_rows = first_rows(rows[script_args.dataset_test_split], script_args.max_eval_rows)
    vocabulary = ItemVocabulary.from_dataset(script_args.dataset_name, config_name)
    encoder_name = script_args.encoder_name or DEFAULT_ENCODER
    with training_args.main_process_first(desc="content and critique vectors"):
        encoder = load_encoder(script_args.encoder_name)
        vectors = None
        if model_args.use_content and model_args.content_tokens:
            vectors = content_token_vectors(
                vocabulary,
                script_args.encoder_name,
                tokens=model_args.content_tokens,
                encoder_model=encoder,
            )
        elif model_args.use_content:
            vectors = content_vectors(vocabulary, script_args.encoder_name, encoder_model=encoder)
        critiques = None
        if with_critiques:
            texts = [t for split in (train_rows, eval_rows) for t in critique_texts(split)]
            critiques = CritiqueTable.build(texts, encoder, encoder_name)
            if not len(critiques):
                print(f"{config_name} holds no critique: FLARE trains without the critique path")
                critiques, with_critiques = None, False
            elif note := truncation_note(critiques):
                print(note)
    dimension = vectors.shape[-1] if vectors is not None else embedding_dimension(encoder)
    if with_critiques and vectors is not None and dimension != embedding_dimension(encoder):
        # Critiques are sentence vectors; a Dense layer after pooling makes them another width.
        raise ValueError(
            f"--content_tokens: {encoder_name} has "
            f"{dimension}-wide token vectors but {embedding_dimension(encoder)}-wide sentence "
            "vectors, which critiques are read as: use pooled content vectors (--content_tokens "
            "0), an encoder without a layer after pooling, or a _no_critique config"
        )

    config = FlareConfig(
        num_items=len(vocabulary),
        content_dim=dimension,
        encoder_name=script_args.encoder_name,
        category=category,
        **asdict(model_args),
    )
    config.use_critiques = with_critiques
    model = FlareModel(config)
    model.attach_item_vocabulary(vocabulary)
    if vectors is not None:
        model.set_content_vectors(vectors)

    def examples(split_rows, predict: bool):
        return build_examples(
            split_rows,
            vocabulary,
            critiques,
            predict=predict,
            max_length=config.max_sequence_length,
            mask_id=config.mask_item_id,
            windows=script_args.train_windows and not predict,
        )

    critique_vectors = critiques.vectors if critiques is not None else None
    collate = dict(
        pad_id=config.pad_item_id,
        mask_id=config.mask_item_id,
        earlier_items=config.seen_item_bias,
    )
    trainer = FlareTrainer(
        model=model,
        args=training_args,
        train_dataset=examples(train_rows, predict=False),
        eval_dataset=examples(eval_rows, predict=True),
        data_collator=FlareCollator(
            **collate,
            critique_vectors=critique_vectors,
            mask_probability=config.mask_probability,
            last_item_mask_probability=config.last_item_mask_probability,
            prefix_crop_probability=config.prefix_crop_probability,
            seed=training_args.seed,
        ),
        eval_collator=FlareCollator(**collate, critique_vectors=critique_vectors, train=False),
        callbacks=early_stopping(training_args, script_args.early_stopping_patience),
    )
    train(trainer, resume_from, {"script": asdict(script_args), "model": asdict(model_args)})
    metrics = trainer.evaluate()  # the best checkpoint, reloaded at the end of training

    save_on_every_process(trainer, training_args.output_dir)  # the item vocabulary goes with it
    if trainer.is_world_process_zero():
        write_model_card(
            training_args.output_dir,
            model_name="FLARE",
            script="training/train_flare.py",
            dataset_name=script_args.dataset_name,
            dataset_config=config_name,
            arguments={
                "script": asdict(script_args),
                "model": asdict(model_args),
                "training": training_summary(training_args),
            },
            metrics={key.removeprefix("eval_"): value for key, value in metrics.items()},
            metrics_split=script_args.dataset_test_split,
            options=options,
        )
        push_output_dir(trainer)
        table = "\n".join(
            f"| {key.removeprefix('eval_')} | {value:.4f} |" for key, value in metrics.items()
        )
        print(
            f"\n{script_args.dataset_test_split} ({config_name}):\n| metric | value |\n"
            f"| --- | ---: |\n{table}\ncheckpoint: {training_args.output_dir}"
        )
    return metrics


def run(argv: list[str] | None = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    script_args, model_args, training_args = make_parser().parse_args_and_config(argv)
    return main(script_args, model_args, training_args, command_options(argv))


if __name__ == "__main__":
    run(sys.argv[1:])
