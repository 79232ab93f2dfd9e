"""The history prompt: a user's purchases, then the item to write about and the narrative asked for.

The REGEN paper (section 4.2.1) prompts its narrator with the user's purchases, one delimited
block each with the item's metadata, the user's rating and review and the critique that led to
the purchase, followed by the item the recommender picked and the kind of narrative wanted. This
module writes that structure in its own words; the narrator, LUMEN and the fusion narrator share
it.

    A shopper's purchases, oldest first, one START ... END block each.
    START
    Title: ...
    Category: Office Products > Paper > ...
    Description: ...
    Price: $9.50
    Rating: 4 of 5
    Review: Would buy again. Ordered this for ...
    Critique that led to this purchase: ...      (configs with critiques, where there is one)
    END
    START ... END
    What the shopper asked for next: ...          (the row's critique, configs with critiques)
    Next item:
    Title: ... / Category: ... / Description: ... / Price: ...
    Task: write <what the narrative kind asks for>.

What never enters: the next item's rating, review or critique field (the item to write about is
described by its catalog texts only, so a held-out review cannot leak), and, for `_no_critique`
configs, any critique text at all. The item ids (Amazon ASINs) are left out too: they carry
nothing a language model can read.

Two limits keep prompts bounded. Each field is clipped to `FIELD_CHARACTERS` characters (on a
word boundary, marked with "..."), so one long description cannot crowd out the rest. Then, where
a token budget is given, a history that does not fit is cut oldest first: the newest purchases say
most about what comes next. Every cut is counted in the `Prompt` and in `PromptStats`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from regen_dataset.schema import NARRATIVE_KINDS

# Characters kept per field before "..." (a field's text is clipped on a word boundary). Sized so
# that a purchase block stays near 2,000 characters (about 500 tokens) at most: a title and a
# category path rarely need more than 200, a description's first 600 characters say what the item
# is, and a review's first 600 what the user thought of it.
FIELD_CHARACTERS = {
    "title": 200,
    "category": 200,
    "description": 600,
    "review": 600,
    "critique": 300,
}
CLIP_MARK = " ..."

# What the task line asks for, per narrative kind.
KIND_REQUESTS = {
    "purchase_reason": "the reason this shopper buys the next item, in one or two sentences",
    "purchase_reason_explanation": (
        "an explanation of why the next item suits this shopper, grounded in what they bought "
        "and wrote before"
    ),
    "product_endorsement": (
        "an endorsement of the next item addressed to this shopper, as a knowledgeable "
        "salesperson would write it"
    ),
    "user_summary_brief": "a brief summary of this shopper's tastes, in one or two sentences",
    "user_summary_long": "a detailed summary of this shopper's tastes, needs and buying habits",
    "user_profile": "a profile of this shopper in a few words",
}
assert set(KIND_REQUESTS) == set(NARRATIVE_KINDS)

HEADER = "A shopper's purchases, oldest first, one START ... END block each."
# The task line when the model itself names the next item (LUMEN): the prompt has no next item.
NAME_NEXT_ITEM = "Task: name the item this shopper buys next"

TokenCounter = Callable[[str], int]


class EmptyHistoryError(ValueError):
    """A user without a single earlier purchase: there is nothing to write the prompt from."""


class PromptBudgetError(ValueError):
    """A token budget too small for even the newest purchase and the next item."""


@dataclass(frozen=True)
class ItemTexts:
    """What the prompt says about the item to write about: its catalog texts, nothing the user
    wrote. Build it from a history entry, a split row's `target` or a catalog row."""

    title: str
    categories: tuple[str, ...] = ()
    description: str = ""
    price: float | None = None
    item_id: str = ""

    @classmethod
    def from_mapping(cls, item: Mapping) -> ItemTexts:
        return cls(
            title=(item.get("title") or "").strip(),
            categories=tuple(item.get("categories") or ()),
            description=(item.get("description") or "").strip(),
            price=item.get("price"),
            item_id=item.get("item_id") or "",
        )

    @classmethod
    def from_vocabulary(cls, vocabulary, item_id: str) -> ItemTexts:
        """The catalog texts of `item_id` in an `regen_models.items.ItemVocabulary`."""
        index = vocabulary.index(item_id)
        return cls.from_mapping(vocabulary.table.slice(index, 1).to_pylist()[0])


@dataclass(frozen=True)
class Prompt:
    """A prompt and what its token budget cost: how many purchases it shows and how many it cut."""

    text: str
    kind: str | None
    user_id: str
    purchases_kept: int
    purchases_dropped: int
    # The newest purchase alone was over the budget: it is shown by its title only.
    newest_shortened: bool = False

    @property
    def cut(self) -> bool:
        return self.purchases_dropped > 0


