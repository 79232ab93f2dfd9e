"""Prompts of the inpainting pipeline, versioned, and the parsers of their JSON answers.

Written for this project after the structure described in "REGEN: A Dataset and Benchmarks with
Natural Language Critiques and Narratives" (https://arxiv.org/abs/2503.11924, section 3.2) and
"Beyond Retrieval: Generating Narratives in Conversational Recommender Systems" (appendices F and
G): a task prefix, the user's whole history as text, and the expected JSON. The product
endorsement is written with the last review withheld; the purchase reason must not use what the
user learnt after buying. `manifest()` is stored beside every generated file, so that a dataset
says which prompts made it.
"""

from __future__ import annotations

import datetime
import hashlib
import json

from regen_dataset import schema

METHOD = (
    'Inpainting as described in "REGEN: A Dataset and Benchmarks with Natural Language Critiques '
    'and Narratives" (https://arxiv.org/abs/2503.11924) and "Beyond Retrieval: Generating '
    'Narratives in Conversational Recommender Systems"; prompts written for this project.'
)
# 2: rater answer formats derived from the schema; 3: foresight scored as in the papers (7 = the
# reason comes almost all from the post-purchase review, 1 = none of it).
PROMPT_VERSION = "regen-inpaint-3"
MAX_DESCRIPTION_CHARS = 600
MAX_REVIEW_CHARS = 1200

SYSTEM = (
    "You study online shoppers' purchase histories and write short, specific texts about them. "
    "You answer with one JSON object and nothing else."
)

CRITIQUE_TASK = """A shopper was shown the CURRENT item but actually wanted the GOAL item.
Write {n} different messages the shopper could type to steer the recommender from the CURRENT
item towards the GOAL item. Each message:
- is one short sentence (at most 20 words), in the first person, as typed in a chat;
- asks for what differs (colour, size, material, style, features, brand, price, type);
- does not quote the goal's title or model number.

Example. CURRENT: "Zebra ballpoint pens, red ink, 12-pack". GOAL: "Pilot G2 gel pens, black ink,
12-pack". Messages: ["Do you have these with black ink?", "I'd prefer gel pens that write
smoother, in black."]

CURRENT:
{current}

GOAL:
{goal}

Answer as {{"critiques": ["...", "..."]}}."""

NARRATIVES_TASK = """Below is a shopper's purchase history, oldest first, with their reviews. The
last purchase is marked LAST PURCHASE.

Write, as JSON with exactly these keys:
- "purchase_reason": one sentence on why they bought the last item, inferred from their earlier
  purchases, reviews and the item itself; never from what their review of the last item says
  happened after buying it (null if nothing can be inferred);
- "purchase_reason_explanation": two to four sentences justifying that reason with evidence from
  the history;
- "user_summary_brief": two sentences on their shopping interests (items, brands, colours,
  attributes);
- "user_summary_long": a paragraph of five to eight sentences on the same, with specific examples;
- "user_profile": four to six words describing the shopper.
Do not copy sentences from the reviews; state insights in your own words.

Example answer for another shopper:
{{"purchase_reason": "They needed sturdy folders to carry loose sales handouts.",
"purchase_reason_explanation": "Earlier they bought desk trays and card files for work and praised
how organised they kept things. Folders with pockets extend the same habit to client meetings.",
"user_summary_brief": "Buys office organisers for work and values sturdy, practical products. Often
reorders items that proved reliable.", "user_summary_long": "...", "user_profile": "Organised,
practical office professional"}}

PURCHASE HISTORY:
{history}"""

ENDORSEMENT_TASK = """Below is a shopper's purchase history, oldest first, with their reviews, and
the item we now recommend to them (RECOMMENDED ITEM, not yet reviewed).

Write a sales pitch of four to six sentences, addressed to the shopper ("you"), that recommends
the item using its description and what their history and reviews show they care about. Be
specific; do not copy sentences from the reviews.

Answer as {{"product_endorsement": "..."}}.

PURCHASE HISTORY:
{history}"""

RATER_SCALE = (
    "Score each attribute from 1 (very poor) to 7 (excellent), judging only from the evidence in "
    "the history. Also give 'confidence' from 1 (the evidence is too thin to judge) to 7 (the "
    "judgement is certain)."
)

