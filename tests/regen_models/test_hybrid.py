"""The hybrid system: FLARE's ranking, then narratives about its top item or the true next item;
`regen predict --narrator` feeding `regen eval --first N` (a tiny FLARE and a tiny random Gemma 3)."""

import json
import shutil

import datasets
import pytest

from regen_models.hybrid import HybridSystem
from regen_models.narrator import Narrator, NarratorConfig
from regen_models.prompts import ItemTexts, PromptBudgetError
from tests.conftest import REPO, WordCountEncoder, build_sample_folder
from tests.regen_models.test_narrator import save_adapter
from training import cli
from training.evaluate import run_table

FLARE_TINY = str(REPO / "training" / "recipes" / "flare" / "tiny.yaml")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_sample_folder(tmp_path_factory.mktemp("hybrid") / "regen")


@pytest.fixture(scope="module")
def flare(folder):
    out = folder.parent / "flare-office"
    cli.main(
        ["train", "flare", "--config", FLARE_TINY, "--dataset_name", str(folder),
         "--dataset_config", "office", "--output_dir", str(out)]
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def adapter(tiny_gemma_base, tmp_path_factory):
    out = tmp_path_factory.mktemp("narrator") / "adapter"
    save_adapter(tiny_gemma_base, out)
    return out


class Spy:
    """Wraps a narrator and keeps every prompt it was asked to continue."""

    def __init__(self, narrator: Narrator):
        self.narrator, self.prompts = narrator, []

    def __getattr__(self, name):
        return getattr(self.narrator, name)

    def generate(self, prompts, **kwargs):
        self.prompts += prompts
        return self.narrator.generate(prompts, **kwargs)


def rows(folder, config="office", count=4):
    return datasets.load_dataset(str(folder), config, split="test").select(range(count))


def test_narrates_the_top_item_or_the_target(folder, flare, adapter):
    hybrid = HybridSystem.from_pretrained(flare, adapter)
    spy = hybrid.narrator = Spy(hybrid.narrator)
    test = rows(folder)
    outputs = hybrid(test, kinds=["purchase_reason"], top_k=5)
    assert [o.user_id for o in outputs] == test["user_id"]
    for output, prompt in zip(outputs, spy.prompts, strict=True):
        assert len(output.item_ids) == 5 and output.narrated_item == output.item_ids[0]
        title = ItemTexts.from_vocabulary(hybrid.ranker.vocabulary, output.item_ids[0]).title
        assert f"Title: {title}" in prompt.split("Next item:")[1]
        assert set(output.narratives) == {"purchase_reason"}

    spy.prompts.clear()
    upper = hybrid(test, kinds=["user_profile"], narrate_target=True)
    for output, row, prompt in zip(upper, test, spy.prompts, strict=True):
        assert output.narrated_item == row["target"]["item_id"]
        assert f"Title: {row['target']['title']}" in prompt.split("Next item:")[1]
        assert row["target"]["review_text"] not in prompt  # the held-out review never enters
    assert hybrid.prompt_stats.prompts == 8


def test_flare_ranks_in_batches_of_the_ranking_batch_size(folder, flare, adapter):
    hybrid = HybridSystem.from_pretrained(flare, adapter)
    batches, recommend = [], hybrid.ranker.model.recommend

    def recording(top_k=10, **inputs):
        scores, top = recommend(top_k=top_k, **inputs)
        batches.append(len(scores))
        return scores, top

    hybrid.ranker.model.recommend = recording
    test = rows(folder, count=5)
    hybrid(test, kinds=["user_profile"], batch_size=4, ranking_batch_size=2, max_new_tokens=1)
    assert batches == [2, 2, 1]
    batches.clear()
    hybrid(test, kinds=["user_profile"], batch_size=1, max_new_tokens=1)
    assert batches == [5]  # FLARE's own batch by default, whatever the narrator's


def test_without_critiques_no_critique_reaches_ranking_or_prompt(folder, flare, adapter):
    hybrid = HybridSystem.from_pretrained(flare, adapter)
    spy = hybrid.narrator = Spy(hybrid.narrator)
    test = [row for row in rows(folder, count=300) if row["critique"]][:3]
    assert test, "the sample has critiqued test rows"
    hybrid(test, kinds=["purchase_reason"], with_critiques=False)
    for row, prompt in zip(test, spy.prompts, strict=True):
        assert row["critique"] not in prompt and "Critique" not in prompt
    with_them = hybrid.ranker.rank(test, top_k=93)
    without = hybrid.ranker.rank([dict(r, critique=None) for r in test], top_k=93)
    assert [r.scores for r in with_them] != [r.scores for r in without]

    # By default the prompts follow what the narrator was trained with.
    assert hybrid.narrator.with_critiques
    spy.prompts.clear()
    hybrid(test, kinds=["purchase_reason"])
    assert all(row["critique"] in prompt for row, prompt in zip(test, spy.prompts, strict=True))
    config = NarratorConfig.load(adapter)
    config.with_critiques = False
    narrator = Spy(Narrator(spy.narrator.model, spy.narrator.tokenizer, config))
    outputs = HybridSystem(hybrid.ranker, narrator)(test, kinds=["purchase_reason"], top_k=93)
    assert all("Critique" not in prompt for prompt in narrator.prompts)
    assert [o.scores for o in outputs] == [r.scores for r in with_them]  # FLARE still reads them


def test_bad_pairs_and_kinds_are_clear_errors(folder, flare, adapter, tmp_path, capsys):
    hybrid = HybridSystem.from_pretrained(flare, adapter, device="cpu")
    with pytest.raises(ValueError, match="trained for .* not for 'user_summary_long'"):
        hybrid(rows(folder), kinds=["user_summary_long"])
    with pytest.raises(ValueError, match="trained for .* not for 'user_summary_long'"):
        hybrid(rows(folder), kinds="user_summary_long")  # one kind, not its letters
    with pytest.raises(ValueError, match="a single row dict"):
        hybrid(rows(folder)[0])
    clothing = NarratorConfig.load(adapter)
    clothing.dataset_config = "clothing"
    narrator = Narrator(hybrid.narrator.model, hybrid.narrator.tokenizer, clothing)
    with pytest.raises(ValueError, match="ranks the office catalog, the narrator was trained on"):
        HybridSystem(hybrid.ranker, narrator)
    with pytest.raises(ValueError, match="user u9 has an empty history"):
        hybrid([{"user_id": "u9", "history": [], "critique": None}])
    with pytest.raises(ValueError, match="a list of prompt texts, got one string"):
        hybrid.narrator.generate("A shopper's purchases", kind="purchase_reason")
    small = NarratorConfig.load(adapter)
    small.max_prompt_tokens = 8  # a budget the adapter was trained with: too small here
    narrator = Narrator(hybrid.narrator.model, hybrid.narrator.tokenizer, small)
    with pytest.raises(PromptBudgetError, match="train it with a larger --max_prompt_tokens"):
        HybridSystem(hybrid.ranker, narrator)(rows(folder), kinds=["purchase_reason"])
    with pytest.raises(SystemExit):
        cli.main(
            ["predict", "--model", str(adapter), "--dataset_name", str(folder),
             "--out", str(tmp_path / "out.jsonl")]
        )  # fmt: skip
    assert "is a narrator adapter: pass it as --narrator" in capsys.readouterr().err


def test_predict_with_a_narrator_feeds_eval_on_the_first_users(
    folder, flare, adapter, tmp_path, capsys
):
    runs = []
    for config in ("office", "office_no_critique"):
        out = tmp_path / f"hybrid-{config}.jsonl"
        cli.main(
            ["predict", "--model", str(flare), "--narrator", str(adapter), "--dataset_name",
             str(folder), "--dataset_config", config, "--limit", "6", "--kinds",
             "purchase_reason", "--out", str(out)]
        )  # fmt: skip
        lines = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(lines) == 6 and set(lines[0]["narratives"]) == {"purchase_reason"}
        bars = capsys.readouterr().err
        assert "FLARE ranks: 100%" in bars and "narrator writes purchase_reason: 100%" in bars
        runs.append(("hybrid", config, str(out)))
    table = run_table(folder, "test", runs, str(tmp_path / "eval"), WordCountEncoder(), first=6)
    assert "Scored on the first 6 of 300 test users" in table
    assert "Purchase reason: hybrid" in table
    with pytest.raises(SystemExit):  # a whole-split table refuses a file of 6 users
        cli.main(
            ["eval", "--dataset", str(folder), "--run", *runs[0], "--out", str(tmp_path / "e")]
        )


def test_predict_caps_the_narratives_at_max_new_tokens(
    folder, flare, adapter, tmp_path, monkeypatch
):
    limits, generate = [], Narrator.generate

    def recording(self, prompts, **kwargs):
        limits.append(kwargs.get("max_new_tokens"))
        return generate(self, prompts, **kwargs)

    monkeypatch.setattr(Narrator, "generate", recording)
    for cap in ([], ["--max_new_tokens", "2"]):
        cli.main(
            ["predict", "--model", str(flare), "--narrator", str(adapter), "--dataset_name",
             str(folder), "--limit", "3", "--kinds", "purchase_reason", *cap,
             "--out", str(tmp_path / "out.jsonl")]
        )  # fmt: skip
    recorded = NarratorConfig.load(adapter).max_new_tokens["purchase_reason"]
    assert limits == [None, 2] and recorded != 2


def test_predict_keeps_critiques_from_a_narrator_trained_without_them(
    folder, flare, adapter, tmp_path, monkeypatch, capsys
):
    no_critiques = tmp_path / "adapter-no-critiques"
    shutil.copytree(adapter, no_critiques)
    config = NarratorConfig.load(no_critiques)
    config.with_critiques = False
    config.save(no_critiques)
    prompts, generate = [], Narrator.generate

    def recording(self, batch, **kwargs):
        prompts.extend(batch)
        return generate(self, batch, **kwargs)

    monkeypatch.setattr(Narrator, "generate", recording)
    assert any(row["critique"] for row in rows(folder, count=20))
    cli.main(
        ["predict", "--model", str(flare), "--narrator", str(no_critiques), "--dataset_name",
         str(folder), "--dataset_config", "office", "--limit", "20", "--kinds",
         "purchase_reason", "--out", str(tmp_path / "out.jsonl")]
    )  # fmt: skip
    assert len(prompts) == 20
    assert not any("Critique" in prompt for prompt in prompts)
    out = capsys.readouterr().out
    assert "note: the narrator was trained without critiques" in out
    assert "note: the FLARE checkpoint" not in out
