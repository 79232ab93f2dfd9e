"""RecBole's SASRec and BERT4Rec on MovieLens-100k, the protocol of `bench_flare.py movielens`.

Runs in a virtual environment of its own, with RecBole; the project itself never imports it:

    python3 -m venv .venv-recbole && .venv-recbole/bin/pip install torch==2.13.0 recbole==1.2.1 \
        "numpy<2" "pandas<2.3" "scipy<1.15" "setuptools<81"
    .venv-recbole/bin/python benchmarks/bench_recbole.py \
        --models SASRec BERT4Rec --seeds 42 --threads 1

    # the protocol check against the folder `bench_flare.py movielens` builds reads its parquet
    # files: .venv-recbole/bin/pip install "pyarrow<20"   (pyarrow 20 and later need NumPy 2)
    .venv-recbole/bin/python benchmarks/bench_recbole.py --check-against bench_out/flare/movielens \
        --models

The data are the ML-100k atomic files of the RecBole wheel (the files `bench_flare.py` reads by
default), with each timestamp replaced by its rank in time (see `exact_order_dataset`; without
it 4 test and 5 validation items differ from ours; `--recbole-timestamps` keeps them).
Protocol: leave-one-out in time order (last rating = test, second to last = validation, ties in
time keep the file's order), full ranking of all 1,682 movies, Recall/NDCG/MRR@10 on the 943
test users. Training stops when validation NDCG@10 has not improved for 10 evaluations (one per
epoch) or at `--max-epochs`; the test figures are those of the best validation epoch.

Model settings are RecBole 1.2.1's defaults for both models (`recbole/properties/model/*.yaml`),
recorded in each result file: 2 layers, 2 heads, hidden size 64, inner size 256, GELU, layer-norm
eps 1e-12, init std 0.02, cross-entropy over all items; dropouts 0.5/0.5 (SASRec) and 0.2/0.2
(BERT4Rec); BERT4Rec's mask ratio 0.2. Set here, as the protocol: sequence length 50 (also the
default), no negative sampling, Adam at 1e-3 (default), training batch `--train-batch-size`
(RecBole's default 2048).

Cost: RecBole trains on every prefix of every user's training ratings, 97,171 sequences of up
to 50 positions an epoch, all padded to 50; one epoch is about 200 CPU-seconds at one thread,
validation about a second. On a CPU, batches of 256 cost less per sequence than 2,048 (cache)
and give 8 times the updates per epoch: `--train-batch-size 256` for CPU runs.

Each run writes `bench_out/recbole/<model>-seed<N>.json` after every epoch (status "running" until
it ends), so a run that is stopped still leaves its best-so-far figures; `--resume` goes on from
RecBole's checkpoint of that epoch. At each new best epoch it also writes the test ranking of
every user, `<model>-seed<N>.test.jsonl`, in the prediction format `regen eval` reads (top 100,
ids as our converter writes them); `--predict-only` writes it from a run's saved checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

DATASET = "ml-100k"
EXACT_DATASET = "ml-100k-exact-order"
OUT = Path("bench_out/recbole")
PROTOCOL = {
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    "eval_args": {
        "split": {"LS": "valid_and_test"},
        "order": "TO",
        "mode": "full",
        "group_by": "user",
    },
    "metrics": ["Recall", "NDCG", "MRR"],
    "topk": [10],
    "valid_metric": "NDCG@10",
    "train_neg_sample_args": None,
    "loss_type": "CE",
    "MAX_ITEM_LIST_LENGTH": 50,
    "stopping_step": 10,
    "eval_step": 1,
    "show_progress": False,
    "reproducibility": True,
}
MODEL_KEYS = (
    "n_layers", "n_heads", "hidden_size", "inner_size", "hidden_dropout_prob",
    "attn_dropout_prob", "hidden_act", "layer_norm_eps", "initializer_range", "loss_type",
    "mask_ratio", "ft_ratio", "transform", "learning_rate", "learner", "weight_decay",
    "train_batch_size", "MAX_ITEM_LIST_LENGTH",
)  # fmt: skip


def exact_order_dataset(folder: Path) -> Path:
    """A copy of the wheel's ratings whose timestamps are their rank in time (`rank_timestamps`).

    RecBole's own ml-100k settings min-max scale the timestamps (`normalize_all: True`) and keep
    them as float32, about 1.1 s apart in the later half of the range: ratings a second apart become
    ties, and the split no longer follows the time order. Ranks (at most 100,000, exact in float32)
    keep the order of the seconds and break ties by the file's order, as our converter does.
    """
    import recbole

    source = Path(recbole.__file__).parent / "dataset_example" / DATASET / f"{DATASET}.inter"
    target = folder / EXACT_DATASET / f"{EXACT_DATASET}.inter"
    target.parent.mkdir(parents=True, exist_ok=True)
    lines = rank_timestamps(source.read_text(encoding="utf-8").splitlines())
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write("\n".join(lines) + "\n")
    os.replace(temporary, target)
    return folder


def rank_timestamps(lines: list[str]) -> list[str]:
    """An atomic .inter file's lines, sorted by (timestamp, line) and timestamped 0, 1, 2, ..."""
    header = lines[0].split("\t")
    time_column = next((i for i, name in enumerate(header) if name.startswith("timestamp:")), None)
    if time_column is None:
        raise ValueError(f"the header {lines[0]!r} has no timestamp column")
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if line.strip():
            fields = line.split("\t")
            try:
                rows.append((int(float(fields[time_column])), number, fields))
            except (IndexError, ValueError):
                raise ValueError(f"line {number}: no numeric timestamp in {line!r}") from None
    rows.sort(key=lambda row: row[:2])
    ranked = [lines[0]]
    for rank, (_, _, fields) in enumerate(rows):
        fields[time_column] = str(rank)
        ranked.append("\t".join(fields))
    return ranked


