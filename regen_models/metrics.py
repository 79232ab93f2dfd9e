"""The metrics of the REGEN tables, for `regen eval` and the models.

Their one definition is `regen_models/regen_metric/metric_definitions.py`, which the `evaluate`
module in the same folder also loads; it imports nothing from this repository, so that the module
runs on its own. See that file for what each metric computes.
"""

from regen_models.regen_metric import metric_definitions as definitions
from regen_models.regen_metric.metric_definitions import (
    RANKING_METRICS,
    TEXT_METRICS,
    bleu,
    default_encoder,
    embed,
    load_encoder,
    ranking_metrics,
    ranks_from_lists,
    rouge_lsum,
    semantic_similarity,
    target_ranks,
    text_metrics,
)

__all__ = [
    "RANKING_METRICS",
    "TEXT_METRICS",
    "bleu",
    "default_encoder",
    "definitions",
    "embed",
    "load_encoder",
    "ranking_metrics",
    "ranks_from_lists",
    "rouge_lsum",
    "semantic_similarity",
    "target_ranks",
    "text_metrics",
]
