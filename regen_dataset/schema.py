"""The one definition of REGEN's canonical data: features, config names and narrative kinds.

Everything that reads, splits, writes or loads REGEN imports its names from here.

A *split row* is what `load_dataset("regen", config)` returns: one row per user and split, with the
user's `history` (oldest first), the held-out `target` interaction, the target `narratives` and the
auto-rater scores. A *sequence* is what the release reader produces: one row per user with all
interactions, from which the splits are cut (see `splits.py`).
"""

from __future__ import annotations

import datasets

CATEGORIES = ("office", "clothing")
CONFIG_NAMES = tuple(
    name for category in CATEGORIES for name in (category, f"{category}_no_critique")
)
SPLIT_NAMES = ("train", "validation", "test")

# Narratives about one purchase (the split's target item) ...
ITEM_NARRATIVES = ("purchase_reason", "purchase_reason_explanation", "product_endorsement")
# ... and narratives about the user as a whole, written from their full sequence.
USER_NARRATIVES = ("user_summary_brief", "user_summary_long", "user_profile")
NARRATIVE_KINDS = ITEM_NARRATIVES + USER_NARRATIVES

# Auto-rater scores (7-point scale) by group, as the release stores them under `metadata`.
# The release carries `user`, `last_purchase` and `example`; seed 002 Table 3 adds persuasiveness
# for endorsements and three critique attributes.
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

NARRATIVES = {kind: datasets.Value("string") for kind in NARRATIVE_KINDS}
RATER = {
    group: {attribute: datasets.Value("int32") for attribute in attributes}
    for group, attributes in RATER_ATTRIBUTES.items()
}

FEATURES = datasets.Features(
    {
        "user_id": datasets.Value("string"),
        "history": datasets.List(INTERACTION),
        "target": INTERACTION,
        "narratives": NARRATIVES,
        "rater": RATER,
    }
)

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
    """`office_no_critique` -> `office`, with a clear error for unknown names."""
    if config_name not in CONFIG_NAMES:
        raise ValueError(f"unknown REGEN config {config_name!r}; expected one of {CONFIG_NAMES}")
    return config_name.removesuffix("_no_critique")


def config_has_critiques(config_name: str) -> bool:
    config_category(config_name)
    return not config_name.endswith("_no_critique")