def recbole_config(model: str, seed: int, args, workdir: Path):
    from recbole.config import Config

    gpu = args.gpu
    dataset = DATASET
    settings: dict = {}
    if not args.recbole_timestamps:
        dataset = EXACT_DATASET
        settings["data_path"] = str(exact_order_dataset(args.out / "data"))
    settings |= {
        **PROTOCOL,
        "epochs": args.max_epochs,
        "train_batch_size": args.train_batch_size,
        "seed": seed,
        "use_gpu": gpu,
        "device": "cuda" if gpu else "cpu",
        "checkpoint_dir": str(workdir / "checkpoints"),
        "state": "INFO",
    }
    return Config(model=model, dataset=dataset, config_dict=settings)


def prepare(config):
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import init_seed

    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    return dataset, data_preparation(config, dataset)


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def write_json_atomic(path: Path, payload: dict) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2) + "\n")


def metrics_at_10(result: dict) -> dict:
    return {name: float(result[name.lower()]) for name in ("Recall@10", "NDCG@10", "MRR@10")}


def write_test_predictions(trainer, test_data, path: Path, top_k: int = 100) -> None:
    """The model's test ranking of every user in our prediction format (ids prefixed "ML", as
    `regen dataset movielens` writes them), scored by RecBole's own full-sort evaluation step, so
    that `regen eval` and paired comparisons read the run like any other."""
    import torch

    dataset = test_data._dataset
    trainer.tot_item_num = dataset.item_num  # what RecBole's evaluate() sets before this step
    trainer.model.eval()
    lines = []
    with torch.no_grad():
        for batch in test_data:
            interaction, scores, _, _ = trainer._full_sort_batch_eval(batch)
            user_ids = interaction[dataset.uid_field].cpu().numpy()
            users = dataset.id2token(dataset.uid_field, user_ids)
            top = torch.topk(scores, top_k, dim=-1).indices.cpu().numpy()
            for user, items in zip(users, top, strict=True):
                ranked = [f"ML{token}" for token in dataset.id2token(dataset.iid_field, items)]
                lines.append(json.dumps({"user_id": f"ML{user}", "ranked_items": ranked}))
    write_text_atomic(path, "\n".join(lines) + "\n")


