"""Seeded synthetic REGEN data in Google's release format. SYNTHETIC: no real user is in it.

It exists so that everything runs without the Kaggle download: tests, the demo, and benchmarks at
the real sizes (`PAPER_SIZES`, seed 002 Table 1). It is built to be learnable:
- a catalog per category with category paths five levels deep (root first), invented brands,
  colours, sizes and materials, and realistic text lengths (title ~80 characters, description
  ~400, review ~300, so about 1 KB per interaction);
- users with consistent tastes (a few home categories, favourite brands, colours and a size);
- critiques only between adjacent items whose category paths match on at least four levels,
  worded from the attributes that change (colour, size, brand, subcategory, material, price),
  and the sentinel placeholder everywhere else;
- narratives and auto-rater scores from templates, under the release's keys.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

from tqdm.auto import tqdm

from regen_dataset.release import CRITIQUE_SENTINEL, SIMILAR_LEVELS
from regen_dataset.schema import RATER_ATTRIBUTES

PAPER_SIZES = {"office": (89_489, 27_887), "clothing": (1_168_735, 376_847)}  # users, items

_OFFICE_TREE = {
    "Office & School Supplies": {
        "Writing & Correction Supplies": {
            "Pens & Refills": ["Ballpoint Pens", "Gel Pens", "Rollerball Pens", "Fountain Pens"],
            "Markers & Highlighters": ["Highlighters", "Permanent Markers", "Dry Erase Markers"],
            "Pencils": ["Wood Pencils", "Mechanical Pencils", "Colored Pencils"],
        },
        "Paper": {
            "Notebooks & Writing Pads": ["Spiral Notebooks", "Legal Pads", "Composition Books"],
            "Sticky Notes": ["Standard Sticky Notes", "Sticky Flags", "Lined Sticky Notes"],
        },
        "Labels, Indexes & Stamps": {
            "Labels & Stickers": ["Address Labels", "Color Coding Labels", "Shipping Labels"],
            "Stamps & Stamp Supplies": ["Self-Inking Stamps", "Stamp Pads"],
        },
        "Desk Accessories & Workspace Organizers": {
            "Desk Organizers": ["Desktop Trays", "Pen Holders", "Drawer Organizers"],
            "Staplers & Punches": ["Desktop Staplers", "Hole Punches", "Staple Removers"],
        },
    },
    "Office Electronics": {
        "Printers & Accessories": {
            "Printers": ["Laser Printers", "Inkjet Printers", "Label Printers"],
            "Ink & Toner": ["Toner Cartridges", "Ink Cartridges"],
        },
        "Calculators": {"Calculators": ["Scientific Calculators", "Printing Calculators"]},
    },
    "Office Furniture & Lighting": {
        "Chairs & Sofas": {"Desk Chairs": ["Task Chairs", "Executive Chairs", "Drafting Chairs"]},
        "Lighting": {"Lamps": ["Desk Lamps", "Floor Lamps", "Clip-On Lamps"]},
    },
}

_CLOTHING_GROUPS = {
    "Clothing": {
        "Dresses": ["Casual Dresses", "Cocktail Dresses", "Maxi Dresses"],
        "Tops, Tees & Blouses": ["T-Shirts", "Blouses", "Tank Tops", "Henleys"],
        "Jeans": ["Skinny Jeans", "Straight Jeans", "Bootcut Jeans"],
        "Sweaters": ["Cardigans", "Pullovers", "Turtlenecks"],
        "Active": ["Leggings", "Track Jackets", "Sports Bras"],
    },
    "Shoes": {
        "Athletic": ["Running Shoes", "Training Shoes", "Walking Shoes"],
        "Boots": ["Ankle Boots", "Rain Boots", "Hiking Boots"],
        "Sandals": ["Flat Sandals", "Slides", "Heeled Sandals"],
    },
    "Accessories": {
        "Handbags & Wallets": ["Tote Bags", "Crossbody Bags", "Wallets"],
        "Hats & Caps": ["Baseball Caps", "Beanies", "Sun Hats"],
    },
    "Jewelry": {
        "Necklaces": ["Pendant Necklaces", "Chain Necklaces"],
        "Earrings": ["Stud Earrings", "Hoop Earrings"],
    },
}

_ROOTS = {"office": "Office Products", "clothing": "Clothing, Shoes & Jewelry"}
_COLOURS = {
    "office": ["Black", "Blue", "Red", "Green", "Silver", "White", "Gold", "Purple", "Assorted"],
    "clothing": [
        "Black",
        "Navy",
        "Heather Grey",
        "White",
        "Burgundy",
        "Olive",
        "Blush Pink",
        "Camel",
        "Royal Blue",
        "Ivory",
    ],
}
_SIZES = {
    "office": ["Single", "3-Pack", "6-Pack", "12-Pack", "24-Pack", "Bulk 50-Pack"],
    "clothing": ["XS", "S", "M", "L", "XL", "XXL"],
}
_MATERIALS = {
    "office": ["Plastic", "Aluminum", "Steel", "Bamboo", "Recycled", "Mesh"],
    "clothing": ["Cotton", "Linen", "Merino Wool", "Denim", "Leather", "Polyester Blend"],
}
_FEATURES = {
    "office": [
        "Quick-Dry Ink",
        "Ergonomic Grip",
        "Smudge Resistant",
        "Refillable",
        "Heavy Duty",
        "Compact Design",
        "Acid-Free",
        "Non-Slip Base",
    ],
    "clothing": [
        "Relaxed Fit",
        "Breathable",
        "Machine Washable",
        "Stretch",
        "Lightweight",
        "Water Resistant",
        "Classic Cut",
        "Soft Touch",
    ],
}
_USES = {
    "office": [
        "home office",
        "classroom",
        "small business",
        "daily journaling",
        "shipping orders",
        "studying",
        "art projects",
    ],
    "clothing": [
        "weekend outings",
        "the office",
        "travel",
        "the gym",
        "evening events",
        "everyday wear",
        "hiking trips",
    ],
}
_SYLLABLES = [
    "nor",
    "vel",
    "ka",
    "tri",
    "son",
    "bel",
    "mar",
    "cor",
    "lin",
    "da",
    "rex",
    "ori",
    "pal",
    "ven",
    "tu",
    "qua",
    "zen",
    "fil",
    "ar",
    "mo",
]


@dataclass(frozen=True)
class Item:
    asin: str
    path: tuple[str, ...]  # category levels, root first
    brand: str
    colour: str
    size: str
    material: str
    price: float
    title: str
    json: str  # the release's `item` object, serialised once


def _singular(noun: str) -> str:
    if noun.endswith("ches") or noun.endswith("shes"):
        return noun[:-2]
    return noun[:-1] if noun.endswith("s") and not noun.endswith("ss") else noun


def _leaf_paths(category: str) -> list[tuple[str, ...]]:
    root = _ROOTS[category]
    if category == "office":
        return [
            (root, level2, level3, level4, leaf)
            for level2, level3s in _OFFICE_TREE.items()
            for level3, level4s in level3s.items()
            for level4, leaves in level4s.items()
            for leaf in leaves
        ]
    return [
        (root, who, group, kind, leaf)
        for who in ("Women", "Men")
        for group, kinds in _CLOTHING_GROUPS.items()
        for kind, leaves in kinds.items()
        for leaf in leaves
        if not (
            who == "Men"
            and leaf
            in {
                "Casual Dresses",
                "Cocktail Dresses",
                "Maxi Dresses",
                "Blouses",
                "Sports Bras",
                "Heeled Sandals",
            }
        )
    ]


class Catalog:
    """Items of one category, indexed by leaf so that users can shop within their tastes."""

    def __init__(self, category: str, n_items: int, seed: int = 0):
        if category not in _ROOTS:
            raise ValueError(f"unknown category {category!r}; expected one of {sorted(_ROOTS)}")
        self.category = category
        rng = random.Random(f"catalog:{category}:{seed}")
        self.leaves = _leaf_paths(category)
        if n_items < len(self.leaves):
            raise ValueError(
                f"a {category} catalog needs at least {len(self.leaves)} items (one per leaf)"
            )
        self.brands = sorted(
            {
                "".join(rng.sample(_SYLLABLES, 2)).capitalize()
                + rng.choice(["", " Co.", " & Co", "ware", " Studio"])
                for _ in range(max(12, min(400, n_items // 200)))
            }
        )
        self.items: list[Item] = []
        self.by_leaf: list[list[int]] = [[] for _ in self.leaves]
        for index in range(n_items):
            leaf = index % len(self.leaves)
            self.items.append(self._make_item(rng, index, self.leaves[leaf]))
            self.by_leaf[leaf].append(index)

    def _make_item(self, rng: random.Random, index: int, path: tuple[str, ...]) -> Item:
        category = self.category
        brand = rng.choice(self.brands)
        colour, size = rng.choice(_COLOURS[category]), rng.choice(_SIZES[category])
        material = rng.choice(_MATERIALS[category])
        features = rng.sample(_FEATURES[category], 3)
        noun = _singular(path[-1])
        model = f"{rng.choice('ABCDEFGHKLMPRSTVX')}{rng.randint(100, 999)}"
        price = round(math.exp(rng.gauss(3.0, 0.8)), 2) if rng.random() > 0.15 else 0.0
        title = f"{brand} {material} {noun} {model} - {features[0]}, {colour}, {size}"
        description = (
            f"The {brand} {noun} {model} is made of {material.lower()} and comes in "
            f"{colour.lower()}. {features[0]} and {features[1].lower()} for "
            f"{rng.choice(_USES[category])}. "
            f"Its {features[2].lower()} build holds up to daily use, and the {size} option suits "
            f"most needs. Designed in the {path[3]} line of {brand}, it pairs well with other "
            f"{path[2].lower()} from the same collection. Backed by a one-year warranty; "
            f"care instructions are included in the package."
        )
        asin = "B0" + _base36(index * 2654435761 % 36**8).rjust(8, "0")
        item_json = json.dumps(
            {
                "asin": asin,
                "title": title,
                "category": " - ".join(path),
                "description": description,
                "price": price,
            }
        )
        return Item(asin, path, brand, colour, size, material, price, title, item_json)


def _base36(number: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out or "0"


def _matching_levels(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    count = 0
    for left, right in zip(a, b, strict=False):
        if left != right:
            break
        count += 1
    return count


def critique_between(current: Item, goal: Item, rng: random.Random) -> str:
    """A short request steering from `current` to `goal`, worded from what changes."""
    options = []
    if current.path[-1] != goal.path[-1]:
        options.append(
            f"Could you show me {goal.path[-1].lower()} rather than {current.path[-1].lower()}?"
        )
    if current.colour != goal.colour:
        options += [
            f"Do you have something like this in {goal.colour.lower()}?",
            f"I'd prefer {goal.colour.lower()} over {current.colour.lower()}.",
        ]
    if current.size != goal.size:
        options.append(f"I need it in {goal.size} instead.")
    if current.brand != goal.brand:
        options.append(f"I'd rather try one from {goal.brand}.")
    if current.material != goal.material:
        options.append(f"Is there a {goal.material.lower()} version?")
    if goal.price and current.price and goal.price < 0.8 * current.price:
        options.append(f"Something cheaper, under ${math.ceil(goal.price)}.")
    elif goal.price and current.price and goal.price > 1.25 * current.price:
        options.append("I'm happy to pay more for better quality.")
    if not options:
        options.append("Show me another one just like this.")
    picked = rng.sample(options, min(len(options), rng.choice((1, 1, 2))))
    return " ".join(picked)


def _review(item: Item, rating: int, rng: random.Random, use: str) -> tuple[str, str]:
    noun = _singular(item.path[-1]).lower()
    if rating >= 4:
        title = rng.choice(["Exactly what I needed", "Great value", "Love it", "Works perfectly"])
        body = (
            f"I bought this {noun} for {use} and it has been great. The {item.colour.lower()} "
            f"looks even better in person and the {item.material.lower()} feels solid. "
            f"{item.brand} got the details right; the {item.size} was the right choice for me. "
            f"I have used it almost every day for a few weeks now and would buy it again."
        )
    elif rating == 3:
        title = rng.choice(["It's okay", "Does the job", "Mixed feelings"])
        body = (
            f"This {noun} is fine for {use}, but nothing special. The {item.material.lower()} "
            f"is a little thinner than I expected and the {item.colour.lower()} is duller than "
            f"the photos. For the price it is acceptable; I might look at other {item.brand} "
            f"options or a different size than {item.size} next time."
        )
    else:
        title = rng.choice(["Disappointed", "Would not buy again", "Not as described"])
        body = (
            f"I wanted to like this {noun} for {use}, but it did not work out. The "
            f"{item.material.lower()} started to wear within days and the {item.size} runs "
            f"differently than listed. The {item.colour.lower()} was not what the pictures "
            f"showed either. I expected better from {item.brand} and returned it."
        )
    return title, body


def _narratives(history: list[Item], ratings: list[int], rng: random.Random, category: str):
    last = history[-1]
    earlier = history[:-1]
    noun = _singular(last.path[-1]).lower()
    kinds = sorted({_singular(item.path[-1]).lower() for item in earlier})[:4]
    brands = sorted({item.brand for item in history})[:3]
    colours = sorted({item.colour.lower() for item in history})[:3]
    use = rng.choice(_USES[category])
    liked = sum(r >= 4 for r in ratings) / len(ratings)
    temper = "enthusiastic" if liked > 0.7 else "discerning" if liked > 0.4 else "hard to please"
    theme = (
        history[0].path[2]
        if category == "office"
        else f"{history[0].path[1].lower()}'s {history[0].path[2].lower()}"
    )
    reason = f"The customer wanted a {last.colour.lower()} {noun} from {last.brand} for {use}."
    explanation = (
        f"Earlier purchases such as {', '.join(kinds) or 'a first item'} show steady interest in "
        f"{theme}. Their reviews reward {last.material.lower()} builds and {colours[0]} colours, "
        f"so a {last.colour.lower()} {noun} from {last.brand} fits what they had already chosen, "
        f"and it suits the {use} they keep mentioning."
    )
    endorsement = (
        f"The {last.title} is a natural next step for you. You have already picked "
        f"{', '.join(kinds) or 'items'} and favoured brands like {', '.join(brands)}, and this "
        f"{noun} matches that taste: {last.material.lower()} construction, a {last.colour.lower()} "
        f"finish and the {last.size} option you tend to choose. It is built for {use}, and at "
        f"{'$' + format(last.price, '.2f') if last.price else 'its price'} it is good value for "
        f"something you will reach for every day. Customers with your history rate it highly, "
        f"and it pairs well with what you already own."
    )
    brief = (
        f"An {temper} shopper focused on {theme}, who likes {colours[0]} and {brands[0]} products."
    )
    long = (
        f"This customer shops mostly for {theme}, with purchases including "
        f"{', '.join(kinds) or noun}. They return to brands such as {', '.join(brands)} and "
        f"favour {', '.join(colours)} colours. Their reviews are {temper}: they praise sturdy "
        f"materials and accurate sizing and are quick to point out flaws in finish or fit. They "
        f"tend to buy for {use}, and their history suggests practical, repeat purchases rather "
        f"than impulse buys, with an eye on value over the long run."
    )
    profile = f"{temper.capitalize()} {theme.split()[0].lower()} shopper"
    return reason, explanation, endorsement, brief, long, profile


def _user_line(catalog: Catalog, user_index: int, seed: int, mean_length: float) -> str:
    rng = random.Random(f"user:{seed}:{user_index}")
    category = catalog.category
    home = rng.sample(range(len(catalog.leaves)), 4)
    favourite_brands = rng.sample(catalog.brands, min(2, len(catalog.brands)))
    length = min(50, int(rng.expovariate(1 / (mean_length - 4.5))) + 5)
    items: list[Item] = []
    for position in range(length):
        if position and rng.random() < 0.07:
            # Refine the previous purchase: same leaf or a sibling leaf (same first four levels).
            previous = items[-1]
            siblings = [i for i, path in enumerate(catalog.leaves) if path[:4] == previous.path[:4]]
            leaf = rng.choice(siblings)
        else:
            leaf = rng.choice(home) if rng.random() < 0.55 else rng.randrange(len(catalog.leaves))
        pool = catalog.by_leaf[leaf]
        candidates = [pool[rng.randrange(len(pool))] for _ in range(4)]
        if items:  # no consecutive duplicates, as in the preprocessed release
            candidates = [i for i in candidates if catalog.items[i].asin != items[-1].asin] or [
                pool[(pool.index(candidates[0]) + 1) % len(pool)]
            ]
        preferred = [i for i in candidates if catalog.items[i].brand in favourite_brands]
        items.append(catalog.items[(preferred or candidates)[0]])

    time = rng.randint(1_262_304_000, 1_514_764_800)  # 2010-2018
    time -= time % 86_400
    ratings = [rng.choices((1, 2, 3, 4, 5), weights=(5, 5, 10, 25, 55))[0] for _ in items]
    use = rng.choice(_USES[category])
    entries = []
    for position, (item, rating) in enumerate(zip(items, ratings, strict=True)):
        critique = CRITIQUE_SENTINEL
        if position and _matching_levels(items[position - 1].path, item.path) >= SIMILAR_LEVELS:
            critique = critique_between(items[position - 1], item, rng)
        summary, text = _review(item, rating, rng, use)
        review = json.dumps({"summary": summary, "rating": rating, "text": text, "timestamp": time})
        entries.append(
            f'{{"item": {item.json}, "review": {review}, "critique": {json.dumps(critique)}}}'
        )
        time += 86_400 * rng.randint(1, 120)

    reason, explanation, endorsement, brief, long, profile = _narratives(
        items, ratings, rng, category
    )
    score = lambda: rng.choices((3, 4, 5, 6, 7), weights=(4, 8, 20, 38, 30))[0]  # noqa: E731
    tail = {
        "last_purchase": {"reason": reason, "explanation": explanation, "endorsement": endorsement},
        "user": {"profile": profile, "brief_summary": brief, "long_summary": long},
        # Rater scores under the release's groups; critiques are not rated here.
        "metadata": {
            group: {attribute: score() for attribute in RATER_ATTRIBUTES[group]}
            for group in ("user", "last_purchase", "endorsement", "example")
        },
    }
    head = json.dumps({"reviewer_id": f"SYN{user_index:09d}"})[:-1]
    return f'{head}, "purchase_history": [{", ".join(entries)}], {json.dumps(tail)[1:]}'


def generate_release(
    category: str, n_users: int, *, n_items: int | None = None, seed: int = 0
) -> Iterator[str]:
    """Release-format JSONL lines (no newline) for `n_users` synthetic users."""
    paper_users, paper_items = PAPER_SIZES[category]
    if n_items is None:  # keep the paper's items-per-user ratio, with two items per leaf at least
        n_items = max(2 * len(_leaf_paths(category)), round(paper_items * n_users / paper_users))
    catalog = Catalog(category, n_items, seed)
    mean_length = {"office": 7.86, "clothing": 9.21}[category]
    for user_index in range(n_users):
        yield _user_line(catalog, user_index, seed, mean_length)


def write_release(
    path: str | os.PathLike,
    category: str,
    n_users: int,
    *,
    n_items: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> None:
    """Write synthetic users to `path` atomically (a temporary file, then a rename)."""
    path = os.fspath(path)
    partial = f"{path}.partial"
    lines = generate_release(category, n_users, n_items=n_items, seed=seed)
    with open(partial, "w", encoding="utf-8") as handle:
        for line in tqdm(
            lines, total=n_users, disable=not progress, desc=f"synthetic {category}", unit="user"
        ):
            handle.write(line)
            handle.write("\n")
    os.replace(partial, path)
