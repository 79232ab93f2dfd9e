"""The fusion narrator's examples: a fixed text prompt per narrative kind, the item ids of the
interactions it reads as soft tokens, the reference narrative; and the collator that pads them.

    item ids    the row's history (the newest `max_interactions - 1` purchases, oldest first;
                the older ones are dropped and counted in `FusionStats`), then its target: the
                item the narrative is about (a user summary is written from the whole
                sequence, target included). Only the ids enter: the items' vectors come from
                the model's tables, so no review, rating or critique does.
    prompt      "The vectors before this text are a shopper's purchases, ..." (with a user
                token: "The first vector ... stands for a shopper, the others for their
                purchases, ...") and the task line of the kind (`regen_models/prompts.py`), as
                the tokenizer's chat turn where it has a template; its begin-of-sequence token
                is dropped (the model reads it before the soft tokens).
    completion  the reference narrative, then the end of the turn.

An empty history or an item outside the vocabulary is an error that names the user.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from regen_models.fusion.modeling_fusion import IGNORE_INDEX, NO_ITEM
from regen_models.items import ItemVocabulary, content_vectors
from regen_models.lumen.data import end_token_id
from regen_models.narrator import formatting
from regen_models.prompts import KIND_REQUESTS, EmptyHistoryError

SOFT_PROMPT_HEADER = (
    "The vectors before this text are a shopper's purchases, oldest first; the last one is the "
    "next item."
)
# With `user_token`, the first vector is the shopper's own.
USER_TOKEN_HEADER = (
    "The first vector before this text stands for a shopper, the others for their purchases, "
    "oldest first; the last one is the next item."
)


def prompt_text(kind: str, user_token: bool = False) -> str:
    if kind not in KIND_REQUESTS:
        raise ValueError(f"unknown narrative kind {kind!r}; expected one of {list(KIND_REQUESTS)}")
    header = USER_TOKEN_HEADER if user_token else SOFT_PROMPT_HEADER
    return f"{header}\nTask: write {KIND_REQUESTS[kind]}."


def item_content_table(
    vocabulary: ItemVocabulary,
    encoder: str | None = None,
    fields: Sequence[str] = ("title", "categories", "description"),
    *,
    encoder_model=None,
    progress: bool = True,
) -> np.ndarray:
    """float32 `[items, dim]`: the unit-norm mean of each item's present field vectors (the
    cached sentence embeddings of `regen_models.items.content_vectors`)."""
    vectors = content_vectors(
        vocabulary, encoder, fields=fields, encoder_model=encoder_model, progress=progress
    )
    mean = vectors.sum(axis=1)  # missing texts are zero vectors
    norms = np.linalg.norm(mean, axis=1, keepdims=True)
    return (mean / np.maximum(norms, 1e-12)).astype(np.float32)


@dataclass
class FusionStats:
    """Counters over the examples an encoder made, for the line a caller prints."""

    examples: Counter = field(default_factory=Counter)  # per kind
    missing_reference: Counter = field(default_factory=Counter)  # per kind: rows skipped
    histories_cut: int = 0  # examples whose history lost its oldest purchases
    purchases_dropped: int = 0

    def summary(self, kept: int) -> str:
        """One line; `kept`: the purchases a cut history keeps."""
        kinds = sorted(set(self.examples) | set(self.missing_reference))
        per_kind = ", ".join(f"{kind} {self.examples[kind]:,}" for kind in kinds)
        line = f"{sum(self.examples.values()):,} examples ({per_kind})"
        if self.histories_cut:
            line += (
                f"; {self.histories_cut:,} histories cut to the newest {kept} purchases "
                f"({self.purchases_dropped:,} oldest purchases dropped)"
            )
        skipped = sum(self.missing_reference.values())
        if skipped:
            missing = ", ".join(
                f"{kind} {count:,}" for kind, count in sorted(self.missing_reference.items())
            )
            line += f"; {skipped:,} rows skipped without a reference narrative ({missing})"
        return line


@dataclass
class FusionEncoder:
    """Rows to examples; `stats` counts what it made, cut and skipped."""

    tokenizer: object
    vocabulary: ItemVocabulary
    max_interactions: int = 50
    user_token: bool = False  # the model opens its soft tokens with the user's (the prompt says so)
    stats: FusionStats = field(default_factory=FusionStats)
    _prompts: dict = field(default_factory=dict, repr=False)

    @property
    def kept_history(self) -> int:
        """The newest purchases kept of a history (the target takes the last soft token)."""
        return self.max_interactions - 1

    def summary(self) -> str:
        return self.stats.summary(self.kept_history)

    def prompt_ids(self, kind: str) -> list[int]:
        if kind not in self._prompts:
            text = prompt_text(kind, self.user_token)
            ids = formatting.encode_for_generation(self.tokenizer, text)
            bos = self.tokenizer.bos_token_id
            self._prompts[kind] = ids[1:] if ids and bos is not None and ids[0] == bos else ids
        return list(self._prompts[kind])

    def item_ids(self, row: Mapping) -> list[int]:
        user = row.get("user_id") or "(no id)"
        history = row.get("history") or []
        if not history:
            raise EmptyHistoryError(
                f"user {user} has an empty history: the fusion narrator needs at least one "
                "earlier purchase"
            )
        if row.get("target") is None:
            raise ValueError(f"user {user} has no target: the item to write about is missing")
        kept = history[len(history) - self.kept_history :] if self.kept_history else []
        if len(kept) < len(history):
            self.stats.histories_cut += 1
            self.stats.purchases_dropped += len(history) - len(kept)
        ids = [purchase["item_id"] for purchase in kept] + [row["target"]["item_id"]]
        return self.vocabulary.indices(ids, where=f"user {user}").tolist()

    def generation_example(self, row: Mapping, kind: str) -> dict:
        example = {"input_ids": self.prompt_ids(kind), "item_ids": self.item_ids(row)}
        self.stats.examples[kind] += 1
        return example

    def training_example(self, row: Mapping, kind: str) -> dict | None:
        """The example of `row` and `kind`, or None (counted) when the row has no reference."""
        reference = ((row.get("narratives") or {}).get(kind) or "").strip()
        if not reference:
            self.stats.missing_reference[kind] += 1
            return None
        self.stats.examples[kind] += 1
        prompt = self.prompt_ids(kind)
        completion = self.tokenizer(reference, add_special_tokens=False)["input_ids"]
        completion.append(end_token_id(self.tokenizer))
        return {
            "input_ids": prompt + completion,
            "labels": [IGNORE_INDEX] * len(prompt) + completion,
            "item_ids": self.item_ids(row),
            "kind": kind,
        }

    def training_examples(self, rows: Iterable[Mapping], kinds: Sequence[str]) -> list[dict]:
        examples = []
        for row in rows:
            for kind in kinds:
                example = self.training_example(row, kind)
                if example is not None:
                    examples.append(example)
        return examples


@dataclass
class FusionCollator:
    """Pads a batch: text left-padded (so that every row's last token is its last column, as
    decoding needs), item ids left-padded with -1, labels -100 on the pads."""

    pad_token_id: int

    def __call__(self, examples: Sequence[Mapping]) -> dict[str, torch.Tensor]:
        width = max(len(e["input_ids"]) for e in examples)
        items = max(len(e["item_ids"]) for e in examples)
        size = len(examples)
        batch = {
            "input_ids": torch.full((size, width), self.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros((size, width), dtype=torch.long),
            "item_ids": torch.full((size, items), NO_ITEM, dtype=torch.long),
        }
        with_labels = examples[0].get("labels") is not None
        if with_labels:
            batch["labels"] = torch.full((size, width), IGNORE_INDEX, dtype=torch.long)
        for row, example in enumerate(examples):
            length = len(example["input_ids"])
            batch["input_ids"][row, width - length :] = torch.tensor(example["input_ids"])
            batch["attention_mask"][row, width - length :] = 1
            if with_labels:
                batch["labels"][row, width - length :] = torch.tensor(example["labels"])
            count = len(example["item_ids"])
            batch["item_ids"][row, items - count :] = torch.tensor(example["item_ids"])
        return batch
