import gzip
import itertools
import json
import os
import re

import pyarrow as pa
import pytest

from regen_dataset.amazon import (
    AmazonFormatError,
    AmazonReport,
    build_sequences,
    clean_html,
    parse_price,
    read_amazon,
    user_hash,
    write_sequences,
)
from regen_dataset.release import ReadReport, iter_users
from tests.conftest import real_fixture, write_lines

REVIEWS = "amazon2018_office_reviews_200.jsonl"
PRICES = ["$12.99", "$10.00 - $20.00", "", "$1,299.00", None, ".a-box-inner{background:#fff}"]


@pytest.fixture(scope="module")
def real_reviews() -> list[dict]:
    with open(real_fixture(REVIEWS), encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def meta_line(asin: str, index: int) -> dict:
    """Metadata in Amazon's 2018 shape: HTML entities and tags, each kind of price string."""
    line = {
        "asin": asin,
        "title": f"Gel Pens &amp; Markers <b>No. {index}</b>",
        "category": ["Office Products", "Office &amp; School Supplies", "Pens &amp; Refills"],
        "description": [f"Smooth&nbsp;ink <br/>for {asin}.", "", "Pack of 12 &lt;assorted&gt;"],
        "brand": "Pilot",
        "also_buy": ["B000000000"],
        "details": {"Item Weight:": "4 ounces"},
    }
    if PRICES[index % len(PRICES)] is not None:
        line["price"] = PRICES[index % len(PRICES)]
    return line


def write_meta(path, asins, untitled=()) -> None:
    """Metadata lines for `asins`; those in `untitled` have no usable title."""
    lines = []
    for index, asin in enumerate(asins):
        line = meta_line(asin, index)
        if asin in untitled:
            # no title, an empty one, or one that is nothing but tags
            line["title"] = [None, "", "<span class='a'></span>"][index % 3]
            if line["title"] is None:
                del line["title"]
        lines.append(line)
    write_lines(path, lines)


def distinct(reviews: list[dict], n: int, user: str = "U") -> list[dict]:
    """The first `n` real lines of distinct items, all given to one reviewer."""
    by_asin = {}
    for line in reviews:
        by_asin.setdefault(line["asin"], dict(line, reviewerID=user))
    return list(by_asin.values())[:n]


def regroup(reviews: list[dict], users: int) -> list[dict]:
    """The real lines, dealt round-robin to `users` reviewers (times and texts unchanged)."""
    return [dict(line, reviewerID=f"U{i % users:02d}") for i, line in enumerate(reviews)]


def read_all(reviews, meta, **kwargs) -> list[dict]:
    return list(read_amazon(reviews, meta, **kwargs))


def assert_accounted(report: AmazonReport) -> None:
    assert report.review_lines == (
        report.bad_review_lines
        + report.interactions_without_title
        + report.consecutive_duplicates
        + report.interactions_over_max
        + report.interactions_of_short_users
        + report.interactions_of_users_over_max_users
        + report.interactions_kept
    )
    assert report.meta_lines == (
        report.bad_meta_lines
        + report.meta_unreferenced
        + report.meta_without_title
        + report.meta_duplicates
        + report.items_with_title
    )
    assert report.users_read == (
        report.users_without_titled_items
        + report.users_too_short
        + report.users_over_max_users
        + report.users_kept
    )


def test_sequences_from_real_reviews(tmp_path, real_reviews):
    lines = regroup(real_reviews, 20)
    reviews = write_lines(tmp_path / "Office_Products.json", lines)
    asins = sorted({line["asin"] for line in lines})
    write_meta(tmp_path / "meta_Office_Products.json", asins)
    report = AmazonReport()
    users = read_all(reviews, tmp_path / "meta_Office_Products.json", report=report, buckets=3)

    assert sorted(u["reviewer_id"] for u in users) == [f"U{i:02d}" for i in range(20)]
    by_key = {(line["reviewerID"], line["unixReviewTime"], line["asin"]): line for line in lines}
    for user in users:
        times = [entry["review"]["unix_time"] for entry in user["purchase_history"]]
        assert times == sorted(times)
        for entry in user["purchase_history"]:
            item, review = entry["item"], entry["review"]
            source = by_key[(user["reviewer_id"], review["unix_time"], item["asin"])]
            assert review["text"] == source["reviewText"]
            assert review["summary"] == source["summary"]
            assert review["rating"] == int(source["overall"]) and isinstance(review["rating"], int)
            assert set(item) == {"asin", "title", "category", "description", "price"}
    assert report.users_kept == 20 and report.interactions_kept <= 200
    assert report.items_reviewed == len(asins)
    assert_accounted(report)
    assert "kept 20 users" in report.summary()
    assert json.loads(json.dumps(report.to_dict()))["users_kept"] == 20


def test_item_text_is_cleaned_and_prices_parsed(tmp_path, real_reviews):
    lines = distinct(real_reviews, 12)
    reviews = write_lines(tmp_path / "r.json", lines)
    asins = [line["asin"] for line in lines]
    write_meta(tmp_path / "m.json", asins)
    report = AmazonReport()
    (user,) = read_all(reviews, tmp_path / "m.json", report=report, min_length=1)
    items = {entry["item"]["asin"]: entry["item"] for entry in user["purchase_history"]}
    item = items[asins[3]]
    assert item["title"] == "Gel Pens & Markers No. 3"
    assert item["category"] == "Office Products - Office & School Supplies - Pens & Refills"
    assert item["description"] == f"Smooth ink for {asins[3]}. Pack of 12 <assorted>"
    assert [items[a]["title"] for a in asins] == [f"Gel Pens & Markers No. {i}" for i in range(12)]
    # One price of each kind, in the order of PRICES: single, range, empty, thousands, missing, junk
    assert [items[asin]["price"] for asin in asins[:6]] == [12.99, 0.0, 0.0, 1299.0, 0.0, 0.0]
    assert report.price_ranges == 2 and report.prices_unknown == 6


def test_clean_html_and_parse_price():
    texts = ["a &amp; b", "<p>Soft</p>\n<br>cotton", "x &lt;b&gt; y", "1 < 2 > 0", None, "&nbsp;"]
    cleaned = ["a & b", "Soft cotton", "x <b> y", "1 < 2 > 0", None, ""]
    assert clean_html(pa.array(texts)).to_pylist() == cleaned
    prices, kinds = parse_price(pa.array(["$5", " $1,234.50 ", "$1.00 - $2.00", "", None, "free"]))
    assert prices.to_pylist() == [5.0, 1234.5, 0.0, 0.0, 0.0, 0.0]
    assert kinds.tolist() == [0, 0, 1, 2, 2, 2]


def test_items_without_title_are_dropped_and_counted(tmp_path, real_reviews):
    lines = regroup(real_reviews, 10)
    reviews = write_lines(tmp_path / "r.json", lines)
    asins = sorted({line["asin"] for line in lines})
    missing = set(asins[1::11])  # no metadata line at all
    untitled = set(asins[::7]) - missing  # no title, empty title, or only tags
    write_meta(tmp_path / "m.json", [a for a in asins if a not in missing], untitled=untitled)
    report = AmazonReport()
    users = read_all(reviews, tmp_path / "m.json", report=report)

    dropped = untitled | missing
    assert report.interactions_without_title == sum(line["asin"] in dropped for line in lines)
    assert report.meta_without_title == len(untitled)
    assert report.items_with_title == len(asins) - len(dropped)
    kept_asins = {e["item"]["asin"] for u in users for e in u["purchase_history"]}
    assert kept_asins and not kept_asins & dropped
    assert report.items_kept == len(kept_asins)
    assert_accounted(report)


def test_users_without_a_titled_item_are_counted(tmp_path, real_reviews):
    lines = distinct(real_reviews, 6, user="A") + distinct(real_reviews, 12, user="B")[6:]
    reviews = write_lines(tmp_path / "r.json", lines)
    write_meta(tmp_path / "m.json", [line["asin"] for line in lines[:6]])  # none of B's items
    report = AmazonReport()
    (user,) = read_all(reviews, tmp_path / "m.json", report=report)
    assert user["reviewer_id"] == "A"
    assert (report.users_read, report.users_without_titled_items) == (2, 1)
    assert "1 users without a titled item" in report.summary()
    assert_accounted(report)


@pytest.mark.parametrize("buckets", [1, 3])
def test_max_users_keeps_the_first_users_and_counts_the_others(tmp_path, real_reviews, buckets):
    lines = regroup(real_reviews, 20)
    reviews = write_lines(tmp_path / "r.json", lines)
    write_meta(tmp_path / "m.json", sorted({line["asin"] for line in lines}))
    every = read_all(reviews, tmp_path / "m.json", buckets=buckets)
    report = AmazonReport()
    users = read_all(reviews, tmp_path / "m.json", report=report, buckets=buckets, max_users=2)
    assert users == every[:2]
    assert (report.max_users, report.users_read, report.users_kept) == (2, 20, 2)
    assert report.users_over_max_users == 18 and report.interactions_of_users_over_max_users > 0
    assert "left out 18 users beyond the first 2 (--max-users" in report.summary()
    assert_accounted(report)
    with pytest.raises(ValueError, match="max_users"):
        read_amazon(reviews, tmp_path / "m.json", max_users=0)


def test_items_kept_counts_the_users_taken_when_the_caller_stops_early(tmp_path, real_reviews):
    lines = regroup(real_reviews, 10)
    reviews = write_lines(tmp_path / "r.json", lines)
    write_meta(tmp_path / "m.json", sorted({line["asin"] for line in lines}))
    report = AmazonReport()
    users = list(itertools.islice(read_amazon(reviews, tmp_path / "m.json", report=report), 2))
    taken = {e["item"]["asin"] for u in users for e in u["purchase_history"]}
    assert report.users_kept == 2 and report.items_kept == len(taken) > 0
    assert f"kept 2 users, {report.interactions_kept} interactions, {len(taken)} items" in (
        report.summary()
    )


def test_metadata_of_unreviewed_and_duplicate_items(tmp_path, real_reviews):
    lines = distinct(real_reviews, 6)
    reviews = write_lines(tmp_path / "r.json", lines)
    asins = [line["asin"] for line in lines]
    meta = [dict(meta_line(asins[1], 1), title="")]  # untitled, then titled: the titled one
    meta += [meta_line(asin, i) for i, asin in enumerate(asins)]
    meta.append(meta_line("B0NOTREVIEWED", 0))
    meta.append(dict(meta_line(asins[0], 0), title="A second title"))  # duplicate: first wins
    write_lines(tmp_path / "m.json", meta)
    report = AmazonReport()
    (user,) = read_all(reviews, tmp_path / "m.json", report=report, min_length=1)
    titles = {e["item"]["asin"]: e["item"]["title"] for e in user["purchase_history"]}
    assert titles[asins[0]] == "Gel Pens & Markers No. 0"
    assert titles[asins[1]] == "Gel Pens & Markers No. 1"
    assert report.meta_unreferenced == 1 and report.meta_duplicates == 1
    assert report.meta_without_title == 1 and report.items_with_title == 6
    assert_accounted(report)


def test_consecutive_duplicates_cap_and_ties(tmp_path, real_reviews):
    items = distinct(real_reviews, 194)
    asins = [line["asin"] for line in items]

    def review(user, asin_index, day):
        day = 1_400_000_000 + 86_400 * day
        return dict(items[asin_index], reviewerID=user, unixReviewTime=day)

    lines = []
    # D: A A B A B B X B C with X untitled: dropping X joins the Bs, which then collapse.
    lines += [review("D", i, day) for day, i in enumerate([0, 0, 1, 0, 1, 1, 150, 1, 3])]
    # L: 60 distinct items, written newest first: the last 50 by time are kept.
    lines += [review("L", i, 100 - i) for i in range(60)]
    # T: five items on the same day: the file's line order decides.
    lines += [review("T", 10 + i, 0) for i in (4, 2, 0, 3, 1)]
    # S: four items, too short.
    lines += [review("S", i, i) for i in range(4)]
    reviews = write_lines(tmp_path / "r.json", lines)
    write_meta(tmp_path / "m.json", asins, untitled={asins[150]})
    report = AmazonReport()
    users = {
        u["reviewer_id"]: u["purchase_history"]
        for u in read_all(reviews, tmp_path / "m.json", report=report, min_length=4)
    }

    assert [e["item"]["asin"] for e in users["D"]] == [asins[i] for i in (0, 1, 0, 1, 3)]
    assert report.consecutive_duplicates == 3 and report.interactions_without_title == 1
    assert [e["item"]["asin"] for e in users["L"]] == [asins[i] for i in range(49, -1, -1)]
    assert report.interactions_over_max == 10
    assert [e["item"]["asin"] for e in users["T"]] == [asins[10 + i] for i in (4, 2, 0, 3, 1)]
    assert "S" in users  # min_length=4 keeps it ...
    report = AmazonReport()
    users = read_all(reviews, tmp_path / "m.json", report=report, max_length=20)
    assert "S" not in {u["reviewer_id"] for u in users}  # ... the default of 5 does not
    assert report.users_too_short == 1 and report.interactions_of_short_users == 4
    assert report.interactions_over_max == 40
    assert_accounted(report)


def test_min_length_on_the_real_lines_as_they_are(tmp_path, real_reviews):
    reviews = write_lines(tmp_path / "r.json", real_reviews)
    write_meta(tmp_path / "m.json", sorted({line["asin"] for line in real_reviews}))
    report = AmazonReport()
    assert read_all(reviews, tmp_path / "m.json", report=report) == []  # 1 or 2 reviews each
    assert report.users_too_short == report.users_read == 199
    assert len(read_all(reviews, tmp_path / "m.json", min_length=2)) == 1
    assert len(read_all(reviews, tmp_path / "m.json", min_length=1)) == 199
    with pytest.raises(ValueError, match="min_length"):
        read_amazon(reviews, tmp_path / "m.json", min_length=60)


def test_gzip_inputs_give_the_same_users(tmp_path, real_reviews):
    lines = regroup(real_reviews, 15)
    reviews = write_lines(tmp_path / "r.json", lines)
    write_meta(tmp_path / "m.json", sorted({line["asin"] for line in lines}))
    for name in ("r.json", "m.json"):
        with open(tmp_path / name, "rb") as source, gzip.open(tmp_path / f"{name}.gz", "wb") as out:
            out.write(source.read())
    plain = read_all(reviews, tmp_path / "m.json")
    assert plain and read_all(tmp_path / "r.json.gz", tmp_path / "m.json.gz") == plain
    cut = tmp_path / "cut.json.gz"
    cut.write_bytes((tmp_path / "r.json.gz").read_bytes()[:5000])
    with pytest.raises(OSError, match=re.escape(str(cut))):
        read_all(cut, tmp_path / "m.json.gz")


def test_output_is_read_by_the_release_reader(tmp_path, real_reviews):
    lines = regroup(real_reviews, 20)
    reviews = write_lines(tmp_path / "Office_Products.json", lines)
    write_meta(tmp_path / "meta.json", sorted({line["asin"] for line in lines}))
    out = tmp_path / "out" / "office.jsonl"
    out.parent.mkdir()
    report = build_sequences(reviews, tmp_path / "meta.json", out, progress=False)
    assert os.listdir(out.parent) == ["office.jsonl"]  # no partial file, no working folder

    read_report = ReadReport()
    users = list(iter_users(out, report=read_report))
    assert read_report.skipped_lines == 0 and read_report.lines == report.users_kept == 20
    assert read_report.interactions == report.interactions_kept
    written = [json.loads(line) for line in open(out, encoding="utf-8")]
    for user, line in zip(users, written, strict=True):
        assert user["user_id"] == line["reviewer_id"]
        assert [i["item_id"] for i in user["interactions"]] == [
            e["item"]["asin"] for e in line["purchase_history"]
        ]
        first = user["interactions"][0]
        assert first["categories"] == [
            "Office Products",
            "Office & School Supplies",
            "Pens & Refills",
        ]
        assert first["timestamp"] == line["purchase_history"][0]["review"]["unix_time"]
        prices = [i["price"] for i in user["interactions"]]
        assert all(p is None or p > 0 for p in prices)  # 0.0 is read as unknown


def test_output_does_not_depend_on_buckets_or_runs(tmp_path, real_reviews):
    lines = regroup(real_reviews, 25)
    reviews = write_lines(tmp_path / "r.json", lines)
    write_meta(tmp_path / "m.json", sorted({line["asin"] for line in lines}))
    outputs = []
    for buckets in (1, 1, 4, 13):
        out = tmp_path / f"out_{len(outputs)}.jsonl"
        build_sequences(reviews, tmp_path / "m.json", out, buckets=buckets, progress=False)
        outputs.append(out.read_bytes())
    assert outputs[0] and all(output == outputs[0] for output in outputs)


def test_bad_lines_name_file_line_and_field(tmp_path, real_reviews):
    meta = tmp_path / "m.json"
    write_meta(meta, sorted({line["asin"] for line in real_reviews}))
    good = [dict(line, reviewerID=f"U{i % 5}") for i, line in enumerate(real_reviews[:50])]
    cases = [
        ('{"reviewerID": "U1", "asin": ', "<json>", "malformed JSON"),
        ({k: v for k, v in good[0].items() if k != "reviewerID"}, "reviewerID", "missing"),
        (dict(good[0], overall="5"), "overall", "expected a number"),
        (dict(good[0], overall=7.0), "overall", "from 1 to 5"),
        ({k: v for k, v in good[0].items() if k != "unixReviewTime"}, "unixReviewTime", "missing"),
        (dict(good[0], asin=12), "asin", "expected a string"),
        ("[1, 2]", "<line>", "expected an object"),
    ]
    for bad, field, message in cases:
        # A small block size puts the bad line 41 in a later block than the first.
        path = write_lines(tmp_path / "r.json", good[:40] + [bad] + good[40:])
        with pytest.raises(AmazonFormatError) as caught:
            read_all(path, meta, block_bytes=2048)
        error = caught.value
        assert isinstance(error, ValueError)
        assert (error.path, error.line, error.field) == (str(path), 41, field)
        assert str(error).startswith(f"{path}, line 41, field {field}:") and message in str(error)

    lines = good[:10] + [case[0] for case in cases] + [""] + good[10:]
    path = write_lines(tmp_path / "r.json", lines)
    report = AmazonReport()
    users = read_all(path, meta, skip_bad_lines=True, report=report, block_bytes=2048)
    assert report.bad_review_lines == len(cases) and len(report.bad_line_examples) == len(cases)
    assert re.match(rf"{re.escape(str(path))}, line 11, field <json>", report.bad_line_examples[0])
    assert users == read_all(write_lines(tmp_path / "clean.json", good), meta)
    assert_accounted(report)


def test_bad_metadata_lines(tmp_path, real_reviews):
    lines = distinct(real_reviews, 8)
    reviews = write_lines(tmp_path / "r.json", lines)
    meta = [meta_line(line["asin"], i) for i, line in enumerate(lines)]
    meta.insert(3, {"title": "no asin"})
    write_lines(tmp_path / "m.json", meta)
    with pytest.raises(AmazonFormatError, match=r"m\.json, line 4, field asin: required field"):
        read_all(reviews, tmp_path / "m.json")
    report = AmazonReport()
    (user,) = read_all(
        reviews, tmp_path / "m.json", skip_bad_lines=True, report=report, min_length=1
    )
    assert report.bad_meta_lines == 1 and len(user["purchase_history"]) == 8
    # Odd but readable shapes go the slow way and are still read: a string description.
    meta[0]["description"] = "just a string &amp; more"
    write_lines(tmp_path / "m.json", meta[:3] + meta[4:])
    (user,) = read_all(reviews, tmp_path / "m.json", min_length=1)
    items = {e["item"]["asin"]: e["item"] for e in user["purchase_history"]}
    assert items[lines[0]["asin"]]["description"] == "just a string & more"


def test_a_byte_that_is_not_utf8_is_named_in_reviews_and_metadata(tmp_path, real_reviews):
    lines = distinct(real_reviews, 8)
    lines[5] = dict(lines[5], reviewText="MARK")
    reviews = write_lines(tmp_path / "r.json", lines)
    reviews.write_bytes(reviews.read_bytes().replace(b"MARK", b"caf\xe9"))
    meta = tmp_path / "m.json"
    write_meta(meta, [line["asin"] for line in lines])
    with pytest.raises(AmazonFormatError, match=r"r\.json, line 6, field <json>: .*utf-8"):
        read_all(reviews, meta, min_length=1)
    report = AmazonReport()
    (user,) = read_all(reviews, meta, skip_bad_lines=True, report=report, min_length=1)
    assert report.bad_review_lines == 1 and len(user["purchase_history"]) == 7

    clean = write_lines(tmp_path / "clean.json", distinct(real_reviews, 8))
    meta.write_bytes(meta.read_bytes().replace(b"No. 2", b"No. \xff", 1))
    with pytest.raises(AmazonFormatError, match=r"m\.json, line 3, field <json>: .*utf-8"):
        read_all(clean, meta, min_length=1)


def test_working_folder_is_removed(tmp_path, real_reviews):
    work = tmp_path / "work"
    lines = regroup(real_reviews, 20)
    reviews = write_lines(tmp_path / "r.json", lines)
    meta = tmp_path / "m.json"
    write_meta(meta, sorted({line["asin"] for line in lines}))
    assert read_all(reviews, meta, workdir=work)
    assert os.listdir(work) == []
    users = read_amazon(reviews, meta, workdir=work)
    next(users)
    assert len(os.listdir(work)) == 1  # in use while reading ...
    users.close()
    assert os.listdir(work) == []  # ... and removed when the reader is closed early
    bad = write_lines(tmp_path / "bad.json", lines[:100] + ["{oops"] + lines[100:])
    with pytest.raises(AmazonFormatError):
        read_all(bad, meta, workdir=work)
    assert os.listdir(work) == []


def test_write_sequences_is_atomic(tmp_path):
    def users():
        yield {"reviewer_id": "U1", "purchase_history": []}
        raise RuntimeError("reader failed")

    out = tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError):
        write_sequences(out, users(), progress=False)
    assert os.listdir(tmp_path) == []
    assert write_sequences(tmp_path / "out.jsonl.gz", [{"reviewer_id": "é"}], progress=False) == 1
    with gzip.open(tmp_path / "out.jsonl.gz", "rt", encoding="utf-8") as handle:
        assert json.loads(handle.read()) == {"reviewer_id": "é"}


