"""The history prompt: its content, the target's review kept out, critiques, the oldest-first cut."""

import datasets
import pyarrow as pa
import pytest

from regen_dataset.schema import ITEM_FEATURES, NARRATIVE_KINDS
from regen_models.items import ItemVocabulary
from regen_models.prompts import (
    CLIP_MARK,
    FIELD_CHARACTERS,
    EmptyHistoryError,
    ItemTexts,
    PromptBudgetError,
    PromptStats,
    build_prompt,
    build_prompt_completions,
    clip,
)
from tests.conftest import build_sample_folder

TARGET_REVIEW = "ZANZIBAR-QUOKKA review text that must never reach a prompt"


def purchase(n: int, **extra) -> dict:
    return {
        "item_id": f"B{n:09d}",
        "title": f"Title number {n}",
        "categories": ["Office Products", "Paper", f"Shelf {n}"],
        "description": f"Description of item {n}.",
        "price": 2.5 + n,
        "rating": 1 + n % 5,
        "review_title": f"Headline {n}",
        "review_text": f"Review body {n}.",
        "timestamp": 1_500_000_000 + n,
        "critique": None,
        **extra,
    }


def split_row(n_history: int = 3, **narratives) -> dict:
    history = [purchase(i) for i in range(n_history)]
    history[-1]["critique"] = "HISTORY-CRITIQUE: something cheaper please"
    target = purchase(99, review_title="TARGET-HEADLINE", review_text=TARGET_REVIEW)
    target["critique"] = "TARGET-FIELD-CRITIQUE"  # null in split rows; never read even if set
    return {
        "user_id": "U1",
        "history": history,
        "critique": "ROW-CRITIQUE: a larger pack",
        "target": target,
        "narratives": {kind: narratives.get(kind) for kind in NARRATIVE_KINDS},
    }


def words(text: str) -> int:
    return len(text.split())


def test_blocks_in_order_with_every_field_then_the_item_and_the_kind():
    row = split_row()
    prompt = build_prompt(
        row["history"], row["target"], "product_endorsement", critique=row["critique"]
    )
    text = prompt.text
    assert text.count("START\n") == 3 and text.count("\nEND") == 3
    assert (
        text.index("Title number 0") < text.index("Title number 1") < text.index("Title number 2")
    )
    for expected in (
        "Category: Office Products > Paper > Shelf 1",
        "Description: Description of item 1.",
        "Price: $3.50",
        "Rating: 2 of 5",
        "Review: Headline 1. Review body 1.",
        "Critique that led to this purchase: HISTORY-CRITIQUE: something cheaper please",
        "What the shopper asked for next: ROW-CRITIQUE: a larger pack",
    ):
        assert expected in text, expected
    closing = text[text.index("Next item:") :]
    assert "Title: Title number 99" in closing and "Price: $101.50" in closing
    assert closing.endswith("Task: write an endorsement of the next item addressed to this "
                            "shopper, as a knowledgeable salesperson would write it.")  # fmt: skip
    assert (prompt.purchases_kept, prompt.purchases_dropped, prompt.cut) == (3, 0, False)


def test_one_prompt_per_kind_and_unknown_kinds_are_refused():
    row = split_row()
    texts = {build_prompt(row["history"], row["target"], kind).text for kind in NARRATIVE_KINDS}
    assert len(texts) == len(NARRATIVE_KINDS)
    with pytest.raises(ValueError, match="unknown narrative kind 'summary'"):
        build_prompt(row["history"], row["target"], "summary")


def test_the_target_review_rating_and_critique_field_never_enter():
    row = split_row()
    for kind in NARRATIVE_KINDS:
        text = build_prompt(row["history"], row["target"], kind, critique=row["critique"]).text
        assert "ZANZIBAR" not in text and "TARGET-HEADLINE" not in text
        assert "TARGET-FIELD-CRITIQUE" not in text
        closing = text[text.index("Next item:") :]
        assert "Rating" not in closing and "Review" not in closing


def test_no_critique_text_at_all_without_critiques():
    row = split_row()
    text = build_prompt(
        row["history"], row["target"], "purchase_reason", critique=row["critique"],
        with_critiques=False,
    ).text  # fmt: skip
    assert "CRITIQUE" not in text and "ritique" not in text and "asked for next" not in text


def test_empty_history_is_an_error_naming_the_user():
    with pytest.raises(EmptyHistoryError, match="user U7 has an empty history"):
        build_prompt([], purchase(1), "purchase_reason", user_id="U7")


def test_a_long_history_is_cut_oldest_first_to_the_budget_and_counted():
    row = split_row(n_history=10)
    full = build_prompt(row["history"], row["target"], "user_profile", count_tokens=words)
    budget = words(full.text) - 30
    prompt = build_prompt(
        row["history"], row["target"], "user_profile", count_tokens=words, max_tokens=budget
    )
    assert prompt.cut and prompt.purchases_dropped + prompt.purchases_kept == 10
    assert words(prompt.text) <= budget
    kept = range(prompt.purchases_dropped, 10)
    assert all(f"Title number {i}\n" in prompt.text for i in kept)  # the newest stay
    assert all(f"Title number {i}\n" not in prompt.text for i in range(prompt.purchases_dropped))
    # As many as fit: one more purchase would break the budget.
    one_more = build_prompt(row["history"][prompt.purchases_dropped - 1 :], row["target"],
                            "user_profile")  # fmt: skip
    assert words(one_more.text) > budget


