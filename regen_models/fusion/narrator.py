"""`FusionNarrator`: a trained fusion checkpoint with its tokenizer, writing narratives for rows.

narrator = FusionNarrator.from_pretrained("checkpoints/fusion-office")
texts = narrator.write(rows, "purchase_reason")   # rows: split rows (history and target)

A checkpoint trained with `use_reviews` embeds the reviews of the rows' histories with its
sentence encoder (`config.encoder_name`), loaded on the first call; `narrator.encoder.summary()`
counts the examples written, the histories cut to `max_interactions` and the purchases without a
review.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import torch

from regen_models.devices import pick_device
from regen_models.fusion.data import FusionCollator, FusionEncoder, ReviewVectors
from regen_models.fusion.modeling_fusion import FusionForCausalLM
from regen_models.narrator import formatting
from regen_models.progress import batch_spans
from regen_models.rows import check_row_collection

DEFAULT_MAX_NEW_TOKENS = 128


class FusionNarrator:
    def __init__(self, model: FusionForCausalLM, tokenizer):
        if model.item_vocabulary is None:
            raise ValueError("a fusion checkpoint needs its item vocabulary to read rows")
        self.model = model.eval()
        self.tokenizer = tokenizer
        config = model.config
        # The reviews of the rows' histories, each distinct one encoded once per narrator.
        self.reviews = ReviewVectors(config.encoder_name) if config.reads_reviews else None
        self.encoder = FusionEncoder(
            tokenizer,
            model.item_vocabulary,
            config.max_interactions,
            config.user_token and config.prompt_names_user_token,
            self.reviews,
        )
        pad = tokenizer.pad_token_id
        pad = pad if pad is not None else tokenizer.eos_token_id
        self.collator = FusionCollator(pad, self.reviews)

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, *, dtype=None, device: str | None = None
    ) -> FusionNarrator:
        from transformers import AutoTokenizer

        model = FusionForCausalLM.from_pretrained(os.fspath(path), dtype=dtype or torch.float32)
        if device:
            model.to(pick_device(device))
        return cls(model, AutoTokenizer.from_pretrained(os.fspath(path)))

    def save_pretrained(self, path: str | os.PathLike, **kwargs) -> None:
        """The model (adapter, vector tables, item vocabulary) and its tokenizer: a folder that
        `from_pretrained` reads back."""
        self.model.save_pretrained(path, **kwargs)
        self.tokenizer.save_pretrained(path)

    @property
    def vocabulary(self):
        return self.model.item_vocabulary

    @property
    def kinds(self) -> list[str]:
        return list(self.model.config.kinds)

    def max_new_tokens(self, kind: str) -> int:
        lengths = self.model.config.max_new_tokens
        if self.kinds and kind not in self.kinds:
            raise ValueError(
                f"this fusion narrator was trained for {self.kinds}, not for {kind!r}: ask for "
                "one of those, or train it with that kind (--kinds)"
            )
        return lengths.get(kind, DEFAULT_MAX_NEW_TOKENS)

    def write(
        self,
        rows: Sequence[Mapping] | object,
        kind: str,
        *,
        batch_size: int = 8,
        max_new_tokens: int | None = None,
        streamer=None,
        progress: bool = False,
    ) -> list[str]:
        """One narrative of `kind` per row (greedy), in order. A `streamer` (one row only)
        gets the tokens as they are written; `progress`: a bar over the rows."""
        check_row_collection(rows)
        trained_limit = self.max_new_tokens(kind)  # an untrained kind fails here
        limit = trained_limit if max_new_tokens is None else max_new_tokens
        stops = formatting.stop_token_ids(self.tokenizer, self.model.generation_config)
        device = next(self.model.parameters()).device
        examples = [self.encoder.generation_example(row, kind) for row in rows]
        if self.reviews is not None:
            self.reviews.encode(progress=progress)
        texts: list[str] = []
        spans = batch_spans(
            len(examples), batch_size, progress=progress, description=f"fusion writes {kind}"
        )
        for start, stop in spans:
            batch = {k: v.to(device) for k, v in self.collator(examples[start:stop]).items()}
            written = self.model.generate(
                batch["input_ids"],
                batch["item_ids"],
                batch["attention_mask"],
                stop_token_ids=stops,
                max_new_tokens=limit,
                streamer=streamer,
                review_vectors=batch.get("review_vectors"),
            )
            texts += [
                self.tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in written
            ]
        return texts
