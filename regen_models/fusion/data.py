"""The fusion narrator's examples: a fixed text prompt per narrative kind, the item ids of the
interactions it reads as soft tokens (with the rows of their reviews' vectors), the reference
narrative; and the collator that pads them.

    item ids    the row's history (the newest `max_interactions - 1` purchases, oldest first;
                the older ones are dropped and counted in `FusionStats`), then its target: the
                item the narrative is about (a user summary is written from the whole
                sequence, target included). The items' vectors come from the model's tables.
    review ids  with `reviews` (a model with `use_reviews`, as in the paper): the row in
                `ReviewVectors` of the user's review of each history purchase (its title and
                text as one text; -1 where there is none, counted), -1 for the target, whose
                review is a label. The collator turns them into `review_vectors`. No rating
                or critique enters.
    prompt      "The vectors before this text are a shopper's purchases, ..." (with a user
                token: "The first vector ... stands for a shopper, the others for their
                purchases, ...") and the task line of the kind (`regen_models/prompts.py`), as
                the tokenizer's chat turn where it has a template; its begin-of-sequence token
                is dropped (the model reads it before the soft tokens).
    completion  the reference narrative, then the end of the turn.

An empty history or an item outside the vocabulary is an error that names the user.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from regen_models.base import cache_dir
from regen_models.fusion.modeling_fusion import IGNORE_INDEX, NO_ITEM
from regen_models.items import (
    DEFAULT_ENCODER,
    ItemVocabulary,
    cached_array,
    content_vectors,
    encode_texts,
    encoder_cache_slug,
    load_encoder,
)
from regen_models.lumen.data import end_token_id
from regen_models.narrator import formatting
from regen_models.prompts import KIND_REQUESTS, EmptyHistoryError, without_reference_note

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


def review_text(interaction: Mapping) -> str:
    """The user's review of an interaction as one text: its title, then its body ("" if none)."""
    parts = [(interaction.get(name) or "").strip() for name in ("review_title", "review_text")]
    return "\n".join(part for part in parts if part)


@dataclass
class ReviewVectors:
    """Unit-norm sentence embeddings of review texts, float16 `table[row]`: each distinct text
    gets a row (`index`) and is encoded once (`encode`), by the encoder of the item content
    vectors. Texts are keyed by a digest, so that the table of a large train split does not
    keep them all in memory."""

    encoder: str | None = None
    encoder_model: object = None
    table: np.ndarray | None = None
    _rows: dict = field(default_factory=dict, repr=False)  # text digest -> row
    _pending: list = field(default_factory=list, repr=False)  # texts not encoded yet

    def __contains__(self, text: str) -> bool:
        return _digest(text) in self._rows

    def index(self, text: str) -> int:
        """The row of `text` (-1 for an empty one), new texts queued for `encode`."""
        if not text:
            return NO_ITEM
        key = _digest(text)
        row = self._rows.get(key)
        if row is None:
            row = self._rows[key] = len(self._rows)
            self._pending.append(text)
        return row

    def encode(self, *, cache: bool = False, progress: bool = False) -> None:
        """Encode the queued texts onto the table. With `cache`, they are cached on disk as one
        array, keyed by the encoder and the texts (a train split's reviews, say)."""
        texts = self._pending
        if not texts:
            return
        name = self.encoder or DEFAULT_ENCODER

        def compute(encoder_model):
            self.encoder_model = encoder_model
            vectors = encode_texts(texts, encoder_model, progress=progress, description="reviews")
            return vectors.astype(np.float16)

        if cache:
            digest = hashlib.sha256(encoder_cache_slug(name).encode())
            for text in texts:
                digest.update(text.encode() + b"\0")
            path = cache_dir() / "content" / "reviews" / f"{digest.hexdigest()[:32]}.npy"
            vectors = cached_array(path, (len(texts),), compute, self.encoder, self.encoder_model)
        else:
            vectors = compute(self.encoder_model or load_encoder(self.encoder))
        # Only now: texts whose encoding failed (out of memory, interrupted) stay queued for the
        # next call, at the rows they were given.
        self.table = vectors if self.table is None else np.concatenate([self.table, vectors])
        self._pending = []


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


