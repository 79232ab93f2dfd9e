"""Inpainting: user sequences in, REGEN release lines out, written by an LLM.

For each user (a release-format dict with `purchase_history`, e.g. from `amazon.read_amazon`):
1. critiques: every adjacent pair whose category paths agree on `SIMILAR_LEVELS` levels gets
   several candidate critiques from the LLM (the first item as the current recommendation, the
   second as the goal), and one is picked at random with a seed; other pairs get the sentinel;
2. narratives: purchase reason and explanation, brief and long summaries and profile from the
   whole history, and the product endorsement with the last review withheld;
3. auto-rater scores for each group (see `rater.py`), under the release's `metadata` keys.
Calls go through `run(requests, validate)`: a `Runner`'s `run`, or its `run_batch` for the
providers' batch APIs. Users are processed in chunks, so a file of any size streams through.
Every answer that stays invalid after the runner's repair attempt is counted in the report, never
silently dropped.
"""

from __future__ import annotations

import copy
import datetime
import itertools
import json
import os
import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from regen_dataset.files import atomic_open, remove_dead_partials, write_json
from regen_dataset.inpaint import prompts, rater
from regen_dataset.inpaint.runner import LLMRequest
from regen_dataset.release import CRITIQUE_KEYS, ENTRY_NARRATIVE_KEYS, is_critique
from regen_dataset.schema import CRITIQUE_SENTINEL, RATER_ATTRIBUTES, similar_adjacent

RunFn = Callable[[Sequence[LLMRequest], Callable[[str], Any]], list]


@dataclass
class InpaintConfig:
    seed: int = 0
    critique_options: int = 5  # candidates asked per pair; one is kept at random
    ensemble: int = rater.ENSEMBLE
    critiques: bool = True
    narratives: bool = True
    rate: bool = True
    chunk_users: int = 256


@dataclass
class InpaintReport:
    users: int = 0
    adjacent_pairs: int = 0
    similar_pairs: int = 0
    critiques: int = 0
    invalid: Counter = field(default_factory=Counter)  # kind -> answers still invalid

    def to_dict(self) -> dict:
        return {**asdict(self), "invalid": dict(self.invalid)}

    def summary(self) -> str:
        share = self.critiques / max(self.adjacent_pairs, 1)
        lines = [
            f"{self.users:,} users; {self.similar_pairs:,} of {self.adjacent_pairs:,} adjacent "
            f"pairs similar enough for a critique; {self.critiques:,} critiques written "
            f"({share:.1%} of pairs)"
        ]
        if self.invalid:
            lines.append(
                "answers still invalid after repair: "
                + ", ".join(f"{kind} {count:,}" for kind, count in sorted(self.invalid.items()))
            )
        return "\n".join(lines)


def category_levels(item: dict) -> list[str]:
    """A release-format item's category path (`"Root - Sub - Leaf"`), root first."""
    return [level.strip() for level in (item.get("category") or "").split(" - ") if level.strip()]


def inpaint(
    users: Iterable[dict], run: RunFn, config: InpaintConfig, report: InpaintReport
) -> Iterator[dict]:
    """Yield each user with critiques, narratives and ratings added (inputs are not modified)."""
    iterator = iter(users)
    while chunk := [copy.deepcopy(user) for user in itertools.islice(iterator, config.chunk_users)]:
        if config.critiques:
            add_critiques(chunk, run, config, report)
        if config.narratives:
            add_narratives(chunk, run, report)
        if config.rate:
            rate(chunk, run, config.ensemble, report)
        report.users += len(chunk)
        yield from chunk


def add_critiques(users: list[dict], run: RunFn, config: InpaintConfig, report) -> None:
    pairs = []
    for index, user in enumerate(users):
        history = user["purchase_history"]
        history[0]["critique"] = CRITIQUE_SENTINEL
        for position in range(1, len(history)):
            history[position]["critique"] = CRITIQUE_SENTINEL
            report.adjacent_pairs += 1
            previous, current = history[position - 1]["item"], history[position]["item"]
            if similar_adjacent(category_levels(previous), category_levels(current)):
                pairs.append((index, position))
    report.similar_pairs += len(pairs)
    requests = []
    for index, position in pairs:
        history = users[index]["purchase_history"]
        prompt = prompts.critique_prompt(
            history[position - 1]["item"], history[position]["item"], config.critique_options
        )
        requests.append(
            LLMRequest(
                prompt,
                system=prompts.SYSTEM,
                max_output_tokens=512,
                label=users[index].get("reviewer_id"),
            )
        )
    for (index, position), options in zip(
        pairs, run(requests, prompts.parse_critiques), strict=True
    ):
        if options is None:
            report.invalid["critique"] += 1
            continue
        user = users[index]
        pick = random.Random(f"{config.seed}:{user['reviewer_id']}:{position}")
        user["purchase_history"][position]["critique"] = pick.choice(options)
        report.critiques += 1