def predict_from_checkpoint(model_name: str, seed: int, args) -> dict:
    """Write the test predictions of a run's saved best checkpoint (runs from before the
    predictions were written, or stopped ones) and return the test figures RecBole gives it."""
    import torch
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    workdir = args.out / "work" / f"{model_name}-seed{seed}"
    checkpoints = sorted((workdir / "checkpoints").glob(f"{model_name}-*.pth"))
    if not checkpoints:
        raise SystemExit(f"no RecBole checkpoint of {model_name} seed {seed} under {workdir}")
    newest = max(checkpoints, key=lambda checkpoint: checkpoint.stat().st_mtime)
    here = Path.cwd()
    os.chdir(workdir)
    try:
        config = recbole_config(model_name, seed, args, workdir)
        init_logger(config)
        dataset, (train_data, valid_data, test_data) = prepare(config)
        init_seed(config["seed"], config["reproducibility"])
        model = get_model(model_name)(config, train_data._dataset).to(config["device"])
        model.load_state_dict(torch.load(newest, map_location=config["device"])["state_dict"])
        trainer = get_trainer(config["MODEL_TYPE"], model_name)(config, model)
        path = args.out / f"{model_name}-seed{seed}.test.jsonl"
        write_test_predictions(trainer, test_data, path)
        test = metrics_at_10(trainer.evaluate(test_data, load_best_model=False))
        print(f"{model_name} seed {seed}: {newest.name} -> {path}; RecBole's test figures {test}")
        return test
    finally:
        os.chdir(here)


def timed_phases(trainer) -> dict[str, float]:
    """Seconds spent in each training and validation epoch (RecBole only logs them)."""
    seconds: dict[str, float] = {}
    for phase, name in (("train", "_train_epoch"), ("valid", "_valid_epoch")):
        method = getattr(trainer, name)

        def timed(*args, _method=method, _phase=phase, **kwargs):
            phase_started = time.perf_counter()
            try:
                return _method(*args, **kwargs)
            finally:
                seconds[_phase] = time.perf_counter() - phase_started

        setattr(trainer, name, timed)
    return seconds


def resumed_record(trainer, checkpoint: Path, path: Path) -> dict:
    """Go on from RecBole's last saved (best) epoch; the record keeps the epochs up to it.

    RecBole's checkpoints hold the weights, the optimizer and the early-stopping state, not the
    random generators: a resumed run is not the same draw as an uninterrupted one.
    """
    trainer.resume_checkpoint(checkpoint)
    record = json.loads(path.read_text(encoding="utf-8"))
    if record.get("status") != "running" or record["best_epoch"] != trainer.start_epoch:
        raise SystemExit(
            f"{path} (status {record.get('status')!r}, best epoch {record['best_epoch']}) "
            f"does not end at {checkpoint.name} (epoch {trainer.start_epoch}): not resuming"
        )
    kept = [h for h in record["history"] if h["epoch"] <= trainer.start_epoch]
    if len(kept) < len(record["history"]):  # epochs after the checkpoint are run again
        record["wall_seconds"] = sum(
            sum(value for key, value in h.items() if key.endswith("seconds")) for h in kept
        )
    record["history"] = kept
    record["epochs"] = trainer.start_epoch
    record.setdefault("resumed_at_epochs", []).append(trainer.start_epoch)
    return record


