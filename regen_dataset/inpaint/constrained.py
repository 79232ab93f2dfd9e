"""Decoding constrained to a JSON Schema, for local `transformers` models, with xgrammar.

A small base model asked for JSON (the embedded Gemma 3 270M) mostly writes something else. The
logits processor made here masks, at every step, each token that would take a sequence's answer
outside its JSON Schema, and lets the model stop only where the answer is complete: an answer that
ends with a stop token parses and validates. One that runs out of `max_new_tokens` first is cut
short and still fails validation (the Runner then repairs or counts it).

Each task's schema is defined beside its parser in `prompts.py`; `request_schema` picks it from
the prompt. Grammars are compiled once per tokenizer, vocabulary size, stop tokens and schema,
and kept while the tokenizer lives: against Gemma's 262k-token vocabulary a schema with long
strings takes seconds to compile.
"""

from __future__ import annotations

import json
import os
import re
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import torch
import xgrammar
from transformers import LogitsProcessor, LogitsProcessorList

from regen_dataset.inpaint.prompts import answer_schema

# The schema of a JSON request whose prompt is none of the pipeline's tasks.
ANY_JSON_OBJECT: dict = {"type": "object"}

# xgrammar 0.2.8 writes a string with minLength/maxLength as a bounded repetition of one character
# rule, `NAME_characters{MIN, MAX}` with NAME_characters ::= [^"\\\r\n]. Two fixes, so that every
# answer that ends is one the parsers accept:
# - that class lets control characters other than CR and LF into the string, where JSON forbids
#   them unescaped (json.loads refuses the answer): they are excluded;
# - a string of spaces or of punctuation ("...", which a small model copies from the prompt's
#   answer format) meets minLength 1, but the parsers refuse text without words: a string that
#   must not be empty starts with a letter (what `str.isalpha` calls one, as the parsers do) of
#   one of the main scripts (Latin, Greek, Cyrillic, Hebrew, Arabic, Indic, Thai, kana, CJK,
#   Hangul).
_LOOSE_STRING_CHARACTER = r"[^\"\\\r\n]"
_JSON_STRING_CHARACTER = r"[^\0-\x1f\"\\]"
_SCRIPTS = (
    (0x41, 0x5A), (0x61, 0x7A), (0xC0, 0x24F), (0x370, 0x3FF), (0x400, 0x52F), (0x5D0, 0x5EA),
    (0x620, 0x64A), (0x900, 0xDFF), (0xE01, 0xE30), (0x3041, 0x30FF), (0x4E00, 0x9FFF),
    (0xAC00, 0xD7A3),
)  # fmt: skip


def _letter_class(scripts: tuple[tuple[int, int], ...]) -> str:
    """An EBNF character class of the code points in `scripts` that are letters."""
    letters = [c for low, high in scripts for c in range(low, high + 1) if chr(c).isalpha()]
    ranges, start = [], letters[0]
    for before, after in zip(letters, letters[1:] + [None], strict=True):
        if after != before + 1:
            ranges.append(f"\\u{start:04x}" + (f"-\\u{before:04x}" if before > start else ""))
            start = after
    return "[" + "".join(ranges) + "]"


_FIRST_STRING_CHARACTER = _letter_class(_SCRIPTS)
_NON_EMPTY_STRING = re.compile(r"\b(\w+_characters)\{1, (\d+)\}")


def _first_character_then(match: re.Match) -> str:
    rest, longest = match.group(1), int(match.group(2))
    if longest == 1:
        return _FIRST_STRING_CHARACTER
    return f"{_FIRST_STRING_CHARACTER} {rest}{{0, {longest - 1}}}"


_lock = threading.Lock()


class _Compiled:
    """A compiler for one tokenizer setting, and the grammars compiled with it by schema text."""

    def __init__(self, compiler: xgrammar.GrammarCompiler):
        self.compiler = compiler
        self.grammars: dict[str, xgrammar.CompiledGrammar] = {}


# tokenizer -> {(vocabulary size, stop tokens): its compiler and grammars}
_compiled: weakref.WeakKeyDictionary[Any, dict[tuple, _Compiled]] = weakref.WeakKeyDictionary()


def request_schema(prompt: str, json_output: bool) -> dict | None:
    """The schema to constrain the answer to `prompt` to: its task's, any JSON object for another
    JSON request, None (free text) when no JSON is asked for."""
    if not json_output:
        return None
    return answer_schema(prompt) or ANY_JSON_OBJECT


def stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """The tokens that end generation: the model's generation config's, else the tokenizer's eos.

    The grammar allows these once the answer is complete, so they must be the ones `generate`
    stops on (Gemma stops on <end_of_turn> as well as <eos>)."""
    config = getattr(model, "generation_config", None)
    ids = getattr(config, "eos_token_id", None)
    if ids is None:
        ids = tokenizer.eos_token_id
    if ids is None:
        raise ValueError("neither the model nor the tokenizer names an end-of-sequence token")
    return [ids] if isinstance(ids, int) else list(ids)