@dataclass
class PromptStats:
    """Counters over many prompts, for the one line a caller prints."""

    prompts: int = 0
    prompts_cut: int = 0
    purchases_dropped: int = 0
    pairs: Counter = field(default_factory=Counter)  # per kind
    missing_narrative: Counter = field(default_factory=Counter)  # per kind: rows skipped
    newest_shortened: int = 0

    def add(self, prompt: Prompt) -> None:
        self.prompts += 1
        self.prompts_cut += prompt.cut
        self.purchases_dropped += prompt.purchases_dropped
        self.newest_shortened += prompt.newest_shortened

    def summary(self, without_reference: str = "skipped") -> str:
        """One line; `without_reference`: what became of a row without a reference narrative
        of its kind."""
        line = (
            f"{self.prompts:,} prompts, {self.prompts_cut:,} cut to the token budget "
            f"({self.purchases_dropped:,} oldest purchases dropped)"
        )
        if self.newest_shortened:
            line += (
                f"; in {self.newest_shortened:,} the newest purchase alone was over the budget "
                "and is shown by its title only"
            )
        return line + without_reference_note(self.missing_narrative, without_reference)


def without_reference_note(missing: Counter, became: str = "skipped") -> str:
    """ "; N rows skipped without a reference narrative (kind n, ...)", or "" when none."""
    if not sum(missing.values()):
        return ""
    per_kind = ", ".join(f"{kind} {count:,}" for kind, count in sorted(missing.items()))
    return f"; {sum(missing.values()):,} rows {became} without a reference narrative ({per_kind})"


