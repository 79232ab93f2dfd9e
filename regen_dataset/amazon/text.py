"""Amazon metadata text: HTML stripped and entities unescaped, prices read, categories joined."""

from __future__ import annotations

import html

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_str = pa.string()


def parse_price(price: pa.Array) -> tuple[pa.Array, np.ndarray]:
    """Metadata price strings -> (float64 with 0.0 when unknown or a range, kind).

    Kinds: 0 a single price ("$12.99", "$1,299.00"), 1 a range ("$10.00 - $20.00"),
    2 unknown (missing, empty or anything else).
    """
    text = pc.utf8_trim_whitespace(price)
    number = r"\$?\s*[0-9][0-9,]*(\.[0-9]+)?"
    single = pc.fill_null(pc.match_substring_regex(text, f"^{number}$"), False)
    ranges = pc.fill_null(pc.match_substring_regex(text, rf"^{number}\s*-\s*{number}$"), False)
    digits = pc.replace_substring_regex(text, r"[$,\s]", "")
    value = pc.cast(pc.if_else(single, digits, "0"), pa.float64())
    kind = np.full(len(price), 2, dtype=np.int8)
    kind[ranges.to_numpy(zero_copy_only=False)] = 1
    kind[single.to_numpy(zero_copy_only=False)] = 0
    return value, kind


def clean_html(values: pa.Array) -> pa.Array:
    """Strip HTML tags, unescape entities, collapse whitespace (nulls stay null).

    Tags go first, so that an escaped "&lt;assorted&gt;" stays as text; a "<" not followed by a
    letter or "/" is not a tag ("1 < 2").
    """
    values = pc.replace_substring_regex(values, r"<!--.*?-->|</?[A-Za-z][^<>]*>", " ")
    has_entity = pc.fill_null(pc.match_substring(values, "&"), False)
    if pc.any(has_entity).as_py():
        unescaped = [html.unescape(text) for text in values.filter(has_entity).to_pylist()]
        values = pc.replace_with_mask(values, has_entity, pa.array(unescaped, _str))
    # Runs of whitespace and single non-space whitespace become one space; matching only those
    # (not every single space) keeps RE2 fast.
    values = pc.replace_substring_regex(values, r"[\s\v\x{a0}]{2,}|[\t\n\r\f\v\x{a0}]", " ")
    return pc.utf8_trim_whitespace(values)


def description_string(paragraphs: pa.ListArray) -> pa.Array:
    return pc.fill_null(clean_html(pc.binary_join(paragraphs, " ")), "")


def category_string(levels: pa.ListArray) -> pa.Array:
    """Clean each level (each distinct one once), drop empty ones, join with " - "."""
    encoded = pc.dictionary_encode(levels.flatten())
    flat = clean_html(encoded.dictionary).take(encoded.indices)
    parents = pc.list_parent_indices(levels).to_numpy()
    keep = pc.fill_null(pc.greater(pc.utf8_length(flat), 0), False)
    counts = np.bincount(parents[keep.to_numpy(zero_copy_only=False)], minlength=len(levels))
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    joined = pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), flat.filter(keep)), " - ")
    return pc.fill_null(joined, "")