def train_one(model_name: str, seed: int, args) -> dict:
    from recbole.utils import get_model, get_trainer, init_logger, init_seed

    path = args.out / f"{model_name}-seed{seed}.json"
    predictions = path.with_suffix(".test.jsonl")
    workdir = args.out / "work" / f"{model_name}-seed{seed}"
    workdir.mkdir(parents=True, exist_ok=True)
    here = Path.cwd()
    os.chdir(workdir)  # RecBole writes log/ and log_tensorboard/ into the working directory
    try:
        started = time.perf_counter()
        config = recbole_config(model_name, seed, args, workdir)
        init_logger(config)
        dataset, (train_data, valid_data, test_data) = prepare(config)
        init_seed(config["seed"], config["reproducibility"])
        model = get_model(model_name)(config, train_data._dataset).to(config["device"])
        trainer = get_trainer(config["MODEL_TYPE"], model_name)(config, model)
        record = {
            "model": model_name,
            "seed": seed,
            "dataset": config["dataset"],
            "recbole_settings": {key: config[key] for key in MODEL_KEYS if key in config},
            "protocol": {key: PROTOCOL[key] for key in ("eval_args", "valid_metric")}
            | {"stopping_step": PROTOCOL["stopping_step"], "max_epochs": args.max_epochs},
            "train_sequences": len(train_data._dataset),
            "test_users": len(test_data._dataset),
            "torch_threads": __import__("torch").get_num_threads(),
            "status": "running",
            "epochs": 0,
            "best_epoch": None,
            "best_valid_NDCG@10": None,
            "test": None,
            "history": [],
        }
        record["prepare_seconds"] = round(time.perf_counter() - started, 1)
        checkpoints = list((workdir / "checkpoints").glob(f"{model_name}-*.pth"))
        if args.resume and path.exists() and checkpoints:
            newest = max(checkpoints, key=lambda checkpoint: checkpoint.stat().st_mtime)
            record = resumed_record(trainer, newest, path)
            started -= record["wall_seconds"]
        phase_seconds = timed_phases(trainer)

        def after_epoch(epoch_idx: int, valid_score: float) -> None:
            record["epochs"] = epoch_idx + 1
            improved = trainer.cur_step == 0
            if improved:
                # The current weights are the best so far (RecBole has just saved them): their
                # test figures are what reloading the best checkpoint at the end would give.
                test_started = time.perf_counter()
                test = trainer.evaluate(test_data, load_best_model=False)
                write_test_predictions(trainer, test_data, predictions)
                phase_seconds["test"] = time.perf_counter() - test_started
                record.update(
                    best_epoch=epoch_idx + 1,
                    test=metrics_at_10(test),
                    best_valid_result=metrics_at_10(trainer.best_valid_result),
                )
                record["best_valid_NDCG@10"] = float(valid_score)
            record["history"].append(
                {
                    "epoch": epoch_idx + 1,
                    "train_loss": float(trainer.train_loss_dict[epoch_idx]),
                    "valid_NDCG@10": float(valid_score),
                    **{
                        f"{phase}_seconds": round(seconds, 2)
                        for phase, seconds in phase_seconds.items()
                    },
                }
            )
            phase_seconds.clear()
            record["wall_seconds"] = round(time.perf_counter() - started, 1)
            write_json_atomic(path, record)

        trainer.fit(train_data, valid_data, saved=True, callback_fn=after_epoch)
        record["status"] = (
            "early stopped" if record["epochs"] < args.max_epochs else "reached --max-epochs"
        )
        record["wall_seconds"] = round(time.perf_counter() - started, 1)
        write_json_atomic(path, record)
        return record
    finally:
        os.chdir(here)


def recbole_splits(args) -> dict[str, dict[str, object]]:
    """user -> {"validation": item, "test": item, "test_history": [items]} as RecBole splits."""
    config = recbole_config("SASRec", 42, args, args.out / "work" / "check")
    dataset, (train_data, valid_data, test_data) = prepare(config)
    splits: dict[str, dict[str, object]] = {}
    for name, data in (("validation", valid_data), ("test", test_data)):
        feat = data._dataset.inter_feat
        users = dataset.id2token(dataset.uid_field, feat[dataset.uid_field].numpy())
        items = dataset.id2token(dataset.iid_field, feat[dataset.iid_field].numpy())
        lengths = feat["item_length"].numpy()
        histories = feat["item_id_list"].numpy()
        for user, item, length, history in zip(users, items, lengths, histories, strict=True):
            entry = splits.setdefault(str(user), {})
            if name in entry:
                raise SystemExit(f"RecBole's {name} split holds user {user} twice")
            entry[name] = str(item)
            if name == "test":
                entry["test_history"] = [
                    str(token) for token in dataset.id2token(dataset.iid_field, history[:length])
                ]
    return splits


