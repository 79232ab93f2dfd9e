"""LUMEN's examples: the history prompt with one item placeholder per purchase, the target
`ID: <switch><item>` and the narrative, as token ids and item ids; and the collator that pads them.

    prompt      the history prompt of `regen_models/prompts.py` (as the tokenizer's chat turn
                where it has a template), every purchase block opening with `ID: <item>`, the
                task line asking for the next item and a narrative kind (or the item only)
    completion  `ID: <start_of_item><item>` then, for a narrative kind, `\\nText: <narrative>`,
                then the end of the turn

`<item>` is the paper's ID_TOKEN: the model puts an item's embedding at its position.
`<start_of_item>` is the switch: the model names an item right after it. Both are special tokens
added to the tokenizer. The item ids of a prompt are the kept purchases, oldest first, then the
target; a prompt whose placeholder count differs from its item count (a review quoting the
placeholder string, say) is an error that names the user, never a silent shift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch

from regen_models.lumen.configuration_lumen import ITEM_TOKEN, SWITCH_TOKEN
from regen_models.lumen.modeling_lumen import IGNORE_INDEX, NO_ITEM
from regen_models.narrator import formatting
from regen_models.prompts import PromptBudgetError, PromptStats, build_prompt

COMPLETION_PREFIX = "ID: "
NARRATIVE_LABEL = "\nText: "


def add_item_tokens(tokenizer) -> tuple[int, int]:
    """Add the placeholder and the switch token to `tokenizer` (once); their ids."""
    from tokenizers import AddedToken

    missing = [t for t in (ITEM_TOKEN, SWITCH_TOKEN) if t not in tokenizer.get_vocab()]
    if missing:
        tokenizer.add_tokens(
            [AddedToken(t, special=True, normalized=False) for t in missing], special_tokens=True
        )
    return item_token_ids(tokenizer)


def item_token_ids(tokenizer) -> tuple[int, int]:
    vocabulary = tokenizer.get_vocab()
    for token in (ITEM_TOKEN, SWITCH_TOKEN):
        if token not in vocabulary:
            raise ValueError(
                f"the tokenizer has no {token} token: it is not a LUMEN tokenizer "
                "(add the tokens with regen_models.lumen.data.add_item_tokens)"
            )
    return vocabulary[ITEM_TOKEN], vocabulary[SWITCH_TOKEN]


def end_token_id(tokenizer) -> int:
    """The token that ends the model's turn: Gemma's end of turn, or end of sequence."""
    if formatting.uses_chat_template(tokenizer):
        end = tokenizer.convert_tokens_to_ids("<end_of_turn>")
        if isinstance(end, int) and end != tokenizer.unk_token_id:
            return end
    return tokenizer.eos_token_id


@dataclass
class LumenExample:
    input_ids: list[int]
    labels: list[int] | None  # None for prompts to decode from
    item_ids: list[int]
    user_id: str
    kind: str | None
    target: int = NO_ITEM  # the target item (for ranking metrics), NO_ITEM when unknown


@dataclass
class LumenEncoder:
    """Split rows to `LumenExample`s for one tokenizer and item vocabulary."""

    tokenizer: object
    vocabulary: object  # regen_models.items.ItemVocabulary
    with_critiques: bool
    max_prompt_tokens: int | None = None
    stats: PromptStats = field(default_factory=PromptStats)
    over_budget: int = 0  # training examples skipped: not even the newest purchase's title fits

    def __post_init__(self):
        self.item_token_id, self.switch_token_id = item_token_ids(self.tokenizer)
        self.end_token_id = end_token_id(self.tokenizer)
        self._count = formatting.prompt_token_counter(self.tokenizer)
        # `ID: <switch>`: what every completion opens with, and every ranking prompt ends with.
        self.switch_ids = self._text_ids(COMPLETION_PREFIX) + [self.switch_token_id]

    def _text_ids(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def prompt(self, row: Mapping, kind: str | None) -> tuple[list[int], list[int]]:
        """(prompt token ids, item ids of the kept purchases, oldest first)."""
        user_id = row.get("user_id") or ""
        prompt = build_prompt(
            row["history"],
            None,
            kind,
            critique=row.get("critique"),
            with_critiques=self.with_critiques,
            user_id=user_id,
            count_tokens=self._count,
            max_tokens=self.max_prompt_tokens,
            item_marker=ITEM_TOKEN,
        )
        self.stats.add(prompt)
        history = row["history"]
        first = len(history) - prompt.purchases_kept
        item_ids = [
            self.vocabulary.index(purchase["item_id"], f"user {user_id}, history position {i}")
            for i, purchase in enumerate(history[first:], start=first)
        ]
        token_ids = formatting.encode_for_generation(self.tokenizer, prompt.text)
        placeholders = token_ids.count(self.item_token_id)
        if placeholders != len(item_ids):
            raise ValueError(
                f"user {user_id}: the prompt holds {placeholders} item placeholders for "
                f"{len(item_ids)} purchases; a text field contains {ITEM_TOKEN!r} or "
                f"{SWITCH_TOKEN!r}, which only LUMEN may write"
            )
        if self.switch_token_id in token_ids:
            raise ValueError(f"user {user_id}: a text field contains {SWITCH_TOKEN!r}")
        return token_ids, item_ids

    def training_example(self, row: Mapping, kind: str | None) -> LumenExample:
        """Prompt and target for the row's target item and its narrative of `kind` (None:
        the item only)."""
        user_id = row.get("user_id") or ""
        prompt_ids, item_ids = self.prompt(row, kind)
        target = self.vocabulary.index(row["target"]["item_id"], f"user {user_id}, target")
        completion = self.switch_ids + [self.item_token_id]
        if kind is not None:
            narrative = (row.get("narratives") or {}).get(kind) or ""
            text_ids = self._text_ids(NARRATIVE_LABEL + narrative.strip())
            if self.item_token_id in text_ids or self.switch_token_id in text_ids:
                raise ValueError(
                    f"user {user_id}: the {kind} narrative contains {ITEM_TOKEN!r} or "
                    f"{SWITCH_TOKEN!r}, which only LUMEN may write"
                )
            completion += text_ids
        completion.append(self.end_token_id)
        return LumenExample(
            input_ids=prompt_ids + completion,
            labels=[IGNORE_INDEX] * len(prompt_ids) + completion,
            item_ids=item_ids + [target],
            user_id=user_id,
            kind=kind,
            target=target,
        )

    def ranking_example(self, row: Mapping, kind: str | None = None) -> LumenExample:
        """The prompt followed by `ID: <switch>`: the item head at its end ranks the catalog."""
        user_id = row.get("user_id") or ""
        prompt_ids, item_ids = self.prompt(row, kind)
        target = NO_ITEM
        if row.get("target") and row["target"].get("item_id") in self.vocabulary:
            target = self.vocabulary.index(row["target"]["item_id"])
        return LumenExample(
            prompt_ids + self.switch_ids, None, item_ids, user_id, kind, target=target
        )

    def generation_example(self, row: Mapping, kind: str | None) -> LumenExample:
        """The prompt alone: the model writes `ID: <switch>`, names the item, then writes."""
        prompt_ids, item_ids = self.prompt(row, kind)
        return LumenExample(prompt_ids, None, item_ids, row.get("user_id") or "", kind)


def training_examples(
    encoder: LumenEncoder,
    rows: Iterable[Mapping],
    kinds: Sequence[str],
    *,
    history_prefixes: int = 0,
) -> list[LumenExample]:
    """One example per row, its narrative kind taken in turn from `(None, *kinds)` (None: the
    item alone, the task ranking uses); a row without a narrative of its turn's kind trains on
    the item alone (counted in `encoder.stats.missing_narrative`). `history_prefixes` adds, per
    row, up to that many item-only examples predicting the latest purchases of its history from
    the purchases before them (the paper trains on subsequences). An example whose newest
    purchase alone is over the token budget even by its title is skipped and counted in
    `encoder.over_budget`."""
    turns = [None, *kinds]
    examples = []

    def add(row: Mapping, kind: str | None) -> bool:
        try:
            examples.append(encoder.training_example(row, kind))
        except PromptBudgetError:
            encoder.over_budget += 1
            return False
        return True

    for index, row in enumerate(rows):
        kind = turns[index % len(turns)]
        if kind is not None and not ((row.get("narratives") or {}).get(kind) or "").strip():
            encoder.stats.missing_narrative[kind] += 1
            kind = None
        if add(row, kind) and kind is not None:
            encoder.stats.pairs[kind] += 1
        history = row["history"]
        for end in range(len(history) - 1, max(0, len(history) - 1 - history_prefixes), -1):
            prefix_row = {
                "user_id": row.get("user_id"),
                "history": history[:end],
                "critique": history[end].get("critique"),
                "target": history[end],
            }
            add(prefix_row, None)
    return examples


@dataclass
class LumenCollator:
    """Pads examples into a batch: token ids (right for training, left for ranking and
    decoding, so the last column is every row's last token), labels, item ids, targets."""

    pad_token_id: int
    padding_side: str = "right"

    @classmethod
    def for_tokenizer(cls, tokenizer, padding_side: str = "right") -> LumenCollator:
        """Padding with the tokenizer's pad token, or its end-of-sequence token where it has
        none (Llama's and Mistral's tokenizers)."""
        pad = tokenizer.pad_token_id
        return cls(tokenizer.eos_token_id if pad is None else pad, padding_side)

    def __call__(self, examples: Sequence[LumenExample | Mapping]) -> dict[str, torch.Tensor]:
        examples = [e if isinstance(e, Mapping) else e.__dict__ for e in examples]
        width = max(len(e["input_ids"]) for e in examples)
        items = max(1, max(len(e["item_ids"]) for e in examples))
        batch = {
            "input_ids": torch.full((len(examples), width), self.pad_token_id, dtype=torch.long),
            "attention_mask": torch.zeros((len(examples), width), dtype=torch.long),
            "item_ids": torch.full((len(examples), items), NO_ITEM, dtype=torch.long),
        }
        with_labels = examples[0].get("labels") is not None
        if with_labels:
            batch["labels"] = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
        for row, example in enumerate(examples):
            length = len(example["input_ids"])
            start = 0 if self.padding_side == "right" else width - length
            place = slice(start, start + length)
            batch["input_ids"][row, place] = torch.tensor(example["input_ids"])
            batch["attention_mask"][row, place] = 1
            if with_labels:
                batch["labels"][row, place] = torch.tensor(example["labels"])
            if example["item_ids"]:
                batch["item_ids"][row, : len(example["item_ids"])] = torch.tensor(
                    example["item_ids"]
                )
        if "target" in examples[0]:
            batch["targets"] = torch.tensor([e["target"] for e in examples], dtype=torch.long)
        return batch
