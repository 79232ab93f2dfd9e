"""Benchmark: does the synthetic REGEN data behave like Amazon data? Before and after, in one run.

    git show 990e20e:regen_dataset/synthetic.py > /tmp/synthetic_before.py   # the old generator
    python benchmarks/bench_synthetic.py --before /tmp/synthetic_before.py
    python benchmarks/bench_synthetic.py --users 1000 --speed-users 5000   # a quick look

For each generator (the one in the package, and `--before` when given) and each category, it
writes `--users` SYNTHETIC users, builds them with `build_folder`, loads the config with
`load_dataset`, and measures on the leave-one-out test split:
- realism (`regen_dataset.stats`): share of interactions of the top 1% and 10% of items, Gini of
  item counts, repeat purchases, similar adjacent pairs, critiques per similar pair, distinct
  sentence shapes per narrative kind;
- Recall@10 of most-popular, random, and an item-to-item transition baseline (counts of item ->
  next item in the train split, from the last history item, popularity after that);
- Recall@10 of "filter the catalog by the critique's words, then popularity" on the test rows that
  have a critique (no history used: it measures how much a critique alone gives away);
- BLEU and ROUGE-Lsum of the nearest-neighbour narrative baseline per kind (the narrative of the
  most similar other test user, `regen_models.baselines`);
- generation speed, users per second, on `--speed-users` Clothing users (nothing written).
Results go to stdout (a Markdown table) and bench_out/bench_synthetic.json.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from regen_dataset.files import write_json  # noqa: E402
from regen_dataset.schema import NARRATIVE_KINDS, SIMILAR_LEVELS  # noqa: E402

STOPWORDS = frozenset(
    "a an the and or but for with from into than then this that these those it its is are was "
    "were be been something anything one ones some any more less much very really just like same "
    "me my i i'd i'm you your can could would should do does did have has had not no so too also "
    "instead rather other another show see looking look want need prefer still only over under "
    "about there here what which who them they their our we us on in of to at by as if".split()
)
_WORD = re.compile(r"[a-z0-9$]+(?:-[a-z0-9]+)*")


def load_generator(spec: str):
    """The generator module: a dotted module name, or a path to a .py file."""
    if spec.endswith(".py"):
        module_spec = importlib.util.spec_from_file_location("synthetic_under_test", spec)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[module_spec.name] = module  # dataclasses look their module up there
        module_spec.loader.exec_module(module)
        return module
    return importlib.import_module(spec)


def generation_speed(generator, users: int) -> dict:
    started = time.perf_counter()
    size = sum(len(line) + 1 for line in generator.generate_release("clothing", users, seed=1))
    seconds = time.perf_counter() - started
    return {
        "users": users,
        "users_per_second": users / seconds,
        "kb_per_user": size / users / 1024,
        "clothing_minutes": generator.PAPER_SIZES["clothing"][0] / (users / seconds) / 60,
    }


def build(generator, category: str, users: int, work: Path):
    import datasets

    from regen_dataset.export import build_folder

    source = work / f"{category}_synthetic.jsonl"
    started = time.perf_counter()
    generator.write_release(source, category, users, seed=0)
    written = time.perf_counter() - started
    folder = work / f"{category}_folder"
    build_folder({category: [str(source)]}, folder, overwrite=True, progress=False)
    datasets.disable_progress_bars()
    return datasets.load_dataset(str(folder), category), users / written


def sequences(split) -> list[list[str]]:
    """Item ids of each row's history followed by its target."""
    histories = split["history"]
    targets = split["target"]
    return [
        [entry["item_id"] for entry in history] + [target["item_id"]]
        for history, target in zip(histories, targets, strict=True)
    ]


def transition_ranking(train_sequences, test_histories, popular: list[str], k: int = 10):
    following: dict[str, Counter] = defaultdict(Counter)
    for sequence in train_sequences:
        for current, after in zip(sequence, sequence[1:], strict=False):
            following[current][after] += 1
    ranked = []
    for history in test_histories:
        seen = following.get(history[-1], Counter())
        top = [item for item, _ in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]
        ranked.append(top + [item for item in popular if item not in top][: k - len(top)])
    return ranked


