"""Benchmark: raw Amazon Reviews 2018 files -> REGEN user sequences, at the Clothing size.

    python benchmarks/bench_amazon.py                        # 32M review lines, 2.7M metadata lines
    python benchmarks/bench_amazon.py --review-lines 2000000 --meta-lines 400000   # a quick run

1. Writes a SYNTHETIC raw pair in Amazon's 2018 format, gzipped as Amazon ships it:
   `Clothing_*.json.gz` (one review a line: reviewerID, asin, overall, reviewText, summary,
   unixReviewTime, reviewTime, style, reviewerName, verified) and `meta_Clothing_*.json.gz` (asin,
   title, category, description, price, brand, also_buy, ... with HTML entities and tags here and
   there). Sizes follow Clothing, Shoes & Jewelry 2018: 32.3M reviews by about 14M users, of whom
   about 1.2M have 5 or more (the paper keeps 1,168,735); 2.7M items, popular ones reviewed far
   more often; review text ~300 characters, summary ~30, title ~80, description ~400, drawn from a
   Zipf-distributed vocabulary so that the text compresses like English, not like a template.
   Some items have no title, some reviewed items no metadata, some reviews repeat the previous
   item. Cached in bench_out/amazon/.
2. Times `regen_dataset.amazon.build_sequences` writing release-format JSONL from them, in a fresh
   process, with its peak resident memory (os.wait4), then deletes the output (about 13 GB at the
   full size) unless --keep-output. It needs about 13 GB free in bench_out/ for the working
   folder and the output, besides 7.4 GB of cached inputs.
Results go to stdout and bench_out/bench_amazon.json.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLOTHING_REVIEWS, CLOTHING_ITEMS = 32_292_099, 2_685_059  # Amazon Reviews 2018, Clothing
LONG_USERS_SHARE = 1_200_000 / CLOTHING_REVIEWS  # users with 5+ reviews, per review line


def run_measured(code: str) -> tuple[float, float, str]:
    """Run Python code in a fresh process: (seconds, peak RSS in GB, stdout)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if status:
        raise RuntimeError(f"benchmark step failed ({status}):\n{code}\n{output}")
    return seconds, usage.ru_maxrss / 1024**2, output  # ru_maxrss is in KB on Linux


# ---------------------------------------------------------------------------------------------
# Synthetic raw files

_SYLLABLES = "ba be bi bo bu da de di do fa fe fi ka ke ki ko la le li lo lu ma me mi mo na ne ni"
_COMMON = (
    "the and a to it i is this for of my in was but not very so with on they are fit great size "
    "love these would like just well one color small little good nice wear comfortable too feet "
    "perfect quality ordered look looks really bought am big shoes shirt dress pair fits were"
)
_TREE = {
    "Women": ["Clothing", "Shoes", "Jewelry", "Watches", "Handbags &amp; Wallets"],
    "Men": ["Clothing", "Shoes", "Accessories", "Watches"],
    "Girls": ["Clothing", "Shoes", "Jewelry"],
    "Boys": ["Clothing", "Shoes"],
    "Novelty &amp; More": ["Clothing", "Accessories"],
}
_LEAVES = [
    "Dresses",
    "Tops, Tees &amp; Blouses",
    "Jeans",
    "Sweaters",
    "Active",
    "Athletic",
    "Boots",
    "Sandals",
    "Necklaces",
    "Earrings",
    "Wrist Watches",
    "T-Shirts",
    "Socks &amp; Hosiery",
    "Sunglasses &amp; Eyewear Accessories",
]
_SIZES = ["Small", "Medium", "Large", "X-Large", "8", "9", "10", "One Size"]
_COLOURS = ["Black", "Navy", "White", "Heather Grey", "Red", "Olive", "Blush", "Multi"]


def _corpus(rng: np.random.Generator, words: int = 9_000_000) -> str:
    """English-like text: Zipf-distributed words with sentence breaks, no quotes or backslashes."""
    syllables = _SYLLABLES.split()
    invented = {"".join(rng.choice(syllables, size=rng.integers(2, 5))) for _ in range(30_000)}
    vocabulary = _COMMON.split() + sorted(invented)
    weights = 1.0 / (np.arange(len(vocabulary)) + 2.7)
    picks = rng.choice(len(vocabulary), size=words, p=weights / weights.sum())
    tokens = [vocabulary[index] for index in picks.tolist()]
    for index in range(0, words, 13):
        tokens[index] = tokens[index] + "."
    return " ".join(tokens)


def _lognormal_lengths(rng, n: int, mean: float, low: int, high: int) -> np.ndarray:
    sigma = 0.8
    mu = np.log(mean) - sigma**2 / 2
    return np.clip(rng.lognormal(mu, sigma, n), low, high).astype(np.int64)


def _gzip_writer(path: Path):
    partial = open(f"{path}.partial", "wb")
    process = subprocess.Popen(["gzip", "-1"], stdin=subprocess.PIPE, stdout=partial)
    return partial, process


