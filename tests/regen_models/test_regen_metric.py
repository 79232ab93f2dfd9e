import evaluate
import pytest

from regen_models import metrics
from tests.conftest import REPO, WordCountEncoder

MODULE = str(REPO / "regen_models" / "regen_metric")


def test_text_config_matches_the_harness():
    predictions = ["A sturdy stapler for your desk.", "Navy running shoes that fit well.", ""]
    references = [
        "This stapler is a sturdy pick.",
        "Running shoes in navy, true to size.",
        "Any text.",
    ]
    module = evaluate.load(MODULE, "text")
    encoder = WordCountEncoder()
    result = module.compute(predictions=predictions, references=references, encoder=encoder)
    assert result == pytest.approx(
        metrics.text_metrics(predictions, references, WordCountEncoder())
    )
    assert set(result) == {"BLEU", "ROUGE", "SemSim"}


def test_ranking_config():
    module = evaluate.load(MODULE, "ranking")
    result = module.compute(
        predictions=[["B1", "B2", "B3"], ["B4", "B5", "B6"]], references=["B2", "B9"], ks=[1, 3]
    )
    assert result == pytest.approx(
        {
            "Recall@1": 0,
            "HitRate@1": 0,
            "NDCG@1": 0,
            "Recall@3": 0.5,
            "HitRate@3": 0.5,
            "NDCG@3": 0.5 * 0.6309297535714575,
            "MRR": 0.25,
        }
    )


def test_unknown_config():
    with pytest.raises(ValueError, match="config must be one of"):
        evaluate.load(MODULE, "bleu")
