"""REGEN metrics as a Hugging Face `evaluate` module.

    import evaluate

    text = evaluate.load("regen_models/regen_metric", "text")
    text.compute(predictions=["a generated endorsement"], references=["the reference"])
    # {"BLEU": ..., "ROUGE": ..., "SemSim": ...}

    ranking = evaluate.load("regen_models/regen_metric", "ranking")
    ranking.compute(predictions=[["B00A", "B00B", ...]], references=["B00B"])
    # {"Recall@10": ..., "HitRate@10": ..., "NDCG@10": ..., "MRR": ...}

The computations are those of `regen_models.metrics`, so numbers match `regen eval` exactly.
"""

import datasets
import evaluate

from regen_dataset import CITATION, HOMEPAGE
from regen_models import metrics

_DESCRIPTION = (
    "Metrics of the REGEN benchmark (Amazon reviews enriched with critiques and narratives): "
    "Recall@k, HitRate@k, NDCG@k and MRR of a ranked list of item ids against the held-out "
    "item, and corpus BLEU, ROUGE-Lsum F1 and embedding cosine similarity of generated "
    "narratives against the reference narratives."
)
_INPUTS = """
Config "ranking":
    predictions: list of ranked item-id lists, best first (one list per user)
    references: the held-out item id of each user
    ks: cut-offs for Recall/HitRate/NDCG (default [10])
Config "text":
    predictions: generated narratives
    references: reference narratives
    encoder: a sentence-transformers model, name or path for SemSim (default all-MiniLM-L6-v2)
"""
_FEATURES = {
    "ranking": datasets.Features(
        {
            "predictions": datasets.List(datasets.Value("string")),
            "references": datasets.Value("string"),
        }
    ),
    "text": datasets.Features(
        {"predictions": datasets.Value("string"), "references": datasets.Value("string")}
    ),
}


class RegenMetric(evaluate.Metric):
    def _info(self):
        if self.config_name not in _FEATURES:
            raise ValueError(f"config must be one of {sorted(_FEATURES)}, got {self.config_name!r}")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=CITATION,
            inputs_description=_INPUTS,
            features=_FEATURES[self.config_name],
            homepage=HOMEPAGE,
        )

    def _compute(self, predictions, references, ks=(10,), encoder=None):
        if self.config_name == "ranking":
            return metrics.ranking_metrics(
                metrics.ranks_from_lists(predictions, references), ks=tuple(ks)
            )
        return metrics.text_metrics(predictions, references, encoder)
