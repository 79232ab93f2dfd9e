"""HTML for the Space's panels: history cards, the ranking, the reference, messages. Every text
from the data or the visitor is escaped."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from html import escape

from regen_models.prompts import clip, format_price

REVIEW_EXCERPT = 240

CSS = """
.regen-cards {display: flex; flex-wrap: wrap; gap: 8px;}
.regen-card {border: 1px solid #ccc; border-radius: 8px; padding: 8px; width: 230px;
  font-size: 0.85em; background: var(--block-background-fill);}
.regen-card .title {font-weight: bold;}
.regen-card .category {color: #777; font-size: 0.9em;}
.regen-card .critique {margin-top: 4px; padding: 4px; border-left: 3px solid #e08a00;}
.regen-card.seen {border-style: dashed;}
.regen-error {border: 1px solid #c62828; background: #fdecea; color: #8e0000;
  padding: 8px; border-radius: 6px;}
.regen-note {border: 1px solid #999; padding: 6px; border-radius: 6px; font-size: 0.9em;}
.regen-ranking td, .regen-ranking th {padding: 2px 6px; font-size: 0.85em;}
.regen-ranking tr.target {background: #e6f4ea;}
"""


ERROR_CLASS = "regen-error"
# Characters that Markdown (and the HTML it lets through) would read as markup.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


def markdown_literal(text: str) -> str:
    """`text` as itself inside Markdown: a product title such as `[Free gift](https://...)` or
    `<img src=...>` shows as typed, not as a link or an image."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", escape(text, quote=False))


def error_box(message: str) -> str:
    return f'<div class="{ERROR_CLASS}" role="alert">{escape(message)}</div>'


def note_box(lines: Sequence[str]) -> str:
    if not lines:
        return ""
    items = "".join(f"<li>{escape(line)}</li>" for line in lines)
    return f'<div class="regen-note"><ul>{items}</ul></div>'


def _stars(rating) -> str:
    if rating is None:
        return "not rated (seen in this conversation)"
    return f"{'★' * round(rating)}{'☆' * (5 - round(rating))} {rating:g}/5"


def item_card(purchase: Mapping, position: int | None = None) -> str:
    review = " ".join(
        part for part in (purchase.get("review_title"), purchase.get("review_text")) if part
    )
    lines = [
        f'<div class="title">{escape(clip(purchase.get("title") or "(no title)", 120))}</div>',
        f'<div class="category">'
        f"{escape(' > '.join(purchase.get('categories') or []) or 'no category')}</div>",
        f"<div>{escape(purchase['item_id'])} · {escape(format_price(purchase.get('price')))}</div>",
        f"<div>{escape(_stars(purchase.get('rating')))}</div>",
    ]
    if review:
        lines.append(f"<div><i>{escape(clip(review, REVIEW_EXCERPT))}</i></div>")
    if purchase.get("critique"):
        lines.append(f'<div class="critique">Critique: {escape(purchase["critique"])}</div>')
    seen = " seen" if purchase.get("rating") is None else ""
    number = f"#{position} " if position is not None else ""
    return (
        f'<div class="regen-card{seen}" data-item="{escape(purchase["item_id"])}">'
        f"<div>{number}</div>{''.join(lines)}</div>"
    )


def history_cards(history: Sequence[Mapping], critique: str | None) -> str:
    if not history:
        return '<div class="regen-note">No purchases yet: pick a user or add catalog items.</div>'
    cards = "".join(item_card(purchase, n + 1) for n, purchase in enumerate(history))
    steering = ""
    if critique:
        steering = (
            f'<div class="regen-card critique" id="regen-steering">Critique steering the next '
            f"recommendation: <b>{escape(critique)}</b></div>"
        )
    return f'<div class="regen-cards">{cards}{steering}</div>'


def ranking_table(
    item_ids: Sequence[str],
    scores: Sequence[float],
    item: Callable[[str], Mapping],
    target_id: str | None,
) -> str:
    rows = []
    for rank, (item_id, score) in enumerate(zip(item_ids, scores, strict=True), start=1):
        details = item(item_id)
        hit = item_id == target_id
        mark = " ✓ the true next item" if hit else ""
        rows.append(
            f'<tr class="{"target" if hit else ""}" data-item="{escape(item_id)}">'
            f"<td>{rank}</td><td>{escape(item_id)}</td>"
            f"<td>{escape(clip(details.get('title') or '', 90))}{mark}</td>"
            f"<td>{escape(' > '.join((details.get('categories') or [])[-2:]))}</td>"
            f"<td>{score:.3f}</td></tr>"
        )
    return (
        '<table class="regen-ranking" id="regen-ranking"><thead><tr><th>#</th><th>item</th>'
        "<th>title</th><th>category</th><th>score</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


NO_TARGET_AFTER_CRITIQUE = (
    "After a critique of your own the dataset has no true next item nor a reference narrative: "
    "they answer the dataset's critique, not yours."
)
NO_TARGET_COMPOSED = "A history composed from the catalog has no true next item to compare with."


def reference_panel(
    target: Mapping | None,
    reference: Mapping[str, str],
    kind: str | None,
    critiqued: bool = False,
) -> str:
    """The dataset's next item and reference narrative; where there is none, why."""
    if target is None:
        why = NO_TARGET_AFTER_CRITIQUE if critiqued else NO_TARGET_COMPOSED
        return f'<div class="regen-note" id="regen-reference">{escape(why)}</div>'
    parts = ["<div><b>True next item</b></div>", item_card(target)]
    text = reference.get(kind) if kind else None
    if text:
        parts.append(f"<div><b>Reference {escape(kind)}</b></div><div>{escape(text)}</div>")
    elif reference:
        parts.append('<div class="regen-note">No reference narrative of this kind.</div>')
    return f'<div id="regen-reference">{"".join(parts)}</div>'


def narratives_panel(narratives: Mapping[str, str | None]) -> str:
    rows = "".join(
        f"<tr><td><b>{escape(kind)}</b></td><td>{escape(text or '(none)')}</td></tr>"
        for kind, text in narratives.items()
    )
    return f"<table>{rows}</table>"


def rater_panel(rater: Mapping | None) -> str:
    scored = {
        group: {
            attribute: value for attribute, value in (values or {}).items() if value is not None
        }
        for group, values in (rater or {}).items()
    }
    scored = {group: values for group, values in scored.items() if values}
    if not scored:
        return '<div class="regen-note">No auto-rater scores on this row.</div>'
    cells = "".join(
        f"<tr><td>{escape(group)}</td><td>{escape(attribute)}</td><td>{value}</td></tr>"
        for group, values in scored.items()
        for attribute, value in values.items()
    )
    return f"<table><tr><th>group</th><th>attribute</th><th>score</th></tr>{cells}</table>"
