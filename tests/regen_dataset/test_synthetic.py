"""The synthetic data's properties, pinned on small seeded samples (shapes, not exact numbers)."""

import json
import random
import re
from collections import Counter, defaultdict
from functools import cache

import numpy as np
import pytest

from regen_dataset.release import ReadReport, read_release
from regen_dataset.schema import CRITIQUE_SENTINEL, similar_adjacent
from regen_dataset.stats import gini, sentence_shape, split_sentences
from regen_dataset.synthetic import Catalog, generate_release, write_release
from regen_dataset.synthetic.catalog import COLOURS, CONSUMABLES, USES
from regen_dataset.synthetic.narratives import third_person
from regen_dataset.synthetic.shoppers import LAST_DAY, fit, make_shopper, purchases
from regen_dataset.synthetic.wording import article, say
from tests.conftest import SAMPLES


@cache
def users(category: str, n: int = 2_000, seed: int = 3) -> tuple[dict, ...]:
    return tuple(json.loads(line) for line in generate_release(category, n, seed=seed))


def sequences(category: str) -> list[list[str]]:
    return [[e["item"]["asin"] for e in u["purchase_history"]] for u in users(category)]


def test_seeded_and_deterministic():
    first = list(generate_release("clothing", 30, seed=7))
    assert first == list(generate_release("clothing", 30, seed=7))
    assert first != list(generate_release("clothing", 30, seed=8))


def test_every_line_says_it_is_synthetic():
    assert all(user["synthetic"] is True for user in users("office"))


def test_catalog_depth_attributes_and_unique_ids():
    for category in ("office", "clothing"):
        catalog = Catalog(category, 2_000)
        assert len(catalog.items) == 2_000 and len({i.asin for i in catalog.items}) == 2_000
        assert all(len(catalog.leaves[item.leaf].path) == 5 for item in catalog.items)
        assert len({i.brand for i in catalog.items}) >= 10
        assert len({i.colour for i in catalog.items}) >= 8
        assert len({i.size for i in catalog.items}) >= 5
        unknown_price = sum(item.price == 0.0 for item in catalog.items) / len(catalog.items)
        assert 0.1 < unknown_price < 0.3  # the release writes 0.0 for unknown prices


def test_categories_share_no_item_or_user_id():
    """A prediction file of one category must not pass as one of another."""
    office, clothing = Catalog("office", 2_000), Catalog("clothing", 2_000)
    asins = [{item.asin for item in catalog.items} for catalog in (office, clothing)]
    assert not asins[0] & asins[1]
    assert all(re.fullmatch(r"B0[0-9A-Z]{8}", asin) for asin in asins[0] | asins[1])
    user_ids = [{u["reviewer_id"] for u in users(category)} for category in ("office", "clothing")]
    assert not user_ids[0] & user_ids[1]
    assert all(re.fullmatch(r"SYN\d{9}", user_id) for user_id in user_ids[0] | user_ids[1])


def test_shipped_samples_share_no_item_or_user_id():
    ids = {}
    for category in ("office", "clothing"):
        with open(SAMPLES / f"{category}_synthetic.jsonl", encoding="utf-8") as handle:
            lines = [json.loads(line) for line in handle]
        ids[category] = {line["reviewer_id"] for line in lines} | {
            e["item"]["asin"] for line in lines for e in line["purchase_history"]
        }
    assert len(ids["office"]) > 300 and not ids["office"] & ids["clothing"]


