"""From REGEN split rows to FLARE's tensors: item-id sequences, critique vectors, cloze masks.

A row's sequence is its history followed by one more position: the target item for training
rows (which the collator may mask), or the mask for rows to predict. Each position carries the
critique that led to it: a history item's own `critique`, and for the last position the row's
steering `critique` (null in the `_no_critique` configs, so nothing of it enters).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from regen_dataset.files import atomic_path
from regen_dataset.release import is_critique
from regen_models.base import cache_dir
from regen_models.items import ItemVocabulary, encode_texts, encoder_cache_slug

NO_CRITIQUE = -1


@dataclass
class SequenceExample:
    """One user's sequence: item ids and critique ids (NO_CRITIQUE where none), oldest first."""

    user_id: str
    item_ids: list[int]
    critique_ids: list[int]
    target: int | None  # the item to predict at the last position, where known
    # The user's items before `item_ids` (a history longer than the model reads): only the
    # seen-item score uses them.
    earlier_item_ids: list[int] = field(default_factory=list)


class CritiqueTable:
    """Distinct critique texts and their sentence vectors (row `i` is critique id `i`)."""

    def __init__(self, texts: Sequence[str], vectors: np.ndarray, truncated: int = 0):
        self.texts = list(texts)
        self.vectors = vectors
        self.truncated = truncated  # critiques longer than the encoder reads, cut by it
        self._index = {text: index for index, text in enumerate(self.texts)}

    def __len__(self) -> int:
        return len(self.texts)

    def id(self, text: str | None) -> int:
        """The row of a critique; blank text and placeholders ("<NO_CRITIQUE>", "none", ...),
        which the release reader and the narrator's prompts read as no critique, are none."""
        return self._index[text] if is_critique(text) else NO_CRITIQUE

    @classmethod
    def build(
        cls,
        texts: Iterable[str | None],
        encoder_model,
        encoder_name: str,
        *,
        cache: bool = True,
        progress: bool = False,
    ) -> CritiqueTable:
        """Embed every distinct non-empty text once (cached on disk by encoder and texts)."""
        distinct = sorted({text for text in texts if is_critique(text)})
        truncated = count_truncated(distinct, encoder_model)
        if not cache:
            vectors = encode_texts(distinct, encoder_model, progress=progress)
            return cls(distinct, vectors, truncated)
        digest = hashlib.sha256("\0".join(distinct).encode()).hexdigest()[:16]
        path = cache_dir() / "critiques" / encoder_cache_slug(encoder_name)
        path = path / f"{digest}-{len(distinct)}.npy"
        if path.exists():
            vectors = np.load(path)
            if len(vectors) == len(distinct):
                return cls(distinct, vectors, truncated)
        vectors = encode_texts(distinct, encoder_model, progress=progress, description="critiques")
        with atomic_path(path) as partial:
            with open(partial, "wb") as handle:
                np.save(handle, vectors)
        return cls(distinct, vectors, truncated)


def count_truncated(texts: Sequence[str], encoder_model) -> int:
    """How many texts are longer than the encoder reads (sentence-transformers cuts them)."""
    limit = getattr(encoder_model, "max_seq_length", None)
    tokenizer = getattr(encoder_model, "tokenizer", None)
    if not limit or tokenizer is None or not texts:
        return 0
    # Cut one token past the limit: enough to tell, and no warning about over-long inputs.
    encoded = tokenizer(list(texts), add_special_tokens=True, truncation=True, max_length=limit + 1)
    return sum(len(ids) > limit for ids in encoded["input_ids"])


def truncation_note(critiques: CritiqueTable) -> str | None:
    """What to tell the user about critiques the encoder cut, if any."""
    if not critiques.truncated:
        return None
    return (
        f"{critiques.truncated:,} critiques are longer than the encoder reads; it embeds their "
        "beginning only"
    )


def critique_texts(rows) -> Iterable[str | None]:
    """Every critique of a `datasets` split: the history's and the steering ones."""
    for batch in rows.with_format("arrow").iter(batch_size=4096):
        history = batch.column("history").combine_chunks()
        yield from history.flatten().field("critique").to_pylist()
        yield from batch.column("critique").to_pylist()


def build_examples(
    rows,
    vocabulary: ItemVocabulary,
    critiques: CritiqueTable | None,
    *,
    predict: bool,
    max_length: int,
    mask_id: int,
    windows: bool = False,
) -> list[SequenceExample]:
    """Examples of a `datasets` split; `predict=True` puts the mask where the target goes.

    A sequence longer than `max_length` keeps its most recent positions; with `windows=True`
    (training) the older ones become further examples, `max_length` positions each, so that
    long histories are not wasted. With `critiques=None` (a model without critiques) every
    critique id is NO_CRITIQUE.
    """
    examples = []
    for row in rows:
        user = row["user_id"]
        history = row["history"]
        if not history:
            raise ValueError(
                f"user {user} has an empty history: FLARE ranks items after at least one purchase"
            )
        items = [
            vocabulary.index(i["item_id"], f"user {user}, history position {p}")
            for p, i in enumerate(history)
        ]
        target = row.get("target")
        target_id = (
            vocabulary.index(target["item_id"], f"user {user}, target")
            if target and target.get("item_id")
            else None
        )
        if critiques is None:
            critique_ids = [NO_CRITIQUE] * (len(history) + 1)
        else:
            critique_ids = [critiques.id(i.get("critique")) for i in history]
            critique_ids.append(critiques.id(row.get("critique")))
        if predict:
            items.append(mask_id)
        else:
            if target_id is None:
                raise ValueError(f"user {user}: a training row needs a target item")
            items.append(target_id)
        end = len(items) - max_length
        examples.append(
            SequenceExample(
                user,
                items[-max_length:],
                critique_ids[-max_length:],
                target_id,
                items[: max(end, 0)],
            )
        )
        while windows and end >= 2:  # a window needs two items: one to see, one to predict
            start = max(0, end - max_length)
            examples.append(
                SequenceExample(
                    user, items[start:end], critique_ids[start:end], items[end - 1], items[:start]
                )
            )
            end = start
    return examples


