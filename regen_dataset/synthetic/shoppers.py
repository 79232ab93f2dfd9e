"""Synthetic shoppers: a taste that drifts, and the purchase sequence it produces.

Each step after the first is one of:
- *repeat*: a consumable the user bought and liked before, bought again (never back to back);
- *similar*: another item in the same four-level category as the previous one, differing in one
  or two attributes (the pairs that carry a critique);
- *complement*: something that goes with the previous item (its toner, the shoes for the dress),
  most often one of that item's own companions;
- *browse*: an item from one of the user's current interests, or from a popular leaf.
Within a leaf, candidates are drawn by popularity and the one that fits the user's taste best is
bought, so popular items stay popular and taste still shows. Interests, colours and brands drift
slowly with what the user bought and liked. Ratings depend on how well the item fits the taste,
on the item's own quality and on how generous the user is.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from regen_dataset.synthetic.catalog import COLOURS, SIZES, STYLES, USES, Catalog, Item

# Step probabilities after the first purchase: (repeat, similar, complement); the rest is browse.
STEP_CHANCES = {"office": (0.10, 0.14, 0.36), "clothing": (0.06, 0.15, 0.36)}
COMPANION_CHANCE = 0.75  # a complement step buys one of the previous item's own companions
ALTERNATIVE_CHANCE = 0.55  # a similar step buys one of the previous item's alternatives
DRIFT_CHANCE = 0.12  # per step, one interest is replaced
FIRST_DAY = 1_230_768_000  # 2009-01-01
LAST_DAY = 1_538_352_000  # 2018-10-01: the Amazon Reviews 2018 data ends in October 2018
DAY = 86_400


@dataclass
class Shopper:
    audience: str | None  # "Women" or "Men" for clothing
    interests: list[int]  # leaf indices
    brands: list[str]
    colours: list[str]
    size: str
    style: str
    budget: float  # the price they are comfortable with
    generosity: float  # shifts every rating they give
    uses: list[str]  # what they buy for, most important first


@dataclass
class Purchase:
    item: Item
    step: str  # first, repeat, similar, complement, browse
    fit: float  # 0..1, how well the item fits the taste at the time
    rating: int = 0
    timestamp: int = 0


def make_shopper(catalog: Catalog, rng: random.Random) -> Shopper:
    category = catalog.category
    audience = None
    if category == "clothing":
        audience = "Women" if rng.random() < 0.68 else "Men"
    shopper = Shopper(
        audience=audience,
        interests=[],
        brands=[],
        colours=rng.sample([c for c in COLOURS[category] if c != "Assorted Colors"], 2),
        size=rng.choices(SIZES[category], weights=(1, 4, 6, 5, 3, 1))[0],
        style=rng.choice(STYLES[category]),
        budget=rng.lognormvariate(2.9, 0.6),
        generosity=rng.gauss(0.0, 0.45),
        uses=rng.sample(USES[category], 2),
    )
    while len(shopper.interests) < 3:
        leaf = _audience_leaf(catalog, shopper, rng)
        if leaf not in shopper.interests:
            shopper.interests.append(leaf)
    shopper.brands = list(
        dict.fromkeys(
            catalog.items[catalog.leaf_pools[leaf].draw(rng)].brand
            for leaf in shopper.interests[:2]
        )
    )
    return shopper


def _audience_leaf(catalog: Catalog, shopper: Shopper, rng: random.Random) -> int:
    for _ in range(4):
        leaf = catalog.leaf_pool.draw(rng)
        if shopper.audience is None or catalog.leaves[leaf].path[1] == shopper.audience:
            return leaf
    return leaf


def fit(item: Item, shopper: Shopper) -> float:
    price_fit = 0.5 if not item.price else (1.0 if item.price <= 1.3 * shopper.budget else 0.0)
    return (
        0.3 * (item.brand in shopper.brands)
        + 0.25 * (item.colour in shopper.colours)
        + 0.2 * (item.style == shopper.style)
        + 0.15 * price_fit
        + 0.1 * (item.size == shopper.size)
    )


def _choose(catalog: Catalog, shopper: Shopper, leaf: int, rng: random.Random, avoid: int):
    """The best-fitting of a few popularity-drawn candidates of a leaf (not `avoid`)."""
    pool = catalog.leaf_pools[leaf]
    best, best_score = None, -1.0
    for _ in range(4):
        index = pool.draw(rng)
        if index == avoid:
            continue
        score = fit(catalog.items[index], shopper) + 0.35 * rng.random()
        if score > best_score:
            best, best_score = index, score
    if best is None:  # every draw was the item to avoid
        members = catalog.by_leaf[leaf]
        best = (
            members[(members.index(avoid) + 1) % len(members)] if avoid in members else members[0]
        )
    return best


def _pick(options: tuple[int, ...], rng: random.Random) -> int:
    """Earlier options are likelier (they were drawn by popularity first)."""
    weights = (0.55, 0.3, 0.15, 0.1)[: len(options)]
    return rng.choices(options, weights=weights)[0]


def _next(catalog, shopper, purchases, rng) -> tuple[int, str]:
    previous = purchases[-1].item
    repeat, similar, complement = STEP_CHANCES[catalog.category]
    draw = rng.random()
    if draw < repeat:
        liked = [
            p.item.index
            for p in purchases[:-1]
            if catalog.leaves[p.item.leaf].consumable
            and p.rating >= 4
            and p.item.index != previous.index
        ]
        if liked:
            return liked[-1] if rng.random() < 0.7 else rng.choice(liked), "repeat"
    elif draw < repeat + similar:
        options = tuple(i for i in previous.alternatives if i != previous.index)
        if options and rng.random() < ALTERNATIVE_CHANCE:
            return _pick(options, rng), "similar"
        # A refinement goes where the critique points, not to the bestseller: any item of a
        # sibling leaf that fits the taste.
        members = catalog.by_leaf[rng.choice(catalog.group_leaves[previous.leaf])]
        candidates = [members[int(rng.random() * len(members))] for _ in range(4)]
        candidates = [i for i in candidates if i != previous.index] or [members[0]]
        return max(candidates, key=lambda i: fit(catalog.items[i], shopper)), "similar"
    elif draw < repeat + similar + complement and catalog.complement_leaves[previous.leaf]:
        if previous.companions and rng.random() < COMPANION_CHANCE:
            return _pick(previous.companions, rng), "complement"
        leaf = rng.choice(catalog.complement_leaves[previous.leaf])
        return _choose(catalog, shopper, leaf, rng, previous.index), "complement"
    if rng.random() < 0.75:
        # Another interest than the one just served, when there is one.
        others = [
            leaf
            for leaf in shopper.interests
            if catalog.leaves[leaf].path[:4] != catalog.leaves[previous.leaf].path[:4]
        ]
        leaf = rng.choice(others or shopper.interests)
    else:
        leaf = _audience_leaf(catalog, shopper, rng)
        if catalog.leaves[leaf].path[:4] == catalog.leaves[previous.leaf].path[:4]:
            leaf = _audience_leaf(catalog, shopper, rng)
    return _choose(catalog, shopper, leaf, rng, previous.index), "browse"


def rate(item: Item, taste_fit: float, shopper: Shopper, rng: random.Random) -> int:
    score = 4.2 + shopper.generosity + 1.8 * (taste_fit - 0.35) + item.quality
    return max(1, min(5, round(score + rng.gauss(0.0, 0.75))))


def _drift(catalog: Catalog, shopper: Shopper, purchase: Purchase, rng: random.Random) -> None:
    """Tastes follow what the user bought and liked, slowly."""
    if rng.random() < DRIFT_CHANCE:
        leaf = purchase.item.leaf
        followers = catalog.complement_leaves[leaf]
        new = rng.choice(followers) if followers and rng.random() < 0.5 else leaf
        if new not in shopper.interests:
            shopper.interests[int(rng.random() * len(shopper.interests))] = new
    if purchase.rating >= 4 and rng.random() < 0.1 and purchase.item.colour != "Assorted Colors":
        if purchase.item.colour not in shopper.colours:
            shopper.colours[int(rng.random() * len(shopper.colours))] = purchase.item.colour
    if purchase.rating == 5 and purchase.item.brand not in shopper.brands:
        shopper.brands = [purchase.item.brand, *shopper.brands][:3]


def purchases(catalog: Catalog, shopper: Shopper, length: int, rng: random.Random):
    """A user's purchases, oldest first, with ratings and timestamps."""
    first = _choose(catalog, shopper, shopper.interests[0], rng, -1)
    steps = [(first, "first")]
    out: list[Purchase] = []
    bought: set[int] = set()
    for position in range(length):
        if position:
            # Only consumables are bought twice, and only on a repeat step.
            for _ in range(4):
                index, step = _next(catalog, shopper, out, rng)
                if step == "repeat" or index not in bought:
                    break
            else:
                index = _unbought(catalog, catalog.items[index].leaf, bought, rng)
            steps.append((index, step))
        index, step = steps[-1]
        item = catalog.items[index]
        taste_fit = fit(item, shopper)
        purchase = Purchase(item, step, taste_fit, rate(item, taste_fit, shopper, rng))
        out.append(purchase)
        bought.add(index)
        _drift(catalog, shopper, purchase, rng)
    _stamp(out, rng)
    return out


def _unbought(catalog: Catalog, leaf: int, bought: set[int], rng: random.Random) -> int:
    """An item of `leaf` the user has not bought yet (of any leaf, if they bought them all)."""
    fresh = [i for i in catalog.by_leaf[leaf] if i not in bought]
    while not fresh:
        fresh = [
            i for i in catalog.by_leaf[int(rng.random() * len(catalog.leaves))] if i not in bought
        ]
    return fresh[int(rng.random() * len(fresh))]


def _stamp(out: list[Purchase], rng: random.Random) -> None:
    """Days between purchases, the whole sequence placed between 2009 and October 2018."""
    gaps = [int(rng.expovariate(1 / 55)) + 1 for _ in out[1:]]
    span = sum(gaps)
    room = (LAST_DAY - FIRST_DAY) // DAY
    if span > room:
        gaps = [max(1, gap * room // span) for gap in gaps]
        span = sum(gaps)
    latest_start = LAST_DAY // DAY - span
    start = max(FIRST_DAY // DAY, latest_start - int(rng.expovariate(1 / 700)))
    day = start
    for purchase, gap in zip(out, [0, *gaps], strict=True):
        day = min(day + gap, LAST_DAY // DAY)
        purchase.timestamp = day * DAY