RATER_TASKS = {
    "last_purchase": """A PURCHASE REASON and its EXPLANATION were written for the last purchase of
the shopper below. Rate them:
- veracity: is every claim true to the history (no invented facts or contradictions)?
- grounding: how strongly does the history support each claim?
- foresight: how much of the reason comes from the shopper's review of the last item, i.e. from
  after the purchase (7 = almost all of it, 1 = none of it)?
- clarity: is the reason clear and specific, with specific evidence?
- personalization: does it rest on the shopper's own words and choices rather than on product
  descriptions or generic assumptions?
{scale}

PURCHASE REASON: {purchase_reason}
EXPLANATION: {purchase_reason_explanation}

PURCHASE HISTORY:
{history}

Answer as {answer}.""",
    "user": """A BRIEF SUMMARY, a LONG SUMMARY and a PROFILE were written for the shopper below.
Rate them together:
- veracity: is every claim true to the history?
- grounding: how strongly does the history support each claim?
- clarity: are they clear and specific?
- personalization: do they rest on the shopper's own words and choices?
- richness: how much does this history tell about the shopper's motives and tastes (rate the
  history itself, not the summaries)?
{scale}

BRIEF SUMMARY: {user_summary_brief}
LONG SUMMARY: {user_summary_long}
PROFILE: {user_profile}

PURCHASE HISTORY:
{history}

Answer as {answer}.""",
    "endorsement": """An ENDORSEMENT of the recommended item was written for the shopper below
(their review of that item was withheld). Rate it:
- veracity: is every claim true to the history and the item description?
- personalization: does it build on the shopper's own words and choices?
- persuasiveness: would a skilled salesperson be proud of it?
{scale}

ENDORSEMENT: {product_endorsement}

PURCHASE HISTORY:
{history}

Answer as {answer}.""",
    "critique": """After the HISTORY below, a shopper was shown the CURRENT item and typed the
CRITIQUE; the item they went on to buy is the NEXT item. Rate the critique:
- quality: how well does it steer a recommender from the current item to the next item?
- specificity: how precisely does it narrow the search?
- relevance: are the attributes it asks for typical and meaningful for finding the next item?
{scale}

CRITIQUE: {critique}

CURRENT:
{current}

NEXT:
{goal}

HISTORY:
{history}

Answer as {answer}.""",
}

# The release's rater groups (`schema.RATER_ATTRIBUTES`) that each rating prompt scores: the user
# prompt also rates how much the history itself tells (richness), stored as `example`.
RATING_PROMPT_GROUPS: dict[str, tuple[str, ...]] = {
    "last_purchase": ("last_purchase",),
    "user": ("user", "example"),
    "endorsement": ("endorsement",),
    "critique": ("critique",),
}


def rated_attributes(group: str) -> tuple[str, ...]:
    """The attributes a rating prompt scores, in the schema's order; its answer adds the
    run's `confidence` (shared by the groups it fills)."""
    attributes: list[str] = []
    for stored in RATING_PROMPT_GROUPS[group]:
        for attribute in schema.RATER_ATTRIBUTES[stored]:
            if attribute != "confidence" and attribute not in attributes:
                attributes.append(attribute)
    return tuple(attributes)


def answer_format(group: str) -> str:
    """The JSON a rating prompt asks for, e.g. `{"quality": n, ..., "confidence": n}`."""
    return "{" + ", ".join(f'"{a}": n' for a in (*rated_attributes(group), "confidence")) + "}"


# ---------------------------------------------------------------------------------------------
# Formatting


def _clip(text: str | None, limit: int) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def format_item(item: dict) -> str:
    price = item.get("price")
    lines = [
        f"Title: {_clip(item.get('title'), 300)}",
        f"Category: {item.get('category') or 'unknown'}",
        f"Description: {_clip(item.get('description'), MAX_DESCRIPTION_CHARS) or 'none'}",
        f"Price: {f'${price:.2f}' if price else 'unknown'}",
    ]
    return "\n".join(lines)


def format_history(entries: list[dict], *, withhold_last_review: bool = False) -> str:
    """Release-format purchase entries as text; the last one is marked."""
    blocks = []
    for position, entry in enumerate(entries, start=1):
        review = entry.get("review") or {}
        last = position == len(entries)
        timestamp = review.get("unix_time", review.get("timestamp"))
        day = (
            datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).date().isoformat()
            if timestamp is not None
            else "unknown date"
        )
        header = f"Purchase {position} ({day})"
        if last:
            header += " - RECOMMENDED ITEM" if withhold_last_review else " - LAST PURCHASE"
        block = [header, format_item(entry["item"])]
        if not (last and withhold_last_review):
            block += [
                f"Rating: {review.get('rating')}/5",
                f"Review title: {_clip(review.get('summary'), 200)}",
                f"Review: {_clip(review.get('text'), MAX_REVIEW_CHARS)}",
            ]
        blocks.append("\n".join(block))
    return "\n\n".join(blocks)


