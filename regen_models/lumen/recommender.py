"""`Lumen`: a trained LUMEN checkpoint with its tokenizer and item vocabulary, on split rows.

    lumen = Lumen.from_pretrained("checkpoints/lumen-office")
    rankings = lumen.rank(rows, top_k=10)                    # full catalog, one pass per batch
    written = lumen.write(rows, kind="purchase_reason")      # the item it names, then its text
    about_top = lumen.write(rows, kind="purchase_reason",    # a narrative about a given item
                            item_ids=[r.item_ids[0] for r in rankings])

Rows are split rows or plain dicts with `user_id`, `history` and `critique` (what `regen predict`,
the evaluation and the Space pass).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch

from regen_models.devices import pick_device
from regen_models.items import VOCABULARY_FILE
from regen_models.lumen.data import NARRATIVE_LABEL, LumenCollator, LumenEncoder
from regen_models.lumen.modeling_lumen import LumenForCausalLM
from regen_models.narrator import formatting
from regen_models.progress import batch_spans
from regen_models.prompts import PromptStats
from regen_models.rows import check_row_collection

DEFAULT_MAX_NEW_TOKENS = 128
# A completion holds one `Text:` block. A model trained for a few steps may not yet end it with
# the end of its turn and go on to open another `Text:` block, or an `ID:` line as the prompt's
# purchases have: the narrative ends there.
_NEXT_BLOCK = re.compile(r"\n\s*(?:Text|ID):")


def narrative_of(text: str) -> tuple[str, bool]:
    """(the narrative, whether it ran on) in what LUMEN wrote after the item: without the
    `Text:` label, up to where another block opens."""
    text = text.strip().removeprefix("Text:").strip()
    ran_on = _NEXT_BLOCK.search(text)
    return (text[: ran_on.start()].strip(), True) if ran_on else (text, False)


@dataclass
class LumenRanking:
    user_id: str
    item_ids: list[str]
    scores: list[float]


@dataclass
class LumenWriting:
    user_id: str
    item_id: str
    text: str
    forced_switch: bool  # the model had not switched to the item vocabulary by itself


class Lumen:
    def __init__(self, model: LumenForCausalLM, tokenizer):
        if model.item_vocabulary is None:
            raise FileNotFoundError(f"this LUMEN model has no item vocabulary ({VOCABULARY_FILE})")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.vocabulary = model.item_vocabulary
        # Every prompt of `rank` and `write` is counted here (how many were cut to the budget),
        # and every narrative the model did not switch to an item for by itself.
        self.prompt_stats = PromptStats()
        self.forced_switches = 0
        self.narratives_cut = 0  # narratives that ran on into another block, cut there
        label = tokenizer(NARRATIVE_LABEL, add_special_tokens=False)["input_ids"]
        self._label_tokens = len(label)
        self.collate = LumenCollator.for_tokenizer(tokenizer, "left")

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike, *, dtype=None, device: str | None = None
    ) -> Lumen:
        from transformers import AutoTokenizer

        model = LumenForCausalLM.from_pretrained(path, dtype=dtype or torch.float32)
        if device:
            model.to(pick_device(device))
        return cls(model, AutoTokenizer.from_pretrained(path))

    def save_pretrained(self, path: str | os.PathLike, **kwargs) -> None:
        """The model (weights, config, item vocabulary) and its tokenizer: a folder that
        `from_pretrained` reads back."""
        self.model.save_pretrained(path, **kwargs)
        self.tokenizer.save_pretrained(path)

    @property
    def config(self):
        return self.model.config

    def encoder(self, with_critiques: bool | None = None) -> LumenEncoder:
        use = self.config.with_critiques if with_critiques is None else with_critiques
        return LumenEncoder(
            self.tokenizer, self.vocabulary, use, self.config.max_prompt_tokens, self.prompt_stats
        )

    def _batches(self, examples, batch_size: int, progress: bool, description: str):
        device = next(self.model.parameters()).device
        spans = batch_spans(len(examples), batch_size, progress=progress, description=description)
        for start, stop in spans:
            batch = self.collate(examples[start:stop])
            batch.pop("targets", None)
            yield start, {key: value.to(device) for key, value in batch.items()}

    def rank(
        self,
        rows: Sequence[Mapping],
        top_k: int = 10,
        *,
        batch_size: int = 8,
        with_critiques: bool | None = None,
        progress: bool = False,
    ) -> list[LumenRanking]:
        """The `top_k` items per row, best first, scored over the whole catalog (`progress`: a
        bar over the rows)."""
        check_row_collection(rows)
        encoder = self.encoder(with_critiques)
        examples = [encoder.ranking_example(row) for row in rows]
        ids = self.vocabulary.item_ids
        out = []
        for start, batch in self._batches(examples, batch_size, progress, "LUMEN ranks"):
            scores, top = self.model.recommend(top_k=top_k, **batch)
            for offset, (row_scores, row_items) in enumerate(zip(scores, top, strict=True)):
                out.append(
                    LumenRanking(
                        examples[start + offset].user_id,
                        [ids[i] for i in row_items.tolist()],
                        row_scores.tolist(),
                    )
                )
        return out

    def write(
        self,
        rows: Sequence[Mapping],
        kind: str,
        *,
        item_ids: Sequence[str] | None = None,
        batch_size: int = 4,
        max_new_tokens: int | None = None,
        with_critiques: bool | None = None,
        do_sample: bool = False,
        streamer=None,
        progress: bool = False,
        **sampling,
    ) -> list[LumenWriting]:
        """Per row, the item LUMEN names (or `item_ids[i]`, when given) and its narrative of
        `kind` about that item, of at most `max_new_tokens` tokens (default: the length recorded
        for `kind`). A `streamer` (one row only) gets the narrative's tokens as they are
        written."""
        if self.config.kinds and kind not in self.config.kinds:
            raise ValueError(
                f"this LUMEN model was trained for {self.config.kinds}, not for {kind!r}"
            )
        check_row_collection(rows)
        encoder = self.encoder(with_critiques)
        examples = [encoder.generation_example(row, kind) for row in rows]
        forced_items = None
        if item_ids is not None:
            if len(item_ids) != len(examples):
                raise ValueError(
                    f"item_ids: {len(item_ids)} items for {len(examples)} rows; give one per row"
                )
            forced_items = torch.tensor(
                [
                    self.vocabulary.index(i, f"item to write about, row {n}")
                    for n, i in enumerate(item_ids)
                ]  # fmt: skip
            )
        limit = max_new_tokens
        if limit is None:
            limit = self.config.max_new_tokens.get(kind, DEFAULT_MAX_NEW_TOKENS)
        limit += self._label_tokens  # the model writes "Text: " before the narrative
        stops = formatting.stop_token_ids(self.tokenizer, self.model.generation_config)
        ids = self.vocabulary.item_ids
        out = []
        for start, batch in self._batches(examples, batch_size, progress, f"LUMEN writes {kind}"):
            items = None
            if forced_items is not None:
                items = forced_items[start : start + len(batch["input_ids"])]
            generated = self.model.generate(
                **batch,
                stop_token_ids=stops,
                max_new_tokens=limit,
                items=items,
                do_sample=do_sample,
                streamer=streamer,
                **sampling,
            )
            self.forced_switches += int(generated.forced_switch.sum())
            for offset, narrative in enumerate(generated.narrative_ids):
                text, ran_on = narrative_of(
                    self.tokenizer.decode(narrative, skip_special_tokens=True)
                )
                self.narratives_cut += ran_on
                out.append(
                    LumenWriting(
                        examples[start + offset].user_id,
                        ids[int(generated.items[offset])],
                        text,
                        bool(generated.forced_switch[offset]),
                    )
                )
        return out