@dataclass
class FusionStats:
    """Counters over the examples an encoder made, for the line a caller prints."""

    examples: Counter = field(default_factory=Counter)  # per kind
    missing_reference: Counter = field(default_factory=Counter)  # per kind: rows skipped
    histories_cut: int = 0  # rows whose history lost its oldest purchases (once per row)
    purchases_dropped: int = 0
    without_review: int = 0  # history interactions read without a review: the item alone

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
        if self.without_review:
            line += (
                f"; {self.without_review:,} purchases without a review (their item's content "
                "vector alone)"
            )
        return line + without_reference_note(self.missing_reference)


@dataclass
class FusionEncoder:
    """Rows to examples; `stats` counts what it made, cut and skipped."""

    tokenizer: object
    vocabulary: ItemVocabulary
    max_interactions: int = 50
    user_token: bool = False  # the model opens its soft tokens with the user's (the prompt says so)
    reviews: ReviewVectors | None = None  # a model with `use_reviews` reads the history's reviews
    stats: FusionStats = field(default_factory=FusionStats)
    _prompts: dict = field(default_factory=dict, repr=False)
    # Users whose history is counted already: a row is read once per narrative kind.
    _counted: set = field(default_factory=set, repr=False)

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

    def interactions(self, row: Mapping) -> dict[str, list[int]]:
        """`item_ids` of the row's interactions (the newest history, then the target) and, with
        `reviews`, the aligned `review_ids`: each history purchase's review (-1 for none), -1
        for the target, whose review is a label."""
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
        count = row.get("user_id") not in self._counted
        if count and row.get("user_id"):
            self._counted.add(row["user_id"])
        if count and len(kept) < len(history):
            self.stats.histories_cut += 1
            self.stats.purchases_dropped += len(history) - len(kept)
        ids = [purchase["item_id"] for purchase in kept] + [row["target"]["item_id"]]
        found = {"item_ids": self.vocabulary.indices(ids, where=f"user {user}").tolist()}
        if self.reviews is not None:
            reviews = [self.reviews.index(review_text(purchase)) for purchase in kept]
            if count:
                self.stats.without_review += reviews.count(NO_ITEM)
            found["review_ids"] = reviews + [NO_ITEM]
        return found

    def generation_example(self, row: Mapping, kind: str) -> dict:
        example = {"input_ids": self.prompt_ids(kind), **self.interactions(row)}
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
            **self.interactions(row),
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
    decoding needs), item ids left-padded with -1, labels -100 on the pads; with `reviews`,
    examples' `review_ids` become `review_vectors` (zero where none), aligned with the items."""

    pad_token_id: int
    reviews: ReviewVectors | None = None

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
        if self.reviews is not None:
            vectors = self.review_vectors(examples, items)
            if vectors is not None:
                batch["review_vectors"] = vectors
        return batch

    def review_vectors(self, examples: Sequence[Mapping], items: int) -> torch.Tensor | None:
        """`[batch, items, dim]`, left-padded like the items; None while no review exists."""
        table = self.reviews.table
        encoded = 0 if table is None else len(table)
        if any(max(e["review_ids"]) >= encoded for e in examples):
            raise ValueError("review texts were indexed but not encoded: call reviews.encode()")
        if table is None:
            return None
        vectors = torch.zeros(len(examples), items, table.shape[1])
        for row, example in enumerate(examples):
            ids = np.asarray(example["review_ids"])
            present = np.flatnonzero(ids >= 0)
            offset = items - len(ids)
            vectors[row, offset + present] = torch.from_numpy(
                table[ids[present]].astype(np.float32)
            )
        return vectors