def add_narratives(users: list[dict], run: RunFn, report) -> None:
    def request(prompt: str, user: dict) -> LLMRequest:
        return LLMRequest(
            prompt,
            system=prompts.SYSTEM,
            temperature=0.7,
            max_output_tokens=1536,
            label=user.get("reviewer_id"),
        )

    narratives = run(
        [request(prompts.narratives_prompt(u["purchase_history"]), u) for u in users],
        prompts.parse_narratives,
    )
    endorsements = run(
        [request(prompts.endorsement_prompt(u["purchase_history"]), u) for u in users],
        prompts.parse_endorsement,
    )
    for user, written, endorsement in zip(users, narratives, endorsements, strict=True):
        last = user.setdefault("last_purchase", {})
        about = user.setdefault("user", {})
        if written is None:
            report.invalid["narratives"] += 1
        else:
            last["reason"] = written["purchase_reason"]
            last["explanation"] = written["purchase_reason_explanation"]
            about["brief_summary"] = written["user_summary_brief"]
            about["long_summary"] = written["user_summary_long"]
            about["profile"] = written["user_profile"]
        if endorsement is None:
            report.invalid["endorsement"] += 1
        else:
            last["endorsement"] = endorsement


def _first_present(mapping: dict, keys: Iterable[str]):
    """The value of the first of `keys` that `mapping` holds and is not null, as the release
    reader picks among a field's key names."""
    return next((mapping[key] for key in keys if mapping.get(key) is not None), None)


def _critique(entry: dict):
    return _first_present(entry, CRITIQUE_KEYS)


def _last_purchase(user: dict) -> dict:
    """The last purchase's narratives by their `last_purchase` names (reason, explanation,
    endorsement), read where the release reader reads them: `last_purchase` first, then the last
    history entry, under either of each narrative's key names."""
    last = user.get("last_purchase") or {}
    history = user["purchase_history"]
    entry = history[-1] if history else {}
    narratives = {}
    for keys in ENTRY_NARRATIVE_KEYS.values():
        value = _first_present(last, keys)
        narratives[keys[0]] = value if value is not None else _first_present(entry, keys)
    return narratives


def _rating_jobs(user: dict) -> Iterator[tuple[str, int | None, str]]:
    """(group, critique position or None, prompt) for every rateable text of a user."""
    history = user["purchase_history"]
    last, about = _last_purchase(user), user.get("user") or {}
    if last.get("reason") or last.get("explanation"):
        yield (
            "last_purchase",
            None,
            prompts.rater_prompt(
                "last_purchase",
                history,
                purchase_reason=last.get("reason"),
                purchase_reason_explanation=last.get("explanation"),
            ),
        )
    if any(about.get(key) for key in ("brief_summary", "long_summary", "profile")):
        yield (
            "user",
            None,
            prompts.rater_prompt(
                "user",
                history,
                user_summary_brief=about.get("brief_summary"),
                user_summary_long=about.get("long_summary"),
                user_profile=about.get("profile"),
            ),
        )
    if last.get("endorsement"):
        yield (
            "endorsement",
            None,
            prompts.rater_prompt("endorsement", history, product_endorsement=last["endorsement"]),
        )
    for position in range(1, len(history)):
        critique = _critique(history[position])
        if is_critique(critique):
            current, goal = history[position - 1]["item"], history[position]["item"]
            prompt = prompts.critique_rater_prompt(history[: position - 1], current, goal, critique)
            yield "critique", position, prompt


def rate(users: list[dict], run: RunFn, ensemble: int, report) -> None:
    """Add `metadata` scores to each user: one ensemble of ratings per rateable group, stored
    under the release's rater groups (`schema.RATER_ATTRIBUTES`) that its prompt scores. A user's
    critiques are rated one by one and stored as their mean.

    Every group this step rates is cleared first: a group that has nothing to rate, or whose
    ratings all stay invalid (counted in `report.invalid`), ends null rather than keeping the
    scores of an earlier rater while the manifest credits this one."""
    for user in users:
        metadata = user.get("metadata")
        if not isinstance(metadata, dict):
            metadata = user["metadata"] = {}
        for stored_groups in prompts.RATING_PROMPT_GROUPS.values():
            for stored in stored_groups:
                metadata[stored] = None
    jobs = [(index, *job) for index, user in enumerate(users) for job in _rating_jobs(user)]
    ratings: dict[tuple[int, str], list[dict[str, int]]] = {}
    for group in prompts.RATING_PROMPT_GROUPS:
        group_jobs = [job for job in jobs if job[1] == group]
        requests = [
            r
            for index, _, _, prompt in group_jobs
            for r in rater.rating_requests(prompt, ensemble, users[index].get("reviewer_id"))
        ]
        runs = run(requests, prompts.score_parser(group))
        for number, (index, _, _, _) in enumerate(group_jobs):
            scores = rater.aggregate(group, runs[number * ensemble : (number + 1) * ensemble])
            if scores is None:
                report.invalid[f"rating {group}"] += 1
                continue
            ratings.setdefault((index, group), []).append(scores)
    for (index, group), group_ratings in ratings.items():
        scores = rater.mean_scores(group_ratings)
        metadata = users[index]["metadata"]
        for stored in prompts.RATING_PROMPT_GROUPS[group]:
            metadata[stored] = {
                attribute: scores[attribute] for attribute in RATER_ATTRIBUTES[stored]
            }


