"""The `regen` command: one entry point, a subcommand per job.

regen dataset build --source REGEN/ --out regen     # release files -> load_dataset folder
regen dataset report --folder regen                 # statistics and a plot
regen train flare --dataset_name regen --dataset_config office --output_dir ckpt [--config R.yaml]
regen train narrator --dataset_name regen-users --dataset_config office --output_dir adapter
regen train fusion --dataset_name regen-users --dataset_config office --output_dir ckpt
regen predict --model ckpt --dataset_name regen --dataset_config office --split test --out p.jsonl
regen eval --dataset regen --split test --run NAME office p.jsonl --out eval
regen demo                                          # the main job on embedded defaults
regen space --demo-dir demo_out                     # the Gradio Space on localhost
regen release --org ORG --dry-run                   # the Hub release, file by file
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

from training.nearest import with_nearest

# Each command's parser is built by its module. A module's imports (datasets, torch,
# transformers) take seconds, so `regen COMMAND` imports that command's module only, and the
# overview (`regen --help`) none: it lists each command with the line below.
COMMANDS = {
    "dataset": ("regen_dataset.cli", "build, inspect and publish REGEN datasets"),
    "train": (__name__, "train a model (the arguments of training/train_MODEL.py)"),
    "predict": (
        "training.predict",
        "write the prediction file of a checkpoint for a dataset split",
    ),
    "eval": (
        "training.evaluate",
        "evaluate predictions: the paper's tables, baselines, rater plots",
    ),
    "demo": ("training.demo", "build, load and describe REGEN from the shipped samples"),
    "space": (
        "training.space",
        "serve the Gradio Space on this machine with the demo's checkpoints",
    ),
    "release": (
        "training.release",
        "push the dataset, checkpoints, metric and Space to the Hub, each to its own repo",
    ),
}
# `regen train MODEL ARGS` runs `training/train_MODEL.py ARGS` (the same TrlParser arguments).
TRAINERS = {
    "flare": "training.train_flare",
    "fusion": "training.train_fusion",
    "lumen": "training.train_lumen",
    "narrator": "training.train_narrator",
}


class RegenParser(argparse.ArgumentParser):
    """argparse, except that a misspelled option is named with its nearest option, under the
    usage of the command it was given to. Plain argparse answers `regen predict --limt 3` with
    the top-level usage, and `regen eval --frist 20 ...` (before optional subcommands) with
    "invalid choice: '20'"."""

    def parse_known_args(self, args=None, namespace=None):
        self.given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def parse_args(self, args=None, namespace=None):
        parsed, unknown = self.parse_known_args(args, namespace)
        if unknown:
            command = self._command_parser(self.given)
            # Name the misspelled options (their values would only be noise); else the words.
            named = _misspelled_options(command, unknown) or " ".join(unknown)
            command.error(f"unrecognized arguments: {named}")
        return parsed

    def _command_parser(self, words: list[str]) -> argparse.ArgumentParser:
        """The innermost (sub)command parser that `words` chose (`regen dataset build ...`)."""
        parser = self
        for word in words:
            choices = next(
                (a.choices for a in parser._actions if isinstance(a, argparse._SubParsersAction)),
                {},
            )
            if word in choices:
                parser = choices[word]
        return parser

    def error(self, message):
        given = getattr(self, "given", [])
        named = _misspelled_options(self, given)
        rejected = re.search(r"invalid choice: '([^']*)'", message)
        if rejected and named and rejected[1] in given:
            # The value of an option argparse did not know, read as a subcommand: name the
            # option. A misspelled subcommand itself keeps argparse's list of choices.
            before = given.index(rejected[1]) - 1
            if before >= 0 and given[before].startswith("--"):
                message = f"unrecognized arguments: {named}"
        super().error(message)


def _misspelled_options(parser: argparse.ArgumentParser, words: list[str]) -> str:
    """The `--options` among `words` that `parser` does not know, each with its nearest known
    option ("" if none)."""
    known = parser._option_string_actions
    options = [
        w.split("=")[0] for w in words if w.startswith("--") and w.split("=")[0] not in known
    ]
    return with_nearest(options, list(known))


def make_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """`regen`'s parser; with `argv` naming a command, that command's parser, else (`regen --help`,
    a word that is no command) the list of commands."""
    parser = RegenParser(
        prog="regen",
        description="REGEN: datasets, models and evaluation for conversational recommenders",
    )
    subparsers = parser.add_subparsers(dest="command", required=True)
    given = argv[0] if argv and argv[0] in COMMANDS else None
    for name, (module, summary) in COMMANDS.items():
        if given is None:
            subparsers.add_parser(name, help=summary)
        elif given == name:
            importlib.import_module(module).add_parser(subparsers)
    return parser


def add_parser(subparsers) -> None:
    """`regen train MODEL ARGS`."""
    train = subparsers.add_parser(
        "train",
        description="Train a model: `regen train MODEL ARGS` runs training/train_MODEL.py ARGS.",
        epilog="`regen train MODEL --help` lists the arguments of MODEL's script.",
    )
    train.add_argument("model", choices=sorted(TRAINERS))
    train.add_argument("arguments", nargs=argparse.REMAINDER, help="the script's arguments")
    train.set_defaults(func=_train)


def _train(args) -> None:
    importlib.import_module(TRAINERS[args.model]).run(args.arguments)


def main(argv: list[str] | None = None) -> None:
    argv = list(argv if argv is not None else sys.argv[1:])
    args = make_parser(argv).parse_args(argv)
    try:
        args.func(args)
    except (ValueError, OSError) as error:
        # Bad input is the user's to fix: say what and where, without a traceback.
        print(f"regen: error: {explained(error)}", file=sys.stderr)
        raise SystemExit(1) from None
    except network_errors() as error:
        print(f"regen: error: the Hub could not be reached ({error!r})", file=sys.stderr)
        raise SystemExit(1) from None


def explained(error: Exception) -> str:
    """The error's message; for a dataset name that is no local folder, first that.

    datasets looks such a name up on the Hub and says only that the Hub could not be reached or
    has no such dataset: a mistyped local folder would read as a network problem."""
    found = re.match(
        r"(?:Couldn't reach|Dataset) '([^']+)' (?:on|doesn't exist on) the Hub", str(error)
    )
    if found and not os.path.exists(found.group(1)):
        return f"there is no local folder {found.group(1)}, and as a Hub id: {error}"
    return str(error)


def network_errors() -> tuple[type[Exception], ...]:
    """The transport errors (refused connection, timeout) of the HTTP clients of the Hub's
    library: no OSError, so they would end in a traceback."""
    errors = []
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            pass
    return tuple(errors)


if __name__ == "__main__":
    main()
