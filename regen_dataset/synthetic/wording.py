"""A tiny phrase language for varied, grammatical synthetic text.

A pattern is plain text with two kinds of markup:
- `{a|b|c}` picks one alternative at random (alternatives may nest and hold fields);
- `[name]` is replaced by the value of `name`.
Patterns are compiled once and cached, so rendering costs a few random draws per phrase.
An `a` right before a field agrees with the field's first word ("a [colour] lamp" never reads
"a ivory lamp"); a rendered text starts with a capital letter and has no doubled spaces. Patterns
are written as finished sentences, so rendering needs no further clean-up (it is the hot loop of
the generator).
"""

from __future__ import annotations

import random
import re
from functools import cache

Part = str | tuple  # text, ("field", name) or ("pick", [alternatives, each a list of parts])

_VOWEL_SOUND = re.compile(
    r"^(?:[aei]|o(?!ne\b|ne-|nce)|u(?!ni|se|su|sb|tah|ro)|hour|honest|heir|x[slx]|[fhlmnrsx]\b"
    r"|8|11\b|18\b)",
    re.I,
)
_SPACES = re.compile(r"\s{2,}")
_SPACE_BEFORE_PUNCT = re.compile(r"\s+([,.;:!?])")


def article(word: str) -> str:
    """`a` or `an` for the word that follows."""
    return "an" if _VOWEL_SOUND.match(word) else "a"


@cache
def compile_pattern(pattern: str) -> tuple[Part, ...]:
    parts, _ = _parse(pattern, 0, top=True)
    return tuple(parts)


def _parse(text: str, start: int, top: bool) -> tuple[list[Part], int]:
    """Parts from `start` up to the closing `}` or `|` (not consumed) or the end."""
    parts: list[Part] = []
    buffer = []
    index = start
    while index < len(text):
        char = text[index]
        if char == "{":
            if buffer:
                parts.append("".join(buffer))
                buffer = []
            alternatives = []
            index += 1
            while True:
                alternative, index = _parse(text, index, top=False)
                # A plain-text alternative is kept as a string: rendering it is one append.
                if not alternative:
                    alternatives.append("")
                elif len(alternative) == 1 and isinstance(alternative[0], str):
                    alternatives.append(alternative[0])
                else:
                    alternatives.append(tuple(alternative))
                if index >= len(text):
                    raise ValueError(f"unclosed '{{' in pattern {text!r}")
                if text[index] == "}":
                    index += 1
                    break
                index += 1  # past '|'
            parts.append(("pick", tuple(alternatives)))
            continue
        if char in "|}" and not top:
            break
        if char == "[":
            end = text.index("]", index)
            if buffer:
                parts.append("".join(buffer))
                buffer = []
            parts.append(("field", text[index + 1 : end]))
            index = end + 1
            continue
        buffer.append(char)
        index += 1
    if buffer:
        parts.append("".join(buffer))
    return parts, index


def _render(parts, rng: random.Random, values: dict, out: list[str]) -> None:
    for part in parts:
        if type(part) is str:
            out.append(part)
        elif part[0] == "pick":
            alternatives = part[1]
            chosen = alternatives[int(rng.random() * len(alternatives))]
            if type(chosen) is str:
                out.append(chosen)
            else:
                _render(chosen, rng, values, out)
        else:
            value = values[part[1]]
            # "a" before a field agrees with the field's first word.
            if out and value and _VOWEL_SOUND.match(value):
                if len(out[-1]) < 3 and len(out) > 1:  # "a" and " " rendered apart
                    out[-2:] = [out[-2] + out[-1]]
                last = out[-1]
                if last.endswith(" a ") or last == "a " or last.endswith("\na "):
                    out[-1] = last[:-2] + "an "
                elif last.endswith(" A ") or last == "A ":
                    out[-1] = last[:-2] + "An "
            out.append(value)


def render(rng: random.Random, pattern: str, values: dict) -> str:
    """Render a pattern of one or more sentences: first letter capitalised, spaces tidied."""
    out: list[str] = []
    _render(compile_pattern(pattern), rng, values, out)
    text = "".join(out)
    if "  " in text:
        text = _SPACES.sub(" ", text)
    if " ," in text or " ." in text or " ;" in text or " ?" in text:
        text = _SPACE_BEFORE_PUNCT.sub(r"\1", text)
    text = text.strip()
    return text[:1].upper() + text[1:]


def render_one(rng: random.Random, patterns, values: dict) -> str:
    return render(rng, patterns[int(rng.random() * len(patterns))], values)


def fragment(rng: random.Random, pattern: str, values: dict | None = None) -> str:
    """Render a pattern that goes inside a sentence: no capital letter, no trimming."""
    out: list[str] = []
    _render(compile_pattern(pattern), rng, values or {}, out)
    return "".join(out)


def say(rng: random.Random, pattern: str, **values) -> str:
    return render(rng, pattern, values)


def say_one(rng: random.Random, patterns, **values) -> str:
    return render_one(rng, patterns, values)


def join_list(words: list[str], conjunction: str = "and") -> str:
    """'a', 'a and b', 'a, b and c'."""
    words = [w for w in words if w]
    if len(words) <= 1:
        return "".join(words)
    return f"{', '.join(words[:-1])} {conjunction} {words[-1]}"
