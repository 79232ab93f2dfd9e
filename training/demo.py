"""`regen demo`: the main job on embedded defaults, small enough for a laptop.

1. builds the REGEN folder from the SYNTHETIC samples shipped in `regen_dataset/samples/`;
2. loads every config back with `datasets.load_dataset` and prints a report with a plot;
3. runs the training-free baselines on the office test split, with and without critiques;
4. trains FLARE with the `cpu` recipe on `office` and on `office_no_critique`, predicts the test
   split with each, and prints the evaluation table (the layout of the paper's Table 4) with FLARE
   beside the baselines, with plots;
5. the language models, on a user-disjoint build of the same sample (only there do training
   users carry narratives, and the users they are scored on are users they never saw): the hybrid
   system (FLARE and a LoRA narrator on the embedded Gemma 3 270M, `cpu` recipe) and LUMEN (the
   embedded Gemma 3 270M with an item table and head, `cpu` recipe), and a second table: their
   rankings and the narratives they write about their top item for the first `TEXT_USERS` test
   users, with and without critiques, beside the baselines on the same users.
"""

from __future__ import annotations

import os
from pathlib import Path

from regen_dataset.export import build_folder, find_sources
from regen_dataset.stats import configs_in_folder, describe_folder
from training import predict
from training.evaluate import rater_report, run_table, write_baselines

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "regen_dataset" / "samples"
FLARE_RECIPE = REPO / "training" / "recipes" / "flare" / "cpu.yaml"
NARRATOR_RECIPE = REPO / "training" / "recipes" / "narrator" / "cpu.yaml"
LUMEN_RECIPE = REPO / "training" / "recipes" / "lumen" / "cpu.yaml"
# Text generation on 2 CPU cores is slow: the language models write two kinds for a few users.
TEXT_USERS = 8
TEXT_KINDS = ("purchase_reason", "product_endorsement")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("demo")
    parser.add_argument("--out", default="demo_out", help="folder for everything the demo writes")
    parser.add_argument(
        "--text-users",
        type=predict.positive_int,
        default=TEXT_USERS,
        help="test users the hybrid and LUMEN write narratives for (default: %(default)s)",
    )
    parser.add_argument(
        "--lm-max-steps",
        type=predict.positive_int,
        default=None,
        help="training steps of the narrator and of LUMEN (default: their cpu recipes')",
    )
    parser.add_argument(
        "--max-new-tokens",
        type=predict.positive_int,
        default=None,
        help="the most tokens of each narrative (default: the length each model recorded)",
    )
    parser.set_defaults(
        func=lambda args: run_demo(
            args.out, args.text_users, args.lm_max_steps, args.max_new_tokens
        )
    )


def run_demo(
    out: str | os.PathLike = "demo_out",
    text_users: int = TEXT_USERS,
    lm_max_steps: int | None = None,
    max_new_tokens: int | None = None,
) -> None:
    from training import train_flare

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    folder = out / "regen"
    print(f"== Building {folder} from the SYNTHETIC samples in {SAMPLES}")
    report = build_folder(find_sources([str(SAMPLES)]), folder, overwrite=True, progress=False)
    print(report.summary())
    plot = out / "regen_report.png"
    print(f"\n== Loading every config back with datasets.load_dataset({str(folder)!r}, ...)")
    print(describe_folder(folder, configs_in_folder(folder), str(plot)))
    print(f"plot: {plot}")

    print("\n== Auto-rater scores carried in the data (the REGEN paper, Figures 2-3)")
    print(rater_report(folder, "office", str(out / "eval")))

    print("\n== Training-free baselines on the office test split, with and without critiques")
    runs = []
    for config in ("office", "office_no_critique"):
        runs += write_baselines(folder, config, "test", str(out / "predictions"))

    print("\n== FLARE (cpu recipe) with and without critiques")
    for config in ("office", "office_no_critique"):
        checkpoint = out / "checkpoints" / f"flare-{config}"
        train_flare.run(
            ["--config", str(FLARE_RECIPE), "--dataset_name", str(folder),
             "--dataset_config", config, "--output_dir", str(checkpoint),
             "--overwrite_output_dir", "true"]
        )  # fmt: skip
        path = str(out / "predictions" / "flare" / f"{config}.jsonl")
        predict.main(
            ["--model", str(checkpoint), "--dataset_name", str(folder),
             "--dataset_config", config, "--split", "test", "--out", path]
        )  # fmt: skip
        runs.append(("flare", config, path))

    print("\n== The test split, with and without critiques")
    # A rerun of the demo replaces its own earlier results.
    print(run_table(folder, "test", runs, str(out / "eval"), overwrite=True))
    print(f"\ntable, results and plots: {out / 'eval'}")

    run_language_models(out, text_users, lm_max_steps, max_new_tokens)
    print(
        "The samples are SYNTHETIC: use Google's files for real numbers "
        "(regen dataset build --source path/to/REGEN)."
    )


def run_language_models(
    out: Path, text_users: int, max_steps: int | None, max_new_tokens: int | None = None
) -> None:
    from training import train_lumen, train_narrator

    users = out / "regen-users"
    print(f"\n== The language models: a user-disjoint build of the samples in {users}")
    # Its test users are in no model's training data: the LMs train on its training users, and
    # FLARE saw their histories but never their last purchase. The Space shows them.
    build_folder(
        find_sources([str(SAMPLES)]),
        users,
        protocol="user_disjoint",
        overwrite=True,
        progress=False,
    )
    data = ["--dataset_name", str(users), "--dataset_config", "office", "--kinds", *TEXT_KINDS]
    steps = [] if max_steps is None else ["--max_steps", str(max_steps)]
    steps += ["--overwrite_output_dir", "true"]  # a rerun replaces the demo's own checkpoints
    narrator = out / "checkpoints" / "narrator-office"
    print("\n== Narrator: LoRA on the embedded Gemma 3 270M (cpu recipe) on its training users")
    train_narrator.run(
        ["--config", str(NARRATOR_RECIPE), *data, "--output_dir", str(narrator), *steps]
    )
    lumen = out / "checkpoints" / "lumen-office"
    print("\n== LUMEN: the embedded Gemma 3 270M with an item table and head (cpu recipe)")
    # Validation ranks the catalog for as many users as the table scores, no more.
    train_lumen.run(
        ["--config", str(LUMEN_RECIPE), *data, "--output_dir", str(lumen), *steps,
         "--max_eval_rows", str(text_users)]
    )  # fmt: skip
    print(
        f"\n== Hybrid (FLARE + narrator) and LUMEN on the first {text_users} test users, "
        f"{' and '.join(TEXT_KINDS)}"
    )
    length = [] if max_new_tokens is None else ["--max_new_tokens", str(max_new_tokens)]
    runs = []
    for config in ("office", "office_no_critique"):
        runs += write_baselines(users, config, "test", str(out / "predictions-users"))
        models = {
            "hybrid": ["--model", str(out / "checkpoints" / f"flare-{config}"),
                       "--narrator", str(narrator)],
            "lumen": ["--model", str(lumen)],
        }  # fmt: skip
        for name, model in models.items():
            path = str(out / "predictions-users" / name / f"{config}.jsonl")
            predict.main(
                [*model, "--dataset_name", str(users), "--dataset_config", config,
                 "--split", "test", "--limit", str(text_users), "--out", path, *length]
            )  # fmt: skip
            runs.append((name, config, path))
    table = run_table(users, "test", runs, str(out / "eval-text"), overwrite=True, first=text_users)
    print(table)
    print(
        f"\nText scores cover {text_users} users, the ranking scores of that table too; "
        f"table, results and plots: {out / 'eval-text'}"
    )
