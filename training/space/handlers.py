"""What each control of the Space does, as plain Python (the Gradio wiring is in `ui.py`).

Every action returns (or, streaming, yields) a `View`: the conversation and each panel's HTML.
Input the visitor can fix and any failure of a model end as a message in the page; the
traceback goes to the server's log only.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace

from regen_dataset.files import without_folders
from regen_dataset.schema import NARRATIVE_KINDS
from training.space import render
from training.space.conversation import Conversation, SpaceInputError
from training.space.data import SpaceData
from training.space.registry import Registry, UnknownModelError

TOP_K = 10
DEFAULT_KIND = "purchase_reason"
LOG = logging.getLogger("regen.space")


@dataclass
class View:
    """The conversation and each panel's new content; None leaves a panel as it is."""

    conversation: Conversation | None
    history: str | None = ""
    ranking: str | None = ""
    narrative: str | None = ""
    reference: str | None = ""
    message: str = ""

    @property
    def failed(self) -> bool:
        return render.ERROR_CLASS in self.message

    def as_tuple(self) -> tuple:
        return (
            self.conversation,
            self.history,
            self.ranking,
            self.narrative,
            self.reference,
            self.message,
        )


def _as_it_was(conversation: Conversation | None, message: str = "") -> View:
    """A view that leaves every panel as it is (the conversation did not change), but for the
    message."""
    return View(
        conversation, history=None, ranking=None, narrative=None, reference=None, message=message
    )