def vocabulary_size(model: Any) -> int:
    """The width of the model's logits (may exceed the tokenizer's vocabulary: padding rows)."""
    head = model.get_output_embeddings()
    if head is not None:
        return int(head.weight.shape[0])
    return int(model.config.get_text_config().vocab_size)


def schema_grammar(schema: dict) -> xgrammar.Grammar:
    """The grammar of compact JSON answers to `schema`: one space after ':' and ',' and no other
    whitespace, so that a model cannot pad its answer with endless newlines; properties in the
    schema's order."""
    grammar = xgrammar.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False)
    text = str(grammar)
    if _LOOSE_STRING_CHARACTER not in text:
        return grammar
    text = text.replace(_LOOSE_STRING_CHARACTER, _JSON_STRING_CHARACTER)
    return xgrammar.Grammar.from_ebnf(_NON_EMPTY_STRING.sub(_first_character_then, text))


def compile_schema(
    tokenizer: Any, schema: dict, *, vocab_size: int, stop_token_ids: Sequence[int]
) -> xgrammar.CompiledGrammar:
    """`schema`'s grammar compiled against `tokenizer`, cached while the tokenizer lives."""
    settings = (vocab_size, tuple(stop_token_ids))
    text = json.dumps(schema)  # not sorted: the order of properties is the order of the answer
    with _lock:  # one compilation at a time: the same schema is never compiled twice
        by_settings = _compiled.setdefault(tokenizer, {})
        if settings not in by_settings:
            info = xgrammar.TokenizerInfo.from_huggingface(
                tokenizer, vocab_size=vocab_size, stop_token_ids=list(stop_token_ids)
            )
            threads = max(1, min(8, os.cpu_count() or 1))
            by_settings[settings] = _Compiled(xgrammar.GrammarCompiler(info, max_threads=threads))
        compiled = by_settings[settings]
        if text not in compiled.grammars:
            grammar = schema_grammar(schema)
            compiled.grammars[text] = compiled.compiler.compile_grammar(grammar)
        return compiled.grammars[text]


class JSONSchemaLogitsProcessor(LogitsProcessor):
    """Masks the logits of each sequence of a batch to the tokens its grammar allows next.

    One grammar matcher per sequence, so a batch may mix schemas. Good for one `generate` call
    (it keeps the matchers' state): make a new one per call. Prompt padding does not matter: the
    matchers only see the tokens generated after the prompt. A sequence whose answer is complete
    has taken a stop token; `generate` pads it from then on and its matcher ignores the padding.
    """

    def __init__(self, grammars: Sequence[xgrammar.CompiledGrammar]):
        if not grammars:
            raise ValueError("need one compiled grammar per sequence (or one for all)")
        self.grammars = list(grammars)
        self.vocab_size = self.grammars[0].tokenizer_info.vocab_size
        self._matchers: list[xgrammar.GrammarMatcher] | None = None
        self._bitmask: torch.Tensor | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        batch = input_ids.shape[0]
        if self._matchers is None:  # the first step: nothing generated yet
            grammars = self.grammars * batch if len(self.grammars) == 1 else self.grammars
            if len(grammars) != batch:
                raise ValueError(f"{len(self.grammars)} grammars for a batch of {batch} sequences")
            if scores.shape[-1] != self.vocab_size:
                raise ValueError(
                    f"the grammars were compiled for {self.vocab_size} tokens, the model scores "
                    f"{scores.shape[-1]}"
                )
            self._matchers = [xgrammar.GrammarMatcher(grammar) for grammar in grammars]
            self._bitmask = xgrammar.allocate_token_bitmask(batch, self.vocab_size)
        else:
            for row, matcher in enumerate(self._matchers):
                if matcher.is_terminated():
                    continue
                token = int(input_ids[row, -1])
                if not matcher.accept_token(token):
                    raise RuntimeError(
                        f"sequence {row}: token {token} breaks its grammar (a sampler or "
                        "processor must not re-enable masked tokens)"
                    )
        for row, matcher in enumerate(self._matchers):
            # A finished row keeps its last mask (only stop tokens): never all masked.
            if not matcher.is_terminated():
                matcher.fill_next_token_bitmask(self._bitmask, row)
        if scores.device.type in ("cpu", "cuda"):
            xgrammar.apply_token_bitmask_inplace(scores, self._bitmask.to(scores.device))
            return scores
        on_cpu = scores.to("cpu")  # other devices: mask on the CPU and move back
        xgrammar.apply_token_bitmask_inplace(on_cpu, self._bitmask)
        return on_cpu.to(scores.device)


def json_schema_processors(
    model: Any, tokenizer: Any, schemas: Sequence[dict]
) -> LogitsProcessorList:
    """The `logits_processor` argument for `model.generate` that holds each sequence of the batch
    to its schema (one schema for the whole batch, or one per sequence)."""
    size, stops = vocabulary_size(model), stop_token_ids(model, tokenizer)
    grammars = [
        compile_schema(tokenizer, schema, vocab_size=size, stop_token_ids=stops)
        for schema in schemas
    ]
    return LogitsProcessorList([JSONSchemaLogitsProcessor(grammars)])
