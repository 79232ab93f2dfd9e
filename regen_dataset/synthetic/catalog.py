"""The synthetic catalog: category trees, item attributes, long-tailed popularity, companions.

Popularity is a power law twice over, as in Amazon review data: leaves are ranked by a Zipf
weight, and items within a leaf are too (brands that sell more have more of the popular items).
Each item also knows a few *companions* (items that are bought after it: a printer's toner, the
shoes that go with a dress) and a few *alternatives* (items in the same four-level category that
differ in one or two attributes), so that item-to-item transitions carry a signal that popularity
alone does not.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import random
from dataclasses import dataclass, field

from regen_dataset.synthetic.wording import article, say

ROOTS = {"office": "Office Products", "clothing": "Clothing, Shoes & Jewelry"}

OFFICE_TREE = {
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

CLOTHING_GROUPS = {
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
WOMEN_ONLY = {
    "Casual Dresses",
    "Cocktail Dresses",
    "Maxi Dresses",
    "Blouses",
    "Sports Bras",
    "Heeled Sandals",
}

# How a leaf is named in prose, as a countable thing: (measure word, noun); the title keeps the
# leaf's own words. "a pack of gel pens", "a pair of ankle boots", "a desk lamp".
PAIRS = {"Jeans", "Leggings", "Shoes", "Boots", "Sandals", "Slides", "Earrings"}
PACKS = {"Pens", "Highlighters", "Markers", "Pencils", "Notes", "Flags", "Labels", "Pads", "Books"}
SINGULAR = {"Beanies": "Beanie"}  # where dropping the "s" or "es" is wrong

# Leaf -> leaves bought after it (the same audience for clothing).
COMPLEMENTS = {
    "office": {
        "Laser Printers": ["Toner Cartridges"],
        "Inkjet Printers": ["Ink Cartridges"],
        "Label Printers": ["Shipping Labels", "Address Labels"],
        "Ballpoint Pens": ["Spiral Notebooks", "Legal Pads"],
        "Gel Pens": ["Spiral Notebooks", "Composition Books"],
        "Rollerball Pens": ["Legal Pads", "Spiral Notebooks"],
        "Fountain Pens": ["Composition Books", "Legal Pads"],
        "Spiral Notebooks": ["Gel Pens", "Highlighters"],
        "Legal Pads": ["Ballpoint Pens", "Rollerball Pens"],
        "Composition Books": ["Wood Pencils", "Gel Pens"],
        "Highlighters": ["Sticky Flags", "Spiral Notebooks"],
        "Permanent Markers": ["Shipping Labels", "Address Labels"],
        "Dry Erase Markers": ["Standard Sticky Notes", "Desktop Trays"],
        "Wood Pencils": ["Staple Removers", "Composition Books"],
        "Mechanical Pencils": ["Scientific Calculators", "Spiral Notebooks"],
        "Colored Pencils": ["Spiral Notebooks", "Pen Holders"],
        "Standard Sticky Notes": ["Highlighters", "Sticky Flags"],
        "Sticky Flags": ["Highlighters", "Color Coding Labels"],
        "Lined Sticky Notes": ["Gel Pens", "Desktop Trays"],
        "Address Labels": ["Self-Inking Stamps", "Label Printers"],
        "Color Coding Labels": ["Sticky Flags", "Drawer Organizers"],
        "Shipping Labels": ["Label Printers", "Permanent Markers"],
        "Self-Inking Stamps": ["Stamp Pads"],
        "Stamp Pads": ["Self-Inking Stamps"],
        "Desktop Trays": ["Pen Holders", "Drawer Organizers"],
        "Pen Holders": ["Gel Pens", "Desktop Trays"],
        "Drawer Organizers": ["Desktop Trays", "Color Coding Labels"],
        "Desktop Staplers": ["Staple Removers", "Hole Punches"],
        "Hole Punches": ["Desktop Staplers", "Color Coding Labels"],
        "Staple Removers": ["Desktop Staplers"],
        "Toner Cartridges": ["Laser Printers", "Legal Pads"],
        "Ink Cartridges": ["Inkjet Printers", "Shipping Labels"],
        "Scientific Calculators": ["Mechanical Pencils", "Composition Books"],
        "Printing Calculators": ["Legal Pads", "Desktop Trays"],
        "Task Chairs": ["Desk Lamps", "Drawer Organizers"],
        "Executive Chairs": ["Desk Lamps", "Desktop Trays"],
        "Drafting Chairs": ["Clip-On Lamps", "Colored Pencils"],
        "Desk Lamps": ["Task Chairs", "Desktop Trays"],
        "Floor Lamps": ["Executive Chairs"],
        "Clip-On Lamps": ["Drafting Chairs", "Colored Pencils"],
    },
    "clothing": {
        "Casual Dresses": ["Flat Sandals", "Crossbody Bags"],
        "Cocktail Dresses": ["Heeled Sandals", "Stud Earrings"],
        "Maxi Dresses": ["Flat Sandals", "Sun Hats"],
        "T-Shirts": ["Straight Jeans", "Baseball Caps"],
        "Blouses": ["Skinny Jeans", "Pendant Necklaces"],
        "Tank Tops": ["Leggings", "Slides"],
        "Henleys": ["Straight Jeans", "Ankle Boots"],
        "Skinny Jeans": ["Blouses", "Ankle Boots"],
        "Straight Jeans": ["T-Shirts", "Walking Shoes"],
        "Bootcut Jeans": ["Ankle Boots", "Henleys"],
        "Cardigans": ["Blouses", "Chain Necklaces"],
        "Pullovers": ["Straight Jeans", "Beanies"],
        "Turtlenecks": ["Skinny Jeans", "Ankle Boots"],
        "Leggings": ["Sports Bras", "Running Shoes"],
        "Track Jackets": ["Training Shoes", "Leggings"],
        "Sports Bras": ["Leggings", "Training Shoes"],
        "Running Shoes": ["Leggings", "Track Jackets"],
        "Training Shoes": ["Track Jackets", "Tank Tops"],
        "Walking Shoes": ["Straight Jeans", "Baseball Caps"],
        "Ankle Boots": ["Skinny Jeans", "Turtlenecks"],
        "Rain Boots": ["Beanies", "Tote Bags"],
        "Hiking Boots": ["Track Jackets", "Baseball Caps"],
        "Flat Sandals": ["Maxi Dresses", "Sun Hats"],
        "Slides": ["Tank Tops", "Baseball Caps"],
        "Heeled Sandals": ["Cocktail Dresses", "Hoop Earrings"],
        "Tote Bags": ["Wallets", "Sun Hats"],
        "Crossbody Bags": ["Wallets", "Hoop Earrings"],
        "Wallets": ["Crossbody Bags"],
        "Baseball Caps": ["T-Shirts"],
        "Beanies": ["Pullovers", "Rain Boots"],
        "Sun Hats": ["Flat Sandals", "Maxi Dresses"],
        "Pendant Necklaces": ["Stud Earrings", "Blouses"],
        "Chain Necklaces": ["Hoop Earrings"],
        "Stud Earrings": ["Pendant Necklaces"],
        "Hoop Earrings": ["Chain Necklaces", "Cocktail Dresses"],
    },
}
# Leaves bought again and again (repeat purchases happen only here).
CONSUMABLES = {
    "office": {
        "Ballpoint Pens",
        "Gel Pens",
        "Highlighters",
        "Permanent Markers",
        "Dry Erase Markers",
        "Wood Pencils",
        "Spiral Notebooks",
        "Legal Pads",
        "Standard Sticky Notes",
        "Sticky Flags",
        "Lined Sticky Notes",
        "Address Labels",
        "Shipping Labels",
        "Stamp Pads",
        "Toner Cartridges",
        "Ink Cartridges",
    },
    "clothing": {"T-Shirts", "Tank Tops", "Leggings", "Sports Bras"},
}

# Colour -> tone, so that a critique can ask for "something darker" without naming the colour.
COLOURS = {
    "office": {
        "Black": "dark",
        "Blue": "bright",
        "Red": "bright",
        "Green": "bright",
        "Silver": "neutral",
        "White": "light",
        "Gold": "bright",
        "Purple": "bright",
        "Gray": "neutral",
        "Assorted Colors": "bright",
    },
    "clothing": {
        "Black": "dark",
        "Navy": "dark",
        "Heather Grey": "neutral",
        "White": "light",
        "Burgundy": "dark",
        "Olive": "neutral",
        "Blush Pink": "light",
        "Camel": "neutral",
        "Royal Blue": "bright",
        "Ivory": "light",
        "Coral": "bright",
        "Charcoal": "dark",
    },
}
SIZES = {
    "office": ["Single", "2-Pack", "3-Pack", "6-Pack", "12-Pack", "24-Pack"],
    "clothing": ["XS", "S", "M", "L", "XL", "XXL"],
}
# Materials by branch of the tree (the deepest level named here wins), each with a quality word
# that a review or critique can use about it.
MATERIALS_BY_BRANCH = {
    "Writing & Correction Supplies": {
        "Plastic": "light",
        "Recycled Plastic": "eco-friendly",
        "Bamboo": "eco-friendly",
        "Aluminum": "sturdy",
    },
    "Paper": {"Recycled Paper": "eco-friendly", "Premium Paper": "smooth", "Card Stock": "stiff"},
    "Labels, Indexes & Stamps": {
        "Recycled Paper": "eco-friendly",
        "Vinyl": "waterproof",
        "Plastic": "light",
        "Rubber": "durable",
    },
    "Desk Accessories & Workspace Organizers": {
        "Plastic": "light",
        "Bamboo": "eco-friendly",
        "Steel": "heavy-duty",
        "Mesh": "airy",
    },
    "Office Electronics": {"Plastic": "light", "Steel": "heavy-duty", "Aluminum": "sturdy"},
    "Office Furniture & Lighting": {
        "Mesh": "airy",
        "Steel": "heavy-duty",
        "Wood": "warm",
        "Fabric": "soft",
        "Aluminum": "sturdy",
    },
    "Clothing": {
        "Cotton": "soft",
        "Linen": "airy",
        "Merino Wool": "warm",
        "Denim": "sturdy",
        "Jersey": "stretchy",
        "Polyester Blend": "easy-care",
    },
    "Shoes": {"Leather": "durable", "Suede": "soft", "Canvas": "light", "Mesh": "breathable"},
    "Accessories": {"Leather": "durable", "Canvas": "sturdy", "Cotton": "soft", "Straw": "light"},
    "Jewelry": {
        "Sterling Silver": "polished",
        "Gold-Plated Brass": "shiny",
        "Stainless Steel": "durable",
    },
}
# Median price (USD) by branch; prices are log-normal around it.
PRICE_BY_BRANCH = {
    "Office & School Supplies": 11.0,
    "Office Electronics": 45.0,
    "Office Furniture & Lighting": 70.0,
    "Clothing": 26.0,
    "Shoes": 55.0,
    "Accessories": 22.0,
    "Jewelry": 18.0,
}
MATERIALS = {m: q for branch in MATERIALS_BY_BRANCH.values() for m, q in branch.items()}
STYLES = {
    "office": ["basic", "professional", "colorful", "minimalist", "heavy-duty"],
    "clothing": ["casual", "classic", "sporty", "dressy", "bohemian"],
}
# Features as noun phrases: "with quick-dry ink and an ergonomic grip".
FEATURES = {
    "office": [
        "Quick-Dry Ink",
        "Ergonomic Grip",
        "Smudge-Proof Finish",
        "Refillable Design",
        "Heavy-Duty Build",
        "Compact Design",
        "Acid-Free Construction",
        "Non-Slip Base",
        "Archival Quality",
        "Fade-Resistant Color",
        "Low-Odor Formula",
        "Easy-Load Mechanism",
    ],
    "clothing": [
        "Relaxed Fit",
        "Breathable Weave",
        "Machine-Washable Care",
        "Four-Way Stretch",
        "Lightweight Feel",
        "Water-Resistant Finish",
        "Classic Cut",
        "Soft-Touch Finish",
        "Wrinkle-Free Finish",
        "Moisture-Wicking Lining",
        "Tagless Comfort",
        "Cushioned Insole",
    ],
}
_SYLLABLES = (
    "nor vel ka tri son bel mar cor lin da rex ori pal ven tu qua zen fil ar mo lu sti ne bri "
    "cal dor fen gra hal jun kel lor mi pen ros tal var wyn"
).split()
_BRAND_ENDINGS = {
    "office": ["", "", " Supply", " Works", "ware", " & Co", " Office"],
    "clothing": ["", "", " Studio", " & Co", " Apparel", " Outfitters", " Label"],
}


@dataclass(frozen=True)
class Leaf:
    path: tuple[str, ...]  # category levels, root first
    measure: str  # "", "pack of " or "pair of "
    noun: str  # lower case, for prose: "gel pens", "desk lamp"
    title_noun: str  # for titles: "Gel Pens", "Desk Lamp", "Ankle Boots"
    consumable: bool

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def plural(self) -> str:
        """The leaf in running text: 'gel pens', 'T-shirts'."""
        return self.path[-1].lower().replace("t-shirt", "T-shirt")

    def phrase(self, *adjectives: str) -> str:
        """'pack of blue gel pens', 'navy maxi dress' (no article)."""
        words = " ".join(a for a in adjectives if a)
        return f"{self.measure}{words + ' ' if words else ''}{self.noun}"

    def a(self, *adjectives: str) -> str:
        text = self.phrase(*adjectives)
        return f"{article(text)} {text}"


@dataclass
class Item:
    index: int
    asin: str
    leaf: int
    brand: str
    colour: str
    size: str
    material: str
    style: str
    features: tuple[str, ...]
    price: float  # 0.0: unknown, as in the release
    quality: float  # how well it holds up; shifts every rating of it
    title: str
    json: str  # the release's `item` object, serialised once
    companions: tuple[int, ...] = ()
    alternatives: tuple[int, ...] = ()


def _singular(word: str) -> str:
    if word in SINGULAR:
        return SINGULAR[word]
    if word.endswith(("ches", "shes", "sses", "xes")):
        return word[:-2]
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def make_leaf(path: tuple[str, ...], category: str) -> Leaf:
    name = path[-1]
    head = name.split()[-1]
    if head in PAIRS:
        measure, noun, title_noun = "pair of ", name.lower(), name
    elif head in PACKS:
        measure, noun, title_noun = "pack of ", name.lower(), name
    else:
        title_noun = " ".join([*name.split()[:-1], _singular(head)])
        measure, noun = "", title_noun.lower()
    noun = noun.replace("t-shirt", "T-shirt")
    return Leaf(path, measure, noun, title_noun, name in CONSUMABLES[category])


def leaf_paths(category: str) -> list[tuple[str, ...]]:
    root = ROOTS[category]
    if category == "office":
        return [
            (root, level2, level3, level4, leaf)
            for level2, level3s in OFFICE_TREE.items()
            for level3, level4s in level3s.items()
            for level4, leaves in level4s.items()
            for leaf in leaves
        ]
    return [
        (root, who, group, kind, leaf)
        for who in ("Women", "Men")
        for group, kinds in CLOTHING_GROUPS.items()
        for kind, leaves in kinds.items()
        for leaf in leaves
        if not (who == "Men" and leaf in WOMEN_ONLY)
    ]


def _base36(number: int) -> str:
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    out = ""
    while number:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
    return out or "0"


def category_slot(category: str) -> int:
    """The category's place in `ROOTS`, which keeps its item and user ids apart from the others'.

    New categories go at the end of `ROOTS`, so that no existing id changes.
    """
    if category not in ROOTS:
        raise ValueError(f"unknown category {category!r}; expected one of {sorted(ROOTS)}")
    return list(ROOTS).index(category)


def synthetic_asin(category: str, index: int) -> str:
    """An ASIN-like id ("B0" and 8 base-36 digits), distinct over every category and index.

    Each category owns a block of 36**7 numbers, and multiplying by a number prime to 36
    permutes all 36**8 of them, so no two ids collide.
    """
    if not 0 <= index < 36**7:
        raise ValueError(f"item index {index} is outside 0..36**7 - 1")
    number = (category_slot(category) * 36**7 + index) * 2654435761 % 36**8
    return "B0" + _base36(number).rjust(8, "0")


def synthetic_user_id(category: str, user_index: int) -> str:
    """A user id: SYN, the category's slot, and the user's index in 8 digits at least."""
    if user_index < 0:
        raise ValueError(f"user index {user_index} is negative")
    return f"SYN{category_slot(category)}{user_index:08d}"


class WeightedPool:
    """Indices drawn in proportion to fixed weights (a cumulative table and a bisection)."""

    def __init__(self, indices: list[int], weights: list[float]):
        self.indices = indices
        self.cumulative = list(itertools.accumulate(weights))

    def draw(self, rng: random.Random) -> int:
        position = bisect.bisect_right(self.cumulative, rng.random() * self.cumulative[-1])
        return self.indices[min(position, len(self.indices) - 1)]


def check_catalog(category: str, n_items: int) -> None:
    """A catalog is of a known category and holds at least two items per leaf category."""
    if category not in ROOTS:
        raise ValueError(f"unknown category {category!r}; expected one of {sorted(ROOTS)}")
    least = 2 * len(leaf_paths(category))
    if n_items < least:
        raise ValueError(f"a {category} catalog needs at least {least} items (two per leaf)")


@dataclass
class Catalog:
    """Items of one category, with popularity, companions and alternatives."""

    category: str
    n_items: int
    seed: int = 0
    leaves: list[Leaf] = field(init=False)
    items: list[Item] = field(init=False)

    def __post_init__(self):
        check_catalog(self.category, self.n_items)
        rng = random.Random(f"catalog:{self.category}:{self.seed}")
        self.leaves = [make_leaf(path, self.category) for path in leaf_paths(self.category)]
        self.brands = self._brands(rng)
        brand_weights = [1 / (rank + 1) ** 0.9 for rank in range(len(self.brands))]
        brand_pool = WeightedPool(list(range(len(self.brands))), brand_weights)
        # Leaves: a Zipf weight in a random order; items spread over leaves by those weights,
        # two per leaf at least.
        order = list(range(len(self.leaves)))
        rng.shuffle(order)
        self.leaf_weight = [0.0] * len(self.leaves)
        for rank, leaf in enumerate(order):
            self.leaf_weight[leaf] = 1 / (rank + 1) ** 0.7
        total = sum(self.leaf_weight)
        spare = self.n_items - 2 * len(self.leaves)
        counts = [2 + int(spare * w / total) for w in self.leaf_weight]
        for leaf in order[: self.n_items - sum(counts)]:
            counts[leaf] += 1
        self.items = []
        self.by_leaf: list[list[int]] = []
        for leaf, count in enumerate(counts):
            start = len(self.items)
            for _ in range(count):
                brand = self.brands[brand_pool.draw(rng)]
                self.items.append(self._make_item(rng, len(self.items), leaf, brand))
            self.by_leaf.append(list(range(start, start + count)))
        # Popularity within a leaf: a power law over a random order of its items.
        self.item_weight = [0.0] * len(self.items)
        for leaf, members in enumerate(self.by_leaf):
            ranked = members[:]
            rng.shuffle(ranked)
            for rank, index in enumerate(ranked):
                self.item_weight[index] = self.leaf_weight[leaf] / (rank + 1) ** 1.05
        self.leaf_pools = [
            WeightedPool(members, [self.item_weight[i] for i in members])
            for members in self.by_leaf
        ]
        self.leaf_pool = WeightedPool(list(range(len(self.leaves))), self.leaf_weight)
        self._link(rng)

    def _brands(self, rng: random.Random) -> list[str]:
        wanted = max(12, min(400, self.n_items // 120))
        brands: list[str] = []
        seen = set()
        while len(brands) < wanted:
            stem = "".join(rng.sample(_SYLLABLES, rng.choice((2, 2, 3)))).capitalize()
            if stem in seen:
                continue
            seen.add(stem)
            brands.append(stem + rng.choice(_BRAND_ENDINGS[self.category]))
        return brands

    def _make_item(self, rng: random.Random, index: int, leaf_index: int, brand: str) -> Item:
        category, leaf = self.category, self.leaves[leaf_index]
        colour = rng.choice(list(COLOURS[category]))
        size = rng.choice(SIZES[category])
        materials = next(
            MATERIALS_BY_BRANCH[n] for n in leaf.path[::-1] if n in MATERIALS_BY_BRANCH
        )
        material = rng.choice(list(materials))
        median = next(PRICE_BY_BRANCH[n] for n in leaf.path[::-1] if n in PRICE_BY_BRANCH)
        style = rng.choice(STYLES[category])
        features = tuple(rng.sample(FEATURES[category], 3))
        price = round(median * math.exp(rng.gauss(0.0, 0.6)), 2) if rng.random() > 0.18 else 0.0
        model = f"{rng.choice('ABCDEFGHKLMPRSTVX')}{rng.randint(100, 999)}"
        audience = f"{leaf.path[1]}'s " if category == "clothing" else ""
        values = {
            "brand": brand,
            "audience": audience,
            "material": material,
            "noun": leaf.title_noun,
            "model": model,
            "feature": features[0],
            "feature2": features[1],
            "colour": colour,
            "size": size,
            "style": style.capitalize(),
        }
        title = say(rng, _TITLE, **values)
        description = say(
            rng,
            _DESCRIPTION,
            **values,
            plain=leaf.phrase(),
            coloured=leaf.phrase(colour.lower()),
            made=leaf.phrase(MATERIALS[material], material.lower()),
            use=rng.choice(USES[category]),
            feature_lower=features[0].lower(),
            feature_cap=features[0][:1] + features[0][1:].lower(),
            feature2_lower=features[1].lower(),
            feature3=features[2].lower(),
            line=leaf.path[3],
            group=leaf.path[2].lower(),
            quality=MATERIALS[material],
            lower_colour=colour.lower(),
            lower_material=material.lower(),
        )
        asin = synthetic_asin(category, index)
        item_json = json.dumps(
            {
                "asin": asin,
                "title": title,
                "category": " - ".join(leaf.path),
                "description": description,
                "price": price,
            }
        )
        return Item(
            index=index,
            asin=asin,
            leaf=leaf_index,
            brand=brand,
            colour=colour,
            size=size,
            material=material,
            style=style,
            features=features,
            price=price,
            quality=rng.gauss(0.0, 0.45),
            title=title,
            json=item_json,
        )

    def _link(self, rng: random.Random) -> None:
        """Companions from complement leaves, alternatives from the same four-level category."""
        by_name: dict[tuple[str, str], int] = {}
        for index, leaf in enumerate(self.leaves):
            by_name[(leaf.path[1], leaf.name)] = index
        groups: dict[tuple[str, ...], list[int]] = {}
        for index, leaf in enumerate(self.leaves):
            groups.setdefault(leaf.path[:4], []).append(index)
        self.complement_leaves: list[list[int]] = []
        for leaf in self.leaves:
            names = COMPLEMENTS[self.category].get(leaf.name, [])
            # A follow-up in the same four-level category is a refinement (with a critique),
            # which the shoppers' similar step makes; complements lead elsewhere.
            self.complement_leaves.append(
                [
                    by_name[(leaf.path[1], n)]
                    for n in names
                    if (leaf.path[1], n) in by_name
                    and self.leaves[by_name[(leaf.path[1], n)]].path[:4] != leaf.path[:4]
                ]
            )
        self.group_leaves = [groups[leaf.path[:4]] for leaf in self.leaves]
        for item in self.items:
            targets = self.complement_leaves[item.leaf]
            if targets:
                item.companions = tuple(
                    dict.fromkeys(self.leaf_pools[rng.choice(targets)].draw(rng) for _ in range(3))
                )
            # Alternatives are any items of the same four-level category, popular or not.
            siblings = [i for leaf in self.group_leaves[item.leaf] for i in self.by_leaf[leaf]]
            picks = (siblings[int(rng.random() * len(siblings))] for _ in range(4))
            item.alternatives = tuple(dict.fromkeys(i for i in picks if i != item.index))


USES = {
    "office": [
        "my home office",
        "the classroom",
        "our small business",
        "journaling",
        "shipping orders",
        "studying",
        "art projects",
        "bookkeeping",
        "planning meetings",
        "my kids' homework",
    ],
    "clothing": [
        "weekend outings",
        "the office",
        "travel",
        "the gym",
        "evening events",
        "everyday wear",
        "hiking trips",
        "date nights",
        "running errands",
        "summer vacations",
    ],
}

_TITLE = (
    "{[brand] [audience][material] [noun] [model] - [feature], [colour], [size]"
    "|[brand] [model] [audience][noun], [material], [colour] ([size]) - [feature]"
    "|[brand] [audience][style] [noun] in [colour] - [feature], [material], [size]"
    "|[audience][noun] by [brand] - [colour] [material], [feature] and [feature2] ([size])}"
)
_DESCRIPTION = (
    "{The [brand] [model] is a [coloured] made of [lower_material]"
    "|Made of [lower_material], this [coloured] is the [model] from [brand]"
    "|Meet the [model]: a [made] by [brand], finished in [lower_colour]"
    "|[brand] built this [plain] from [lower_material] and finished it in [lower_colour]}. "
    "{With [feature_lower] and [feature2_lower], it is a good fit for [use]"
    "|[feature_cap] and [feature2_lower] make it a good fit for [use]"
    "|Designed with [use] in mind, it comes with [feature_lower] and [feature2_lower]}. "
    "{The [feature3] holds up to daily use, and the [size] option suits most needs"
    "|The [size] option covers most needs, and the [feature3] is a nice touch"
    "|Buyers like the [feature3] and the [size] option}. "
    "{Part of the [line] range from [brand], it pairs well with other [group]"
    "|It belongs to the [line] line and matches other [group] from the same collection"
    "|It sits in the [line] collection and goes well with other [group]}. "
    "{Backed by a one-year warranty; care instructions are included in the package"
    "|Covered by a one-year warranty, with care instructions in the box"
    "|A one-year warranty and printed care instructions come with it}."
)