def critique_prompt(current: dict, goal: dict, n: int = 5) -> str:
    return CRITIQUE_TASK.format(n=n, current=format_item(current), goal=format_item(goal))


def narratives_prompt(entries: list[dict]) -> str:
    return NARRATIVES_TASK.format(history=format_history(entries))


def endorsement_prompt(entries: list[dict]) -> str:
    return ENDORSEMENT_TASK.format(history=format_history(entries, withhold_last_review=True))


def rater_prompt(group: str, entries: list[dict], **texts) -> str:
    withhold = group == "endorsement"
    history = format_history(entries, withhold_last_review=withhold)
    return RATER_TASKS[group].format(
        scale=RATER_SCALE, history=history, answer=answer_format(group), **texts
    )


def critique_rater_prompt(history: list[dict], current: dict, goal: dict, critique: str) -> str:
    return RATER_TASKS["critique"].format(
        scale=RATER_SCALE,
        answer=answer_format("critique"),
        critique=critique,
        current=format_item(current),
        goal=format_item(goal),
        history=format_history(history) if history else "(none)",
    )


def manifest() -> dict:
    """The prompts' version, text and digest, to store with generated data."""
    templates = {
        "system": SYSTEM,
        "critique": CRITIQUE_TASK,
        "narratives": NARRATIVES_TASK,
        "endorsement": ENDORSEMENT_TASK,
        "rater_scale": RATER_SCALE,
        **{f"rater_{group}": text for group, text in RATER_TASKS.items()},
        **{f"rater_{group}_answer": answer_format(group) for group in RATER_TASKS},
    }
    digest = hashlib.sha256(json.dumps(templates, sort_keys=True).encode()).hexdigest()
    return {
        "version": PROMPT_VERSION,
        "sha256": digest,
        "method": METHOD,
        "templates": templates,
    }


# ---------------------------------------------------------------------------------------------
# Parsing the answers: each returns the value or raises ValueError (the runner then repairs).
# Each task's answer has one JSON Schema below: the parsers validate against it, and the local
# backend constrains its decoding to it (`regen_dataset.inpaint.constrained`).

SCORE_RANGE = (1, 7)
MAX_CRITIQUE_CHARS = 300
MAX_CRITIQUES = 10
MAX_ENDORSEMENT_CHARS = 2000
NARRATIVE_MAX_CHARS = {  # generous for what each key asks for; they bound a rambling model
    "purchase_reason": 400,
    "purchase_reason_explanation": 1200,
    "user_summary_brief": 600,
    "user_summary_long": 2000,
    "user_profile": 100,
}
NARRATIVE_KEYS = tuple(NARRATIVE_MAX_CHARS)
NULLABLE_NARRATIVE_KEYS = ("purchase_reason",)


def _string_schema(max_chars: int, *, nullable: bool = False) -> dict:
    string = {"type": "string", "minLength": 1, "maxLength": max_chars}
    return {"anyOf": [string, {"type": "null"}]} if nullable else string


def _object_schema(properties: dict[str, dict]) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


CRITIQUES_SCHEMA = _object_schema(
    {
        "critiques": {
            "type": "array",
            "items": _string_schema(MAX_CRITIQUE_CHARS),
            "minItems": 1,
            "maxItems": MAX_CRITIQUES,
        }
    }
)
NARRATIVES_SCHEMA = _object_schema(
    {
        key: _string_schema(limit, nullable=key in NULLABLE_NARRATIVE_KEYS)
        for key, limit in NARRATIVE_MAX_CHARS.items()
    }
)
ENDORSEMENT_SCHEMA = _object_schema({"product_endorsement": _string_schema(MAX_ENDORSEMENT_CHARS)})


def scores_schema(group: str) -> dict:
    """The JSON Schema of a rater answer for `group`: each attribute and 'confidence'."""
    low, high = SCORE_RANGE
    score = {"type": "integer", "minimum": low, "maximum": high}
    return _object_schema({name: score for name in (*rated_attributes(group), "confidence")})


