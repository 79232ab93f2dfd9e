"""A local `transformers` causal LM, loaded through `regen_models.base.load_causal_lm`, lazily, on
the first call; generation runs in a worker thread, one call at a time."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from regen_dataset.inpaint.backends._common import DEFAULT_MODELS, Backend, Completion

log = logging.getLogger(__name__)


def _load_causal_lm(name_or_path: str) -> tuple[Any, Any]:
    from regen_models.base import load_causal_lm

    return load_causal_lm(name_or_path)


class LocalBackend(Backend):
    """A local `transformers` causal LM, loaded on the first call; one generation at a time."""

    name = "local"
    supports_batch = False

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str | None = None,
        loader: Callable[[str], tuple[Any, Any]] | None = None,
        constrained_decoding: bool = True,
    ):
        self.model = model or DEFAULT_MODELS["local"]
        self.device = device
        # JSON requests: decode within the task's JSON Schema (regen_dataset.inpaint.constrained)
        self.constrained_decoding = constrained_decoding
        self.decoding = "json-schema" if constrained_decoding else None
        self._loader = loader or _load_causal_lm
        self._lm: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()  # one model, one generation at a time

    async def complete(
        self,
        prompt: str,
        *,
        system: str | None = None,
        temperature: float = 1.0,
        max_output_tokens: int = 1024,
        json_output: bool = False,
    ) -> Completion:
        schema = None
        if self.constrained_decoding:
            from regen_dataset.inpaint.constrained import request_schema

            schema = request_schema(prompt, json_output)
        return await asyncio.to_thread(
            self._generate, prompt, system, temperature, max_output_tokens, schema
        )

    def _load(self) -> tuple[Any, Any]:
        if self._lm is None:
            started = time.perf_counter()
            model, tokenizer = self._loader(self.model)
            device = self.device
            if device is None:
                import torch

                device = "cuda" if torch.cuda.is_available() else None
            if device is not None:
                model = model.to(device)
            model.eval()
            self._lm, self._tokenizer = model, tokenizer
            log.info("loaded %s in %.1f s", self.describe(), time.perf_counter() - started)
        return self._lm, self._tokenizer

    def _generate(
        self,
        prompt: str,
        system: str | None,
        temperature: float,
        max_output_tokens: int,
        schema: dict | None = None,
    ) -> Completion:
        import torch

        with self._lock:
            model, tokenizer = self._load()
            text, templated = _chat_text(tokenizer, prompt, system)
            inputs = tokenizer(text, return_tensors="pt", add_special_tokens=not templated)
            inputs = {name: tensor.to(model.device) for name, tensor in inputs.items()}
            eos = tokenizer.eos_token_id
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
            sampling: dict[str, Any] = {"do_sample": temperature > 0}
            if temperature > 0:
                sampling["temperature"] = temperature
            if schema is not None:
                from regen_dataset.inpaint.constrained import json_schema_processors

                sampling["logits_processor"] = json_schema_processors(model, tokenizer, [schema])
            with torch.no_grad():
                output = model.generate(
                    **inputs,
                    max_new_tokens=max_output_tokens,
                    pad_token_id=pad,
                    **sampling,
                )
            prompt_length = inputs["input_ids"].shape[1]
            new_tokens = output[0, prompt_length:].tolist()
            if eos is not None and eos in new_tokens:  # keep the eos token, drop padding after it
                new_tokens = new_tokens[: new_tokens.index(eos) + 1]
            answer = tokenizer.decode(new_tokens, skip_special_tokens=True)
        return Completion(text=answer, input_tokens=prompt_length, output_tokens=len(new_tokens))


def _chat_text(tokenizer: Any, prompt: str, system: str | None) -> tuple[str, bool]:
    """The model's input text, and whether it came from the tokenizer's chat template."""
    if not getattr(tokenizer, "chat_template", None):
        return (f"{system}\n\n{prompt}" if system else prompt), False
    messages = [{"role": "user", "content": prompt}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception:  # templates without a system role (Gemma 2) raise: fold it into the prompt
        if not system:
            raise
        messages = [{"role": "user", "content": f"{system}\n\n{prompt}"}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text, True
