"""A stand-in LLM for the inpainting pipeline: a valid JSON answer derived from each prompt.

Used by the pipeline tests (in-process) and by benchmarks/bench_inpaint.py (behind the fake
OpenAI server), so that both exercise every step with deterministic, checkable answers.
"""

from __future__ import annotations

import json
import re


def scripted_answer(prompt: str) -> str:
    if prompt.startswith("A shopper was shown the CURRENT item"):
        goal = re.search(r"GOAL:\nTitle: (.*)", prompt).group(1)
        return json.dumps({"critiques": [f"I want the {goal} instead.", f"Show me {goal}."]})
    if "Rate the critique" in prompt:
        return json.dumps({"quality": 6, "specificity": 5, "relevance": 7, "confidence": 6})
    if "Rate them:" in prompt:
        scores = {"veracity": 7, "grounding": 6, "foresight": 5, "clarity": 6, "personalization": 4}
        return json.dumps({**scores, "confidence": 6})
    if "Rate them together" in prompt:
        scores = {"veracity": 6, "grounding": 6, "clarity": 5, "personalization": 7, "richness": 3}
        return json.dumps({**scores, "confidence": 5})
    if "Rate it:" in prompt:
        return json.dumps(
            {"veracity": 7, "personalization": 5, "persuasiveness": 6, "confidence": 7}
        )
    last = re.findall(r"Title: (.*)", prompt)[-1]
    if "RECOMMENDED ITEM" in prompt:
        return json.dumps({"product_endorsement": f"You will love {last}."})
    return json.dumps(
        {
            "purchase_reason": f"They needed {last}.",
            "purchase_reason_explanation": "Their history shows it.",
            "user_summary_brief": "Buys pens.",
            "user_summary_long": "Buys pens and paper for the office.",
            "user_profile": "Organised office worker",
        }
    )
