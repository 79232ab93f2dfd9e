"""Where the Space finds the dataset and the checkpoints on the Hub: repo ids, downloaded once.

Repo ids follow the release's names under one organisation (`REGEN_ORG`, which `regen release`
sets on the Space it pushes):

    {org}/regen-users                 the user-disjoint build, whose test users no model saw
    {org}/regen                       the leave-one-out build, when there is no regen-users
    {org}/regen-{role}-{domain}       a checkpoint: regen-flare-office, regen-narrator-office, ...

and any one of them can be set by an environment variable instead: `REGEN_DATASET_REPO`,
`REGEN_FLARE_OFFICE_REPO`, `REGEN_NARRATOR_OFFICE_REPO`, `REGEN_LUMEN_OFFICE_REPO`, ... (an
empty value leaves that checkpoint out). A checkpoint that cannot be downloaded is left out of
the registry with a note on the page; the dataset must be there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from training.space import DEMO_DATA
from training.space.registry import DEMO_LAYOUT, DOMAINS

DATASET_NAME = "regen"


def repo_ids(org: str, environ: Mapping[str, str] = os.environ) -> tuple[list[str], dict]:
    """(dataset repo ids in order of preference, {domain: {role: repo id}}) for `org`, with the
    environment's overrides. The Space shows test users: those of the user-disjoint build are
    in no model's training data (as `regen space --demo-dir` prefers `regen-users` too)."""
    override = environ.get("REGEN_DATASET_REPO")
    datasets = [override] if override else [f"{org}/{name}" for name in DEMO_DATA]
    checkpoints: dict[str, dict[str, str]] = {}
    for domain in DOMAINS:
        for role in DEMO_LAYOUT:
            variable = f"REGEN_{role.upper()}_{domain.upper()}_REPO"
            repo = environ.get(variable, f"{org}/{DATASET_NAME}-{role}-{domain}")
            if repo:
                checkpoints.setdefault(domain, {})[role] = repo
    return datasets, checkpoints


def download(
    datasets: str | Sequence[str],
    checkpoints: Mapping[str, Mapping[str, str]],
    fetch: Callable[..., str] | None = None,
) -> tuple[Path, dict[str, dict[str, Path]], list[str]]:
    """(dataset folder, {domain: {role: folder}}, notes): the first dataset repo that downloads
    (or is in the local cache) and every checkpoint; those that fail are noted (for the log) and
    left out. No dataset at all is an error."""
    if fetch is None:
        from huggingface_hub import snapshot_download as fetch
    notes = []
    folder = None
    for dataset in [datasets] if isinstance(datasets, str) else datasets:
        try:
            folder = Path(fetch(dataset, repo_type="dataset"))
            break
        except Exception as error:
            notes.append(f"dataset {dataset} could not be loaded ({type(error).__name__})")
    if folder is None:
        raise RuntimeError(f"the Space needs a REGEN dataset: {'; '.join(notes)}")
    found: dict[str, dict[str, Path]] = {}
    for domain, roles in checkpoints.items():
        for role, repo in roles.items():
            try:
                found.setdefault(domain, {})[role] = Path(fetch(repo))
            except Exception as error:  # not pushed yet, private, offline: the page says so
                notes.append(
                    f"{role} ({domain}): {repo} could not be loaded ({type(error).__name__})"
                )
    return folder, found, notes
