"""Reviews and critiques in varied words, grounded in the item and the shopper.

A review's tone follows its rating; it names the use the shopper bought the item for (most of the
time), and talks about the colour, material and size of the item itself. The use it names is
returned, so that the narratives can cite what the reviews actually say.

A critique is worded as an LLM asked for one would word it: it names one or two of the attributes
that change towards the next item, not all of them; sometimes explicitly ("in navy"), sometimes
vaguely ("something darker"), sometimes by what the user disliked about the current item ("the
plastic felt flimsy"); a few are noisy (they ask for something the next item is not).
"""

from __future__ import annotations

import math
import random

from regen_dataset.synthetic.catalog import COLOURS, MATERIALS, SIZES, Catalog, Item
from regen_dataset.synthetic.shoppers import Shopper
from regen_dataset.synthetic.wording import fragment, render, render_one

NOISE_CHANCE = 0.07

_TITLES = {
    5: (
        "{Exactly what I needed|Love it|Works perfectly|Five stars|Highly recommend|"
        "Great buy|So happy with this|Perfect|Better than expected|A keeper}",
    ),
    4: (
        "{Very good|Nice quality|Good value|Pretty great|Solid choice|Does the job well|"
        "Happy with it|Good, with one small quibble|Would buy again}",
    ),
    3: ("{It's okay|Does the job|Mixed feelings|Average|Not bad, not great|Fine for the price}",),
    2: ("{Disappointed|Not as described|Meh|Could be better|Expected more}",),
    1: ("{Would not buy again|Returned it|Poor quality|Do not buy|Waste of money}",),
}
_GOOD = (
    "{I bought|I ordered|I picked up|Got} [this] for [use] and {it has been great|it does "
    "exactly what I wanted|I am very happy with it|it has worked out well}. ",
    "{Bought|Ordered|Picked up} [this] for [use]; {no complaints so far|it does the job nicely|"
    "very pleased with it}. ",
    "{I have liked [brand] before|This was my first time trying [brand]} and [this] {did not "
    "disappoint|lives up to the reviews|is a winner}. ",
    "{Really|Very|So} {happy|pleased} with [this]. ",
)
_GOOD_LOOKS = (
    "The [colour] {looks even better in person|is exactly as pictured|is a lovely shade} and the "
    "[material] feels {solid|well made|[quality]}. ",
    "{Nice|Good|Great} [quality] [material], and the [colour] {matches|goes with} {the rest of my "
    "things|what I already have|everything}. ",
    "{The finish is clean|It is well put together}, and I {like|love} the [colour]. ",
)
_GOOD_SIZE = {
    "clothing": (
        "{The [size] fits true to size|I ordered my usual [size] and it fits well|Sizing is "
        "accurate; the [size] was right for me}. ",
        "{It washes well|It held up in the wash|Comfortable all day} and the [size] {is spot on|"
        "fits nicely}. ",
    ),
    "office": (
        "{The [size] is plenty for me|The [size] was the right amount|The [size] lasts a good "
        "while}. ",
        "{Setup took a minute|It was ready to use out of the box} and the [size] {is a good "
        "deal|was worth it}. ",
    ),
}
_GOOD_CLOSE = (
    "{Would buy again|I would recommend it|Will order more|Great value for the price|"
    "I use it almost every day now|No regrets}.",
)
_MIXED = (
    "[this] is {fine|okay|decent} for [use], but {nothing special|not amazing|I expected a bit "
    "more}. The [material] is {a little thinner than|less sturdy than|not as [quality] as} I "
    "expected{ and the [colour] is duller than the photos|}. ",
    "{It works|It does the job} for [use], {though|but} the [material] {feels cheap in places|"
    "is not as [quality] as described}. {The [colour] is fine.|The [colour] is a bit off.|} ",
)
_MIXED_SIZE = {
    "clothing": ("The [size] runs {a little small|slightly large|a bit snug}. ",),
    "office": ("The [size] is {more than I need|a bit small for the price}. ",),
}
_MIXED_CLOSE = (
    "{For the price it is acceptable|It will do for now|I might try another brand next time|"
    "Three stars feels fair}.",
)
_BAD = (
    "I wanted to like [this] for [use], but {it did not work out|it let me down|it was a "
    "letdown}. The [material] {started to wear|felt cheap|came apart} {within days|after a week|"
    "almost right away}. ",
    "{Sadly|Unfortunately}, [this] {did not hold up|was not what I hoped for}. The [colour] "
    "{was not what the pictures showed|looked faded} and the [material] {felt flimsy|was rough}. ",
)
_BAD_SIZE = {
    "clothing": ("The [size] {runs much smaller than listed|fits nothing like the chart}. ",),
    "office": ("{It jammed twice|The [size] arrived damaged|Half of them did not work}. ",),
}
_BAD_CLOSE = (
    "{I expected better from [brand]|Returned it|Would not buy again|Not worth the money}.",
)


