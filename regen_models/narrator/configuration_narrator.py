"""What a narrator adapter folder records beside peft's files: `narrator_config.json`.

peft's `adapter_config.json` holds the LoRA settings and the base model's name. This file holds
what generation needs on top: the narrative kinds the adapter was trained for, the prompt's
token budget, `max_new_tokens` per kind (from the lengths of the reference narratives it was
trained on) and a signature of the base model's shape, so that an adapter never loads onto a base
it was not trained on.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

from regen_dataset.files import write_json

NARRATOR_CONFIG_FILE = "narrator_config.json"

# max_new_tokens per kind: this many times the 99th percentile of the reference narratives'
# token counts, so that nearly every reference fits with room to spare; never below the floor.
LENGTH_MARGIN = 1.25
LENGTH_PERCENTILE = 99
MIN_NEW_TOKENS = 16


@dataclass
class NarratorConfig:
    base_model: str  # as asked at training time: "embedded", a Hub id or a local path
    base_signature: dict  # the base's shape (see `base_signature`)
    kinds: list[str]
    max_new_tokens: dict[str, int]
    max_prompt_tokens: int | None
    with_critiques: bool
    dataset_config: str = ""
    extra: dict = field(default_factory=dict)

    def save(self, folder: str | os.PathLike) -> Path:
        path = Path(folder) / NARRATOR_CONFIG_FILE
        write_json(path, asdict(self))
        return path

    @classmethod
    def load(cls, folder: str | os.PathLike) -> NarratorConfig:
        path = Path(folder) / NARRATOR_CONFIG_FILE
        if not path.exists():
            raise FileNotFoundError(
                f"{folder} is not a narrator adapter folder: it has no {NARRATOR_CONFIG_FILE} "
                "(train one with `regen train narrator`)"
            )
        try:
            return cls(**json.loads(path.read_text(encoding="utf-8")))
        except (json.JSONDecodeError, TypeError) as error:
            raise ValueError(f"{path} is not a valid narrator config: {error}") from None


def base_signature(model_config) -> dict:
    """The base model's shape: what an adapter's weights depend on."""
    text_config = getattr(model_config, "get_text_config", lambda: model_config)()
    return {
        "model_type": text_config.model_type,
        "vocab_size": text_config.vocab_size,
        "hidden_size": text_config.hidden_size,
        "num_hidden_layers": text_config.num_hidden_layers,
    }


def max_new_tokens_per_kind(
    pairs: Iterable[Mapping], count_tokens: Callable[[str], int]
) -> dict[str, int]:
    """`max_new_tokens` per kind from the token counts of the reference completions."""
    lengths: dict[str, list[int]] = {}
    for pair in pairs:
        lengths.setdefault(pair["kind"], []).append(count_tokens(pair["completion"]))
    out = {}
    for kind, counts in lengths.items():
        counts.sort()
        index = min(len(counts) - 1, math.ceil(LENGTH_PERCENTILE / 100 * len(counts)) - 1)
        out[kind] = max(MIN_NEW_TOKENS, math.ceil(LENGTH_MARGIN * counts[index]))
    return out


def max_new_tokens_of_references(
    rows: Iterable[Mapping], kinds: Iterable[str], count_tokens: Callable[[str], int]
) -> dict[str, int]:
    """`max_new_tokens` per kind from the reference narratives of dataset rows (those of the
    `kinds` that a row has)."""
    kinds = list(kinds)
    pairs = (
        {"kind": kind, "completion": text}
        for row in rows
        for kind in kinds
        if (text := (row.get("narratives") or {}).get(kind) or "").strip()
    )
    return max_new_tokens_per_kind(pairs, count_tokens)