def critique_filter_ranking(
    critiques, candidates, item_words: dict[str, set[str]], popularity: Counter, k: int = 10
):
    """Per row, the candidates that share most words with the critique; popularity breaks ties.

    `candidates` is one list of item ids per row (the whole catalog, or the items of the last
    history item's four-level category: a critique exists only between such items).
    """
    ranked = []
    for critique, pool in zip(critiques, candidates, strict=True):
        words = {w for w in _WORD.findall(critique.lower()) if w not in STOPWORDS and len(w) > 2}
        ranked.append(
            sorted(
                pool, key=lambda item: (-len(words & item_words[item]), -popularity[item], item)
            )[:k]
        )
    return ranked


def measure_category(generator, category: str, users: int, work: Path) -> dict:
    from regen_dataset.stats import config_stats
    from regen_models import baselines
    from regen_models.items import catalog_item_ids
    from regen_models.metrics import bleu, ranking_metrics, ranks_from_lists, rouge_lsum

    dataset, written_per_second = build(generator, category, users, work)
    train, test = dataset["train"], dataset["test"]
    stats = config_stats(dataset, category)
    targets = [target["item_id"] for target in test["target"]]
    train_sequences = sequences(train)
    popularity = Counter(item for sequence in train_sequences for item in sequence)
    popular = [item for item, _ in sorted(popularity.items(), key=lambda kv: (-kv[1], kv[0]))]
    catalog = catalog_item_ids(work / f"{category}_folder", category)
    histories = [[entry["item_id"] for entry in history] for history in test["history"]]

    def recall(ranked, wanted=targets) -> float:
        return ranking_metrics(ranks_from_lists(ranked, wanted), ks=(10,))["Recall@10"]

    out = {
        "users": users,
        "items": stats.items,
        "written_users_per_second": written_per_second,
        "realism": stats.realism.to_dict(),
        "recall@10": {
            "most_popular": recall(baselines.most_popular(train, len(test), k=10)),
            "random": recall(baselines.random_ranking(catalog, len(test), k=10)),
            "transition": recall(transition_ranking(train_sequences, histories, popular)),
        },
    }
    critiqued = [row for row, critique in enumerate(test["critique"]) if critique]
    item_words, item_group = {}, {}
    for split in dataset.values():
        for history, target in zip(split["history"], split["target"], strict=True):
            for entry in (*history, target):
                text = f"{entry['title']} {' '.join(entry['categories'])}".lower()
                item_words[entry["item_id"]] = set(_WORD.findall(text))
                item_group[entry["item_id"]] = tuple(entry["categories"][:SIMILAR_LEVELS])
    groups = defaultdict(list)
    for item, group in item_group.items():
        groups[group].append(item)
    critiques = [test["critique"][row] for row in critiqued]
    wanted = [targets[row] for row in critiqued]
    everything = list(item_words)
    for name, pools in (
        ("critique_filter", [everything] * len(critiqued)),
        (
            "critique_filter_in_category",
            [groups[item_group[histories[row][-1]]] for row in critiqued],
        ),
    ):
        ranked = critique_filter_ranking(critiques, pools, item_words, popularity)
        out["recall@10"][name] = recall(ranked, wanted)
    out["critiqued_test_rows"] = len(critiqued)
    neighbours = baselines.nearest_neighbour_narratives(test, test, NARRATIVE_KINDS)
    references = test["narratives"]
    out["nearest_neighbour"] = {}
    for kind in NARRATIVE_KINDS:
        pairs = [(p, r[kind]) for p, r in zip(neighbours[kind], references, strict=True) if r[kind]]
        predictions, wanted = zip(*pairs, strict=True)
        out["nearest_neighbour"][kind] = {
            "BLEU": bleu(predictions, wanted),
            "ROUGE": rouge_lsum(predictions, wanted),
        }
    return out


