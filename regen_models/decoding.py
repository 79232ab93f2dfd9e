"""Running the transformers LM that LUMEN and the fusion narrator wrap: with the attention the
LM can run, and decoding with its KV cache across transformers versions.

Both models decode token by token themselves; this module ships beside their modeling files as
remote code, so it imports nothing but the standard library.
"""

from __future__ import annotations

import inspect

_CACHE_ARGUMENT: dict[type, str] = {}


def run_decoder(decoder, cache=None, **inputs):
    """`decoder(**inputs)` with its KV cache `cache`; returns (outputs, the cache it returns).

    transformers 5.24 renamed the cache's argument and output `past_key_values` to `cache`, and
    warns at every call under the old name; both names must work, from 5.18 on.
    """
    name = _CACHE_ARGUMENT.get(type(decoder))
    if name is None:
        parameters = inspect.signature(decoder.forward).parameters
        name = "cache" if "cache" in parameters else "past_key_values"
        _CACHE_ARGUMENT[type(decoder)] = name
    outputs = decoder(**inputs, **{name: cache})
    returned = outputs.cache if hasattr(outputs, "cache") else outputs.past_key_values
    return outputs, returned


def adopt_attention(wrapper_config, language_model, requested: str | None) -> None:
    """Make a model that wraps `language_model` (LUMEN, the fusion narrator) run it with the
    attention the LM can run: `requested` (what the caller asked the wrapper for, None for
    nothing), else the LM's own default, checked by the LM's class. Transformers gives the
    wrapper its own default (sdpa) and hands it down to the LM's config; Gemma 2, whose attention
    is soft-capped, has no sdpa and must stay eager. The wrapper's config and the LM's (one
    object, its `text_config`) end up naming the same implementation."""
    implementation = language_model.get_correct_attn_implementation(requested, is_init_check=True)
    wrapper_config._attn_implementation = implementation
    language_model.config._attn_implementation = implementation
