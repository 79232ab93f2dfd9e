"""`Narrator`: a base LM with a LoRA adapter that writes REGEN narratives from history prompts.

    narrator = Narrator.from_pretrained("checkpoints/narrator-office")
    prompts = [build_prompt(row["history"], item, "purchase_reason", ...).text for ...]
    texts = narrator.generate(prompts, kind="purchase_reason")

The prompts come from `regen_models.prompts.build_prompt`, about any item: the true next item
(the paper's upper-bound setting) or the one a recommender picked (the hybrid system).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from regen_models.devices import pick_device
from regen_models.narrator import formatting
from regen_models.narrator.configuration_narrator import NarratorConfig
from regen_models.narrator.loading import load_adapter
from regen_models.progress import batch_spans
from regen_models.prompts import TokenCounter

DEFAULT_MAX_NEW_TOKENS = 128


class Narrator:
    def __init__(self, model, tokenizer, config: NarratorConfig):
        self.model = model
        self.tokenizer = tokenizer
        self.config = config

    @classmethod
    def from_pretrained(
        cls,
        adapter_dir: str | os.PathLike,
        base: str | None = None,
        *,
        dtype=None,
        device: str | None = None,
    ) -> Narrator:
        """Load an adapter folder onto its base (`base`, when given, must be the recorded one)."""
        model, tokenizer, config = load_adapter(adapter_dir, base, dtype=dtype)
        if device:
            model.to(pick_device(device))
        return cls(model, tokenizer, config)

    @property
    def base_model(self) -> str:
        return self.config.base_model

    @property
    def kinds(self) -> list[str]:
        return list(self.config.kinds)

    @property
    def max_prompt_tokens(self) -> int | None:
        return self.config.max_prompt_tokens

    @property
    def with_critiques(self) -> bool:
        return self.config.with_critiques

    def count_prompt_tokens(self) -> TokenCounter:
        """A counter for `build_prompt(count_tokens=..., max_tokens=narrator.max_prompt_tokens)`."""
        return formatting.prompt_token_counter(self.tokenizer)

    def max_new_tokens(self, kind: str | None) -> int:
        if kind is None:
            return max(self.config.max_new_tokens.values(), default=DEFAULT_MAX_NEW_TOKENS)
        if kind in self.config.kinds and kind not in self.config.max_new_tokens:
            # An adapter trained before training refused kinds it had no narrative of.
            raise ValueError(
                f"this narrator lists {kind!r} among its kinds, but its training split had no "
                f"narrative of that kind, so it never learnt to write one (its "
                f"narrator_config.json records no max_new_tokens for {kind!r}): retrain it on a "
                "split that has them"
            )
        if kind not in self.config.max_new_tokens:
            raise ValueError(
                f"this narrator was trained for {self.kinds}, not for {kind!r}: ask for one of "
                "those, or train it with that kind (--kinds)"
            )
        return self.config.max_new_tokens[kind]

    def generate(
        self,
        prompts: Sequence[str],
        *,
        kind: str | None = None,
        max_new_tokens: int | None = None,
        batch_size: int = 8,
        do_sample: bool = False,
        progress: bool = False,
        **generate_kwargs,
    ) -> list[str]:
        """One narrative per prompt, in order: greedy unless `do_sample`, in batches
        (`progress`: a bar over the prompts).

        `max_new_tokens` defaults to the length recorded for `kind` (the reference lengths seen
        in training), or the longest kind's when no kind is given.
        """
        import torch

        if isinstance(prompts, str):  # it would be read as one prompt per character
            raise ValueError("prompts: expected a list of prompt texts, got one string")
        trained_limit = self.max_new_tokens(kind)  # an untrained kind fails here
        limit = trained_limit if max_new_tokens is None else max_new_tokens
        if limit < 1:
            return [""] * len(prompts)  # generate() refuses a budget of no tokens
        device = next(self.model.parameters()).device
        stops = formatting.stop_token_ids(self.tokenizer, self.model.generation_config)
        pad_id = self.tokenizer.pad_token_id
        if pad_id is None:
            pad_id = stops[0]
        # The base's sampling defaults (Gemma's top_k=64, ...) mean nothing to greedy decoding,
        # and transformers warns about each; options the caller gives are passed as given.
        if not do_sample:
            generate_kwargs = {"temperature": None, "top_p": None, "top_k": None, **generate_kwargs}
        texts: list[str] = []
        description = f"narrator writes {kind}" if kind else "narrator writes"
        for start, stop in batch_spans(
            len(prompts), batch_size, progress=progress, description=description
        ):
            encoded = [
                formatting.encode_for_generation(self.tokenizer, prompt)
                for prompt in prompts[start:stop]
            ]
            input_ids, attention_mask = _left_pad(encoded, pad_id)
            with torch.no_grad():
                output = self.model.generate(
                    input_ids=input_ids.to(device),
                    attention_mask=attention_mask.to(device),
                    max_new_tokens=limit,
                    do_sample=do_sample,
                    eos_token_id=stops,
                    pad_token_id=pad_id,
                    **generate_kwargs,
                )
            new_tokens = output[:, input_ids.shape[1] :]
            texts += [
                text.strip()
                for text in self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
            ]
        return texts


def _left_pad(sequences: list[list[int]], pad_id: int):
    import torch

    width = max(len(ids) for ids in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, ids in enumerate(sequences):
        input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, width - len(ids) :] = 1
    return input_ids, attention_mask