def test_user_hash_is_fnv1a():
    def fnv1a(text: str) -> int:
        value = 2166136261
        for byte in text.encode():
            value = ((value ^ byte) * 16777619) & 0xFFFFFFFF
        return value

    ids = ["A20AKRG3V2B372", "", "é", "A7FWSCI4QP3J4", "x" * 40]
    assert user_hash(pa.array(ids)).tolist() == [fnv1a(text) for text in ids]
    sliced = pa.chunked_array([pa.array(ids)[1:], pa.array(ids[:1])])
    assert user_hash(sliced).tolist() == [fnv1a(text) for text in ids[1:] + ids[:1]]


def test_implausible_reviews_name_the_field(tmp_path, real_reviews):
    meta = tmp_path / "m.json"
    write_meta(meta, sorted({line["asin"] for line in real_reviews}))
    good = [dict(line, reviewerID=f"U{i % 5}") for i, line in enumerate(real_reviews[:50])]
    cases = [
        (dict(good[0], overall=4.5), "overall", "whole number from 1 to 5"),
        (dict(good[0], unixReviewTime=good[0]["unixReviewTime"] * 1000), "unixReviewTime", "milli"),
        (dict(good[0], unixReviewTime=3600), "unixReviewTime", "unix seconds"),
        # beyond 2**53 (nanoseconds), and an int too large for a float at all
        (dict(good[0], unixReviewTime=1_400_259_200 * 10**9), "unixReviewTime", "unix seconds"),
        (dict(good[0], overall=10**400), "overall", "whole number from 1 to 5"),
    ]
    for bad, field, message in cases:
        for block_bytes in (2048, 32 << 20):
            path = write_lines(tmp_path / "r.json", good[:40] + [bad] + good[40:])
            with pytest.raises(AmazonFormatError) as caught:
                read_all(path, meta, block_bytes=block_bytes)
            assert (caught.value.line, caught.value.field) == (41, field)
            assert message in str(caught.value)