def _finish(partial, process, path: Path) -> None:
    process.stdin.close()
    if process.wait():
        raise RuntimeError("gzip failed")
    partial.close()
    os.replace(partial.name, path)


def _asin(item: int) -> str:
    return f"B0{(item * 2654435761 + 97) % 16**8:08X}"


def write_reviews(path: Path, lines: int, items: int, seed: int, corpus: str) -> dict:
    rng = np.random.default_rng(seed)
    # Users: ~1.2M (scaled) with 5 or more reviews, a few heavy ones, the rest with 1 to 4.
    n_long = max(1, round(lines * LONG_USERS_SHARE))
    long = 4 + rng.geometric(1 / 7, n_long)
    heavy = rng.random(n_long) < 0.004
    long[heavy] = rng.integers(50, 300, heavy.sum())
    remaining = lines - int(long.sum())
    short = rng.choice([1, 2, 3, 4], p=[0.7, 0.18, 0.08, 0.04], size=max(1, remaining))
    short = short[: np.searchsorted(np.cumsum(short), remaining, side="right")]
    lengths = np.concatenate([long, short, [remaining - short.sum()]]).astype(np.int64)
    lengths = lengths[lengths > 0]
    rng.shuffle(lengths)
    user = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
    assert len(user) == lines
    first = np.concatenate(([0], np.cumsum(lengths)[:-1]))

    # Items: popular ones far more often; 1% of reviewed ASINs have no metadata line.
    weights = 1.0 / (np.arange(int(items * 1.01)) + 20.0) ** 0.9
    item = np.searchsorted(np.cumsum(weights) / weights.sum(), rng.random(lines))
    item = rng.permutation(len(weights))[item]  # popularity unrelated to the ASIN
    repeat = rng.random(lines) < 0.02
    repeat[first] = False
    for _ in range(3):  # the same item as the review before (the preprocessing removes these)
        item[repeat] = item[np.flatnonzero(repeat) - 1]

    # Times: day resolution, 2003-2018, a few reviews on the same day.
    days = rng.integers(0, 60, lines)
    days[first] = 0
    start = rng.integers(12_000, 17_500, len(lengths))
    cumulative = np.cumsum(days)
    day = np.repeat(start, lengths) + cumulative - np.repeat(cumulative[first], lengths)
    # The reader refuses times after 2030; Amazon Reviews 2018 ends in October 2018.
    day = np.minimum(day, 17_800)
    rating = rng.choice([1, 2, 3, 4, 5], p=[0.06, 0.05, 0.09, 0.17, 0.63], size=lines)
    text_len = _lognormal_lengths(rng, lines, 300, 5, 8000)
    summary_len = _lognormal_lengths(rng, lines, 30, 3, 120)
    text_at = rng.integers(0, len(corpus) - 8000, lines)
    summary_at = rng.integers(0, len(corpus) - 120, lines)
    style = rng.integers(0, len(_SIZES) * len(_COLOURS), lines)

    order = np.argsort(item, kind="stable")  # Amazon's files are grouped by item
    day_names = {}
    partial, process = _gzip_writer(path)
    chunk = 500_000
    for begin in range(0, lines, chunk):
        rows = order[begin : begin + chunk]
        out = []
        columns = zip(
            user[rows].tolist(),
            item[rows].tolist(),
            day[rows].tolist(),
            rating[rows].tolist(),
            text_at[rows].tolist(),
            text_len[rows].tolist(),
            summary_at[rows].tolist(),
            summary_len[rows].tolist(),
            style[rows].tolist(),
            strict=True,
        )
        for u, i, d, r, ta, tl, sa, sl, st in columns:
            name = day_names.get(d)
            if name is None:
                date = datetime.date(1970, 1, 1) + datetime.timedelta(days=d)
                name = day_names[d] = f"{date.month:02d} {date.day}, {date.year}"
            out.append(
                f'{{"overall": {r}.0, "verified": true, "reviewTime": "{name}", '
                f'"reviewerID": "A{(u * 2654435761 + 11) % 2**52:013X}", "asin": "{_asin(i)}", '
                f'"style": {{"Size:": " {_SIZES[st % 8]}", "Color:": " {_COLOURS[st // 8]}"}}, '
                f'"reviewerName": "Reviewer {u % 9973}", '
                f'"reviewText": "{corpus[ta : ta + tl]}", "summary": "{corpus[sa : sa + sl]}", '
                f'"unixReviewTime": {d * 86400}}}\n'
            )
        process.stdin.write("".join(out).encode())
    _finish(partial, process, path)
    return {"users": len(lengths), "users_with_5_or_more": int((lengths >= 5).sum())}