class FlareCollator:
    """Left-pads examples; in training, masks random positions (at least one per sequence), or,
    for a `last_item_mask_probability` share of the sequences, only the most recent item. In
    training, a `prefix_crop_probability` share of the sequences is first cut after a random
    position (two items at least), drawn anew at each call. With `earlier_items=True` (a model
    with the seen-item score) it also passes each user's items from before the sequence."""

    def __init__(
        self,
        pad_id: int,
        mask_id: int,
        critique_vectors: np.ndarray | None,
        *,
        mask_probability: float = 0.2,
        last_item_mask_probability: float = 0.0,
        prefix_crop_probability: float = 0.0,
        train: bool = True,
        earlier_items: bool = False,
        seed: int = 0,
    ):
        self.pad_id, self.mask_id = pad_id, mask_id
        self.critique_vectors = (
            None if critique_vectors is None else torch.as_tensor(critique_vectors)
        )
        self.mask_probability = mask_probability
        self.last_item_mask_probability = last_item_mask_probability
        self.prefix_crop_probability = prefix_crop_probability
        self.train = train
        self.earlier_items = earlier_items
        self.generator = torch.Generator().manual_seed(seed)

    def _generator(self) -> torch.Generator | None:
        """The collator's own seeded draws in the main process; in a data-loader worker, which
        holds a copy of it that would replay the same draws every epoch and in every worker,
        torch's default generator, which the loader seeds per worker and per epoch."""
        return None if torch.utils.data.get_worker_info() is not None else self.generator

    def __call__(self, examples: list[SequenceExample]) -> dict[str, torch.Tensor]:
        if self.train and self.prefix_crop_probability:
            examples = [self._crop(example) for example in examples]
        length = max(len(example.item_ids) for example in examples)
        batch = len(examples)
        item_ids = torch.full((batch, length), self.pad_id, dtype=torch.long)
        critique_ids = torch.full((batch, length), NO_CRITIQUE, dtype=torch.long)
        for row, example in enumerate(examples):
            size = len(example.item_ids)
            item_ids[row, length - size :] = torch.tensor(example.item_ids)
            critique_ids[row, length - size :] = torch.tensor(example.critique_ids)
        attention_mask = item_ids != self.pad_id
        out = {"item_ids": item_ids, "attention_mask": attention_mask.long()}
        if self.earlier_items:
            longest = max(1, *(len(example.earlier_item_ids) for example in examples))
            earlier = torch.full((batch, longest), self.pad_id, dtype=torch.long)
            for row, example in enumerate(examples):
                earlier[row, : len(example.earlier_item_ids)] = torch.tensor(
                    example.earlier_item_ids, dtype=torch.long
                )
            out["earlier_item_ids"] = earlier
        if self.critique_vectors is not None:
            present = critique_ids != NO_CRITIQUE
            table = self.critique_vectors
            if not len(table):  # a dataset without a single critique
                table = torch.zeros(1, table.shape[-1] if table.ndim == 2 else 1)
            vectors = table[critique_ids.clamp(min=0)]
            out["critique_vectors"] = vectors * present.unsqueeze(-1)
            out["critique_mask"] = present
        if self.train:
            out["item_ids"], out["labels"] = self._mask(item_ids, attention_mask)
        else:
            targets = [example.target for example in examples]
            if all(target is not None for target in targets):
                out["targets"] = torch.tensor(targets, dtype=torch.long)
        return out

    def _crop(self, example: SequenceExample) -> SequenceExample:
        size = len(example.item_ids)
        if size <= 2 or float(torch.rand(1, generator=self._generator())) >= (
            self.prefix_crop_probability
        ):
            return example
        end = int(torch.randint(2, size + 1, (1,), generator=self._generator()))
        item_ids = example.item_ids[:end]
        return SequenceExample(
            example.user_id,
            item_ids,
            example.critique_ids[:end],
            item_ids[-1],
            example.earlier_item_ids,
        )

    def _mask(self, item_ids: torch.Tensor, real: torch.Tensor):
        draws = torch.rand(item_ids.shape, generator=self._generator())
        masked = (draws < self.mask_probability) & real
        # Every sequence predicts something: where nothing was drawn, mask the most recent item.
        nothing = ~masked.any(dim=1)
        masked[nothing, -1] = True
        if self.last_item_mask_probability:
            last_only = torch.rand(len(item_ids), generator=self._generator())
            last_only = last_only < self.last_item_mask_probability
            masked[last_only] = False
            masked[last_only, -1] = True
        labels = torch.where(masked, item_ids, torch.full_like(item_ids, -100))
        return torch.where(masked, torch.full_like(item_ids, self.mask_id), item_ids), labels
