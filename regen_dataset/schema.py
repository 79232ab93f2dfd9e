"""The one definition of REGEN's canonical data: features, config names and narrative kinds.

Everything that reads, splits, writes or loads REGEN imports its names from here.

A *split row* is what `load_dataset("regen", config)` returns: one row per user and split. Its
inputs are `history` (the interactions before the target, oldest first) and `critique` (what the
user said about the last history item that steers towards the target); everything else is a label:
the held-out `target` interaction, the `narratives` to write, and the auto-rater scores of those
narratives. A *sequence* is what the release reader produces: one row per user with all
interactions, from which the splits are cut (see `splits.py`). An *item row* is one entry of a
category's catalog (`office_items`, `clothing_items`).
"""

from __future__ import annotations

import datasets

CATEGORIES = ("office", "clothing")
# The root of every category path in the Amazon data of each category.
CATEGORY_ROOTS = {"office": "Office Products", "clothing": "Clothing, Shoes & Jewelry"}
# The configs with train / validation / test rows ...
CONFIG_NAMES = tuple(
    name for category in CATEGORIES for name in (category, f"{category}_no_critique")
)
# ... and one catalog config per category, with a single split.
ITEMS_CONFIG_NAMES = tuple(f"{category}_items" for category in CATEGORIES)
ITEMS_SPLIT = "train"
SPLIT_NAMES = ("train", "validation", "test")

# Critiques exist only between adjacent purchases whose category paths (root first) agree on at
# least this many levels; every other position carries the sentinel in the release format.
SIMILAR_LEVELS = 4
# What this project writes where a pair of items has no critique (Google's own sentinel text is not
# known; the release reader accepts many spellings).
CRITIQUE_SENTINEL = "<NO_CRITIQUE>"

# Narratives about one purchase (the split's target item) ...
ITEM_NARRATIVES = ("purchase_reason", "purchase_reason_explanation", "product_endorsement")
# ... and narratives about the user as a whole, written from their full sequence.
USER_NARRATIVES = ("user_summary_brief", "user_summary_long", "user_profile")
NARRATIVE_KINDS = ITEM_NARRATIVES + USER_NARRATIVES

# Auto-rater scores (7-point scale) by group, as the release stores them under `metadata`.
# The release carries `user`, `last_purchase` and `example`; Table 3 of the REGEN paper adds
# persuasiveness for endorsements and three critique attributes.
RATER_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "user": ("veracity", "grounding", "clarity", "personalization", "confidence"),
    "last_purchase": (
        "veracity",
        "grounding",
        "foresight",
        "clarity",
        "personalization",
        "confidence",
    ),
    "endorsement": ("veracity", "personalization", "persuasiveness", "confidence"),
    "critique": ("quality", "specificity", "relevance", "confidence"),
    "example": ("richness", "confidence"),
}

INTERACTION = {
    "item_id": datasets.Value("string"),  # the Amazon ASIN
    "title": datasets.Value("string"),
    "categories": datasets.List(datasets.Value("string")),  # root first
    "description": datasets.Value("string"),
    "price": datasets.Value("float64"),  # null when unknown (the release writes 0.0)
    "rating": datasets.Value("int32"),
    "review_title": datasets.Value("string"),
    "review_text": datasets.Value("string"),
    "timestamp": datasets.Value("int64"),  # unix seconds
    # What the user said about the previous item that led to this one; null when none.
    "critique": datasets.Value("string"),
}

ITEM = {
    "item_id": INTERACTION["item_id"],
    "title": INTERACTION["title"],
    "categories": INTERACTION["categories"],
    "description": INTERACTION["description"],
    "price": INTERACTION["price"],
}
ITEM_FEATURES = datasets.Features(ITEM)

NARRATIVES = {kind: datasets.Value("string") for kind in NARRATIVE_KINDS}
RATER = {
    group: {attribute: datasets.Value("int32") for attribute in attributes}
    for group, attributes in RATER_ATTRIBUTES.items()
}

FEATURES = datasets.Features(
    {
        "user_id": datasets.Value("string"),
        "history": datasets.List(INTERACTION),
        # Steers towards the target: an input, so it stands apart from the target (a label).
        # The same text is `target.critique` in the sequence; split rows leave that one null.
        "critique": datasets.Value("string"),
        "target": INTERACTION,
        "narratives": NARRATIVES,
        "rater": RATER,
    }
)
# The row fields a model may read; everything else in a split row is a label.
INPUT_FIELDS = ("user_id", "history", "critique")

SEQUENCE_FEATURES = datasets.Features(
    {
        "user_id": datasets.Value("string"),
        "interactions": datasets.List(INTERACTION),
        # Aligned with `interactions`: narratives about each purchase, where the source has them.
        "item_narratives": datasets.List(
            {kind: datasets.Value("string") for kind in ITEM_NARRATIVES}
        ),
        "user_narratives": {kind: datasets.Value("string") for kind in USER_NARRATIVES},
        "rater": RATER,
    }
)


def config_category(config_name: str) -> str:
    """`office_no_critique` -> `office`, `office_items` -> `office`; unknown names are an error."""
    if config_name in ITEMS_CONFIG_NAMES:
        return config_name.removesuffix("_items")
    if config_name not in CONFIG_NAMES:
        raise ValueError(
            f"unknown REGEN config {config_name!r}; expected one of "
            f"{CONFIG_NAMES + ITEMS_CONFIG_NAMES}"
        )
    return config_name.removesuffix("_no_critique")


def check_user_config(config_name: str) -> None:
    """A config of user rows (train / validation / test), not a catalog, as models read."""
    category = config_category(config_name)
    if config_name in ITEMS_CONFIG_NAMES:
        raise ValueError(
            f"{config_name} is the catalog of {category} (one row per item); models train and "
            f"predict on the user rows of {category} or {category}_no_critique"
        )


def items_config(category: str) -> str:
    if category not in CATEGORIES:
        raise ValueError(f"unknown REGEN category {category!r}; expected one of {CATEGORIES}")
    return f"{category}_items"


CategoryPath = list[str] | tuple[str, ...]


def matching_levels(first: CategoryPath, second: CategoryPath) -> int:
    """How many category levels, from the root, two items share."""
    count = 0
    for left, right in zip(first, second, strict=False):
        if left != right:
            break
        count += 1
    return count


def similar_adjacent(previous: CategoryPath | None, current: CategoryPath | None) -> bool:
    """Whether a critique belongs between two adjacent purchases, from their category paths."""
    return matching_levels(previous or (), current or ()) >= SIMILAR_LEVELS


def config_has_critiques(config_name: str) -> bool:
    config_category(config_name)
    return not config_name.endswith("_no_critique")