def write_meta(path: Path, items: int, seed: int, corpus: str) -> None:
    rng = np.random.default_rng(seed + 1)
    paths = [
        ["Clothing, Shoes &amp; Jewelry", who, group, leaf]
        for who, groups in _TREE.items()
        for group in groups
        for leaf in _LEAVES
    ]
    title_len = _lognormal_lengths(rng, items, 80, 10, 400)
    description_len = _lognormal_lengths(rng, items, 400, 0, 4000)
    partial, process = _gzip_writer(path)
    chunk = 200_000
    for begin in range(0, items, chunk):
        n = min(chunk, items - begin)
        picks = {
            "path": rng.integers(0, len(paths), n).tolist(),
            "title_at": rng.integers(0, len(corpus) - 400, n).tolist(),
            "description_at": rng.integers(0, len(corpus) - 4000, n).tolist(),
            "kind": rng.random(n).tolist(),
            "price": np.round(np.exp(rng.normal(3.0, 0.8, n)), 2).tolist(),
            "also": rng.integers(0, items, (n, 12)).tolist(),
        }
        out = []
        for offset in range(n):
            index = begin + offset
            kind = picks["kind"][offset]
            ta, tl = picks["title_at"][offset], int(title_len[index])
            title = corpus[ta : ta + tl].capitalize()
            if kind < 0.03:
                title = ""  # no title: the preprocessing drops its reviews
            elif kind < 0.15:
                title = title.replace(" ", " &amp; ", 1)
            da, dl = picks["description_at"][offset], int(description_len[index])
            cut = da + dl // 2
            description = [corpus[da:cut] + "<br>", corpus[cut : da + dl].replace(" ", "&nbsp;", 1)]
            price = picks["price"][offset]
            if kind < 0.45:
                price_text = f"${price:,.2f}"
            elif kind < 0.5:
                price_text = f"${price:,.2f} - ${price * 2:,.2f}"
            else:
                price_text = ""
            also = json.dumps([_asin(i) for i in picks["also"][offset]])
            out.append(
                '{"category": '
                + json.dumps(paths[picks["path"][offset]])
                + f', "tech1": "", "description": {json.dumps(description)}, "fit": "", '
                f'"title": "{title}", "also_buy": {also}, "tech2": "", '
                f'"brand": "Brand{index % 5000}", '
                f'"feature": [], "rank": "{index + 1:,} in Clothing, Shoes &amp; Jewelry (", '
                f'"also_view": [], "main_cat": "Fashion", "similar_item": "", "date": "", '
                f'"price": "{price_text}", "asin": "{_asin(index)}", "imageURL": [], '
                f'"imageURLHighRes": []}}\n'
            )
        process.stdin.write("".join(out).encode())
    _finish(partial, process, path)


# ---------------------------------------------------------------------------------------------

BUILD = """
import json
from regen_dataset.amazon import build_sequences
report = build_sequences("{reviews}", "{meta}", "{out}", progress=False)
print(json.dumps(report.to_dict()))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--review-lines", type=int, default=32_000_000)
    parser.add_argument("--meta-lines", type=int, default=2_700_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", default=str(REPO / "bench_out"))
    parser.add_argument("--keep-output", action="store_true")
    parser.add_argument("--synthesize-only", action="store_true", help="write the inputs and stop")
    args = parser.parse_args()
    work = Path(args.workdir)
    folder = work / "amazon"
    folder.mkdir(parents=True, exist_ok=True)
    results: dict = {"machine": f"{os.cpu_count()} cores", "python": sys.version.split()[0]}

    tag = f"{args.review_lines}_{args.meta_lines}_{args.seed}"
    reviews = folder / f"Clothing_{tag}.json.gz"
    meta = folder / f"meta_Clothing_{tag}.json.gz"
    users_file = folder / f"Clothing_{tag}.users.json"
    if not (reviews.exists() and meta.exists() and users_file.exists()):
        started = time.perf_counter()
        corpus = _corpus(np.random.default_rng(args.seed))
        write_meta(meta, args.meta_lines, args.seed, corpus)
        users = write_reviews(reviews, args.review_lines, args.meta_lines, args.seed, corpus)
        users_file.write_text(json.dumps(users))
        results["synthesize_seconds"] = round(time.perf_counter() - started, 1)
        print(f"synthesized in {results['synthesize_seconds']} s", flush=True)
    if args.synthesize_only:
        return
    results["input"] = {
        "review_lines": args.review_lines,
        "meta_lines": args.meta_lines,
        **json.loads(users_file.read_text()),
        "reviews_gz_gb": round(reviews.stat().st_size / 1e9, 2),
        "meta_gz_gb": round(meta.stat().st_size / 1e9, 2),
    }

    out = folder / f"sequences_{tag}.jsonl"
    seconds, peak, output = run_measured(BUILD.format(reviews=reviews, meta=meta, out=out))
    report = json.loads(output.strip().splitlines()[-1])
    results["build_sequences"] = {
        "seconds": round(seconds, 1),
        "peak_rss_gb": round(peak, 2),
        "review_lines_per_s": round(args.review_lines / seconds),
        "output_gb": round(out.stat().st_size / 1e9, 2),
        "seconds_by_pass": report["seconds"],
        "buckets": report["buckets"],
    }
    results["report"] = {
        key: value
        for key, value in report.items()
        if key not in ("seconds", "bad_line_examples", "reviews_file", "meta_file")
    }
    if not args.keep_output:
        out.unlink()
    (work / "bench_amazon.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
