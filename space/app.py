"""The REGEN Space: talk to a conversational recommender trained on REGEN, and browse the data.

On the Hub this file is the Space's `app_file`: it downloads the dataset and the checkpoints by
repo id (set `REGEN_ORG`, or each repo by its own variable: see `training/space/hub.py`) and
serves the page. On a laptop, after `make demo`:

    regen space --demo-dir demo_out           # or: REGEN_DEMO_DIR=demo_out python space/app.py
"""

from __future__ import annotations

import os
import sys

from training.space import build_space, demo_space, launch
from training.space.hub import download, repo_ids

# The organisation the release pushed to: `regen release --org ORG` sets it on the Space.
REGEN_ORG = os.environ.get("REGEN_ORG", "regen-benchmark")


def hub_space(device: str = "auto"):
    datasets, checkpoints = repo_ids(REGEN_ORG)
    folder, found, notes = download(datasets, checkpoints)
    for note in notes:
        print(f"regen space: {note}", file=sys.stderr)
    return build_space(
        folder,
        found,
        notes=notes,
        plots_dir=os.path.join(os.getcwd(), "plots"),
        device=device,
    )


def main() -> None:
    demo_dir = os.environ.get("REGEN_DEMO_DIR")
    device = os.environ.get("REGEN_DEVICE", "auto")
    blocks, _ = demo_space(demo_dir, device) if demo_dir else hub_space(device)
    # A Space listens on 0.0.0.0:7860; a laptop keeps the page on loopback.
    host = os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1" if demo_dir else "0.0.0.0")
    launch(blocks, host, int(os.environ.get("GRADIO_SERVER_PORT", "7860")))


if __name__ == "__main__":
    main()
