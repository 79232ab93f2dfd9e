"""`regen predict`: any checkpoint of this project -> the prediction file `regen eval` reads.

    regen predict --model checkpoints/flare-office --dataset_name demo_out/regen \
        --dataset_config office --split test --out predictions/flare/office.jsonl

The checkpoint's `config.json` says which model it is (`model_type`); each model type has one
predictor below. The checkpoint's item vocabulary is checked against the dataset's before
anything is scored, so a model never ranks shifted ids.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from regen_models.predictions import write_predictions


def predict_flare(model_dir: str, rows, dataset_name: str, config_name: str, args) -> dict:
    import torch

    from regen_dataset.schema import config_has_critiques
    from regen_models.flare import FlareModel
    from regen_models.flare.data import CritiqueTable, FlareCollator, build_examples, critique_texts
    from regen_models.items import (
        DEFAULT_ENCODER,
        VOCABULARY_FILE,
        ItemVocabulary,
        load_encoder,
    )

    model = FlareModel.from_pretrained(model_dir).eval()
    config = model.config
    vocabulary = model.item_vocabulary
    if vocabulary is None:
        raise FileNotFoundError(
            f"checkpoint {model_dir} has no item vocabulary ({VOCABULARY_FILE})"
        )
    vocabulary.check_matches(
        ItemVocabulary.from_dataset(dataset_name, config_name),
        mine=f"checkpoint {model_dir}",
        theirs=f"dataset {dataset_name} ({config_name})",
    )
    critiques = None
    if config.use_critiques and config_has_critiques(config_name):
        encoder = load_encoder(config.encoder_name)
        critiques = CritiqueTable.build(
            critique_texts(rows), encoder, config.encoder_name or DEFAULT_ENCODER
        )
    examples = build_examples(
        rows,
        vocabulary,
        critiques,
        predict=True,
        max_length=config.max_sequence_length,
        mask_id=config.mask_item_id,
    )
    collate = FlareCollator(
        config.pad_item_id,
        config.mask_item_id,
        None if critiques is None else critiques.vectors,
        train=False,
    )
    ids = vocabulary.item_ids
    ranked = []
    with torch.no_grad():
        for start in range(0, len(examples), args.batch_size):
            batch = collate(examples[start : start + args.batch_size])
            batch.pop("targets", None)
            _, top = model.recommend(top_k=args.top_k, **batch)
            ranked += [[ids[i] for i in row] for row in top.tolist()]
    return {"ranked_items": ranked}


def predict_lumen(model_dir: str, rows, dataset_name: str, config_name: str, args) -> dict:
    """The full-catalog ranking, and per trained narrative kind the text LUMEN writes about its
    own top item (the first of that ranking)."""
    from regen_dataset.schema import config_has_critiques
    from regen_models.items import ItemVocabulary
    from regen_models.lumen.recommender import Lumen

    lumen = Lumen.from_pretrained(model_dir)
    lumen.vocabulary.check_matches(
        ItemVocabulary.from_dataset(dataset_name, config_name),
        mine=f"checkpoint {model_dir}",
        theirs=f"dataset {dataset_name} ({config_name})",
    )
    with_critiques = lumen.config.with_critiques and config_has_critiques(config_name)
    batch_size = min(args.batch_size, 8)  # prompts of up to a thousand tokens through an LM
    rankings = lumen.rank(
        rows, top_k=args.top_k, batch_size=batch_size, with_critiques=with_critiques
    )
    top_items = [ranking.item_ids[0] for ranking in rankings]
    narratives = {
        kind: [
            written.text
            for written in lumen.write(
                rows, kind, item_ids=top_items, batch_size=batch_size, with_critiques=with_critiques
            )
        ]
        for kind in lumen.config.kinds
    }
    return {"ranked_items": [ranking.item_ids for ranking in rankings], "narratives": narratives}


PREDICTORS: dict[str, Callable] = {"flare": predict_flare, "lumen": predict_lumen}


def model_type(model_dir: str) -> str:
    path = Path(model_dir) / "config.json"
    if not path.exists():
        raise FileNotFoundError(f"{model_dir} is not a checkpoint folder (no config.json)")
    kind = json.loads(path.read_text()).get("model_type")
    if kind not in PREDICTORS:
        raise ValueError(
            f"{model_dir} holds a {kind!r} model; `regen predict` knows {sorted(PREDICTORS)}"
        )
    return kind


def predict(args) -> str:
    import datasets

    kind = model_type(args.model)
    rows = datasets.load_dataset(args.dataset_name, args.dataset_config, split=args.split)
    if args.limit is not None:
        rows = rows.select(range(min(args.limit, len(rows))))
    out = PREDICTORS[kind](args.model, rows, args.dataset_name, args.dataset_config, args)
    write_predictions(args.out, rows["user_id"], out.get("ranked_items"), out.get("narratives"))
    print(f"{kind}: {len(rows):,} {args.split} users of {args.dataset_config} -> {args.out}")
    return args.out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="checkpoint folder (save_pretrained)")
    parser.add_argument("--dataset_name", required=True, help="built REGEN folder or Hub id")
    parser.add_argument(
        "--dataset_config", default="office", help="office, office_no_critique, ..."
    )
    parser.add_argument("--split", default="test", help="train, validation or test")
    parser.add_argument("--out", required=True, help="the prediction file (JSONL) to write")
    parser.add_argument("--limit", type=int, default=None, help="predict the first N users only")
    parser.add_argument("--top_k", type=int, default=100, help="items ranked per user")
    parser.add_argument("--batch_size", type=int, default=256)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="write the prediction file of a checkpoint for a dataset split",
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