def test_a_newest_purchase_over_the_budget_is_shown_by_its_title_and_counted():
    row = split_row()
    row["history"][-1] = purchase(9, description="long words " * 60)
    newest_in_full = words(build_prompt(row["history"][-1:], row["target"], "user_profile",
                                      count_tokens=words, max_tokens=10_000).text)  # fmt: skip
    budget = newest_in_full - 20  # the newest purchase in full does not fit, its title does
    prompt = build_prompt(row["history"], row["target"], "user_profile", user_id="U1",
                          count_tokens=words, max_tokens=budget)  # fmt: skip
    assert prompt.newest_shortened and prompt.purchases_kept == 1
    assert words(prompt.text) <= budget
    assert "Title number 9\nEND" in prompt.text and "long words" not in prompt.text
    stats = PromptStats()
    stats.add(prompt)
    assert "in 1 the newest purchase alone was over the budget" in stats.summary()
    with pytest.raises(PromptBudgetError, match="user U1: a budget of 40 prompt tokens"):
        build_prompt(row["history"], row["target"], "user_profile", user_id="U1",
                     count_tokens=words, max_tokens=40)  # fmt: skip


def test_long_fields_are_clipped_on_a_word_boundary():
    long = "word " * 1000
    text = build_prompt([purchase(1, description=long, review_text=long)], purchase(2),
                        "purchase_reason").text  # fmt: skip
    description = next(line for line in text.splitlines() if line.startswith("Description: word"))
    assert description.endswith("word" + CLIP_MARK)
    assert len(description) <= len("Description: ") + FIELD_CHARACTERS["description"]
    assert clip("  short \n text ", 100) == "short text"


def test_unknown_prices_say_so():
    text = build_prompt([purchase(1, price=0.0)], purchase(2, price=None), "user_profile").text
    assert text.count("Price: unknown") == 2


def test_item_texts_from_a_catalog():
    table = pa.Table.from_pylist([purchase(1), purchase(2)], schema=pa.schema(
        [(name, ITEM_FEATURES.arrow_schema.field(name).type) for name in ITEM_FEATURES]
    ))  # fmt: skip
    item = ItemTexts.from_vocabulary(ItemVocabulary("office", table), "B000000002")
    assert item == ItemTexts("Title number 2", ("Office Products", "Paper", "Shelf 2"),
                             "Description of item 2.", 4.5, "B000000002")  # fmt: skip


def test_pairs_skip_and_count_rows_without_a_reference():
    rows = [
        split_row(purchase_reason="because", user_profile="thrifty"),
        split_row(purchase_reason="again"),
    ]
    pairs, stats = build_prompt_completions(
        rows, ["purchase_reason", "user_profile"], with_critiques=True
    )
    assert [(p["kind"], p["completion"]) for p in pairs] == [
        ("purchase_reason", "because"),
        ("user_profile", "thrifty"),
        ("purchase_reason", "again"),
    ]
    assert stats.missing_narrative == {"user_profile": 1} and stats.prompts == 3
    assert "1 rows skipped without a reference narrative (user_profile 1)" in stats.summary()
    with pytest.raises(ValueError, match="unknown narrative kinds"):
        build_prompt_completions(rows, ["reason"], with_critiques=True)


def test_stats_count_cut_prompts_over_many_rows():
    rows = [split_row(n_history=8, user_profile="p") for _ in range(3)] + [
        split_row(1, user_profile="q")
    ]
    full = words(build_prompt(rows[0]["history"], rows[0]["target"], "user_profile").text)
    stats = PromptStats()
    build_prompt_completions(rows, ["user_profile"], with_critiques=True, count_tokens=words,
                             max_tokens=full - 20, stats=stats)  # fmt: skip
    assert stats.prompts == 4 and stats.prompts_cut == 3 and stats.purchases_dropped >= 3
    assert stats.summary().startswith("4 prompts, 3 cut to the token budget")


@pytest.fixture(scope="module")
def user_disjoint_folder(tmp_path_factory):
    return build_sample_folder(tmp_path_factory.mktemp("prompts") / "regen", "user_disjoint")


@pytest.mark.parametrize("config", ["office", "office_no_critique"])
def test_on_the_shipped_sample_no_target_review_reaches_any_prompt(user_disjoint_folder, config):
    rows = datasets.load_dataset(str(user_disjoint_folder), config, split="train")
    pairs, stats = build_prompt_completions(rows, with_critiques=config == "office")
    assert stats.prompts == len(rows) * len(NARRATIVE_KINDS) and not stats.missing_narrative
    checked = 0
    for row, start in zip(rows, range(0, len(pairs), len(NARRATIVE_KINDS)), strict=True):
        review = row["target"]["review_text"][:60]
        if any(review in (h["review_text"] or "") for h in row["history"]):
            continue  # synthetic reviews repeat phrases: the same words in an earlier review
        checked += 1
        for pair in pairs[start : start + len(NARRATIVE_KINDS)]:
            assert review not in pair["prompt"]
    assert checked > len(rows) // 2
    critiques = [h["critique"] for r in rows for h in r["history"] if h["critique"]]
    if config == "office":
        assert critiques and any("Critique that led" in p["prompt"] for p in pairs)
    else:
        assert not any("ritique" in p["prompt"] for p in pairs)
