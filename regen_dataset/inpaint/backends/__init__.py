"""LLM backends for the inpainting pipeline: one small async interface over several providers.

The pipeline asks an LLM for critiques, narratives and rater scores; `runner.Runner` adds caching,
retries, validation and batch jobs on top. Each provider lives in its own module, on the shared
base of `_common.py`:

- `openai`: the official `openai` client on chat completions, and the Batch API; `base_url`
  points it at any OpenAI-compatible server (vLLM, Ollama, ...);
- `gemini`: the `google-genai` client, and Gemini batch mode with inline requests;
- `gemini_legacy`: the deprecated `google-generativeai` package, for machines that only have that
  one (direct calls only); `gemini` falls back to it when `google-genai` is missing;
- `local`: a causal LM loaded through `regen_models.base.load_causal_lm`.

Adding a provider is one module with a `Backend` subclass and one line in `BACKENDS`.
"""

from __future__ import annotations

from regen_dataset.inpaint.backends._common import (
    DEFAULT_MODELS,
    AnswerCutOff,
    Backend,
    BackendError,
    Completion,
    LLMError,
    PromptRefused,
    RetryableError,
    without_credentials,
)
from regen_dataset.inpaint.backends.gemini import GEMINI_KEY_ENV, GeminiBackend
from regen_dataset.inpaint.backends.gemini_legacy import LegacyGeminiBackend
from regen_dataset.inpaint.backends.local import LocalBackend
from regen_dataset.inpaint.backends.openai import (
    NO_KEY_PLACEHOLDER,
    OPENAI_KEY_ENV,
    OpenAIBackend,
)

# Backend name (as `--backend` takes it) -> its class.
BACKENDS: dict[str, type[Backend]] = {
    "openai": OpenAIBackend,
    "gemini": GeminiBackend,
    "gemini-legacy": LegacyGeminiBackend,
    "local": LocalBackend,
}
# A backend whose SDK is not installed falls back to another one for the same API.
FALLBACKS = {"gemini": "gemini-legacy"}


def make_backend(
    name: str,
    model: str | None = None,
    *,
    base_url: str | None = None,
    timeout: float = 120.0,
    constrained_decoding: bool = True,
    thinking_budget: int | str | None = "auto",
) -> Backend:
    """The backend called `name` (a key of `BACKENDS`) for `model` (its default if None).
    `base_url` points OpenAI at a compatible server, or Gemini at another endpoint;
    `constrained_decoding=False` lets the local model write JSON answers unconstrained;
    `thinking_budget` is Gemini's (see `gemini.default_thinking_budget`)."""
    name = name.lower()
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    options = dict(
        base_url=base_url,
        timeout=timeout,
        constrained_decoding=constrained_decoding,
        thinking_budget=thinking_budget,
    )
    try:
        return BACKENDS[name].from_options(model, **options)
    except ImportError as missing:
        if name not in FALLBACKS:
            raise
        try:
            return make_backend(FALLBACKS[name], model, **options)
        except ImportError:
            raise ImportError(f"the {name} backend's SDK is not installed: {missing}") from None


__all__ = [
    "BACKENDS",
    "DEFAULT_MODELS",
    "FALLBACKS",
    "GEMINI_KEY_ENV",
    "NO_KEY_PLACEHOLDER",
    "OPENAI_KEY_ENV",
    "AnswerCutOff",
    "Backend",
    "BackendError",
    "Completion",
    "GeminiBackend",
    "LLMError",
    "LegacyGeminiBackend",
    "LocalBackend",
    "OpenAIBackend",
    "PromptRefused",
    "RetryableError",
    "make_backend",
    "without_credentials",
]
