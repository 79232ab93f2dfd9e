import json

import pytest

from regen_dataset import schema
from regen_dataset.export import build_folder
from regen_dataset.inpaint import prompts, rater
from regen_dataset.inpaint.backends import Backend, Completion
from regen_dataset.inpaint.pipeline import (
    InpaintConfig,
    InpaintReport,
    bias_check,
    category_levels,
    inpaint,
    write_release_lines,
)
from regen_dataset.inpaint.runner import Runner
from regen_dataset.release import ReadReport, read_release
from regen_dataset.schema import CRITIQUE_SENTINEL
from tests.conftest import entry
from tests.regen_dataset.inpaint.scripted import scripted_answer

PENS = "Office Products - Office & School Supplies - Writing - Pens - Gel Pens"
BALLPOINTS = "Office Products - Office & School Supplies - Writing - Pens - Ballpoint Pens"
PAPER = "Office Products - Office & School Supplies - Paper - Notebooks - Spiral"
PRINTERS = "Office Products - Office Electronics - Printers - Laser - Mono"


class ScriptedBackend(Backend):
    """Answers each prompt of the pipeline with a valid JSON object derived from the prompt."""

    name, model = "scripted", "scripted-1"

    def __init__(self, broken_users=()):
        self.calls = []
        self.broken_users = broken_users

    async def complete(
        self, prompt, *, system=None, temperature=1.0, max_output_tokens=1024, json_output=False
    ):
        self.calls.append(prompt)
        return Completion(self.answer(prompt), input_tokens=len(prompt) // 4, output_tokens=20)

    def answer(self, prompt: str) -> str:
        if any(user in prompt for user in self.broken_users):
            return "I cannot answer in JSON today."
        return scripted_answer(prompt)


def _user(user_id: str) -> dict:
    history = [
        entry(f"{user_id}-0", 1_400_000_001, category=PENS),
        # four levels shared with the previous one
        entry(f"{user_id}-1", 1_400_000_002, category=BALLPOINTS),
        entry(f"{user_id}-2", 1_400_000_003, category=PAPER),
        entry(f"{user_id}-3", 1_400_000_004, category=PRINTERS),
    ]
    for item in history:
        item["review"]["unix_time"] = item["review"].pop("timestamp")
    return {"reviewer_id": user_id, "purchase_history": history}


def _runner(backend, tmp_path) -> Runner:
    return Runner(
        backend, tmp_path / "cache.sqlite", concurrency=4, base_delay=0.001, progress=False
    )


def test_inpaint_writes_release_lines_that_the_reader_takes(tmp_path):
    backend = ScriptedBackend()
    runner = _runner(backend, tmp_path)
    report = InpaintReport()
    users = [_user(f"U{i}") for i in range(5)]
    out = tmp_path / "office.jsonl"
    config = InpaintConfig(seed=3, ensemble=3, chunk_users=2)
    count = write_release_lines(
        out, inpaint(users, runner.run, config, report), lambda: {"report": report.to_dict()}
    )
    assert count == 5 and "critique" not in users[0]["purchase_history"][0]  # inputs untouched
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    history = lines[0]["purchase_history"]
    assert [e["critique"] for e in history][0] == CRITIQUE_SENTINEL
    assert history[1]["critique"] in {"I want the Item U0-1 instead.", "Show me Item U0-1."}
    assert history[2]["critique"] == history[3]["critique"] == CRITIQUE_SENTINEL
    assert lines[0]["last_purchase"] == {
        "reason": "They needed Item U0-3.",
        "explanation": "Their history shows it.",
        "endorsement": "You will love Item U0-3.",
    }
    assert lines[0]["user"]["profile"] == "Organised office worker"
    metadata = lines[0]["metadata"]
    assert metadata["last_purchase"] == {
        "veracity": 7,
        "grounding": 6,
        "foresight": 5,
        "clarity": 6,
        "personalization": 4,
        "confidence": 6,
    }
    assert (
        metadata["example"] == {"richness": 3, "confidence": 5}
        and "richness" not in metadata["user"]
    )
    assert metadata["critique"] == {"quality": 6, "specificity": 5, "relevance": 7, "confidence": 6}
    assert all(set(scores) == set(schema.RATER_ATTRIBUTES[g]) for g, scores in metadata.items())
    assert (
        report.users == 5
        and report.adjacent_pairs == 15
        and report.similar_pairs == 5
        and report.critiques == 5
    )
    # The endorsement prompt never shows the last review.
    endorsement_prompts = [
        p for p in backend.calls if "RECOMMENDED ITEM" in p and p.startswith("Below")
    ]
    assert endorsement_prompts and all("Review of U0-3" not in p for p in endorsement_prompts)
    manifest = json.loads((tmp_path / "office.jsonl.manifest.json").read_text())
    assert manifest["prompts"]["version"] == prompts.PROMPT_VERSION and manifest["users"] == 5
    read = ReadReport()
    batches = list(read_release(out, report=read))
    assert read.users == 5 and read.found["critique"] == 5 and read.found["metadata.critique"] == 5
    assert read.found["last_purchase.endorsement"] == 5 and not read.unknown_fields
    built = build_folder({"office": [str(out)]}, tmp_path / "regen", progress=False)
    assert built.rows["office"]["test"] == 5 and batches


def test_a_rerun_with_the_same_cache_pays_nothing(tmp_path):
    users = [_user(f"U{i}") for i in range(3)]
    config = InpaintConfig(ensemble=2)
    first = list(inpaint(users, _runner(ScriptedBackend(), tmp_path).run, config, InpaintReport()))
    backend = ScriptedBackend()
    runner = _runner(backend, tmp_path)
    again = list(inpaint(users, runner.run, config, InpaintReport()))
    assert (
        again == first
        and backend.calls == []
        and runner.usage.calls == 0
        and runner.usage.cached > 0
    )


def test_invalid_answers_are_counted_not_dropped(tmp_path):
    users = [_user("U0"), _user("BROKEN1")]
    report = InpaintReport()
    runner = _runner(ScriptedBackend(broken_users=("BROKEN1",)), tmp_path)
    out = list(inpaint(users, runner.run, InpaintConfig(ensemble=2), report))
    assert [u["reviewer_id"] for u in out] == ["U0", "BROKEN1"]
    assert report.invalid["critique"] == 1 and report.invalid["narratives"] == 1
    assert report.invalid["endorsement"] == 1
    assert "answers still invalid after repair" in report.summary()
    assert out[1]["purchase_history"][1]["critique"] == CRITIQUE_SENTINEL
    assert set(out[1]["metadata"]) == set(schema.RATER_ATTRIBUTES)  # every group rated ...
    assert not any(out[1]["metadata"].values()) and runner.usage.invalid == 3  # ... ends null


def test_category_levels_of_release_items():
    assert category_levels({"category": " A - B -  - C "}) == ["A", "B", "C"]
    assert category_levels({"category": None}) == [] == category_levels({})


def test_critiques_follow_the_schema_similar_adjacent_rule(tmp_path, monkeypatch):
    config = InpaintConfig(narratives=False, rate=False)
    report = InpaintReport()
    list(inpaint([_user("U0")], _runner(ScriptedBackend(), tmp_path).run, config, report))
    assert (report.similar_pairs, report.critiques) == (1, 1)  # pens -> ballpoints only
    monkeypatch.setattr(schema, "SIMILAR_LEVELS", 2)  # one definition: the pipeline follows it
    report = InpaintReport()
    list(inpaint([_user("U1")], _runner(ScriptedBackend(), tmp_path).run, config, report))
    assert report.similar_pairs == 2  # pens -> ballpoints -> paper share two levels


def test_rating_prompts_ask_for_the_schema_attributes(monkeypatch):
    for group, stored in prompts.RATING_PROMPT_GROUPS.items():
        asked = set(prompts.rated_attributes(group)) | {"confidence"}
        assert asked == {a for name in stored for a in schema.RATER_ATTRIBUTES[name]}
        task = prompts.RATER_TASKS[group]
        assert all(f"- {a}:" in task for a in prompts.rated_attributes(group))
        assert f'"{prompts.rated_attributes(group)[0]}": n' in prompts.answer_format(group)
    # An attribute added to the schema is asked for, parsed and stored without another edit.
    extended = {**schema.RATER_ATTRIBUTES, "example": ("richness", "novelty", "confidence")}
    monkeypatch.setattr(schema, "RATER_ATTRIBUTES", extended)
    assert prompts.rated_attributes("user")[-2:] == ("richness", "novelty")
    texts = {"user_summary_brief": "b", "user_summary_long": "l", "user_profile": "p"}
    prompt = prompts.rater_prompt("user", _user("U0")["purchase_history"], **texts)
    assert '"richness": n, "novelty": n, "confidence": n' in prompt
    with pytest.raises(ValueError, match="novelty"):
        prompts.score_parser("user")(scripted_answer("Rate them together"))


def test_ensemble_aggregation():
    assert rater.majority_or_floored_mean([5, 5, 5, 5, 2, 2, 2]) == 5  # 4 of 7 agree
    assert rater.majority_or_floored_mean([5, 5, 5, 2, 2, 7, 7]) == 4  # no majority: floor(33/7)
    assert rater.plurality([6, 6, 4, 4, 7]) == 5  # tie between 6 and 4
    runs = [
        {"quality": q, "specificity": 5, "relevance": 6, "confidence": c}
        for q, c in [(7, 6), (7, 6), (7, 5), (3, 5), (2, 6), (7, 4), (1, 4)]
    ]
    scores = rater.aggregate("critique", runs + [None])
    assert scores == {"quality": 7, "specificity": 5, "relevance": 6, "confidence": 6}
    assert rater.aggregate("critique", [None, None]) is None


def test_bias_check(tmp_path):
    users = [_user(f"U{i}") for i in range(6)]
    rated = list(
        inpaint(
            users,
            _runner(ScriptedBackend(), tmp_path).run,
            InpaintConfig(rate=False),
            InpaintReport(),
        )
    )
    result = bias_check(rated, _runner(ScriptedBackend(), tmp_path).run, samples=4, ensemble=3)
    assert result["samples"] == 4
    for condition in ("real", "history_swapped", "history_and_item_swapped"):
        assert result[condition]["rated"] == 4 and result[condition]["quality"] == 1.0
    with pytest.raises(ValueError, match="at least two users"):
        bias_check(rated[:1], _runner(ScriptedBackend(), tmp_path).run)


def test_foresight_scale_runs_as_in_the_papers():
    # The papers: a higher foresight score means more of the purchase reason came from the
    # post-purchase review of the last item (scores 1-4 mean reliance on past history).
    task = prompts.RATER_TASKS["last_purchase"]
    line = " ".join(task.split("- foresight:", 1)[1].split("- clarity:", 1)[0].split())
    assert "(7 = almost all of it, 1 = none of it)" in line
    assert prompts.PROMPT_VERSION == "regen-inpaint-3"
    assert prompts.manifest()["version"] == "regen-inpaint-3"


def test_rescoring_clears_the_groups_it_rates(tmp_path):
    class RaterFails(ScriptedBackend):
        def answer(self, prompt):
            return "not json" if "Rate it:" in prompt else scripted_answer(prompt)

    user = _user("U0")
    user["last_purchase"] = {"reason": "r", "explanation": "e", "endorsement": "You will love it."}
    user["user"] = {"brief_summary": "b", "long_summary": "l", "profile": "p"}
    old = {"veracity": 1, "personalization": 1, "persuasiveness": 1, "confidence": 1}
    user["metadata"] = {
        "endorsement": old,
        "critique": {"quality": 2, "specificity": 2, "relevance": 2, "confidence": 2},
    }
    report = InpaintReport()
    config = InpaintConfig(critiques=False, narratives=False, ensemble=2)
    (out,) = inpaint([user], _runner(RaterFails(), tmp_path).run, config, report)
    assert out["metadata"]["endorsement"] is None  # the new rater failed: no old scores kept
    assert report.invalid["rating endorsement"] == 1
    assert out["metadata"]["critique"] is None  # nothing left to rate: no critique in history
    assert out["metadata"]["last_purchase"]["foresight"] == 5  # from the new answers
    assert out["metadata"]["example"] == {"richness": 3, "confidence": 5}


def test_rating_and_the_bias_check_read_every_key_name_the_release_reader_reads(tmp_path):
    # The release reader takes `user_critique` for `critique`, `purchase_reason` (and the other
    # long names) for the narratives, and narratives on the last history entry: so do they.
    users = []
    for number in range(2):
        user = _user(f"U{number}")
        history = user["purchase_history"]
        history[1]["user_critique"] = "Do you have these with black ink?"
        history[-1]["purchase_reason"] = "Needed a printer."
        user["last_purchase"] = {"product_endorsement": "You will love this printer."}
        users.append(user)
    backend = ScriptedBackend()
    config = InpaintConfig(critiques=False, narratives=False, ensemble=2)
    report = InpaintReport()
    out = list(inpaint(users, _runner(backend, tmp_path).run, config, report))
    assert not report.invalid
    for user in out:
        metadata = user["metadata"]
        assert metadata["last_purchase"]["foresight"] == 5
        assert metadata["endorsement"] is not None and metadata["critique"] is not None
    assert any("PURCHASE REASON: Needed a printer." in p for p in backend.calls)
    assert any("CRITIQUE: Do you have these with black ink?" in p for p in backend.calls)
    result = bias_check(out, _runner(ScriptedBackend(), tmp_path).run, samples=2, ensemble=2)
    assert result["samples"] == 2