def _joined(*slots: tuple[str, ...]) -> str:
    """One pattern from slots of alternatives, rendered in one pass."""
    return " ".join("{" + "|".join(option.strip() for option in slot) + "}" for slot in slots)


_REVIEW = {
    (mood, category): _joined(*slots)
    for category in ("office", "clothing")
    for mood, slots in (
        ("good", (_GOOD, _GOOD_LOOKS, _GOOD_SIZE[category], _GOOD_CLOSE)),
        ("mixed", (_MIXED, _MIXED_SIZE[category], _MIXED_CLOSE)),
        ("bad", (_BAD, _BAD_SIZE[category], _BAD_CLOSE)),
    )
}


def review(
    catalog: Catalog, item: Item, rating: int, shopper: Shopper, rng: random.Random
) -> tuple[str, str, str | None]:
    """(title, text, the use the text names or None)."""
    use = shopper.uses[0] if rng.random() < 0.6 else shopper.uses[-1]
    named = use if rng.random() < 0.75 else None
    values = {
        "this": f"this {catalog.leaves[item.leaf].phrase()}",
        "use": use if named else "everyday use",
        "brand": item.brand,
        "colour": item.colour.lower(),
        "material": item.material.lower(),
        "quality": MATERIALS[item.material],
        "size": item.size,
    }
    mood = "good" if rating >= 4 else "mixed" if rating == 3 else "bad"
    text = render(rng, _REVIEW[mood, catalog.category], values)
    if named and named not in text:  # not every pattern names the use
        named = None
    return render_one(rng, _TITLES[rating], values), text, named


# --- critiques ---------------------------------------------------------------------------------

_TONE_WORD = {"dark": "darker", "light": "lighter", "bright": "brighter", "neutral": "more neutral"}
_STYLE_WORD = {
    "casual": "more casual",
    "classic": "more classic",
    "sporty": "sportier",
    "dressy": "more formal",
    "bohemian": "more bohemian",
    "basic": "simpler",
    "professional": "more professional-looking",
    "colorful": "more colorful",
    "minimalist": "more minimal",
    "heavy-duty": "sturdier",
}
_WANT_ONE = (
    "{I'd like|I'm looking for|I'd prefer|I want} something [want]{.|, please.}",
    "{Could you show me|Do you have|Can you find me|Any chance of} something [want]?",
    "{Nice, but|Close, but|Not bad, but|Hmm,} {I'd like|I'd rather have|show me} something [want].",
    "{Looking for|After} something [want] {this time|now|for a change}.",
)
_AFTER_DISLIKE = (
    "[dislike]. {Something [want] would be better.|Do you have something [want]?|Maybe "
    "something [want]?|I'd like something [want] instead.}",
    "{Honestly,|To be honest,|Hmm,|} [dislike_lower]; {could you find|do you have} something "
    "[want]?",
)
_NOISE = (
    "{Is there anything with faster shipping?|Something my sister would like.|Do you have "
    "anything on sale?|Show me what else is popular.|Something that would make a good gift.}",
    "{Maybe|Could I see} something in [other_colour]?",
    "{I'd like|Show me} something {more playful|with more pockets|a little fancier}.",
)