@pytest.mark.parametrize("category", ["office", "clothing"])
def test_item_popularity_is_long_tailed(category):
    counts = np.array(sorted(Counter(a for s in sequences(category) for a in s).values()))[::-1]
    assert 0.45 <= gini(counts) <= 0.75
    top_percent = counts[: max(1, len(counts) // 100)].sum() / counts.sum()
    assert top_percent > 0.05  # a flat catalog would give about 1%


def _recall_at_10(category: str) -> tuple[float, float, float]:
    """Leave-one-out on the sequences: (most popular, random, item-to-item transitions)."""
    seqs = sequences(category)
    train = [s[:-2] for s in seqs]  # what the train split sees
    popularity = Counter(a for s in train for a in s)
    popular = [a for a, _ in popularity.most_common()]
    following = defaultdict(Counter)
    for s in train:
        for a, b in zip(s, s[1:], strict=False):
            following[a][b] += 1

    def transition(history):
        top = [a for a, _ in following[history[-1]].most_common(10)]
        return top + [a for a in popular if a not in top][: 10 - len(top)]

    items = sorted(popularity)
    return (
        float(np.mean([s[-1] in popular[:10] for s in seqs])),
        10 / len(items),
        float(np.mean([s[-1] in transition(s[:-1]) for s in seqs])),
    )


@pytest.mark.parametrize("category", ["office", "clothing"])
def test_sequences_hold_what_transitions_learn_and_popularity_does_not(category):
    popular, random_recall, transition = _recall_at_10(category)
    assert popular > 3 * random_recall
    assert transition > 1.5 * popular


def test_repeat_purchases_are_consumables_and_never_back_to_back():
    repeats = total = 0
    for user in users("office"):
        history = user["purchase_history"]
        seen = set()
        for previous, entry in zip([None, *history], history, strict=False):
            asin = entry["item"]["asin"]
            total += 1
            if previous is not None:
                assert previous["item"]["asin"] != asin
            if asin in seen:
                repeats += 1
                leaf = entry["item"]["category"].split(" - ")[-1]
                assert leaf in CONSUMABLES["office"], leaf
            seen.add(asin)
    assert 0.02 < repeats / total < 0.12


def test_ratings_follow_how_well_the_item_fits_the_taste():
    catalog = Catalog("clothing", 1_000)
    fits, ratings = [], []
    for index in range(400):
        rng = random.Random(index)
        shopper = make_shopper(catalog, rng)
        for purchase in purchases(catalog, shopper, 10, rng):
            fits.append(purchase.fit)
            ratings.append(purchase.rating)
    assert np.corrcoef(fits, ratings)[0, 1] > 0.2
    assert 4.0 < np.mean(ratings) < 4.45  # Amazon's mean rating is about 4.3


def test_tastes_drift_over_a_long_history():
    catalog = Catalog("office", 1_000)
    drifted = 0
    for index in range(200):
        rng = random.Random(index)
        shopper = make_shopper(catalog, rng)
        before = list(shopper.interests)
        purchases(catalog, shopper, 30, rng)
        drifted += shopper.interests != before
        assert fit(catalog.items[0], shopper) >= 0
    assert drifted > 150


def test_timestamps_lie_within_the_release_years_and_run_forward():
    for user in users("clothing"):
        times = [e["review"]["timestamp"] for e in user["purchase_history"]]
        assert times == sorted(times)
        assert 1_230_768_000 <= times[0] and times[-1] <= LAST_DAY  # 2009 to October 2018


@pytest.mark.parametrize("category", ["office", "clothing"])
def test_critiques_only_between_similar_adjacent_items(category):
    critiqued = pairs = 0
    for user in users(category):
        history = user["purchase_history"]
        assert history[0]["critique"] == CRITIQUE_SENTINEL
        for previous, current in zip(history, history[1:], strict=False):
            similar = similar_adjacent(
                previous["item"]["category"].split(" - "), current["item"]["category"].split(" - ")
            )
            assert (current["critique"] != CRITIQUE_SENTINEL) == similar
            pairs += 1
            critiqued += similar
    assert 0.12 < critiqued / pairs < 0.26  # the paper: 17.6% (Office), 18.6% (Clothing)


def _critique_pairs(category: str):
    for user in users(category):
        history = user["purchase_history"]
        for previous, current in zip(history, history[1:], strict=False):
            if current["critique"] != CRITIQUE_SENTINEL:
                yield previous["item"], current["item"], current["critique"]


def _named_goal_attributes(goal: dict, critique: str, category: str) -> int:
    """How many of the goal's own attribute values (kind, colour, brand, material) it names."""
    text = critique.lower()
    title = goal["title"]
    leaf = goal["category"].split(" - ")[-1].lower()
    colour = next((c for c in COLOURS[category] if c in title), None)
    brand = title.split(" by ")[-1].split(" - ")[0] if " by " in title else title.split()[0]
    named = [leaf in text, bool(colour) and colour.lower() in text, brand.lower() in text]
    return sum(named)


@pytest.mark.parametrize("category", ["office", "clothing"])
def test_critiques_name_one_or_two_changes_often_vaguely(category):
    named = [_named_goal_attributes(goal, c, category) for _, goal, c in _critique_pairs(category)]
    counts = Counter(named)
    assert max(named) <= 2
    # Many name none of the goal's values (vague, about a dislike, or noisy); none name them all.
    assert 0.35 < counts[0] / len(named) < 0.9
    critiques = [c for _, _, c in _critique_pairs(category)]
    assert len(set(critiques)) > 0.5 * len(critiques)
    dislikes = sum(c.startswith(("The ", "I didn't", "It was", "That one")) for c in critiques)
    assert dislikes > 0.05 * len(critiques)


GRAMMAR_FAULTS = {
    "a before a vowel sound": re.compile(r"\b[Aa] (?=(?:[aei]|o(?!ne\b))\w)"),
    "an before a consonant": re.compile(r"\b[Aa]n (?=[bcdgjkpqtvwyz]|s\w)"),
    "a false singular": re.compile(r"\b\w+(?:sse|che)\b(?! )|Dresse\b"),
    "a doubled full stop": re.compile(r"\.\."),
    "a doubled word": re.compile(r"\b(\w+) \1\b", re.IGNORECASE),
    "a capital inside a sentence": re.compile(r"[a-z,] (?:In|From|Made|Like|Cheaper|A|An) "),
    "a sentence in lower case": re.compile(r"(?:^|[.!?] )[a-z]"),
    "a first-person use in a narrative": re.compile(r"\b(?:my|our) "),
}


def _texts(user: dict):
    for entry in user["purchase_history"]:
        yield "review", entry["review"]["text"]
        yield "description", entry["item"]["description"]
        if entry["critique"] != CRITIQUE_SENTINEL:
            yield "critique", entry["critique"]
    for group in ("last_purchase", "user"):
        for text in user[group].values():
            yield "narrative", text


@pytest.mark.parametrize("category", ["office", "clothing"])
def test_no_grammar_faults(category):
    for user in users(category)[:800]:
        for kind, text in _texts(user):
            for fault, pattern in GRAMMAR_FAULTS.items():
                if fault.endswith("narrative") and kind != "narrative":
                    continue
                assert not pattern.search(text), f"{fault} in {kind}: {text!r}"


def test_articles_agree():
    assert article("ivory") == "an" and article("XL") == "an" and article("one-year") == "a"
    assert article("uniform") == "a" and article("navy") == "a"
    assert say(random.Random(0), "A [x] lamp and a [y] pen.", x="ivory", y="blue") == (
        "An ivory lamp and a blue pen."
    )


@pytest.mark.parametrize("category", ["office", "clothing"])
def test_narratives_cite_the_users_own_uses_and_colours(category):
    palette = [c.lower() for c in COLOURS[category]]
    for user in users(category)[:600]:
        history = user["purchase_history"]
        reviews = " ".join(e["review"]["text"] for e in history)
        named_uses = {third_person(u) for u in USES[category] if u in reviews}
        narratives = " ".join([*user["last_purchase"].values(), *user["user"].values()])
        for use in USES[category]:
            if third_person(use) in narratives.replace("your ", "their "):
                assert third_person(use) in named_uses, (use, narratives)
        bought = {c for c in palette for e in history if c in e["item"]["title"].lower()}
        for colour in palette:
            if re.search(rf"\b{colour}\b", user["user"]["long_summary"]):
                assert colour in bought or any(colour in b for b in bought), colour


def test_the_theme_is_the_dominant_one():
    for user in users("office")[:400]:
        themes = Counter(e["item"]["category"].split(" - ")[2] for e in user["purchase_history"])
        top = themes.most_common(1)[0][1]
        leaders = {theme.lower() for theme, count in themes.items() if count == top}
        assert any(theme in user["user"]["long_summary"].lower() for theme in leaders)


@pytest.mark.parametrize("category", ["office", "clothing"])
def test_narratives_and_profiles_vary(category):
    sample = users(category)[:1_000]
    profiles = {u["user"]["profile"] for u in sample}
    assert len(profiles) > 500  # the old generator wrote 24 profiles for 5,000 users
    for group, key in (
        ("last_purchase", "reason"),
        ("last_purchase", "explanation"),
        ("last_purchase", "endorsement"),
        ("user", "brief_summary"),
        ("user", "long_summary"),
    ):
        shapes = Counter(sentence_shape(s) for u in sample for s in split_sentences(u[group][key]))
        assert len(shapes) >= 25, (key, len(shapes))
        assert shapes.most_common(1)[0][1] < 0.25 * sum(shapes.values()), key


def test_release_format_reads_back(tmp_path):
    path = tmp_path / "clothing_synthetic.jsonl"
    write_release(path, "clothing", 200, seed=2)
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no partial file left
    report = ReadReport()
    read = [u for batch in read_release(path, report=report) for u in batch.to_pylist()]
    assert len(read) == 200 and report.skipped_lines == 0
    assert set(report.unknown_fields) <= {"synthetic"}  # the flag, until the reader knows it
    lengths = [len(u["interactions"]) for u in read]
    assert min(lengths) >= 5 and max(lengths) <= 50 and 7.5 < sum(lengths) / len(lengths) < 11
    assert report.found["last_purchase.endorsement"] == 200 and report.found["metadata.user"] == 200
    bytes_per_user = path.stat().st_size / 200
    assert 8_000 < bytes_per_user < 16_000  # realistic text lengths: about 10 KB per user
    interactions = [i for u in read for i in u["interactions"]]
    assert 50 < np.mean([len(i["title"]) for i in interactions]) < 110
    assert 300 < np.mean([len(i["description"]) for i in interactions]) < 600
    assert 150 < np.mean([len(i["review_text"]) for i in interactions]) < 450


def test_workers_write_the_same_file(tmp_path):
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    write_release(one, "office", 2_500, seed=4)
    write_release(two, "office", 2_500, seed=4, workers=2)
    assert one.read_bytes() == two.read_bytes()


@pytest.mark.parametrize("workers", [1, 2])
def test_a_catalog_too_small_is_refused_before_any_worker_starts(tmp_path, workers):
    # A worker whose catalog fails is started again by the pool, for ever.
    with pytest.raises(ValueError, match="needs at least 80 items"):
        write_release(tmp_path / "small.jsonl", "office", 10, n_items=50, workers=workers)
    assert list(tmp_path.iterdir()) == []
