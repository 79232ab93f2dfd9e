"""Where the Space finds the dataset and the checkpoints on the Hub: repo ids, downloaded once.

Repo ids follow the release's names under one organisation (`REGEN_ORG`):

    {org}/regen                       the dataset (`regen release` pushes it)
    {org}/regen-{role}-{domain}       a checkpoint: regen-flare-office, regen-narrator-office, ...

and any one of them can be set by an environment variable instead: `REGEN_DATASET_REPO`,
`REGEN_FLARE_OFFICE_REPO`, `REGEN_NARRATOR_OFFICE_REPO`, `REGEN_LUMEN_OFFICE_REPO`, ... (an
empty value leaves that checkpoint out). A checkpoint that cannot be downloaded is left out of
the registry with a note on the page; the dataset must be there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from training.space.registry import DEMO_LAYOUT, DOMAINS

DATASET_NAME = "regen"


def repo_ids(org: str, environ: Mapping[str, str] = os.environ) -> tuple[str, dict]:
    """(dataset repo id, {domain: {role: repo id}}) for `org`, with the environment's overrides."""
    dataset = environ.get("REGEN_DATASET_REPO") or f"{org}/{DATASET_NAME}"
    checkpoints: dict[str, dict[str, str]] = {}
    for domain in DOMAINS:
        for role in DEMO_LAYOUT:
            variable = f"REGEN_{role.upper()}_{domain.upper()}_REPO"
            repo = environ.get(variable, f"{org}/{DATASET_NAME}-{role}-{domain}")
            if repo:
                checkpoints.setdefault(domain, {})[role] = repo
    return dataset, checkpoints


def download(
    dataset: str,
    checkpoints: Mapping[str, Mapping[str, str]],
    fetch: Callable[..., str] | None = None,
) -> tuple[Path, dict[str, dict[str, Path]], list[str]]:
    """(dataset folder, {domain: {role: folder}}, notes): every repo downloaded (or taken from
    the local cache); those that fail are noted (for the log) and left out."""
    if fetch is None:
        from huggingface_hub import snapshot_download as fetch
    folder = Path(fetch(dataset, repo_type="dataset"))
    found: dict[str, dict[str, Path]] = {}
    notes = []
    for domain, roles in checkpoints.items():
        for role, repo in roles.items():
            try:
                found.setdefault(domain, {})[role] = Path(fetch(repo))
            except Exception as error:  # not pushed yet, private, offline: the page says so
                notes.append(
                    f"{role} ({domain}): {repo} could not be loaded ({type(error).__name__})"
                )
    return folder, found, notes
