"""The auto-rater: an ensemble of LLM ratings per narrative group, aggregated as described in
"REGEN: A Dataset and Benchmarks with Natural Language Critiques and Narratives"
(https://arxiv.org/abs/2503.11924) and "Beyond Retrieval: Generating Narratives in
Conversational Recommender Systems".

Each group (purchase reason + explanation, user summaries + profile, endorsement, each critique)
is rated in its own prompt, so that the reasoning about one group cannot colour another, and
sampled seven times (`ENSEMBLE`): in one request for seven candidates where the provider can,
else in requests made distinct by a seed (`describe_sampling`).

Per attribute, a score given by more than half of the runs wins; without such a majority the
mean, rounded down, is kept. The confidence is the most frequent confidence of the runs (the mean
of the tied values, rounded down, when several are equally frequent).
"""

from __future__ import annotations

import math
from collections import Counter

from regen_dataset.inpaint.backends import Backend
from regen_dataset.inpaint.prompts import SYSTEM, rated_attributes
from regen_dataset.inpaint.runner import LLMRequest

ENSEMBLE = 7
HIGH_SCORE = 6  # the REGEN paper's Figure 4 counts scores of 6 and 7 as high


def rating_requests(
    prompt: str, ensemble: int = ENSEMBLE, label: str | None = None
) -> list[LLMRequest]:
    """One request per ensemble run; `sample` keeps their cache entries apart, and lets the
    Runner ask for them together (see `describe_sampling`). `label` names the user in reports."""
    return [
        LLMRequest(
            prompt,
            system=SYSTEM,
            temperature=1.0,
            max_output_tokens=256,
            sample=run,
            label=label,
        )
        for run in range(ensemble)
    ]


def describe_sampling(backend: Backend, ensemble: int, batch: bool = False) -> str:
    """How the ensemble's samples were asked for, for the manifest: in one request for several
    candidates where the provider can, else as requests made distinct by a seed (identical
    requests would get identical answers from a caching proxy or a deterministic server)."""
    if ensemble <= 1:
        return "one sample per rated group"
    if batch and backend.supports_batch:
        return f"{ensemble} requests per rated group in batch jobs, each sample with its own seed"
    if backend.max_candidates > 1:
        return (
            f"one request per rated group asking for {ensemble} candidates "
            f"(`{backend.candidates_parameter}`); samples a server did not return, or all of them "
            "where it refused several candidates, were asked one by one with distinct seeds "
            "(usage: candidates_missing, candidates_refused)"
        )
    if backend.supports_seed:
        return f"{ensemble} requests per rated group, each with its own seed"
    return f"{ensemble} requests per rated group, each sampled anew by the model"


def majority_or_floored_mean(scores: list[int]) -> int:
    value, count = Counter(scores).most_common(1)[0]
    return value if count > len(scores) / 2 else math.floor(sum(scores) / len(scores))


def plurality(scores: list[int]) -> int:
    counts = Counter(scores)
    top = max(counts.values())
    tied = [score for score, count in counts.items() if count == top]
    return math.floor(sum(tied) / len(tied))


def aggregate(group: str, runs: list[dict[str, int] | None]) -> dict[str, int] | None:
    """The group's final scores from its ensemble runs (None where a run gave no valid answer)."""
    valid = [run for run in runs if run is not None]
    if not valid:
        return None
    scores = {
        attribute: majority_or_floored_mean([run[attribute] for run in valid])
        for attribute in rated_attributes(group)
    }
    scores["confidence"] = plurality([run["confidence"] for run in valid])
    return scores


def mean_scores(ratings: list[dict[str, int]]) -> dict[str, int] | None:
    """Several items' scores (e.g. a user's critiques) as one, each attribute's mean floored."""
    if not ratings:
        return None
    return {key: math.floor(sum(r[key] for r in ratings) / len(ratings)) for key in ratings[0]}
