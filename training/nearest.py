"""Naming the option a user probably meant, for the `regen` command and the training recipes."""

from __future__ import annotations

import difflib


def with_nearest(names: list[str], known: list[str]) -> str:
    """`names`, each with the nearest of `known` where one is close: for misspelled options."""
    notes = []
    for name in names:
        close = difflib.get_close_matches(name, known, n=1)
        notes.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return ", ".join(notes)