def bias_check(
    users: list[dict],
    run: RunFn,
    *,
    samples: int = 200,
    ensemble: int = rater.ENSEMBLE,
    seed: int = 0,
) -> dict:
    """The evaluation-bias check of "REGEN: A Dataset and Benchmarks with Natural Language
    Critiques and Narratives" (https://arxiv.org/abs/2503.11924, section 3.3.3): do critique
    ratings drop on mismatched (history, critique, item) triples?

    For sampled real critiques, rate (1) the real triple, (2) the critique with the history (and
    current item) of another user, and (3) the critique with both the history and the next item of
    another user. Returns the share of high scores (6 or 7) per attribute and condition.
    """
    rng = random.Random(seed)
    real = [
        (index, position)
        for index, user in enumerate(users)
        for position in range(1, len(user["purchase_history"]))
        if is_critique(_critique(user["purchase_history"][position]))
    ]
    if len(users) < 2 or not real:
        raise ValueError("the bias check needs at least two users and one real critique")
    chosen = rng.sample(real, min(samples, len(real)))
    conditions: dict[str, list[str]] = {
        "real": [],
        "history_swapped": [],
        "history_and_item_swapped": [],
    }
    for index, position in chosen:
        history = users[index]["purchase_history"]
        critique = _critique(history[position])
        other = users[rng.choice([i for i in range(len(users)) if i != index])]["purchase_history"]
        cut = rng.randrange(1, len(other)) if len(other) > 1 else 1
        swapped_history, swapped_current = other[: cut - 1], other[cut - 1]["item"]
        swapped_goal = other[min(cut, len(other) - 1)]["item"]
        current, goal = history[position - 1]["item"], history[position]["item"]
        conditions["real"].append(
            prompts.critique_rater_prompt(history[: position - 1], current, goal, critique)
        )
        conditions["history_swapped"].append(
            prompts.critique_rater_prompt(swapped_history, swapped_current, goal, critique)
        )
        conditions["history_and_item_swapped"].append(
            prompts.critique_rater_prompt(swapped_history, swapped_current, swapped_goal, critique)
        )
    result: dict = {"samples": len(chosen), "ensemble": ensemble, "high_score": rater.HIGH_SCORE}
    for name, prompt_list in conditions.items():
        requests = [r for prompt in prompt_list for r in rater.rating_requests(prompt, ensemble)]
        runs = run(requests, prompts.score_parser("critique"))
        scores = [
            rater.aggregate("critique", runs[n * ensemble : (n + 1) * ensemble])
            for n in range(len(prompt_list))
        ]
        valid = [s for s in scores if s is not None]
        result[name] = {
            attribute: sum(s[attribute] >= rater.HIGH_SCORE for s in valid) / max(len(valid), 1)
            for attribute in prompts.rated_attributes("critique")
        }
        result[name]["rated"] = len(valid)
    return result


def write_release_lines(
    path: str | os.PathLike, users: Iterable[dict], describe: Callable[[], dict]
) -> int:
    """Write users as release JSONL atomically, with `<path>.manifest.json` beside it.

    `describe()` is called once every user is written, so that it can report the whole run. The
    temporary files of an earlier writer that was killed are removed first; a run that fails
    leaves neither file half-written.
    """
    manifest_path = f"{os.fspath(path)}.manifest.json"
    for target in (path, manifest_path):
        remove_dead_partials(target)
    count = 0
    with atomic_open(path) as handle:
        for user in users:
            handle.write(json.dumps(user, ensure_ascii=False) + "\n")
            count += 1
        manifest = {
            **describe(),
            "users": count,
            "prompts": prompts.manifest(),
            "written": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        write_json(manifest_path, manifest)  # before the data appears under its name
    return count
