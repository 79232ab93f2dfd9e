r"""`regen predict`: any checkpoint of this project -> the prediction file `regen eval` reads.

    regen predict --model checkpoints/flare-office --dataset_name demo_out/regen \
        --dataset_config office --split test --out predictions/flare/office.jsonl

    # the hybrid system (FLARE's ranking, narratives about its top item) on the first 20 test
    # users of the user-disjoint build the narrator was trained on
    regen predict --model checkpoints/flare-office --narrator checkpoints/narrator-office \
        --dataset_name demo_out/regen-users --dataset_config office --limit 20 \
        --out predictions/hybrid/office.jsonl

The checkpoint's `config.json` says which model it is (`model_type`: FLARE, LUMEN, the fusion
narrator; FLARE with `--narrator` is the hybrid system). Its item vocabulary is checked against
the dataset's before anything is scored, so a model never ranks shifted ids.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from regen_dataset.schema import NARRATIVE_KINDS, check_user_config
from regen_models.devices import DEVICE_HELP
from regen_models.predictions import MIN_RANKED, write_predictions
from regen_models.vocabulary_io import check_local_folder, local_snapshot

FLARE_RANKING_BATCH = 256  # regen_models.flare.ranking.RANKING_BATCH, without importing torch
LUMEN_RANKING_BATCH = 8


def check_vocabulary(vocabulary, model_dir: str, dataset_name: str, config_name: str) -> None:
    """Refuse a checkpoint whose item vocabulary is not the dataset's (shifted item ids)."""
    from regen_models.items import ItemVocabulary

    vocabulary.check_matches(
        ItemVocabulary.from_dataset(dataset_name, config_name),
        mine=f"checkpoint {model_dir}",
        theirs=f"dataset {dataset_name} ({config_name})",
    )


def note_unread_critiques(
    model_uses_critiques: bool, config_name: str, model: str = "this model"
) -> None:
    """A model trained without critiques reads none on a config that has them: its file lands in
    the table's block with critiques all the same, which is worth saying."""
    from regen_dataset.schema import config_has_critiques

    if config_has_critiques(config_name) and not model_uses_critiques:
        print(
            f"note: {model} was trained without critiques: on {config_name} it reads the "
            "histories alone, and its file is scored in the table's block with critiques"
        )


def predict_flare(model_dir: str, rows, dataset_name: str, config_name: str, args) -> dict:
    from regen_dataset.schema import config_has_critiques
    from regen_models.flare.ranking import FlareRanker

    ranker = FlareRanker.from_pretrained(model_dir, device=args.device)
    check_vocabulary(ranker.vocabulary, model_dir, dataset_name, config_name)
    note_unread_critiques(ranker.uses_critiques, config_name)
    ranked = ranker.rank(
        rows,
        top_k=args.top_k,
        with_critiques=config_has_critiques(config_name),
        batch_size=args.batch_size or FLARE_RANKING_BATCH,
        progress=args.progress,
    )
    return {"ranked_items": [r.item_ids for r in ranked]}


def predict_hybrid(model_dir: str, rows, dataset_name: str, config_name: str, args) -> dict:
    """FLARE's ranking and the narrator's narratives about its top item (or the target)."""
    from regen_dataset.schema import config_has_critiques
    from regen_models.hybrid import HybridSystem

    hybrid = HybridSystem.from_pretrained(
        model_dir, args.narrator, args.base_model, device=args.device
    )
    check_vocabulary(hybrid.ranker.vocabulary, model_dir, dataset_name, config_name)
    note_unread_critiques(hybrid.ranker.uses_critiques, config_name, "the FLARE checkpoint")
    note_unread_critiques(hybrid.narrator.with_critiques, config_name, "the narrator")
    outputs = hybrid(
        rows,
        kinds=args.kinds,
        top_k=args.top_k,
        narrate_target=args.narrate_target,
        # None: each part reads critiques as it was trained to (a narrator trained without
        # them never sees one); False keeps them out of both on a `_no_critique` config.
        with_critiques=None if config_has_critiques(config_name) else False,
        batch_size=args.generation_batch_size,
        ranking_batch_size=args.batch_size or FLARE_RANKING_BATCH,
        max_new_tokens=args.max_new_tokens,
        progress=args.progress,
    )
    print(f"narrator prompts: {hybrid.prompt_stats.summary()}")
    kinds = list(outputs[0].narratives) if outputs else []
    return {
        "ranked_items": [output.item_ids for output in outputs],
        "narratives": {kind: [output.narratives[kind] for output in outputs] for kind in kinds},
        "narrated_item": "target" if args.narrate_target else "top_ranked",
    }


