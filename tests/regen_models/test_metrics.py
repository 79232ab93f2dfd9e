import math

import numpy as np
import pytest
import torch
from sklearn.metrics import label_ranking_average_precision_score, ndcg_score, top_k_accuracy_score

from regen_models import metrics
from tests.conftest import WordCountEncoder


def test_ranks_by_hand_with_ties_and_unknown_targets():
    scores = torch.tensor(
        [
            [0.1, 0.9, 0.5, 0.3],  # target 2 -> rank 2
            [0.5, 0.5, 0.1, 0.5],  # target 0 ties with two others -> rank 3 (ties count against)
            [1.0, 1.0, 1.0, 1.0],  # a constant scorer gets no credit -> rank 4
            [0.2, float("nan"), 0.1, 0.0],  # a NaN outranks the target, as topk has it -> 2
            [0.3, 0.2, 0.1, 0.0],  # target outside the catalog -> a miss
        ]
    )
    ranks = metrics.target_ranks(scores, torch.tensor([2, 0, 3, 0, -1]))
    assert ranks.tolist() == [2.0, 3.0, 4.0, 2.0, math.inf]
    assert torch.topk(scores[3], 1).indices.item() == 1  # what a prediction file would rank first
    with pytest.raises(ValueError, match="outside a catalog of 4 items"):
        metrics.target_ranks(scores, torch.tensor([0, 0, 0, 0, 4]))


def test_metrics_by_hand():
    out = metrics.ranking_metrics([1, 2, 11, math.inf])
    assert out["Recall@10"] == out["HitRate@10"] == 0.5
    assert out["NDCG@10"] == pytest.approx((1 + 1 / math.log2(3)) / 4)
    assert out["MRR@10"] == pytest.approx((1 + 1 / 2) / 4)  # rank 11 is beyond the cutoff
    assert metrics.ranking_metrics([3], ks=(1, 5)) == pytest.approx(
        {
            "Recall@1": 0,
            "HitRate@1": 0,
            "NDCG@1": 0,
            "MRR@1": 0,
            "Recall@5": 1,
            "HitRate@5": 1,
            "NDCG@5": 0.5,
            "MRR@5": 1 / 3,
        }
    )
    with pytest.raises(ValueError, match="no users"):
        metrics.ranking_metrics([])
    with pytest.raises(ValueError, match="positive integers"):
        metrics.ranking_metrics([1], ks=(0,))
    # 0-based ranks (an argsort's) would give NDCG and MRR of inf.
    with pytest.raises(ValueError, match="1-based .* user 0 has rank 0"):
        metrics.ranking_metrics([0, 1])
    with pytest.raises(ValueError, match="user 1 has rank -1"):
        metrics.ranking_metrics([1, -1])
    assert metrics.ranking_metrics([3], ks=5) == metrics.ranking_metrics([3], ks=(5,))


def test_mrr_does_not_depend_on_the_length_of_the_lists():
    """The same top 10 scores the same MRR@10 whether the list stops at 10 or goes on to 40:
    without the cutoff, the targets at ranks 11-40 added to the MRR of the longer lists."""
    generator = torch.Generator().manual_seed(2)
    scores = torch.rand(200, 60, generator=generator)
    targets = torch.randint(0, 60, (200,), generator=generator)
    ranked = scores.argsort(dim=1, descending=True)
    names = [[f"I{i}" for i in row] for row in ranked.tolist()]
    wanted = [f"I{t}" for t in targets.tolist()]
    short = metrics.ranking_metrics(metrics.ranks_from_lists([r[:10] for r in names], wanted))
    long = metrics.ranking_metrics(metrics.ranks_from_lists([r[:40] for r in names], wanted))
    assert short == long
    assert metrics.RANKING_METRICS == ("Recall@10", "NDCG@10", "MRR@10")


def test_agrees_with_scikit_learn():
    generator = torch.Generator().manual_seed(0)
    scores = torch.rand(64, 500, generator=generator)  # continuous: no ties
    targets = torch.randint(0, 500, (64,), generator=generator)
    ours = metrics.ranking_metrics(metrics.target_ranks(scores, targets))
    relevant = np.zeros((64, 500))
    relevant[np.arange(64), targets.numpy()] = 1
    assert ours["NDCG@10"] == pytest.approx(ndcg_score(relevant, scores.numpy(), k=10))
    assert ours["HitRate@10"] == pytest.approx(
        top_k_accuracy_score(targets.numpy(), scores.numpy(), k=10, labels=range(500))
    )
    # With one relevant label, label ranking average precision is the reciprocal rank; MRR@500
    # covers the whole catalog.
    full = metrics.ranking_metrics(metrics.target_ranks(scores, targets), ks=(500,))
    assert full["MRR@500"] == pytest.approx(
        label_ranking_average_precision_score(relevant, scores.numpy())
    )
    reciprocal = 1 / metrics.target_ranks(scores, targets).numpy()
    assert ours["MRR@10"] == pytest.approx(np.where(reciprocal >= 1 / 10, reciprocal, 0).mean())