_CHANGE = {  # attribute -> (wanted, after "something"; a sentence about the current item)
    "kind": (
        "{like [goal_kind]|a bit different in type|of another kind}",
        "{I'm not sure about [now_kind] after all|[Now_kind] aren't quite right for me}",
    ),
    "colour": (
        "{in [goal_colour]|[tone]|[tone]}",
        "{The [now_colour] was not for me|The [now_colour] looked off in person|I didn't love "
        "the color}",
    ),
    "brand": (
        "{from [goal_brand]|from a different brand|from a more reliable brand}",
        "{[now_brand] didn't hold up|I've had mixed luck with [now_brand]}",
    ),
    "material": (
        "{made of [goal_material]|in a [goal_quality] material|in a [goal_quality] material}",
        "{The [now_material] felt cheap|The [now_material] felt flimsy|I didn't like the material}",
    ),
    "size_up": ("{in [goal_size]|[size_step]|[size_step]}", "The [now_size] {[too_small]}"),
    "size_down": ("{in [goal_size]|[size_step]|[size_step]}", "The [now_size] {[too_big]}"),
    "style": (
        "[goal_style]",
        "{It was a little too [now_style] for me|The look was too [now_style]}",
    ),
    "cheaper": (
        "{under $[goal_price]|cheaper|a bit less expensive}",
        "{That one was too pricey|It was more than I wanted to spend}",
    ),
    "pricier": ("{of better quality, even if it costs more|a bit more premium}", ""),
}
_SIZE_WORDS = {
    "clothing": ("a size up", "a size down", "ran small", "ran large"),
    "office": ("in a bigger pack", "in a smaller pack", "ran out too fast", "was too much"),
}


def _changes(catalog: Catalog, current: Item, goal: Item) -> tuple[list[str], dict[str, str]]:
    """The attributes that change from `current` to `goal`, and the words to name them."""
    category = catalog.category
    changed = []
    if current.leaf != goal.leaf:
        changed.append("kind")
    if current.colour != goal.colour:
        changed.append("colour")
    if current.brand != goal.brand:
        changed.append("brand")
    if current.material != goal.material:
        changed.append("material")
    sizes = SIZES[category]
    up = sizes.index(goal.size) > sizes.index(current.size)
    if current.size != goal.size:
        changed.append("size_up" if up else "size_down")
    if current.style != goal.style:
        changed.append("style")
    if current.price and goal.price and goal.price < 0.8 * current.price:
        changed.append("cheaper")
    elif current.price and goal.price and goal.price > 1.25 * current.price:
        changed.append("pricier")
    tones = COLOURS[category]
    tone_now, tone_goal = tones[current.colour], tones[goal.colour]
    size_up, size_down, too_small, too_big = _SIZE_WORDS[category]
    now_kind = catalog.leaves[current.leaf].plural
    values = {
        "goal_kind": catalog.leaves[goal.leaf].plural,
        "now_kind": now_kind,
        "Now_kind": now_kind[:1].upper() + now_kind[1:],
        "goal_colour": goal.colour.lower(),
        "now_colour": current.colour.lower(),
        "tone": _TONE_WORD[tone_goal] if tone_goal != tone_now else "in a different color",
        "goal_brand": goal.brand,
        "now_brand": current.brand,
        "goal_material": goal.material.lower(),
        "goal_quality": MATERIALS[goal.material],
        "now_material": current.material.lower(),
        "goal_size": f"size {goal.size}" if category == "clothing" else f"the {goal.size}",
        "now_size": current.size,
        "size_step": size_up if up else size_down,
        "too_small": too_small,
        "too_big": too_big,
        "goal_style": _STYLE_WORD[goal.style],
        "now_style": current.style,
        "goal_price": str(math.ceil(goal.price)),
    }
    return changed, values


def _lower_first(sentence: str) -> str:
    """Lower-case a leading 'The', 'That' or 'It'; names and 'I' keep their capital."""
    first, _, rest = sentence.partition(" ")
    return f"{first.lower()} {rest}" if first in ("The", "That", "It") else sentence


def critique(catalog: Catalog, current: Item, goal: Item, rng: random.Random) -> str:
    """What a user says about `current` that steers towards `goal` (same 4-level category)."""
    changed, values = _changes(catalog, current, goal)
    if rng.random() < NOISE_CHANCE or not changed:
        others = [c for c in COLOURS[catalog.category] if c not in (goal.colour, "Assorted Colors")]
        return render_one(rng, _NOISE, {"other_colour": rng.choice(others).lower()})
    picked = rng.sample(changed, 2 if len(changed) > 1 and rng.random() < 0.35 else 1)
    values["want"] = " and ".join(fragment(rng, _CHANGE[name][0], values) for name in picked)
    dislike = _CHANGE[picked[0]][1]
    if dislike and rng.random() < 0.25:
        sentence = render(rng, dislike, values)
        values["dislike"] = sentence
        values["dislike_lower"] = _lower_first(sentence)
        return render_one(rng, _AFTER_DISLIKE, values)
    return render_one(rng, _WANT_ONE, values)