def predict_lumen(model_dir: str, rows, dataset_name: str, config_name: str, args) -> dict:
    """The full-catalog ranking, and per trained narrative kind the text LUMEN writes about its
    own top item (the first of that ranking)."""
    from regen_dataset.schema import config_has_critiques
    from regen_models.lumen.recommender import Lumen

    lumen = Lumen.from_pretrained(model_dir, device=args.device)
    check_vocabulary(lumen.vocabulary, model_dir, dataset_name, config_name)
    kinds = args.kinds or lumen.config.kinds
    if untaught := [kind for kind in kinds if kind not in lumen.config.kinds]:
        raise ValueError(
            f"--kinds {untaught}: {model_dir} was trained to write {lumen.config.kinds} only"
        )
    note_unread_critiques(lumen.config.with_critiques, config_name)
    with_critiques = lumen.config.with_critiques and config_has_critiques(config_name)
    rankings = lumen.rank(
        rows,
        top_k=args.top_k,
        batch_size=args.batch_size or LUMEN_RANKING_BATCH,
        with_critiques=with_critiques,
        progress=args.progress,
    )
    top_items = [ranking.item_ids[0] for ranking in rankings]
    narratives = {
        kind: [
            written.text
            for written in lumen.write(
                rows,
                kind,
                item_ids=top_items,
                batch_size=args.generation_batch_size,
                with_critiques=with_critiques,
                max_new_tokens=args.max_new_tokens,
                progress=args.progress,
            )
        ]
        for kind in kinds
    }
    print(f"LUMEN prompts: {lumen.prompt_stats.summary()}")
    if lumen.forced_switches:
        print(
            f"note: in {lumen.forced_switches:,} of {len(rows) * len(kinds):,} narratives LUMEN "
            "had not named an item after a few words of text: the item was called for"
        )
    if lumen.narratives_cut:
        print(
            f"note: {lumen.narratives_cut:,} of {len(rows) * len(kinds):,} narratives ran on "
            "into another 'Text:' or 'ID:' block instead of ending (more training teaches the "
            "end): each is cut where that block opens"
        )
    return {
        "ranked_items": [ranking.item_ids for ranking in rankings],
        "narratives": narratives,
        "narrated_item": "top_ranked",
    }


def predict_fusion(model_dir: str, rows, dataset_name: str, config_name: str, args) -> dict:
    """Per trained narrative kind, the fusion narrator's text about each row's target (it
    ranks nothing: the file holds narratives only)."""
    from regen_models.fusion.narrator import FusionNarrator

    narrator = FusionNarrator.from_pretrained(model_dir, device=args.device)
    check_vocabulary(narrator.vocabulary, model_dir, dataset_name, config_name)
    kinds = args.kinds or narrator.kinds
    for kind in kinds:
        narrator.max_new_tokens(kind)  # an untrained kind is refused before anything is written
    batch_size, limit = args.generation_batch_size, args.max_new_tokens
    narratives = {
        kind: narrator.write(
            rows, kind, batch_size=batch_size, max_new_tokens=limit, progress=args.progress
        )
        for kind in kinds
    }
    print(f"fusion narrator inputs: {narrator.encoder.summary()}")
    return {"narratives": narratives, "narrated_item": "target"}


PREDICTORS: dict[str, Callable] = {
    "flare": predict_flare,
    "lumen": predict_lumen,
    "fusion": predict_fusion,
}


def ranking_length(text: str) -> int:
    """--top_k: a prediction file ranks at least the metrics' cutoff."""
    number = int(text)
    if number < MIN_RANKED:
        raise argparse.ArgumentTypeError(
            f"{number}: a prediction file ranks at least {MIN_RANKED} items per user (the "
            "metrics' cutoff)"
        )
    return number


