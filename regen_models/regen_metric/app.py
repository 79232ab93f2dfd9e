"""The metric's Space: score pasted narratives or rankings with the two configs of the module.

evaluate's own `launch_gradio_widget` builds its page from Gradio 3 components that current
Gradio no longer has, so the page is written here.
"""

import os
from functools import lru_cache

import evaluate
import gradio as gr

MODULE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "regen_metric.py")


@lru_cache(maxsize=2)
def _module(config: str):
    return evaluate.load(MODULE, config)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


def _paired(predictions: str, references: str) -> tuple[list[str], list[str]]:
    predicted, expected = _lines(predictions), _lines(references)
    if not predicted or len(predicted) != len(expected):
        raise gr.Error(
            f"{len(predicted)} prediction lines and {len(expected)} reference lines: give one "
            "of each per example"
        )
    return predicted, expected


def score_text(predictions: str, references: str) -> dict:
    """BLEU, ROUGE-Lsum and SemSim of one narrative per line against one reference per line."""
    predicted, expected = _paired(predictions, references)
    return _module("text").compute(predictions=predicted, references=expected)


def score_ranking(rankings: str, targets: str, k: float) -> dict:
    """Recall, HitRate, NDCG and MRR at `k` of one comma-separated ranking per line against one
    held-out item id per line."""
    ranked, expected = _paired(rankings, targets)
    lists = [[item.strip() for item in line.split(",") if item.strip()] for line in ranked]
    return _module("ranking").compute(predictions=lists, references=expected, ks=[int(k)])


def build() -> gr.Blocks:
    with gr.Blocks(title="REGEN metrics") as page:
        gr.Markdown(
            "# REGEN metrics\n\nThe ranking and narrative metrics of the REGEN benchmark, as the "
            "`evaluate` module of this repository computes them: "
            '`evaluate.load("THIS_REPO", "text")` or `"ranking"`.'
        )
        with gr.Tab("Narratives"):
            predictions = gr.Textbox(label="Generated narratives, one per line", lines=6)
            references = gr.Textbox(label="Reference narratives, one per line", lines=6)
            text_scores = gr.JSON(label="Scores")
            gr.Button("Score").click(score_text, [predictions, references], text_scores)
        with gr.Tab("Rankings"):
            rankings = gr.Textbox(
                label="Ranked item ids, best first: one comma-separated list per user", lines=6
            )
            targets = gr.Textbox(label="The held-out item id of each user, one per line", lines=6)
            k = gr.Number(label="k", value=10, precision=0, minimum=1)
            ranking_scores = gr.JSON(label="Scores")
            gr.Button("Score").click(score_ranking, [rankings, targets, k], ranking_scores)
    return page


if __name__ == "__main__":
    build().launch()
