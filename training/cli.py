"""The `regen` command: one entry point, a subcommand per job.

regen dataset build --source REGEN/ --out regen     # release files -> load_dataset folder
regen dataset report --folder regen                 # statistics and a plot
regen demo                                          # the main job on embedded defaults
"""

from __future__ import annotations

import argparse
import sys

from regen_dataset import cli as dataset_cli
from training import demo, evaluate


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="regen",
        description="REGEN: datasets, models and evaluation for conversational recommenders",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    dataset_cli.add_parser(subparsers)
    evaluate.add_parser(subparsers)
    demo.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = make_parser().parse_args(argv if argv is not None else sys.argv[1:])
    try:
        args.func(args)
    except (ValueError, FileExistsError, FileNotFoundError) as error:
        # Bad input is the user's to fix: say what and where, without a traceback.
        print(f"regen: error: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
