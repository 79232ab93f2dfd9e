"""The README.md model card a training run writes into its checkpoint folder."""

from __future__ import annotations

import json
import os

import yaml

from regen_dataset import CITATION
from regen_dataset.files import write_text

PAPERS = (
    "[REGEN: A Dataset and Benchmarks with Natural Language Critiques and Narratives]"
    "(https://arxiv.org/abs/2503.11924)"
)


def write_model_card(
    folder: str | os.PathLike,
    *,
    model_name: str,
    script: str,
    dataset_name: str,
    dataset_config: str,
    arguments: dict,
    metrics: dict[str, float],
    metrics_split: str,
    recipe: str | None = None,
    description: str = "",
    limitations: tuple[str, ...] = (),
    results_note: str = "full-catalog ranking",
    load_snippet: str | None = None,
    predict_command: str | None = None,
    library_name: str = "transformers",
    base_model: str | None = None,
) -> None:
    """Write `folder/README.md`: what the model is, how it was trained, its figures, how to load."""
    local = os.path.exists(dataset_name)
    header = {
        "library_name": library_name,
        **({"base_model": base_model} if base_model else {}),
        "tags": ["regen", "recommender-systems", "conversational-recommendation"],
        **({} if local else {"datasets": [dataset_name]}),
    }
    rows = "\n".join(f"| {name} | {value:.4f} |" for name, value in metrics.items())
    command = (
        f"regen train {model_name.lower()} --dataset_name {dataset_name} "
        f"--dataset_config {dataset_config} --output_dir {os.path.basename(os.fspath(folder))}"
        + (f" --config {recipe}" if recipe else "")
    )
    lines = [
        "---",
        yaml.safe_dump(header, sort_keys=False).strip(),
        "---",
        "",
        f"# {model_name} on REGEN `{dataset_config}`",
        "",
        description or f"A {model_name} checkpoint trained with `{script}`, after {PAPERS}.",
        "",
        "## Training",
        "",
        f"Data: `{dataset_name}`, config `{dataset_config}`.",
        "",
        "```bash",
        command,
        "```",
        "",
        "Arguments of the run:",
        "",
        "```json",
        json.dumps(arguments, indent=2, default=str),
        "```",
        "",
        f"## Results ({metrics_split} split, {results_note})",
        "",
        "| metric | value |",
        "| --- | ---: |",
        rows,
        "",
        "## How to load",
        "",
        "```python",
        *(
            [load_snippet]
            if load_snippet is not None
            else [
                "import regen_models.flare  # registers FLARE with the Auto classes"
                if model_name == "FLARE"
                else "import regen_models",
                "from transformers import AutoModel",
                "",
                'model = AutoModel.from_pretrained("PATH_OR_REPO_ID")',
            ]
        ),
        "```",
        "",
        "Predict and evaluate with the `regen` command:",
        "",
        "```bash",
        predict_command
        or f"regen predict --model PATH --dataset_name {dataset_name} --dataset_config "
        f"{dataset_config} --split test --out predictions.jsonl",
        "```",
        "",
    ]
    if limitations:
        lines += ["## Limitations", "", *[f"- {item}" for item in limitations], ""]
    lines += ["## Citation", "", "```bibtex", CITATION, "```", ""]
    write_text(os.path.join(folder, "README.md"), "\n".join(lines))


# The training arguments a model card records (those a reader needs to repeat the run).
TRAINING_SUMMARY_KEYS = (
    "learning_rate",
    "lr_scheduler_type",
    "num_train_epochs",
    "max_steps",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "weight_decay",
    "warmup_steps",
    "eval_strategy",
    "eval_steps",
    "seed",
)


def training_summary(args) -> dict:
    return {key: getattr(args, key) for key in TRAINING_SUMMARY_KEYS}


def recipe_of(argv: list[str]) -> str | None:
    """The `--config RECIPE.yaml` of a training command line, for its model card."""
    return argv[argv.index("--config") + 1] if "--config" in argv[:-1] else None