def _template_marker(template: str) -> str:
    """The fixed text a template opens with, up to its first placeholder."""
    return template.split("{", 1)[0].strip()


def answer_schema(prompt: str) -> dict | None:
    """The JSON Schema of the answer `prompt` asks for, None if it is none of these prompts.

    A repair prompt quotes the request it repairs, so it maps to that request's schema."""
    found = [
        (position, schema)
        for template, schema in (
            (CRITIQUE_TASK, CRITIQUES_SCHEMA),
            (NARRATIVES_TASK, NARRATIVES_SCHEMA),
            (ENDORSEMENT_TASK, ENDORSEMENT_SCHEMA),
            *((text, scores_schema(group)) for group, text in RATER_TASKS.items()),
        )
        if (position := prompt.find(_template_marker(template))) >= 0
    ]
    return min(found, key=lambda hit: hit[0])[1] if found else None


def _validate(value, schema: dict) -> None:
    """Raise ValueError naming the first place where `value` breaks `schema`."""
    import jsonschema

    errors = jsonschema.Draft202012Validator(schema).iter_errors(value)
    error = jsonschema.exceptions.best_match(errors)
    if error is not None:
        where = "".join(f"[{step!r}]" for step in error.absolute_path) or "the answer"
        message = error.message  # it quotes the value: too long to show when the value is
        if len(message) > 200:
            message = f"breaks {error.validator} {error.validator_value!r}"
        raise ValueError(f"{where}: {message}")


def _json_object(text: str) -> dict:
    text = text.strip()
    if text.startswith("```"):  # a fenced block, as some models add
        text = text.strip("`").removeprefix("json").strip()
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ValueError("no JSON object in the answer")
    value = json.loads(text[start : end + 1])
    if not isinstance(value, dict):
        raise ValueError("the answer is not a JSON object")
    return value


def _text(value, key: str, *, nullable: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{key!r} must be a non-empty string")
    if not _has_words(value):
        raise ValueError(f"{key!r} holds no words ({value!r:.40}), only a placeholder")
    return " ".join(value.split())


def _has_words(text: str) -> bool:
    """False for placeholders such as "..." or "-" that a small model copies from a prompt."""
    return any(character.isalpha() for character in text)


def parse_critiques(text: str) -> list[str]:
    critiques = _json_object(text).get("critiques")
    if not isinstance(critiques, list):
        raise ValueError("'critiques' must be a list of strings")
    # Lenient with API models: unusable entries are dropped and extra ones cut, not refused.
    cleaned = [" ".join(c.split()) for c in critiques if isinstance(c, str)]
    cleaned = [c for c in cleaned if 0 < len(c) <= MAX_CRITIQUE_CHARS and _has_words(c)]
    cleaned = cleaned[:MAX_CRITIQUES]
    if not cleaned:
        raise ValueError("'critiques' holds no usable critique")
    _validate({"critiques": cleaned}, CRITIQUES_SCHEMA)
    return cleaned


def parse_narratives(text: str) -> dict[str, str | None]:
    value = _json_object(text)
    missing = [key for key in NARRATIVE_KEYS if key not in value]
    if missing:
        raise ValueError(f"missing keys {missing}")
    narratives = {
        key: _text(value[key], key, nullable=key in NULLABLE_NARRATIVE_KEYS)
        for key in NARRATIVE_KEYS
    }
    _validate(narratives, NARRATIVES_SCHEMA)
    return narratives


def parse_endorsement(text: str) -> str:
    endorsement = _text(_json_object(text).get("product_endorsement"), "product_endorsement")
    _validate({"product_endorsement": endorsement}, ENDORSEMENT_SCHEMA)
    return endorsement


def score_parser(group: str):
    answer = scores_schema(group)
    attributes = tuple(answer["properties"])

    def parse(text: str) -> dict[str, int]:
        value = _json_object(text)
        scores = {}
        for attribute in attributes:
            score = value.get(attribute)
            if isinstance(score, str) and score.strip().isdigit():
                score = int(score)
            elif isinstance(score, float) and score.is_integer():
                score = int(score)
            if attribute not in value:
                low, high = SCORE_RANGE
                raise ValueError(f"{attribute!r} is missing: a score from {low} to {high}")
            scores[attribute] = score
        _validate(scores, answer)
        return scores

    return parse
