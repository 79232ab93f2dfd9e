"""`regen dataset ...`: build, inspect, synthesize and publish REGEN folders."""

from __future__ import annotations

import argparse
import functools
import os
import sys


def add_parser(subparsers) -> None:
    dataset = subparsers.add_parser("dataset")
    commands = dataset.add_subparsers(dest="dataset_command", required=True)

    build = commands.add_parser(
        "build",
        help="release JSONL -> Hub-style folder of parquet configs",
        description="Read REGEN release files and write every config (with and without "
        "critiques) as parquet shards plus a README.md dataset card.",
    )
    build.add_argument(
        "--source",
        action="append",
        required=True,
        metavar="PATH",
        help="a release file, a folder searched for office*/clothing* .jsonl(.gz) files, or "
        "CATEGORY=PATH; repeatable",
    )
    build.add_argument("--out", default="regen", help="output folder (default: regen)")
    build.add_argument(
        "--protocol", choices=("leave_one_out", "user_disjoint"), default="leave_one_out"
    )
    build.add_argument("--seed", type=int, default=0, help="seed of the user_disjoint assignment")
    build.add_argument(
        "--skip-bad-lines", action="store_true", help="skip and count malformed lines"
    )
    build.add_argument("--overwrite", action="store_true", help="replace an existing folder")
    build.add_argument(
        "--critique-sentinel",
        action="append",
        default=[],
        metavar="TEXT",
        help="a placeholder critique text to read as no critique (compared ignoring case and "
        "punctuation, whatever its length), besides the built-in ones; repeatable",
    )
    build.set_defaults(func=_build)

    push = commands.add_parser("push", help="upload a built folder to the Hugging Face Hub")
    push.add_argument("--folder", default="regen")
    push.add_argument("--repo-id", required=True, help="ORG/NAME of the dataset repository")
    push.add_argument("--private", action="store_true")
    push.add_argument(
        "--endpoint", default=None, help="Hub URL (default: HF_ENDPOINT or huggingface.co)"
    )
    push.set_defaults(func=_push)

    report = commands.add_parser("report", help="statistics and a plot of a built folder")
    report.add_argument("--folder", default="regen")
    report.add_argument("--config", default=None, help="one config (default: every config built)")
    report.add_argument(
        "--plot", default=None, help="where to save the plot (default: FOLDER_report.png)"
    )
    report.set_defaults(func=_report)

    generate = commands.add_parser(
        "generate",
        help="raw Amazon Reviews 2018 files -> REGEN release JSONL, written by an LLM",
        description="Preprocess raw Amazon files into user sequences, then ask an LLM for "
        "critiques, narratives and auto-rater scores. The output feeds `regen dataset build`.",
    )
    generate.add_argument("--reviews", required=True, help="<Category>.json(.gz) review lines")
    generate.add_argument("--meta", required=True, help="meta_<Category>.json(.gz) lines")
    generate.add_argument("--out", required=True, help="release-format JSONL to write")
    generate.add_argument("--category", choices=("office", "clothing"), default="office")
    generate.add_argument("--min-length", type=int, default=5, help="shortest user sequence kept")
    generate.add_argument(
        "--max-users",
        type=_positive_int,
        default=None,
        help="keep only the first N users (the others are counted in the manifest)",
    )
    generate.add_argument(
        "--chunk-users", type=_positive_int, default=256, help="users per LLM round"
    )
    generate.add_argument("--no-rate", action="store_true", help="skip the auto-rater")
    generate.add_argument("--skip-bad-lines", action="store_true")
    _add_llm_arguments(generate)
    generate.set_defaults(func=_generate)

    rate = commands.add_parser("rate", help="(re)score a release-format file with the auto-rater")
    rate.add_argument("--data", required=True, help="release-format JSONL")
    rate.add_argument("--out", required=True)
    _add_llm_arguments(rate)
    rate.set_defaults(func=_rate)

    bias = commands.add_parser(
        "bias-check",
        help="rate real and mismatched (history, critique, item) triples, the evaluation-bias "
        "check of the REGEN paper (arXiv 2503.11924, section 3.3.3)",
    )
    bias.add_argument("--data", required=True, help="release-format JSONL with critiques")
    bias.add_argument("--out", required=True, help="JSON report")
    bias.add_argument("--samples", type=_positive_int, default=200, help="critiques to sample")
    bias.add_argument(
        "--max-users", type=_positive_int, default=20_000, help="users read from --data"
    )
    _add_llm_arguments(bias)
    bias.set_defaults(func=_bias_check)

    synth = commands.add_parser(
        "synthesize", help="write SYNTHETIC users in the release format (for tests and benchmarks)"
    )
    synth.add_argument("--category", choices=("office", "clothing"), required=True)
    synth.add_argument(
        "--users", type=_positive_int, default=None, help="default: the paper's user count"
    )
    synth.add_argument(
        "--items", type=_positive_int, default=None, help="default: the paper's items per user"
    )
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--workers",
        type=_positive_int,
        default=min(8, os.cpu_count() or 1),
        help="processes (same output)",
    )
    synth.add_argument("--out", required=True)
    synth.set_defaults(func=_synthesize)

    movielens = commands.add_parser(
        "movielens",
        help="MovieLens-100k (u.data/u.item or RecBole's atomic files) -> release JSONL",
    )
    movielens.add_argument("--source", required=True, help="folder with the MovieLens files")
    movielens.add_argument("--out", required=True, help="release-format JSONL to write")
    movielens.set_defaults(func=_movielens)


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    """An argparse type: a finite number above 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be above 0, got {text}")
    return value


def _add_llm_arguments(parser) -> None:
    llm = parser.add_argument_group("LLM")
    from regen_dataset.inpaint.backends import BACKENDS

    llm.add_argument(
        "--backend",
        choices=tuple(BACKENDS),
        required=True,
        help="the LLM provider (gemini falls back to gemini-legacy without google-genai); keys "
        "come from the environment only: OPENAI_API_KEY, GEMINI_API_KEY or GOOGLE_API_KEY",
    )
    llm.add_argument("--model", default=None, help="default: the backend's default model")
    llm.add_argument(
        "--base-url",
        default=None,
        help="another endpoint: an OpenAI-compatible server (vLLM, Ollama) or a Gemini endpoint",
    )
    llm.add_argument(
        "--cache",
        default=None,
        help="sqlite cache of LLM answers (default: OUT.cache.sqlite); rerun with it to resume",
    )
    llm.add_argument("--concurrency", type=_positive_int, default=8, help="calls in flight")
    llm.add_argument(
        "--timeout",
        type=_positive_float,
        default=120.0,
        metavar="SECONDS",
        help="how long one call may take before it is retried (default: 120)",
    )
    llm.add_argument(
        "--retry-invalid",
        action="store_true",
        help="ask again for the answers in the cache that were invalid (bad JSON after the "
        "repair, cut off at the token limit); by default a rerun reuses every cached answer",
    )
    llm.add_argument(
        "--batch", action="store_true", help="the provider's batch API (cheaper, slower)"
    )
    llm.add_argument(
        "--thinking-budget",
        type=_thinking_budget,
        default="auto",
        metavar="auto|model|N",
        help="Gemini's thinking tokens per call: auto (off on 2.5 Flash and Flash-Lite, the "
        "least on 2.5 Pro, added to the output limit so the answer keeps its own), model (the "
        "model's own default), -1 (dynamic) or a number of tokens (default: auto)",
    )
    llm.add_argument(
        "--price",
        nargs=2,
        type=float,
        metavar=("IN", "OUT"),
        help="USD per 1M tokens, for the cost",
    )
    llm.add_argument(
        "--ensemble", type=_positive_int, default=7, help="auto-rater runs per rated group"
    )
    llm.add_argument(
        "--no-constrained-decoding",
        dest="constrained_decoding",
        action="store_false",
        help="local backend: let the model write JSON answers freely (default: decode within "
        "each task's JSON Schema)",
    )
    llm.add_argument("--seed", type=int, default=0)


def _reports_llm_failures(command):
    """`command` with a failure of the LLM service (bad key, unreachable server, retries spent)
    said in one line on stderr, exit status 1: the error names the service, the HTTP status and
    what to check, and never holds the key."""

    @functools.wraps(command)
    def run(args) -> None:
        from regen_dataset.inpaint.backends import LLMError

        try:
            command(args)
        except LLMError as error:
            print(f"regen: error: {error}", file=sys.stderr)
            raise SystemExit(1) from None

    return run


def _llm(args, out: str):
    """(runner, run function) for the LLM arguments; keys come from the environment only."""
    from regen_dataset.inpaint.backends import make_backend
    from regen_dataset.inpaint.runner import Runner

    try:
        backend = make_backend(
            args.backend,
            args.model,
            base_url=args.base_url,
            timeout=args.timeout,
            constrained_decoding=args.constrained_decoding,
            thinking_budget=args.thinking_budget,
        )
    except ImportError as missing:  # an SDK that is not installed: the user's to fix
        raise ValueError(f"the {args.backend} backend cannot start: {missing}") from None
    runner = Runner(
        backend,
        args.cache or f"{out}.cache.sqlite",
        concurrency=args.concurrency,
        prices=tuple(args.price) if args.price else None,
        seed=args.seed,
        retry_invalid=args.retry_invalid,
    )
    return runner, runner.run_batch if args.batch else runner.run


def _read_lines(path: str):
    """The users of a release-format file as written; a line the release reader would refuse
    (malformed, or without a field the pipeline needs) stops with its file, line and field."""
    import json

    from regen_dataset.jsonl import nonblank_lines
    from regen_dataset.release import diagnose_line

    for number, line in nonblank_lines(path):  # plain or gzipped, like every release reader
        error = diagnose_line(path, number, line)
        if error is not None:
            raise error
        yield json.loads(line)


def _thinking_budget(text: str) -> int | str | None:
    if text in ("auto", "model"):
        return None if text == "model" else text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected auto, model, -1 or a number of tokens"
        ) from None


def _backend_record(runner, args) -> dict:
    """The manifest's backend: never the credentials a base URL may carry."""
    from regen_dataset.inpaint.backends import without_credentials

    return {
        "name": runner.backend.name,
        "model": runner.backend.model,
        "base_url": without_credentials(runner.backend.base_url),
        "batch": args.batch,
        "thinking_budget": getattr(runner.backend, "thinking_budget", None),
    }


