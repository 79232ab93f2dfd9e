"""Full-catalog rankings from a FLARE checkpoint for REGEN rows: what `regen predict`, the hybrid
system and the Space call.

    ranker = FlareRanker.from_pretrained("checkpoints/flare-office")
    ranked = ranker.rank(rows, top_k=10)  # rows of a split, or dicts with the same fields
    ranked[0].item_ids, ranked[0].scores
    scores = ranker.scores(rows)  # [rows, items]: every item's score, in vocabulary order

A row needs `user_id` and `history` (a list of interactions with `item_id` and `critique`), and
may have `critique`, the text that steers towards the next item. Critique texts are embedded by
the checkpoint's sentence encoder, loaded on first use.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from regen_models.devices import pick_device
from regen_models.flare.data import (
    CritiqueTable,
    FlareCollator,
    build_examples,
    critique_texts,
    truncation_note,
)
from regen_models.flare.modeling_flare import FlareModel
from regen_models.items import DEFAULT_ENCODER, VOCABULARY_FILE, ItemVocabulary, load_encoder
from regen_models.progress import batch_spans
from regen_models.rows import check_row_collection


@dataclass
class RankedItems:
    item_ids: list[str]
    scores: list[float]


# Users ranked at once by default: one full-catalog score matrix per batch.
RANKING_BATCH = 256


class FlareRanker:
    def __init__(self, model: FlareModel, encoder=None):
        if model.item_vocabulary is None:
            raise ValueError(
                f"this FLARE model has no item vocabulary ({VOCABULARY_FILE}): it cannot name "
                "the items it scores"
            )
        self.model = model.eval()
        self._encoder = encoder

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, encoder=None, *, device: str | None = None
    ) -> FlareRanker:
        """`device`: where the model scores (`rank` moves each batch there); None leaves it on
        the CPU."""
        if not os.path.exists(os.path.join(path, "config.json")) and os.path.isdir(path):
            raise FileNotFoundError(f"{path} is not a FLARE checkpoint folder (no config.json)")
        model = FlareModel.from_pretrained(path)
        if device:
            model.to(pick_device(device))
        return cls(model, encoder)

    @property
    def vocabulary(self) -> ItemVocabulary:
        return self.model.item_vocabulary

    @property
    def uses_critiques(self) -> bool:
        return bool(self.model.config.use_critiques)

    def encoder(self):
        if self._encoder is None:
            self._encoder = load_encoder(self.model.config.encoder_name)
        return self._encoder

    def rank(
        self,
        rows: Sequence[Mapping],
        top_k: int = 10,
        *,
        with_critiques: bool = True,
        batch_size: int = RANKING_BATCH,
        progress: bool = False,
    ) -> list[RankedItems]:
        """The `top_k` best items of the catalog for each row, best first.

        `with_critiques=False` (a `_no_critique` config) leaves every critique out, as does a
        model trained without them. `progress`: a bar over the rows.
        """
        ids = self.vocabulary.item_ids
        ranked = []
        for batch in self._batches(rows, with_critiques, batch_size, progress, "FLARE ranks"):
            scores, top = self.model.recommend(top_k=top_k, **batch)
            for row_scores, row_items in zip(scores.tolist(), top.tolist(), strict=True):
                ranked.append(RankedItems([ids[i] for i in row_items], row_scores))
        return ranked

    def scores(
        self,
        rows: Sequence[Mapping],
        *,
        with_critiques: bool = True,
        batch_size: int = 256,
        progress: bool = False,
    ) -> torch.Tensor:
        """`[rows, items]` on the CPU: the model's score of every catalog item for each row, in
        the order of `vocabulary.item_ids` (what `rank` takes its top items from)."""
        scores = [torch.empty(0, len(self.vocabulary))]
        for batch in self._batches(rows, with_critiques, batch_size, progress, "FLARE scores"):
            scores.append(self.model(**batch).logits.cpu())
        return torch.cat(scores)

    def _batches(self, rows, with_critiques: bool, batch_size: int, progress: bool, what: str):
        """The model's inputs for `rows`, `batch_size` rows at a time, on the model's device,
        under `torch.no_grad`."""
        check_row_collection(rows)
        config = self.model.config
        is_split = hasattr(rows, "with_format")
        if not is_split:
            _check_rows(rows)
        critiques = None
        if with_critiques and self.uses_critiques:
            texts = critique_texts(rows) if is_split else _texts_of(rows)
            critiques = CritiqueTable.build(
                texts, self.encoder(), config.encoder_name or DEFAULT_ENCODER
            )
            if note := truncation_note(critiques):
                warnings.warn(note, stacklevel=3)
        examples = build_examples(
            rows,
            self.vocabulary,
            critiques,
            predict=True,
            max_length=config.max_sequence_length,
            mask_id=config.mask_item_id,
        )
        collate = FlareCollator(
            config.pad_item_id,
            config.mask_item_id,
            None if critiques is None else critiques.vectors,
            train=False,
            earlier_items=config.seen_item_bias,
        )
        device = next(self.model.parameters()).device
        with torch.no_grad():
            spans = batch_spans(len(examples), batch_size, progress=progress, description=what)
            for start, stop in spans:
                batch = collate(examples[start:stop])
                batch.pop("targets", None)
                yield {key: value.to(device) for key, value in batch.items()}


def _check_rows(rows: Sequence[Mapping]) -> None:
    """Composed rows have the fields of a split row: say which one is wrong, and where."""
    for number, row in enumerate(rows):
        where = f"row {number}"
        if not isinstance(row, Mapping) or "user_id" not in row:
            raise ValueError(f"{where}: expected a dict with user_id and history")
        where = f"row {number} (user {row['user_id']})"
        history = row.get("history")
        if not isinstance(history, Sequence) or isinstance(history, str):
            raise ValueError(f"{where}: history must be a list of purchases, got {history!r}")
        for position, purchase in enumerate(history):
            if not isinstance(purchase, Mapping) or "item_id" not in purchase:
                raise ValueError(f"{where}, history position {position}: needs an item_id")
            _check_critique(purchase.get("critique"), f"{where}, history position {position}")
        _check_critique(row.get("critique"), f"{where}, critique")


def _check_critique(text, where: str) -> None:
    if text is not None and not isinstance(text, str):
        raise ValueError(f"{where}: a critique is text or None, got {text!r}")


def _texts_of(rows: Sequence[Mapping]) -> list[str | None]:
    texts = []
    for row in rows:
        texts += [purchase.get("critique") for purchase in row["history"]]
        texts.append(row.get("critique"))
    return texts