def test_ranked_lists_agree_with_score_matrices():
    generator = torch.Generator().manual_seed(1)
    scores = torch.rand(32, 300, generator=generator)
    targets = torch.randint(0, 300, (32,), generator=generator)
    items = [f"I{i}" for i in range(300)]
    top = scores.topk(50, dim=1).indices.tolist()
    lists = [[items[i] for i in row] for row in top]
    from_lists = metrics.ranking_metrics(
        metrics.ranks_from_lists(lists, [items[t] for t in targets])
    )
    from_scores = metrics.ranking_metrics(metrics.target_ranks(scores, targets))
    assert from_lists["Recall@10"] == from_scores["Recall@10"]
    assert from_lists["NDCG@10"] == pytest.approx(from_scores["NDCG@10"])
    assert from_lists["MRR@10"] == pytest.approx(from_scores["MRR@10"])
    assert metrics.ranks_from_lists([["A", "B"], ["C", "D"]], ["B", "Z"]).tolist() == [2, math.inf]


def test_bleu_and_rouge_by_hand():
    assert metrics.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(
        100
    )
    assert metrics.bleu(["dog runs fast today"], ["the cat sat on the mat"]) == 0
    assert metrics.bleu([""], ["the cat sat on the mat"]) == 0
    assert metrics.rouge_lsum(["the cat sat"], ["the cat sat on the mat"]) == pytest.approx(
        100 * 2 * 0.5 / 1.5
    )
    # ROUGE-Lsum matches sentence by sentence: the order of sentences does not matter.
    assert metrics.rouge_lsum(
        ["Red pens work. Blue ink dries."], ["Blue ink dries. Red pens work."]
    ) == pytest.approx(100)
    assert metrics.rouge_lsum([""], ["anything at all"]) == 0
    with pytest.raises(ValueError, match="2 predictions for 1 references"):
        metrics.bleu(["a", "b"], ["a"])
    with pytest.raises(ValueError, match=r"predictions\[1\]: expected a string, got None"):
        metrics.semantic_similarity(["a", None], ["a", "b"], WordCountEncoder())


def test_rouge_scores_texts_in_other_scripts():
    # rouge-score alone keeps a-z and 0-9 only: every Chinese or Russian pair scored 0.
    assert metrics.rouge_lsum(["这是一个很好的笔记本"], ["这是一个很好的笔记本"]) == pytest.approx(
        100
    )
    # characters: 8 of the 9 and 10 match in order
    assert metrics.rouge_lsum(["这是一个很好的本子"], ["这是一个很好的笔记本"]) == pytest.approx(
        100 * 2 * (8 / 9) * (8 / 10) / (8 / 9 + 8 / 10)
    )
    assert metrics.rouge_lsum(["Отличная ручка для письма"], ["Отличная ручка"]) == pytest.approx(
        100 * 2 * 0.5 * 1 / 1.5
    )
    assert metrics.rouge_lsum(["The pens write well."], ["Отличная ручка"]) == 0
    # A vowel sign belongs to its word: bare consonants would make these two words one.
    assert metrics.rouge_lsum(["हिन्दी किताब"], ["हिन्दी पुस्तक"]) == pytest.approx(50)
    assert metrics.rouge_lsum(["किताब"], ["कताब"]) == 0
    # 。 ends a sentence: the two sentences match in either order.
    assert metrics.rouge_lsum(["很好。这是好本子。"], ["这是好本子。很好。"]) == pytest.approx(100)
    # Where rouge-score finds a word in both texts, the pair is its: stemmed, accents and other
    # scripts split off, sentence by sentence.
    from rouge_score import rouge_scorer

    plain = rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)
    for prediction, reference in (
        ("They chose the highlighters; the café was nice.", "They liked cafés and highlighting."),
        ("Red pens, 3-Pack.", "A pack of red pens (3-Pack)"),
        ("Great pens. Отлично!", "Great pens."),
    ):
        lines = ["\n".join(t.split(". ")) for t in (reference, prediction)]
        expected = 100 * plain.score(*lines)["rougeLsum"].fmeasure
        assert metrics.rouge_lsum([prediction], [reference]) == pytest.approx(expected)
    assert metrics.rouge_lsum(["Great pens. Отлично!"], ["Great pens."]) == pytest.approx(100)


def test_semantic_similarity_with_a_small_encoder():
    encoder = WordCountEncoder()
    cache = {}
    same = metrics.semantic_similarity(["red pen", ""], ["red pen", "red pen"], encoder, cache)
    assert same == pytest.approx(0.5)  # the empty prediction scores 0, not the cosine of ""
    assert encoder.texts == 2  # "red pen" and "" encoded once each thanks to the cache
    metrics.semantic_similarity(["red pen"], ["red pen"], encoder, cache)
    assert encoder.texts == 2


@pytest.mark.smoke
def test_semantic_similarity_with_minilm():
    encoder = metrics.default_encoder()
    reference = ["The customer wanted a sturdy stapler for the office."]
    close = metrics.semantic_similarity(
        ["They needed a solid stapler for work."], reference, encoder
    )
    far = metrics.semantic_similarity(["A lovely summer dress in navy blue."], reference, encoder)
    assert metrics.semantic_similarity(reference, reference, encoder) == pytest.approx(
        1.0, abs=1e-5
    )
    assert close > far + 0.2