class SpaceApp:
    def __init__(self, registry: Registry, data: SpaceData):
        self.registry = registry
        self.data = data
        self._checked: set[tuple[str, str]] = set()

    # -- choosing a history ----------------------------------------------------------------

    def load_user(
        self,
        domain: str,
        user_id: str | None,
        kind: str | None = None,
        current: Conversation | None = None,
    ) -> View:
        """A test user's conversation; a user id that is not there leaves the `current`
        conversation as it is, on the page too, with the message."""
        try:
            conversation = Conversation.from_row(domain, self.data.row(domain, user_id))
        except SpaceInputError as error:
            return _as_it_was(current, render.error_box(str(error)))
        return self._view(conversation, kind)

    def empty_history(self, domain: str, kind: str | None = None) -> View:
        return self._view(Conversation.empty(domain), kind)

    def add_item(
        self, conversation: Conversation | None, domain: str, query: str | None, kind=None
    ) -> View:
        """Add the first catalog item that `query` (an id or title words) finds."""
        started = conversation is not None
        conversation = conversation or Conversation.empty(domain)
        try:
            if conversation.domain != domain:
                raise SpaceInputError(
                    f"This history is of {conversation.domain}: start an empty history to "
                    f"compose one of {domain}."
                )
            conversation.add_item(self.data.search(domain, query)[0])
        except SpaceInputError as error:
            message = render.error_box(str(error))
            if started:
                return _as_it_was(conversation, message)
            return replace(self._view(conversation, kind), message=message)
        return self._view(conversation, kind)

    # -- the conversation ------------------------------------------------------------------

    def recommend(
        self, conversation: Conversation | None, model_name: str | None, kind: str | None
    ) -> Iterator[View]:
        """The top items for the history and critique, then the narrative about the top item,
        streamed."""
        view = _as_it_was(conversation)  # until a new ranking is made, the page stays
        try:
            if conversation is None:
                raise SpaceInputError("Pick a user, or start an empty history, first.")
            conversation.check_ready()
            if not model_name:
                raise SpaceInputError("Pick a model first.")
            model = self._model(conversation.domain, model_name)
            ranking = model.rank(conversation.row(), TOP_K + len(conversation.rejected))
            kept = [
                (item_id, score)
                for item_id, score in zip(ranking.item_ids, ranking.scores, strict=True)
                if item_id not in conversation.rejected
            ][:TOP_K]
            if not kept:
                raise SpaceInputError(
                    "Every item of the catalog has been critiqued away: reload the user or "
                    "start an empty history."
                )
            turn = conversation.record([i for i, _ in kept], [s for _, s in kept])
            target = (conversation.target or {}).get("item_id")
            view = replace(
                self._view(conversation, kind),
                ranking=render.ranking_table(
                    turn.item_ids,
                    turn.scores,
                    lambda item_id: self.data.item(conversation.domain, item_id),
                    target,
                ),
            )
            yield view
            if not model.kinds:
                yield replace(view, narrative="*This model ranks items only; it writes no text.*")
                return
            narrated = kind if kind in model.kinds else model.kinds[0]
            if narrated != kind:
                # the reference beside it is of the kind shown
                view = replace(
                    view,
                    reference=self._view(conversation, narrated).reference,
                    message=render.note_box(
                        [f"{model_name} writes {', '.join(model.kinds)}: showing {narrated}."]
                    ),
                )
            title = self.data.item(conversation.domain, turn.top_item).get("title") or ""
            heading = f"**{narrated}** about #1, *{render.markdown_literal(title)}*:\n\n"
            for text in model.narrate(conversation.row(), turn.top_item, narrated):
                turn.narratives[narrated] = text
                yield replace(view, narrative=heading + text)
        except SpaceInputError as error:
            yield replace(view, message=render.error_box(str(error)))
        except UnknownModelError as error:
            yield replace(view, message=render.error_box(str(error)))
        except Exception as error:  # a model that fails: say which, log the traceback
            LOG.exception("model %s failed", model_name)
            yield replace(
                view,
                message=render.error_box(
                    f"{model_name} failed: {type(error).__name__}: {without_folders(str(error))}"
                ),
            )

    def critique(
        self,
        conversation: Conversation | None,
        text: str | None,
        model_name: str | None,
        kind: str | None,
    ) -> Iterator[View]:
        """The visitor's critique of the last recommendation joins the history and steers the
        next one."""
        try:
            if conversation is None:
                raise SpaceInputError("Pick a user and ask for a recommendation first.")
            turn = conversation.last_turn
            if turn is None:
                raise SpaceInputError("Ask for a recommendation first, then critique it.")
            before = copy.deepcopy(conversation)
            conversation.add_critique(text, self.data.item(conversation.domain, turn.top_item))
        except SpaceInputError as error:
            yield _as_it_was(conversation, render.error_box(str(error)))
            return
        turns = len(conversation.turns)
        for view in self.recommend(conversation, model_name, kind):
            yield view
        if len(conversation.turns) == turns:
            # Nothing was recommended (the model failed): the critique is taken back, so that
            # sending it again does not add the critiqued item to the history twice.
            vars(conversation).update(vars(before))
            restored = self._view(conversation, kind)
            yield replace(restored, ranking=None, narrative=None, message=view.message)

    # -- helpers ---------------------------------------------------------------------------

    def _model(self, domain: str, name: str):
        """The loaded model, its item vocabulary checked against the dataset's once."""
        model = self.registry.model(domain, name)
        if (domain, name) not in self._checked:
            vocabulary = getattr(model, "vocabulary", None)
            if vocabulary is not None:
                vocabulary.check_matches(
                    self.data.catalog(domain),
                    mine=f"{name} checkpoint",
                    theirs=f"dataset {self.data.folder} ({domain})",
                )
            self._checked.add((domain, name))
        return model

    def _view(self, conversation: Conversation | None, kind: str | None) -> View:
        if conversation is None:
            return View(None)
        return View(
            conversation,
            history=render.history_cards(conversation.history, conversation.critique),
            reference=render.reference_panel(
                conversation.target,
                conversation.reference,
                kind,
                critiqued=bool(conversation.rejected),
            ),
        )

    # -- the dataset tab -------------------------------------------------------------------

    def browse(self, domain: str, split: str, user_id: str | None) -> tuple[str, str, str, str]:
        """(history cards, next item, narratives, rater scores) of one row, or a message."""
        try:
            row = self.data.row(domain, user_id, split)
        except SpaceInputError as error:
            return render.error_box(str(error)), "", "", ""
        narratives = row.get("narratives") or {}
        return (
            render.history_cards(row["history"], row.get("critique")),
            render.item_card(row["target"]) if row.get("target") else "",
            render.narratives_panel({kind: narratives.get(kind) for kind in NARRATIVE_KINDS}),
            render.rater_panel(row.get("rater")),
        )
