"""Running a transformers decoder with its KV cache, across transformers versions.

LUMEN and the fusion narrator decode token by token themselves; this module ships beside their
modeling files as remote code, so it imports nothing but the standard library.
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