def _usage(runner) -> dict:
    """The manifest's usage: what this process paid, and what every answer the output used cost
    when it was paid for (also by earlier processes that were killed or failed)."""
    from dataclasses import asdict

    paid = asdict(runner.output_usage())
    return {
        "output": {
            key: paid[key] for key in ("calls", "input_tokens", "output_tokens", "cost_usd")
        },
        "this_process": asdict(runner.usage),
        "prices_usd_per_million_tokens": runner.prices,
        "note": "output: the paid calls behind every answer this output uses, over all the runs "
        "that wrote it (an answer served from the cache is counted once, when it was paid for); "
        "this_process: the last run alone",
    }


def _inpaint_to_file(args, users, config, source: dict) -> None:
    """Run the inpainting pipeline over `users` into args.out, with its manifest."""
    from regen_dataset.inpaint.pipeline import InpaintReport, inpaint, write_release_lines
    from regen_dataset.inpaint.rater import describe_sampling

    runner, run = _llm(args, args.out)
    runner.track_output(args.out)
    report = InpaintReport()

    def describe() -> dict:  # called once every user is written, so the counts are final
        return {
            "source": {key: value() if callable(value) else value for key, value in source.items()},
            "backend": _backend_record(runner, args),
            "config": vars(config),
            "rater_sampling": describe_sampling(runner.backend, config.ensemble, args.batch)
            if config.rate
            else None,
            "report": report.to_dict(),
            "usage": _usage(runner),
        }

    count = write_release_lines(args.out, inpaint(users, run, config, report), describe)
    print(report.summary())
    print(f"this run: {runner.usage.summary()}")
    paid = runner.output_usage()
    print(
        f"the answers in {args.out}, over every run: {paid.calls:,} paid calls, "
        f"{paid.input_tokens:,} input + {paid.output_tokens:,} output tokens, ${paid.cost_usd:,.4f}"
    )
    print(f"wrote {count:,} users to {args.out} (and {args.out}.manifest.json)")


