"""The README.md model card a training run writes into its checkpoint folder."""

from __future__ import annotations

import json
import os
import re
import shlex

import yaml

from regen_dataset import CITATION
from regen_dataset.export import is_synthetic_build
from regen_dataset.files import without_folders, write_text

PAPERS = (
    "[REGEN: A Dataset and Benchmarks with Natural Language Critiques and Narratives]"
    "(https://arxiv.org/abs/2503.11924)"
)


# The line of a card that names its training data; `card_training_data` reads it back.
TRAINING_DATA_LINE = "Data: `{dataset}`, config `{config}`."
_TRAINING_DATA = re.compile(r"^Data: `(?P<dataset>[^`]+)`, config `(?P<config>[^`]+)`\.$", re.M)
SYNTHETIC_NOTE = (
    "Trained on the SYNTHETIC samples shipped with the `regen` package: its figures only show "
    "that the tooling works. Train on Google's REGEN files for real numbers."
)
LOAD_HEADING = "## How to load"
LIMITATIONS_HEADING = "## Limitations"


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
    options: str | None = None,
    description: str = "",
    limitations: tuple[str, ...] = (),
    results_note: str = "full-catalog ranking",
    load_snippet: str | None = None,
    predict_command: str | None = None,
    library_name: str = "transformers",
    base_model: str | None = None,
) -> None:
    """Write `folder/README.md`: what the model is, how it was trained, its figures, how to load.
    A model trained on a synthetic build says so under its limitations."""
    local = os.path.exists(dataset_name)
    if is_synthetic_build(dataset_name):
        limitations = (SYNTHETIC_NOTE, *limitations)
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
        + (f" {options}" if options else "")
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
        TRAINING_DATA_LINE.format(dataset=dataset_name, config=dataset_config),
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


# Options of a training command that its card's command writes itself (the data and the
# folder) or that do not change what is trained.
_OWN_OPTIONS = (
    "dataset_name", "dataset_config", "output_dir", "overwrite_output_dir",
    "resume_from_checkpoint",
)  # fmt: skip


def command_options(argv: list[str]) -> str | None:
    """The options of a training command line that its model card repeats: the recipe
    (`--config`) and every override, without the data and output options."""
    kept, index = [], 0
    while index < len(argv):
        argument = argv[index]
        name = argument.split("=", 1)[0]
        index += 1
        if name.startswith("--") and name[2:].replace("-", "_") in _OWN_OPTIONS:
            if "=" not in argument and index < len(argv) and not argv[index].startswith("--"):
                index += 1  # its value
            continue
        kept.append(argument)
    return shlex.join(kept) or None


def card_training_data(card: str) -> tuple[str, str] | None:
    """(dataset name or path, config) a card written by `write_model_card` was trained on."""
    match = _TRAINING_DATA.search(card)
    return (match["dataset"], match["config"]) if match else None


# Where a card written by `write_model_card` (and `regen release`'s evaluation section) names
# its dataset: the data line, the commands, the arguments, the evaluation.
_DATASET_PLACES = (
    r"(?<=^Data: `){name}(?=`, config)",
    r"(?<=--dataset_name ){name}(?![^\s`])",
    r'(?<="dataset_name": "){name}(?=")',
    r"(?<=^`regen eval` on `){name}(?=`)",
)


def release_card(
    card: str,
    *,
    replacements: dict[str, str],
    dataset_names: dict[str, str] | None = None,
    header: dict,
    evaluation: str | None = None,
    load_first: str | None = None,
    limitations: tuple[str, ...] = (),
) -> str:
    """A card of `write_model_card` as published by `regen release`.

    `replacements` swap placeholders for repository ids (`PATH_OR_REPO_ID` for the model's repo);
    `dataset_names` swap dataset names where the card names a dataset (quoted, or after
    `--dataset_name`), so that a short name such as `regen` leaves the `regen` command alone; a
    recipe path keeps only its part from `training/`.
    `header` is merged into the YAML metadata. `evaluation` (the `regen eval` tables) becomes a
    section before "How to load", `load_first` opens that section, and `limitations` are added
    to the card's own.
    """
    metadata, body = split_card(card)
    metadata.update(header)
    sections = _sections(body)
    titles = [title for title, _ in sections]
    if evaluation:
        where = titles.index(LOAD_HEADING) if LOAD_HEADING in titles else len(sections)
        sections.insert(where, ("## Evaluation", f"## Evaluation\n\n{evaluation.strip()}\n\n"))
        titles.insert(where, "## Evaluation")
    if load_first and LOAD_HEADING in titles:
        index = titles.index(LOAD_HEADING)
        text = sections[index][1].removeprefix(LOAD_HEADING).lstrip("\n")
        sections[index] = (LOAD_HEADING, f"{LOAD_HEADING}\n\n{load_first.strip()}\n\n{text}")
    if limitations:
        items = "".join(f"- {item}\n" for item in limitations)
        if LIMITATIONS_HEADING in titles:
            index = titles.index(LIMITATIONS_HEADING)
            sections[index] = (
                LIMITATIONS_HEADING,
                sections[index][1].rstrip("\n") + "\n" + items + "\n",
            )
        else:
            where = titles.index("## Citation") if "## Citation" in titles else len(sections)
            sections.insert(where, (LIMITATIONS_HEADING, f"{LIMITATIONS_HEADING}\n\n{items}\n"))
    body = "".join(text for _, text in sections)
    for old, new in sorted(replacements.items(), key=lambda pair: -len(pair[0])):
        body = re.sub(re.escape(old) + r"(?![\w.-])", lambda _, new=new: new, body)
    if dataset_names:  # in one pass: a new name is never renamed again
        names = "|".join(re.escape(name) for name in sorted(dataset_names, key=len, reverse=True))
        places = "|".join(where.format(name=f"(?:{names})") for where in _DATASET_PLACES)
        body = re.sub(places, lambda match: dataset_names[match[0]], body, flags=re.M)
    body = re.sub(r"(?<![\w.-])/[^\s`'\"]*/(training/recipes/[\w./-]+)", r"\1", body)
    body = without_folders(body)  # a local base model, encoder or recipe: its last part only
    yaml_text = yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True).strip()
    return f"---\n{yaml_text}\n---\n{body}"


def split_card(card: str) -> tuple[dict, str]:
    """(YAML metadata, the rest) of a card."""
    if not card.startswith("---\n"):
        return {}, card
    end = card.index("\n---\n", 4)
    return yaml.safe_load(card[4:end]) or {}, card[end + len("\n---\n") :]


def _sections(body: str) -> list[tuple[str | None, str]]:
    """(heading line, text from the heading to the next) of every `## ` section; the part
    before the first heading has `None`."""
    starts = [m.start() for m in re.finditer(r"^## .*$", body, re.M)]
    bounds = [0, *starts, len(body)]
    out = []
    for start, end in zip(bounds, bounds[1:], strict=False):
        text = body[start:end]
        if not text:
            continue
        title = text.splitlines()[0] if text.startswith("## ") else None
        out.append((title, text))
    return out