def our_splits(folder: Path) -> dict[str, dict[str, object]]:
    """The same, read from a folder built by `bench_flare.py movielens` (ids prefixed "ML")."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise SystemExit('--check-against reads parquet: pip install "pyarrow<20"') from None
    splits: dict[str, dict[str, object]] = {}
    for name in ("validation", "test"):
        files = sorted((folder / "data" / "office").glob(f"{name}-*.parquet"))
        if not files:
            raise SystemExit(f"no {name} split under {folder / 'data' / 'office'}")
        for file in files:
            table = pq.read_table(file, columns=["user_id", "history", "target"])
            for row in table.to_pylist():
                user = row["user_id"].removeprefix("ML")
                entry = splits.setdefault(user, {})
                if name in entry:
                    raise SystemExit(f"{file}: user {row['user_id']} appears twice")
                entry[name] = row["target"]["item_id"].removeprefix("ML")
                if name == "test":
                    entry["test_history"] = [
                        step["item_id"].removeprefix("ML") for step in row["history"]
                    ]
    return splits


def check_against(folder: Path, args) -> bool:
    """Compare, user by user, RecBole's validation and test items with our split's targets."""
    theirs, ours = recbole_splits(args), our_splits(folder)
    problems = []
    if set(theirs) != set(ours):
        only_recbole = sorted(set(theirs) - set(ours), key=int)[:5]
        only_ours = sorted(set(ours) - set(theirs), key=int)[:5]
        problems.append(f"users differ: only RecBole {only_recbole}, only ours {only_ours}")
    length = PROTOCOL["MAX_ITEM_LIST_LENGTH"]
    counts = {"validation": 0, "test": 0, "test_history": 0}
    for user in sorted(set(theirs) & set(ours), key=int):
        for key in counts:
            mine = ours[user].get(key)
            if key == "test_history" and mine is not None:
                mine = mine[-length:]  # RecBole keeps the last MAX_ITEM_LIST_LENGTH items
            if theirs[user].get(key) != mine:
                counts[key] += 1
                if counts[key] <= 3:
                    problems.append(
                        f"user {user}, {key}: RecBole {theirs[user].get(key)}, ours {mine}"
                    )
    print(
        f"protocol check against {folder}: {len(theirs)} RecBole test users, {len(ours)} ours; "
        f"mismatches: validation item {counts['validation']}, test item {counts['test']}, "
        f"last {length} history items before the test item {counts['test_history']}"
    )
    for problem in problems:
        print("  " + problem)
    return not problems


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="*", default=["SASRec", "BERT4Rec"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[42])
    parser.add_argument("--max-epochs", type=int, default=300, help="RecBole's default: 300")
    parser.add_argument("--train-batch-size", type=int, default=2048, help="default: RecBole's")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--gpu", action="store_true", help="train on CUDA")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--resume",
        action="store_true",
        help="go on from the checkpoint of a run that was stopped (its JSON says running)",
    )
    parser.add_argument(
        "--recbole-timestamps",
        action="store_true",
        help="use the wheel's ml-100k as RecBole loads it (float32 scaled timestamps: a few "
        "users' last ratings swap places) instead of the exact time order",
    )
    parser.add_argument(
        "--check-against",
        type=Path,
        metavar="FOLDER",
        help="first compare RecBole's splits with a folder built by bench_flare.py movielens "
        "(exit 1 on any difference)",
    )
    parser.add_argument(
        "--predict-only",
        action="store_true",
        help="train nothing: write <model>-seed<N>.test.jsonl from each run's saved best "
        "checkpoint (training runs write it at every new best epoch)",
    )
    args = parser.parse_args(argv)
    args.out = args.out.resolve()  # training runs inside a working directory of its own
    # RecBole 1.2.1 loads its checkpoints (--resume) with torch.load, which torch >= 2.6 restricts.
    os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    if args.check_against and not check_against(args.check_against, args):
        sys.exit(1)
    if args.predict_only:
        for seed in args.seeds:
            for model in args.models:
                predict_from_checkpoint(model, seed, args)
        return
    results = [train_one(model, seed, args) for seed in args.seeds for model in args.models]
    if results:
        print("\n| model | seed | epochs | best epoch | Recall@10 | NDCG@10 | MRR@10 | wall |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        t = r["test"]
        print(
            f"| {r['model']} | {r['seed']} | {r['epochs']} | {r['best_epoch']} | "
            f"{t['Recall@10']:.4f} | {t['NDCG@10']:.4f} | {t['MRR@10']:.4f} | "
            f"{r['wall_seconds']:.0f} s |"
        )


if __name__ == "__main__":
    main()
