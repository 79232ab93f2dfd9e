"""`regen dataset ...`: build, inspect, synthesize and publish REGEN folders."""

from __future__ import annotations

import argparse
import os
import sys


def add_parser(subparsers) -> None:
    dataset = subparsers.add_parser("dataset", help="build, inspect and publish REGEN datasets")
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

    synth = commands.add_parser(
        "synthesize", help="write SYNTHETIC users in the release format (for tests and benchmarks)"
    )
    synth.add_argument("--category", choices=("office", "clothing"), required=True)
    synth.add_argument("--users", type=int, default=None, help="default: the paper's user count")
    synth.add_argument(
        "--items", type=int, default=None, help="default: the paper's items per user"
    )
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--out", required=True)
    synth.set_defaults(func=_synthesize)


def _build(args) -> None:
    from regen_dataset.export import build_folder, find_sources

    report = build_folder(
        find_sources(args.source),
        args.out,
        protocol=args.protocol,
        skip_bad_lines=args.skip_bad_lines,
        overwrite=args.overwrite,
        seed=args.seed,
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


def _synthesize(args) -> None:
    from regen_dataset.synthetic import PAPER_SIZES, write_release

    users = args.users or PAPER_SIZES[args.category][0]
    write_release(args.out, args.category, users, n_items=args.items, seed=args.seed, progress=True)
    print(f"wrote {users:,} SYNTHETIC {args.category} users to {args.out}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="regen dataset")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["dataset", *(argv if argv is not None else sys.argv[1:])])
    args.func(args)
