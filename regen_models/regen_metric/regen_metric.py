"""REGEN metrics as a Hugging Face `evaluate` module.

    import evaluate

    text = evaluate.load("regen_models/regen_metric", "text")
    text.compute(predictions=["a generated endorsement"], references=["the reference"])
    # {"BLEU": ..., "ROUGE": ..., "SemSim": ...}

    ranking = evaluate.load("regen_models/regen_metric", "ranking")
    ranking.compute(predictions=[["B00A", "B00B", ...]], references=["B00B"])
    # {"Recall@10": ..., "HitRate@10": ..., "NDCG@10": ..., "MRR@10": ...}

It runs on its own, with only `requirements.txt`: the definitions are `metric_definitions.py` in
this folder, which `evaluate.load` copies along and which `regen_models.metrics` (and so
`regen eval`) also uses, so the numbers are the same.
"""

import datasets
import evaluate

from .metric_definitions import ranking_metrics, ranks_from_lists, text_metrics

HOMEPAGE = (
    "https://www.kaggle.com/datasets/googleai/regen-reviews-enhanced-with-generative-narratives"
)
# The same entry as `regen_dataset.CITATION` (a test keeps them equal); copied because this module
# must not import the repository.
CITATION = """@article{su2025regen,
  title   = {{REGEN}: A Dataset and Benchmarks with Natural Language Critiques and Narratives},
  author  = {Su, Kun and Sayana, Krishna and Pham, Hubert and Pine, James and Vasilevski, Yuri and
             Vasudeva, Raghavendra and Kyriakidi, Marialena and Hebert, Liam and Jash, Ambarish and
             Subbiah, Anushya and Sodhi, Sukhdeep},
  journal = {arXiv preprint arXiv:2503.11924},
  year    = {2025},
  url     = {https://arxiv.org/abs/2503.11924}
}

@article{sayana2024beyond,
  title   = {Beyond Retrieval: Generating Narratives in Conversational Recommender Systems},
  author  = {Sayana, Krishna and Vasudeva, Raghavendra and Vasilevski, Yuri and Su, Kun and
             Hebert, Liam and Pine, James and Pham, Hubert and Jash, Ambarish and Sodhi, Sukhdeep},
  journal = {arXiv preprint arXiv:2410.16780},
  year    = {2024},
  url     = {https://arxiv.org/abs/2410.16780}
}"""

_DESCRIPTION = (
    "Metrics of the REGEN benchmark (Amazon reviews enriched with critiques and narratives): "
    "Recall@k, HitRate@k, NDCG@k and MRR@k of a ranked list of item ids against the held-out "
    "item, and corpus BLEU, ROUGE-Lsum F1 and embedding cosine similarity of generated "
    "narratives against the reference narratives."
)
_INPUTS = """
Config "ranking":
    predictions: list of ranked item-id lists, best first (one list per user)
    references: the held-out item id of each user
    ks: cut-offs for Recall/HitRate/NDCG/MRR (default [10])
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
            ks = (ks,) if isinstance(ks, int) else tuple(ks)
            return ranking_metrics(ranks_from_lists(predictions, references), ks=ks)
        return text_metrics(predictions, references, encoder)