@_reports_llm_failures
def _generate(args) -> None:
    from regen_dataset.amazon import AmazonReport, read_amazon
    from regen_dataset.inpaint.pipeline import InpaintConfig

    amazon_report = AmazonReport()
    users = read_amazon(
        args.reviews,
        args.meta,
        min_length=args.min_length,
        max_users=args.max_users,
        skip_bad_lines=args.skip_bad_lines,
        report=amazon_report,
        progress=True,
    )
    config = InpaintConfig(
        seed=args.seed, ensemble=args.ensemble, rate=not args.no_rate, chunk_users=args.chunk_users
    )
    source = {
        "reviews": args.reviews,
        "meta": args.meta,
        "category": args.category,
        "max_users": args.max_users,
        "preprocessing": amazon_report.to_dict,
    }
    _inpaint_to_file(args, users, config, source)
    print(amazon_report.summary())
    print(f"next: regen dataset build --source {args.category}={args.out} --out regen")


def _check_data_file(path: str) -> None:
    """Before the LLM's answer cache is opened (and left behind, empty)."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--data {path}: no such file")


@_reports_llm_failures
def _rate(args) -> None:
    from regen_dataset.inpaint.pipeline import InpaintConfig

    _check_data_file(args.data)
    config = InpaintConfig(
        seed=args.seed, ensemble=args.ensemble, critiques=False, narratives=False, rate=True
    )
    _inpaint_to_file(args, _read_lines(args.data), config, {"rated": args.data})


@_reports_llm_failures
def _bias_check(args) -> None:
    import itertools

    from regen_dataset.files import remove_dead_partials, write_json
    from regen_dataset.inpaint.pipeline import bias_check
    from regen_dataset.inpaint.rater import describe_sampling

    _check_data_file(args.data)
    remove_dead_partials(args.out)
    runner, run = _llm(args, args.out)
    runner.track_output(args.out)
    users = list(itertools.islice(_read_lines(args.data), args.max_users))
    result = bias_check(users, run, samples=args.samples, ensemble=args.ensemble, seed=args.seed)
    print(f"share of critique ratings >= 6 over {result['samples']} sampled critiques")
    print("| condition | quality | specificity | relevance | rated |")
    print("|---|---|---|---|---|")
    for condition in ("real", "history_swapped", "history_and_item_swapped"):
        shares = result[condition]
        print(
            f"| {condition} | {shares['quality']:.0%} | {shares['specificity']:.0%} | "
            f"{shares['relevance']:.0%} | {shares['rated']} |"
        )
    sampling = describe_sampling(runner.backend, args.ensemble, args.batch)
    record = {"backend": _backend_record(runner, args), "rater_sampling": sampling}
    write_json(args.out, {**result, **record, "usage": _usage(runner)})
    print(runner.usage.summary())


def _build(args) -> None:
    from regen_dataset.export import build_folder, find_sources

    skipped: list[str] = []
    sources = find_sources(args.source, skipped=skipped)
    if skipped:
        print(
            f"skipped {len(skipped):,} temporary files of writers (perhaps half-written), e.g. "
            f"{skipped[0]}",
            file=sys.stderr,
        )
    report = build_folder(
        sources,
        args.out,
        protocol=args.protocol,
        skip_bad_lines=args.skip_bad_lines,
        overwrite=args.overwrite,
        seed=args.seed,
        critique_sentinels=args.critique_sentinel,
    )
    print(report.summary())
    print(f'load it with: datasets.load_dataset("{args.out}", "{next(iter(report.rows))}")')


def _push(args) -> None:
    from regen_dataset.export import push_folder

    url = push_folder(args.folder, args.repo_id, private=args.private, endpoint=args.endpoint)
    print(f"pushed {args.folder} to {args.repo_id}: {url}")


def _report(args) -> None:
    from regen_dataset.stats import configs_in_folder, describe_folder

    configs = [args.config] if args.config else configs_in_folder(args.folder)
    plot = args.plot or f"{os.path.normpath(args.folder)}_report.png"
    print(describe_folder(args.folder, configs, plot))
    print(f"plot saved to {plot}")


def _movielens(args) -> None:
    from regen_dataset.movielens import write_movielens

    stats: dict = {}
    users = write_movielens(args.source, args.out, stats)
    print(f"wrote {users:,} MovieLens users to {args.out}")
    if stats["tied_last"]:
        print(
            f"note: {stats['tied_last']:,} users' last two ratings share a second; the file's "
            "order decides which of the two is the held-out test item"
        )
    print(f"build it with: regen dataset build --source office={args.out} --out FOLDER")
    print(
        "MovieLens's licence does not allow redistributing the data without GroupLens's "
        "permission: do not push the build to a public repository"
    )


def _synthesize(args) -> None:
    from regen_dataset.synthetic import PAPER_SIZES, write_release

    users = PAPER_SIZES[args.category][0] if args.users is None else args.users
    write_release(
        args.out,
        args.category,
        users,
        n_items=args.items,
        seed=args.seed,
        progress=True,
        workers=args.workers,
    )
    print(f"wrote {users:,} SYNTHETIC {args.category} users to {args.out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="regen dataset")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["dataset", *(argv if argv is not None else sys.argv[1:])])
    args.func(args)
