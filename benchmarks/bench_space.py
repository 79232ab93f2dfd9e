"""The Space's speed on CPU: time to the first narrative token and to a full answer per model,
and the requests per second the served app holds under a bounded load from a second process.

    python benchmarks/bench_space.py --demo-dir demo_out --users 3 --clients 4 --seconds 20

Models come from what `make demo` left in `--demo-dir` (its `regen` folder and
`checkpoints/*-office`). A role that is missing is made in `bench_out/space`: FLARE with the tiny
recipe, the narrator as an untrained LoRA adapter on the embedded Gemma 3 270M (the same
computation per token as a trained one: the timings hold, the texts do not). LUMEN is timed
where the demo folder has a checkpoint, and left out otherwise (training it takes long).

Latency: each model answers `--users` test users in-process (`SpaceApp.recommend`, what the page
calls), after one warm-up answer that also loads the model. Load: the app is served on a free
loopback port; a second process runs `--clients` gradio_client sessions that each pick a user
and ask for recommendations until `--requests` each or `--seconds` have passed. A request fails
if it raises or its answer lacks a ten-item ranking. Results go to bench_out/space/results.json.
"""

from __future__ import annotations

import argparse
import json
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = Path("bench_out/space")
FLARE_TINY = REPO / "training" / "recipes" / "flare" / "tiny.yaml"
SAMPLES = REPO / "regen_dataset" / "samples"
KIND = "purchase_reason"


# -- checkpoints ---------------------------------------------------------------------------------


def prepare(demo_dir: Path) -> tuple[Path, dict, list[str]]:
    """(dataset folder, {"office": {role: folder}}, notes on what was made here)."""
    from regen_dataset.export import build_folder
    from training.space import DEMO_DATA
    from training.space.registry import discover

    notes = []
    folder = next((demo_dir / n for n in DEMO_DATA if (demo_dir / n / "README.md").is_file()), None)
    if folder is None:
        folder = OUT / "regen"
        if not (folder / "README.md").is_file():
            sources = {c: [str(SAMPLES / f"{c}_synthetic.jsonl")] for c in ("office", "clothing")}
            build_folder(sources, folder, progress=False)
        notes.append(f"dataset: built from the shipped samples in {folder}")
    roles = dict(discover(demo_dir).get("office", {}))
    if "flare" not in roles:
        roles["flare"] = train_tiny_flare(folder, OUT / "checkpoints" / "flare-office")
        notes.append("flare: trained with the tiny recipe (none in the demo folder)")
    if "narrator" not in roles:
        roles["narrator"] = untrained_adapter(OUT / "checkpoints" / "narrator-office")
        notes.append("narrator: untrained LoRA adapter on the embedded Gemma 3 270M")
    if "lumen" not in roles:
        notes.append("lumen: no checkpoint in the demo folder, left out")
    return folder, {"office": roles}, notes


def train_tiny_flare(folder: Path, out: Path) -> Path:
    from training import train_flare

    if not (out / "config.json").is_file():
        train_flare.run(
            ["--config", str(FLARE_TINY), "--dataset_name", str(folder), "--dataset_config",
             "office", "--output_dir", str(out), "--overwrite_output_dir", "true"]
        )  # fmt: skip
    return out


def untrained_adapter(out: Path) -> Path:
    from regen_models.base import EMBEDDED
    from regen_models.narrator.configuration_narrator import NarratorConfig, base_signature
    from regen_models.narrator.loading import add_lora, load_base

    if (out / "adapter_config.json").is_file():
        return out
    model, tokenizer = load_base(EMBEDDED)
    add_lora(model, EMBEDDED).save_pretrained(out)
    tokenizer.save_pretrained(out)
    NarratorConfig(
        base_model=EMBEDDED,
        base_signature=base_signature(model.config),
        kinds=[KIND],
        max_new_tokens={KIND: 64},
        max_prompt_tokens=1024,
        with_critiques=True,
    ).save(out)
    return out


# -- latency -------------------------------------------------------------------------------------


def answer_times(app, model: str, user_id: str) -> dict:
    """Seconds from the request to the ranking, to the first narrative text, to the end."""
    conversation = app.load_user("office", user_id).conversation
    start = time.perf_counter()
    ranking = first = None
    for view in app.recommend(conversation, model, KIND):
        if view.failed:
            raise RuntimeError(f"{model}: {view.message}")
        now = time.perf_counter() - start
        ranking = ranking if ranking is not None else now
        text = view.narrative.split("*:\n\n", 1)[1] if "*:\n\n" in view.narrative else ""
        if first is None and text.strip():
            first = now
    return {"ranking_s": ranking, "first_token_s": first, "full_s": time.perf_counter() - start}