def table(results: dict[str, dict]) -> str:
    """A Markdown table, one column per (generator, category)."""
    columns = [(name, category) for name, run in results.items() for category in run["categories"]]
    header = "| figure | " + " | ".join(f"{name} {category}" for name, category in columns) + " |"
    rows = [header, "|---" * (len(columns) + 1) + "|"]

    def row(label, getter, fmt):
        cells = [fmt(getter(results[name]["categories"][category])) for name, category in columns]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")

    percent = "{:.1%}".format
    real = lambda key: lambda c: c["realism"][key]  # noqa: E731
    row("items", lambda c: c["items"], "{:,}".format)
    row("top 1% items' share of interactions", real("top1_share"), percent)
    row("top 10% items' share of interactions", real("top10_share"), percent)
    row("Gini of item counts", real("gini"), "{:.2f}".format)
    row("repeat purchases (of interactions)", real("repeat_share"), percent)
    row(
        "similar adjacent pairs (of adjacent pairs)",
        lambda c: c["realism"]["similar_share"],
        percent,
    )
    row("critiques per similar pair", real("critiques_per_similar_pair"), percent)
    row("critiques per interaction", real("critiques_per_interaction"), percent)
    for baseline in (
        "most_popular",
        "random",
        "transition",
        "critique_filter",
        "critique_filter_in_category",
    ):
        row(f"Recall@10 {baseline}", lambda c, b=baseline: c["recall@10"][b], "{:.4f}".format)
    for kind in NARRATIVE_KINDS:
        row(
            f"nearest-neighbour BLEU / ROUGE {kind}",
            lambda c, k=kind: c["nearest_neighbour"][k],
            lambda m: f"{m['BLEU']:.1f} / {m['ROUGE']:.1f}",
        )
    for kind in NARRATIVE_KINDS:
        row(
            f"sentence shapes {kind} (of 1,000 sentences)",
            lambda c, k=kind: c["realism"]["shapes"][k]["distinct"],
            "{:,}".format,
        )
    lines = rows + [
        "",
        "| generation speed | " + " | ".join(results) + " |",
        "|---" * (len(results) + 1) + "|",
    ]
    for label, key, fmt in (
        ("users per second (Clothing, nothing written)", "users_per_second", "{:,.0f}".format),
        ("KB per user", "kb_per_user", "{:.1f}".format),
        ("minutes for the Clothing size (1,168,735 users)", "clothing_minutes", "{:.1f}".format),
    ):
        lines.append(
            f"| {label} | " + " | ".join(fmt(run["speed"][key]) for run in results.values()) + " |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=5_000, help="users per category")
    parser.add_argument("--speed-users", type=int, default=20_000)
    parser.add_argument("--generator", default="regen_dataset.synthetic")
    parser.add_argument("--before", default=None, help="the old generator (a .py file) to compare")
    parser.add_argument("--out", default=str(REPO / "bench_out" / "bench_synthetic.json"))
    parser.add_argument(
        "--work", default=str(REPO / "bench_out" / "bench_synthetic"), help="built folders"
    )
    args = parser.parse_args(argv)
    generators = {"after": args.generator} if args.before else {"this": args.generator}
    if args.before:
        generators = {"before": args.before, **generators}
    results = {}
    for name, spec in generators.items():
        generator = load_generator(spec)
        work = Path(args.work) / name
        work.mkdir(parents=True, exist_ok=True)
        results[name] = {
            "generator": spec,
            "speed": generation_speed(generator, args.speed_users),
            "categories": {
                category: measure_category(generator, category, args.users, work)
                for category in ("office", "clothing")
            },
        }
        print(f"measured {name}: {spec}", flush=True)
    write_json(args.out, results)
    print(table(results))
    print(f"\nresults in {args.out}")


if __name__ == "__main__":
    main()