@pytest.mark.parametrize("name", ["r.json", "r.json.gz"])
def test_last_review_line_without_newline(tmp_path, real_reviews, name):
    meta = tmp_path / "m.json"
    write_meta(meta, sorted({line["asin"] for line in real_reviews}))
    text = "\n".join(json.dumps(dict(line, reviewerID="U")) for line in real_reviews[:6])
    path = tmp_path / name
    opener = gzip.open if name.endswith(".gz") else open
    with opener(path, "wt", encoding="utf-8") as handle:
        handle.write(text + "\n   \n" + '{"reviewerID": "U", "asin": ')
    with pytest.raises(AmazonFormatError) as caught:
        read_all(path, meta)
    assert (caught.value.line, caught.value.field) == (8, "<json>")
    report = AmazonReport()
    (user,) = read_all(path, meta, skip_bad_lines=True, report=report, min_length=1)
    assert report.review_lines == 7 and report.bad_review_lines == 1


def _dead_pid() -> int:
    import subprocess
    import sys

    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_bucket_folders_of_dead_runs_are_removed(tmp_path, real_reviews):
    work = tmp_path / "work"
    dead = work / f"regen-amazon-buckets-{_dead_pid()}-x1y2"
    dead.mkdir(parents=True)
    (dead / "bucket_0000.arrow").write_bytes(b"left behind by a killed run")
    alive = work / f"regen-amazon-buckets-{os.getpid()}-z3"  # a reader still running
    alive.mkdir()
    other = work / "regen-amazon-buckets-notes"  # not ours: no pid in the name
    other.mkdir()
    lines = regroup(real_reviews, 20)
    reviews = write_lines(tmp_path / "r.json", lines)
    meta = tmp_path / "m.json"
    write_meta(meta, sorted({line["asin"] for line in lines}))
    out = tmp_path / "office.jsonl"
    partial = tmp_path / f"office.partial-{_dead_pid()}.jsonl"  # a killed writer's output
    partial.write_text('{"reviewer_id": "half a us')
    build_sequences(reviews, meta, out, workdir=work, progress=False)
    assert not partial.exists() and out.exists()
    report = AmazonReport()
    users = read_amazon(reviews, meta, workdir=work, report=report)
    next(users)
    (folder,) = set(os.listdir(work)) - {alive.name, other.name}
    assert folder.startswith(f"regen-amazon-buckets-{os.getpid()}-")
    users.close()
    assert sorted(os.listdir(work)) == sorted([alive.name, other.name])
    assert report.stale_folders_removed == []  # the build above removed it ...
    assert not dead.exists()
    dead.mkdir()  # ... and the next reader removes another one
    report = AmazonReport()
    assert read_all(reviews, meta, workdir=work, report=report)
    assert report.stale_folders_removed == [str(dead)] and not dead.exists()
    assert "removed 1 working folder" in report.summary()