def clip(text: str | None, limit: int) -> str:
    """`text` with its whitespace collapsed, cut on a word boundary to at most `limit` characters
    (the cut marked with `CLIP_MARK`)."""
    text = " ".join((text or "").split())
    if len(text) <= limit:
        return text
    keep = limit - len(CLIP_MARK)
    cut = text.rfind(" ", 0, keep + 1)
    return text[: cut if cut > keep // 2 else keep].rstrip() + CLIP_MARK


def format_price(price: float | None) -> str:
    # The release writes 0.0 where the price is unknown.
    if price is None or not math.isfinite(price) or price <= 0:
        return "unknown"
    return f"${price:,.2f}"


def _item_lines(item: ItemTexts) -> list[str]:
    return [
        f"Title: {clip(item.title, FIELD_CHARACTERS['title']) or 'unknown'}",
        f"Category: {clip(' > '.join(item.categories), FIELD_CHARACTERS['category']) or 'unknown'}",
        f"Description: {clip(item.description, FIELD_CHARACTERS['description']) or 'none'}",
        f"Price: {format_price(item.price)}",
    ]


def purchase_block(
    purchase: Mapping, with_critiques: bool, item_marker: str | None = None, brief: bool = False
) -> str:
    """One purchase of the history as a START ... END block (opening with `ID: item_marker`
    where a marker is given: LUMEN puts the item's own embedding there). `brief`: the title
    only, for a newest purchase that is over the token budget in full."""
    lines = ["START", *([f"ID: {item_marker}"] if item_marker else [])]
    if brief:
        title = clip(ItemTexts.from_mapping(purchase).title, FIELD_CHARACTERS["title"])
        return "\n".join([*lines, f"Title: {title or 'unknown'}", "END"])
    lines += _item_lines(ItemTexts.from_mapping(purchase))
    if purchase.get("rating") is not None:
        lines.append(f"Rating: {purchase['rating']} of 5")
    review = _review(purchase.get("review_title"), purchase.get("review_text"))
    if review:
        lines.append(f"Review: {clip(review, FIELD_CHARACTERS['review'])}")
    critique = purchase.get("critique")
    if with_critiques and critique and critique.strip():
        lines.append(
            f"Critique that led to this purchase: {clip(critique, FIELD_CHARACTERS['critique'])}"
        )
    lines.append("END")
    return "\n".join(lines)


def _review(title: str | None, text: str | None) -> str:
    title, text = (title or "").strip(), (text or "").strip()
    if title and text:
        return f"{title}{'' if title[-1] in '.!?' else '.'} {text}"
    return title or text


def _closing(
    item: ItemTexts | None, kind: str | None, critique: str | None, with_critiques: bool
) -> str:
    lines = []
    if with_critiques and critique and critique.strip():
        lines.append(
            f"What the shopper asked for next: {clip(critique, FIELD_CHARACTERS['critique'])}"
        )
    if item is not None:
        lines += ["Next item:", *_item_lines(item), f"Task: write {KIND_REQUESTS[kind]}."]
    elif kind is None:
        lines.append(NAME_NEXT_ITEM + ".")
    else:
        lines.append(f"{NAME_NEXT_ITEM}, then write {KIND_REQUESTS[kind]}.")
    return "\n".join(lines)


def build_prompt(
    history: Sequence[Mapping],
    item: ItemTexts | Mapping | None,
    kind: str | None,
    *,
    critique: str | None = None,
    with_critiques: bool = True,
    user_id: str = "",
    count_tokens: TokenCounter | None = None,
    max_tokens: int | None = None,
    item_marker: str | None = None,
) -> Prompt:
    """The prompt asking for narrative `kind` about `item` after the purchases in `history`.

    `history` is a split row's `history` (oldest first); `item` the item to write about (the
    target in training and in the paper's upper-bound setting, the recommended item in the hybrid
    system); `critique` the row's critique (what the user asked for after the last purchase).
    `with_critiques=False` (the `_no_critique` configs) leaves every critique out. With
    `count_tokens` and `max_tokens`, the oldest purchases are dropped until the prompt fits.

    For a model that names the next item itself (LUMEN), `item` is None: the task line asks for
    the next item, then for the narrative of `kind` (None: the item only), and `item_marker` (a
    placeholder token) opens every purchase block as `ID: <marker>`; the kept purchases are the
    newest `purchases_kept`, one marker each, in order.
    """
    if kind is None and item is not None:
        raise ValueError("a prompt about a given item needs a narrative kind")
    if kind is not None and kind not in KIND_REQUESTS:
        raise ValueError(f"unknown narrative kind {kind!r}; expected one of {NARRATIVE_KINDS}")
    if not history:
        raise EmptyHistoryError(
            f"user {user_id or '(no id)'} has an empty history: a prompt, to rank or to write, "
            "needs at least one earlier purchase"
        )
    if item is not None and not isinstance(item, ItemTexts):
        item = ItemTexts.from_mapping(item)
    blocks = [purchase_block(purchase, with_critiques, item_marker) for purchase in history]
    closing = _closing(item, kind, critique, with_critiques)

    def render(kept: Sequence[str]) -> str:
        return "\n".join([HEADER, *kept, closing])

    kept = _fit(blocks, render, count_tokens, max_tokens)
    shortened = kept == 0
    if shortened:
        blocks[-1] = purchase_block(history[-1], with_critiques, item_marker, brief=True)
        if count_tokens(render(blocks[-1:])) > max_tokens:
            raise PromptBudgetError(
                f"user {user_id or '(no id)'}: a budget of {max_tokens} prompt tokens does not "
                "hold even the newest purchase by its title (the prompt without any purchase "
                f"takes {count_tokens(render([]))}); a model reads prompts of the budget it was "
                "trained with: train it with a larger --max_prompt_tokens"
            )
        kept = 1
    return Prompt(
        text=render(blocks[len(blocks) - kept :]),
        kind=kind,
        user_id=user_id,
        purchases_kept=kept,
        purchases_dropped=len(blocks) - kept,
        newest_shortened=shortened,
    )


def _fit(
    blocks: list[str],
    render: Callable[[Sequence[str]], str],
    count_tokens: TokenCounter | None,
    max_tokens: int | None,
) -> int:
    """How many of the newest blocks fit the budget (all of them without one); 0 when not even
    the newest does."""
    if count_tokens is None or max_tokens is None or count_tokens(render(blocks)) <= max_tokens:
        return len(blocks)
    # Estimate from per-block counts (tokenizing each block once), then check the exact count
    # of the rendered prompt and drop one more block while it is over.
    fixed = count_tokens(render([]))
    budget = max_tokens - fixed
    kept, used = 0, 0
    for block in reversed(blocks):
        cost = count_tokens("\n" + block) - count_tokens("")
        if used + cost > budget:
            break
        kept, used = kept + 1, used + cost
    while kept and count_tokens(render(blocks[len(blocks) - kept :])) > max_tokens:
        kept -= 1
    return kept


def build_prompt_completions(
    rows: Iterable[Mapping],
    kinds: Sequence[str] = NARRATIVE_KINDS,
    *,
    with_critiques: bool,
    count_tokens: TokenCounter | None = None,
    max_tokens: int | None = None,
    stats: PromptStats | None = None,
) -> tuple[list[dict], PromptStats]:
    """Prompt-completion pairs from split rows: for each row and kind, the prompt about the row's
    target and, as the completion, the row's reference narrative of that kind.

    Rows without a narrative of a kind are skipped for that kind and counted in
    `stats.missing_narrative`. Each pair is `{"prompt", "completion", "kind", "user_id"}`.
    """
    unknown = [kind for kind in kinds if kind not in KIND_REQUESTS]
    if unknown:
        raise ValueError(f"unknown narrative kinds {unknown}; expected some of {NARRATIVE_KINDS}")
    stats = stats if stats is not None else PromptStats()
    pairs = []
    for row in rows:
        narratives = row.get("narratives") or {}
        for kind in kinds:
            reference = (narratives.get(kind) or "").strip()
            if not reference:
                stats.missing_narrative[kind] += 1
                continue
            prompt = build_prompt(
                row["history"],
                row["target"],
                kind,
                critique=row.get("critique"),
                with_critiques=with_critiques,
                user_id=row.get("user_id") or "",
                count_tokens=count_tokens,
                max_tokens=max_tokens,
            )
            stats.add(prompt)
            stats.pairs[kind] += 1
            pairs.append(
                {
                    "prompt": prompt.text,
                    "completion": reference,
                    "kind": kind,
                    "user_id": prompt.user_id,
                }
            )
    return pairs, stats
