"""`regen demo`: the main job on embedded defaults, small enough for a laptop.

It builds the REGEN folder from the SYNTHETIC samples shipped in `regen_dataset/samples/`, loads
every config back with `datasets.load_dataset`, and prints a report with a plot beside it.
"""

from __future__ import annotations

import os
from pathlib import Path

from regen_dataset.export import build_folder, find_sources
from regen_dataset.stats import describe_folder

SAMPLES = Path(__file__).resolve().parents[1] / "regen_dataset" / "samples"


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "demo", help="build, load and describe REGEN from the shipped samples"
    )
    parser.add_argument("--out", default="demo_out", help="folder for everything the demo writes")
    parser.set_defaults(func=lambda args: run_demo(args.out))


def run_demo(out: str | os.PathLike = "demo_out") -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    folder = out / "regen"
    print(f"== Building {folder} from the SYNTHETIC samples in {SAMPLES}")
    report = build_folder(find_sources([str(SAMPLES)]), folder, overwrite=True, progress=False)
    print(report.summary())
    plot = out / "regen_report.png"
    print(f"\n== Loading every config back with datasets.load_dataset({str(folder)!r}, ...)")
    print(describe_folder(folder, list(report.rows), str(plot)))
    print(
        f"\nplot: {plot}\nThe samples are SYNTHETIC: use Google's files for real numbers "
        "(regen dataset build --source path/to/REGEN)."
    )