def latency(app, users: list[str]) -> dict:
    results = {}
    for model in app.registry.names("office"):
        start = time.perf_counter()
        answer_times(app, model, users[0])  # loads the model
        warm_up = time.perf_counter() - start
        runs = [answer_times(app, model, user) for user in users]
        summary = {"load_and_first_answer_s": warm_up, "users": len(runs)}
        for key in ("ranking_s", "first_token_s", "full_s"):
            values = [run[key] for run in runs if run[key] is not None]
            summary[key] = statistics.median(values) if values else None
        results[model] = summary
    return results


# -- load ----------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def load(blocks, models: list[str], users: list[str], args) -> list[dict]:
    """Serve the page once; per model, a second process loads it and reports."""
    from training.space import launch

    url = launch(blocks, "127.0.0.1", free_port(), block=False)
    results = []
    try:
        for model in models:
            command = [
                sys.executable, __file__, "load-client", "--url", url, "--model", model,
                "--clients", str(args.clients), "--requests", str(args.requests),
                "--seconds", str(args.seconds), "--users", *users[: args.clients],
            ]  # fmt: skip
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=args.seconds + 120
            )
            if done.returncode:
                raise RuntimeError(f"the load process failed:\n{done.stderr[-3000:]}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        blocks.close()
    return results


def load_client(args) -> None:
    """The second process: `--clients` sessions asking for recommendations, bounded."""
    import threading

    from gradio_client import Client

    deadline = time.perf_counter() + args.seconds
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def session(user: str) -> None:
        client = Client(args.url, verbose=False)
        client.predict("office", user, KIND, api_name="/load_user")
        for _ in range(args.requests):
            if time.perf_counter() > deadline:
                return
            start = time.perf_counter()
            try:
                result = client.predict(args.model, KIND, api_name="/recommend")
                ranking, message = result[1], result[4]
                if ranking.count("<tr class=") != 10 or "regen-error" in message:
                    raise RuntimeError(f"no ten-item ranking: {message[:200]}")
            except Exception as error:
                with lock:
                    failures.append(f"{type(error).__name__}: {error}")
                continue
            with lock:
                latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    threads = [
        threading.Thread(target=session, args=(args.users[n % len(args.users)],))
        for n in range(args.clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - start
    latencies.sort()
    print(
        json.dumps(
            {
                "model": args.model,
                "clients": args.clients,
                "completed": len(latencies),
                "failed": len(failures),
                "first_failures": failures[:3],
                "seconds": elapsed,
                "requests_per_s": len(latencies) / elapsed,
                "p50_s": latencies[len(latencies) // 2] if latencies else None,
                "p95_s": latencies[int(len(latencies) * 0.95)] if latencies else None,
            }
        )
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("mode", nargs="?", default="all", choices=["all", "load-client"])
    parser.add_argument("--demo-dir", default="demo_out")
    parser.add_argument("--users", nargs="*", default=None, help="(load-client) user ids")
    parser.add_argument("--latency-users", type=int, default=3)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--requests", type=int, default=50, help="per client, at most")
    parser.add_argument("--seconds", type=float, default=20.0, help="load time, at most")
    parser.add_argument("--load-models", nargs="*", default=["FLARE"])
    parser.add_argument("--url")
    parser.add_argument("--model")
    args = parser.parse_args(argv)
    if args.mode == "load-client":
        load_client(args)
        return

    import torch

    from training.space import build_space

    folder, checkpoints, notes = prepare(Path(args.demo_dir))
    blocks, app = build_space(folder, checkpoints, plots_dir=OUT / "plots")
    users = [user for _, user in app.data.user_choices("office")][: max(args.latency_users, 4)]
    results = {
        "torch_threads": torch.get_num_threads(),
        "notes": notes + app.registry.notes,
        "latency": latency(app, users[: args.latency_users]),
        "load": load(blocks, args.load_models, users, args),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    from regen_dataset.files import write_json

    write_json(OUT / "results.json", results)
    print("\n".join(f"note: {note}" for note in results["notes"]))
    print("\n| model | load + 1st answer (s) | ranking (s) | first token (s) | full answer (s) |")
    print("|---|---|---|---|---|")
    for model, row in results["latency"].items():
        cells = [
            row[k] for k in ("load_and_first_answer_s", "ranking_s", "first_token_s", "full_s")
        ]
        print(f"| {model} | " + " | ".join("-" if c is None else f"{c:.2f}" for c in cells) + " |")
    print("\n| model | clients | requests | failed | requests/s | p50 (s) | p95 (s) |")
    print("|---|---|---|---|---|---|---|")
    for row in results["load"]:
        print(
            f"| {row['model']} | {row['clients']} | {row['completed']} | {row['failed']} | "
            f"{row['requests_per_s']:.1f} | {row['p50_s']:.3f} | {row['p95_s']:.3f} |"
        )


if __name__ == "__main__":
    main()