def positive_int(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a positive count, got {text}")
    return number


def model_type(model_dir: str) -> str:
    path = Path(model_dir) / "config.json"
    if not path.exists() and (Path(model_dir) / "adapter_config.json").exists():
        raise ValueError(
            f"{model_dir} is a narrator adapter: pass it as --narrator, with a FLARE checkpoint "
            "as --model (the hybrid system)"
        )
    if not path.exists():
        raise FileNotFoundError(f"{model_dir} is not a checkpoint folder (no config.json)")
    try:
        kind = json.loads(path.read_text()).get("model_type")
    except (json.JSONDecodeError, AttributeError) as error:
        raise ValueError(f"{path} is not a model configuration: {error}") from None
    if kind not in PREDICTORS:
        raise ValueError(
            f"{model_dir} holds a {kind!r} model; `regen predict` knows {sorted(PREDICTORS)}"
        )
    return kind


def predict(args) -> str:
    import datasets

    from regen_models.devices import pick_device

    args.model = local_snapshot(args.model)
    if args.narrator:
        args.narrator = local_snapshot(args.narrator, "narrator adapter folder")
    kind = model_type(args.model)
    if args.narrator and kind != "flare":
        raise ValueError(f"--narrator pairs with a FLARE checkpoint; {args.model} holds {kind!r}")
    if args.narrator is None and args.narrate_target:
        raise ValueError("--narrate-target needs --narrator ADAPTER")
    if args.narrator is None and args.kinds and kind == "flare":
        raise ValueError("--kinds needs --narrator ADAPTER (or a LUMEN or fusion checkpoint)")
    check_user_config(args.dataset_config)
    check_local_folder(args.dataset_name, "dataset folder")
    args.device = str(pick_device(args.device))
    if not args.progress:  # the libraries' bars too (loading weights, datasets)
        import transformers

        datasets.disable_progress_bars()
        transformers.utils.logging.disable_progress_bar()
    rows = datasets.load_dataset(args.dataset_name, args.dataset_config, split=args.split)
    if args.limit is not None:
        rows = rows.select(range(min(args.limit, len(rows))))
    predictor = predict_hybrid if args.narrator else PREDICTORS[kind]
    if args.narrator:
        kind = "hybrid (FLARE + narrator)"
    out = predictor(args.model, rows, args.dataset_name, args.dataset_config, args)
    write_predictions(
        args.out,
        rows["user_id"],
        out.get("ranked_items"),
        out.get("narratives"),
        config=args.dataset_config,
        split=args.split,
        narrated_item=out.get("narrated_item") if out.get("narratives") else None,
    )
    print(f"{kind}: {len(rows):,} {args.split} users of {args.dataset_config} -> {args.out}")
    return args.out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True, help="checkpoint folder (save_pretrained) or Hub repo id"
    )
    # TRL's names (as `regen train`), each also with hyphens, as `regen train` takes them too.
    parser.add_argument(
        "--dataset_name", "--dataset-name", required=True, help="built REGEN folder or Hub id"
    )
    parser.add_argument(
        "--dataset_config",
        "--dataset-config",
        default="office",
        help="office, office_no_critique, ... (default: %(default)s)",
    )
    parser.add_argument(
        "--split", default="test", help="train, validation or test (default: %(default)s)"
    )
    parser.add_argument("--out", required=True, help="the prediction file (JSONL) to write")
    parser.add_argument(
        "--limit", type=positive_int, default=None, help="predict the first N users only"
    )
    parser.add_argument(
        "--top_k",
        "--top-k",
        type=ranking_length,
        default=100,
        help=f"items ranked per user, {MIN_RANKED} at least (default: %(default)s)",
    )
    parser.add_argument(
        "--batch_size",
        "--batch-size",
        type=positive_int,
        default=None,
        help=f"users ranked at once (default: {FLARE_RANKING_BATCH} for FLARE, in the hybrid too, "
        f"{LUMEN_RANKING_BATCH} for LUMEN, whose prompts of up to a thousand tokens run through "
        "an LM)",
    )
    parser.add_argument(
        "--no_progress",
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bars (they go to stderr)",
    )
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    narration = parser.add_argument_group(
        "narratives (the hybrid system is a FLARE --model with a --narrator adapter; LUMEN and "
        "the fusion narrator write their own)"
    )
    narration.add_argument(
        "--narrator",
        default=None,
        help="narrator adapter folder (`regen train narrator`) or Hub repo id",
    )
    narration.add_argument(
        "--base_model",
        "--base-model",
        default=None,
        help="the narrator adapter's base (default: the one it records; a local base that has "
        "moved: its new folder)",
    )
    narration.add_argument(
        "--kinds",
        nargs="+",
        default=None,
        choices=NARRATIVE_KINDS,
        help="narrative kinds to write (default: every kind the narrator, LUMEN or the fusion "
        "narrator was trained for)",
    )
    narration.add_argument(
        "--narrate_target",
        "--narrate-target",
        action="store_true",
        help="write about the true next item instead of FLARE's top item (the paper's "
        "upper-bound setting)",
    )
    narration.add_argument(
        "--generation_batch_size",
        "--generation-batch-size",
        type=positive_int,
        default=8,
        help="rows whose narratives are written together (the narrators and LUMEN; more is "
        "faster on a GPU, and takes more memory)",
    )
    narration.add_argument(
        "--max_new_tokens",
        "--max-new-tokens",
        type=positive_int,
        default=None,
        help="the most tokens of a narrative (default: the length the model recorded for its "
        "kind, from the training references)",
    )


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=predict)


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    add_arguments(parser)
    return predict(parser.parse_args(argv))


if __name__ == "__main__":
    main()
