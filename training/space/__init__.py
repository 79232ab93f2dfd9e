"""`regen space`: the Gradio Space, served on this machine with the demo's checkpoints.

    regen space                              # demo_out from `make demo`, http://127.0.0.1:7860
    regen space --demo-dir demo_out --port 7861 --host 127.0.0.1

From Python (what `make demo` calls at its end): `serve("demo_out")` prints the address and
blocks until interrupted. On the Hub, `space/app.py` builds the same page from repo ids
(`training.space.hub`). Gradio is imported only when a page is built.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


def build_space(
    dataset_folder: str | os.PathLike,
    checkpoints,
    *,
    notes: list[str] | None = None,
    plots_dir: str | os.PathLike | None = None,
    device: str | None = "auto",
):
    """(gr.Blocks, SpaceApp) for a built dataset folder and `{domain: {role: folder}}`, whose
    models run on `device` (auto: a CUDA GPU where there is one)."""
    from regen_models.devices import pick_device
    from training.space.data import SpaceData
    from training.space.handlers import SpaceApp
    from training.space.registry import Registry
    from training.space.ui import build_blocks

    data = SpaceData(dataset_folder, plots_dir)
    device = str(pick_device(device))
    registry = Registry.build(checkpoints, domains=tuple(data.domains()), device=device)
    app = SpaceApp(registry, data)
    notes = [*(notes or []), *registry.notes]
    if not registry.entries:
        notes.insert(0, "No model checkpoint was found: only the dataset tab works.")
    return build_blocks(app, notes=notes), app


DEMO_DATA = ("regen-users", "regen")  # in order of preference


def demo_space(demo_dir: str | os.PathLike = "demo_out", device: str | None = "auto"):
    """The Space over what `make demo` wrote in `demo_dir`: the checkpoints, and the users of
    its user-disjoint build (`regen-users`, whose test users the language models never saw and
    FLARE saw without their last purchase; the leave-one-out `regen` where that is missing)."""
    from training.space.registry import discover

    demo_dir = Path(demo_dir)
    folder = next(
        (demo_dir / name for name in DEMO_DATA if (demo_dir / name / "README.md").is_file()),
        demo_dir / DEMO_DATA[-1],
    )
    if not (folder / "README.md").is_file():
        raise FileNotFoundError(
            f"{folder} is not a built REGEN folder: run `make demo` (or `regen demo --out "
            f"{demo_dir}`) first"
        )
    return build_space(
        folder, discover(demo_dir), plots_dir=demo_dir / "space-plots", device=device
    )


def launch(blocks, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, *, block: bool = True):
    """Serve `blocks`; print the address. `block=False` returns once it is up (tests)."""
    from training.space.render import CSS

    blocks.queue(default_concurrency_limit=1)
    _, url, _ = blocks.launch(
        server_name=host,
        server_port=port,
        prevent_thread_lock=True,
        quiet=True,
        css=CSS,
        footer_links=["api"],
        show_error=False,
    )
    print(f"REGEN Space serving on {url} (Ctrl+C stops it)", flush=True)
    if block:
        try:
            blocks.block_thread()
        finally:
            shut_down(blocks)
    return url


def shut_down(blocks, timeout_s: float = 30.0) -> None:
    """Start no new events, stop the narratives being generated, let the running events finish
    (up to `timeout_s`), then close the server."""
    from training.space.streaming import stop_generations

    queue = getattr(blocks, "_queue", None)
    if queue is not None:
        queue.close()
    stop_generations(timeout_s)
    if queue is not None:
        deadline = time.monotonic() + timeout_s
        while any(job is not None for job in queue.active_jobs) and time.monotonic() < deadline:
            time.sleep(0.05)
    blocks.close()


def serve(
    demo_dir: str | os.PathLike = "demo_out",
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    device: str | None = "auto",
    block: bool = True,
) -> str:
    """Serve the demo's Space on `host:port`, print its address, block until interrupted."""
    blocks, _ = demo_space(demo_dir, device)
    return launch(blocks, host, port, block=block)


def add_parser(subparsers) -> None:
    from regen_models.devices import DEVICE_HELP

    parser = subparsers.add_parser("space")
    parser.add_argument(
        "--demo-dir", "--demo_dir", default="demo_out", help="what `make demo` wrote"
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to listen on")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--device", default="auto", help=DEVICE_HELP)
    parser.set_defaults(
        func=lambda args: serve(args.demo_dir, args.host, args.port, device=args.device)
    )
