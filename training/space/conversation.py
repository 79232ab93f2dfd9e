"""One visitor's conversation with a recommender: the history the models read, the critique
steering the next recommendation, and the turns so far.

The REGEN paper's task is single-turn: a history, a critique of its last item, the next item.
A conversation repeats it. After a recommendation, a critique of it ("I'd prefer a black one")
turns the critiqued item into the last history entry (seen, not bought: no rating, no review) and
becomes the row's `critique`, the text that steers towards the next item; the critique that had
led to the critiqued item moves onto that entry, where REGEN keeps the critique that led to each
purchase. Items already critiqued are not recommended again.
"""

from __future__ import annotations

import copy
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field

MAX_CRITIQUE_CHARACTERS = 500


class SpaceInputError(ValueError):
    """Input the visitor can fix; its message is shown in the page as it is."""


@dataclass
class Turn:
    critique: str | None  # the critique that steered this turn's ranking
    item_ids: list[str]
    scores: list[float]
    narratives: dict[str, str] = field(default_factory=dict)

    @property
    def top_item(self) -> str:
        return self.item_ids[0]


@dataclass
class Conversation:
    domain: str
    user_id: str
    history: list[dict]
    critique: str | None = None
    target: dict | None = None  # the dataset's true next item (turn 0 only)
    reference: dict[str, str] = field(default_factory=dict)  # reference narratives by kind
    turns: list[Turn] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # items critiqued away

    @classmethod
    def from_row(cls, domain: str, row: Mapping) -> Conversation:
        narratives = row.get("narratives") or {}
        return cls(
            domain=domain,
            user_id=row["user_id"],
            history=copy.deepcopy(list(row["history"])),
            critique=row.get("critique"),
            target=copy.deepcopy(row.get("target")),
            reference={kind: text for kind, text in narratives.items() if text},
        )

    @classmethod
    def empty(cls, domain: str) -> Conversation:
        return cls(domain=domain, user_id="you", history=[])

    def row(self) -> dict:
        """What a model reads: the history and the critique, nothing that labels the answer."""
        return {"user_id": self.user_id, "history": self.history, "critique": self.critique}

    def check_ready(self) -> None:
        if not self.history:
            raise SpaceInputError(
                "The history is empty: pick a user, or add an item from the catalog first."
            )

    def add_item(self, item: Mapping) -> None:
        """A catalog item the visitor says they bought: it joins the history as the newest.
        A dataset user's critique, true next item and reference narratives answer the history
        as it was: they go."""
        if self.turns:
            raise SpaceInputError(
                "The conversation has started: reload the user or start an empty history to "
                "compose a new one."
            )
        self.history.append(_interaction(item, critique=None))
        self.critique, self.target, self.reference = None, None, {}

    def record(self, item_ids: list[str], scores: list[float]) -> Turn:
        turn = Turn(self.critique, item_ids, scores)
        self.turns.append(turn)
        return turn

    def add_critique(self, text: str | None, item: Mapping) -> None:
        """The visitor's critique of the last recommendation (`item`, its top item)."""
        text = check_critique(text)
        if not self.turns:
            raise SpaceInputError("Ask for a recommendation first, then critique it.")
        self.history.append(_interaction(item, critique=self.critique))
        self.rejected.append(item["item_id"])
        self.critique = text
        self.target = None  # the dataset's next item answers the dataset's question, not this one

    @property
    def last_turn(self) -> Turn | None:
        return self.turns[-1] if self.turns else None


def check_critique(text: str | None) -> str:
    # Invisible format characters (zero-width spaces, joiners, direction marks) are no text.
    visible = "".join(c for c in text or "" if unicodedata.category(c) != "Cf")
    text = " ".join(visible.split())
    if not text:
        raise SpaceInputError(
            'The critique is empty: say what you would change, e.g. "I\'d prefer a black one".'
        )
    if len(text) > MAX_CRITIQUE_CHARACTERS:
        raise SpaceInputError(
            f"The critique is {len(text):,} characters long; keep it to "
            f"{MAX_CRITIQUE_CHARACTERS} at most (one or two sentences about the recommended item)."
        )
    return text


def _interaction(item: Mapping, critique: str | None) -> dict:
    """A history entry for a catalog item: its texts, no rating or review of the visitor's."""
    return {
        "item_id": item["item_id"],
        "title": item.get("title") or "",
        "categories": list(item.get("categories") or []),
        "description": item.get("description") or "",
        "price": item.get("price"),
        "rating": None,
        "review_title": None,
        "review_text": None,
        "timestamp": None,
        "critique": critique,
    }
