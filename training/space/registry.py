"""The models the Space offers: one `ModelSpec` per model, the checkpoints it needs, and how to
load them into a `Recommender` (rank the catalog; write a narrative about an item, streamed).

A spec names the checkpoint roles it needs (`flare`, `narrator`, `lumen`, ...). `discover`
finds the roles of each domain in a demo folder, `Registry.build` keeps every model whose
checkpoints are all there and notes, in words, each one it left out. Adding a model is one
`Recommender` class and one `ModelSpec` line in `MODELS`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from regen_models.items import ItemVocabulary
from regen_models.prompts import ItemTexts, build_prompt
from training.space.streaming import stream_generation, stream_text

DOMAINS = ("office", "clothing")


class UnknownModelError(KeyError):
    """A model name this Space does not offer for that domain."""

    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class Ranking:
    item_ids: list[str]
    scores: list[float]


class Recommender(Protocol):
    vocabulary: ItemVocabulary  # what it ranks; checked against the dataset's catalog
    category: str  # the catalog it ranks: office or clothing
    kinds: list[str]  # the narrative kinds it writes; empty for a ranker alone

    def rank(self, row: Mapping, top_k: int) -> Ranking: ...

    def narrate(self, row: Mapping, item_id: str, kind: str) -> Iterator[str]:
        """The narrative so far, longer at each step, ending with the whole text."""
        ...


class FlareOnly:
    """FLARE's ranking, no narrative."""

    kinds: list[str] = []

    def __init__(self, ranker):
        self.ranker = ranker
        self.vocabulary = ranker.vocabulary
        self.category = ranker.vocabulary.category

    def rank(self, row: Mapping, top_k: int) -> Ranking:
        ranked = self.ranker.rank([row], top_k=top_k)[0]
        return Ranking(ranked.item_ids, ranked.scores)

    def narrate(self, row: Mapping, item_id: str, kind: str) -> Iterator[str]:
        raise ValueError("FLARE ranks items only: pick a model with a narrator for narratives")


class Hybrid(FlareOnly):
    """FLARE ranks; the LoRA narrator writes about the item asked for, token by token."""

    def __init__(self, system):
        super().__init__(system.ranker)
        self.narrator = system.narrator
        self.kinds = list(self.narrator.kinds)

    def narrate(self, row: Mapping, item_id: str, kind: str) -> Iterator[str]:
        from regen_models.narrator import formatting

        narrator = self.narrator
        prompt = build_prompt(
            row["history"],
            ItemTexts.from_vocabulary(self.ranker.vocabulary, item_id),
            kind,
            critique=row.get("critique"),
            with_critiques=narrator.with_critiques,
            user_id=row.get("user_id") or "",
            count_tokens=narrator.count_prompt_tokens(),
            max_tokens=narrator.max_prompt_tokens,
        )
        input_ids = formatting.encode_for_generation(narrator.tokenizer, prompt.text)
        stops = formatting.stop_token_ids(narrator.tokenizer, narrator.model.generation_config)
        yield from stream_generation(
            narrator.model,
            narrator.tokenizer,
            input_ids,
            max_new_tokens=narrator.max_new_tokens(kind),
            stop_token_ids=stops,
        )


class LumenModel:
    """LUMEN ranks the catalog with its item head and writes about an item it is given, token by
    token."""

    def __init__(self, lumen):
        self.lumen = lumen
        self.vocabulary = lumen.vocabulary
        self.category = lumen.vocabulary.category
        self.kinds = list(lumen.config.kinds)

    def rank(self, row: Mapping, top_k: int) -> Ranking:
        ranked = self.lumen.rank([row], top_k=top_k)[0]
        return Ranking(ranked.item_ids, ranked.scores)

    def narrate(self, row: Mapping, item_id: str, kind: str) -> Iterator[str]:
        def generate(streamer):
            self.lumen.write([row], kind, item_ids=[item_id], streamer=streamer)

        from regen_models.lumen.recommender import narrative_of

        stream = stream_text(self.lumen.tokenizer, generate)
        try:
            for text in stream:
                narrative, ran_on = narrative_of(text)  # as `Lumen.write` cleans it
                yield narrative
                if ran_on:
                    return
        finally:
            stream.close()  # stops the decoding of a text that ran on


class FusionModel(FlareOnly):
    """FLARE ranks; the fusion narrator writes about the item from the soft tokens of the
    history's and the item's collaborative-filtering and content vectors (item ids and the
    history's reviews, no critique: a typed critique steers the ranking, not the text), token by
    token."""

    def __init__(self, ranker, fusion):
        super().__init__(ranker)
        self.fusion = fusion
        self.kinds = list(fusion.kinds)

    def narrate(self, row: Mapping, item_id: str, kind: str) -> Iterator[str]:
        def generate(streamer):
            self.fusion.write([{**row, "target": {"item_id": item_id}}], kind, streamer=streamer)

        yield from stream_text(self.fusion.tokenizer, generate)


def load_flare(paths: Mapping[str, Path], device: str | None = None) -> Recommender:
    from regen_models.flare.ranking import FlareRanker

    return FlareOnly(FlareRanker.from_pretrained(paths["flare"], device=device))


def load_hybrid(paths: Mapping[str, Path], device: str | None = None) -> Recommender:
    from regen_models.hybrid import HybridSystem

    return Hybrid(HybridSystem.from_pretrained(paths["flare"], paths["narrator"], device=device))


def load_fusion(paths: Mapping[str, Path], device: str | None = None) -> Recommender:
    from regen_models.flare.ranking import FlareRanker
    from regen_models.fusion.narrator import FusionNarrator

    return FusionModel(
        FlareRanker.from_pretrained(paths["flare"], device=device),
        FusionNarrator.from_pretrained(paths["fusion"], device=device),
    )


def load_lumen(paths: Mapping[str, Path], device: str | None = None) -> Recommender:
    from regen_models.lumen.recommender import Lumen

    return LumenModel(Lumen.from_pretrained(paths["lumen"], device=device))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    about: str
    roles: tuple[str, ...]  # the checkpoints it needs
    load: Callable[[Mapping[str, Path], str | None], Recommender]  # (checkpoints, device)


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "Hybrid (FLARE + narrator)",
        "FLARE ranks the catalog; a LoRA-tuned narrator writes about its top item",
        ("flare", "narrator"),
        load_hybrid,
    ),
    ModelSpec(
        "LUMEN",
        "one LM that names the next item from its item vocabulary, then writes about it",
        ("lumen",),
        load_lumen,
    ),
    ModelSpec(
        "Fusion (FLARE + fusion narrator)",
        "FLARE ranks the catalog; the fusion narrator writes from soft tokens of CF and content "
        "vectors",
        ("flare", "fusion"),
        load_fusion,
    ),
    ModelSpec("FLARE", "FLARE's ranking alone, no narrative", ("flare",), load_flare),
)

# Where `make demo` (training/demo.py) leaves each role's checkpoint, per domain; the first
# folder that holds a config.json (or an adapter_config.json) wins.
DEMO_LAYOUT: dict[str, tuple[str, ...]] = {
    "flare": ("checkpoints/flare-{domain}",),
    "narrator": ("checkpoints/narrator-{domain}",),
    "lumen": ("checkpoints/lumen-{domain}", "lumen-{domain}"),
    "fusion": ("checkpoints/fusion-{domain}", "fusion-{domain}"),
}
CHECKPOINT_FILES = ("config.json", "adapter_config.json")


def is_checkpoint(folder: Path) -> bool:
    return any((folder / name).is_file() for name in CHECKPOINT_FILES)


def discover(demo_dir: str | os.PathLike) -> dict[str, dict[str, Path]]:
    """domain -> role -> checkpoint folder, for every checkpoint of the demo layout present."""
    root = Path(demo_dir)
    found: dict[str, dict[str, Path]] = {}
    for domain in DOMAINS:
        for role, patterns in DEMO_LAYOUT.items():
            for pattern in patterns:
                folder = root / pattern.format(domain=domain)
                if is_checkpoint(folder):
                    found.setdefault(domain, {})[role] = folder
                    break
    return found


@dataclass
class Entry:
    spec: ModelSpec
    domain: str
    paths: dict[str, Path]

    @property
    def label(self) -> str:
        return self.spec.name


@dataclass
class Registry:
    entries: list[Entry]
    notes: list[str] = field(default_factory=list)  # the models left out, and why
    device: str | None = None  # where the models run (None: the CPU)
    _loaded: dict[tuple[str, str], Recommender] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def build(
        cls,
        checkpoints: Mapping[str, Mapping[str, Path]],
        models: tuple[ModelSpec, ...] = MODELS,
        domains: tuple[str, ...] = DOMAINS,
        device: str | None = None,
    ) -> Registry:
        entries, notes = [], []
        for domain in domains:
            have = checkpoints.get(domain, {})
            for spec in models:
                missing = [role for role in spec.roles if role not in have]
                if missing:
                    notes.append(
                        f"{spec.name} ({domain}): left out, no {' or '.join(missing)} checkpoint"
                    )
                else:
                    entries.append(Entry(spec, domain, {r: Path(have[r]) for r in spec.roles}))
        return cls(entries, notes, device)

    def names(self, domain: str) -> list[str]:
        return [entry.label for entry in self.entries if entry.domain == domain]

    def domains(self) -> list[str]:
        return list(dict.fromkeys(entry.domain for entry in self.entries))

    def entry(self, domain: str, name: str) -> Entry:
        for entry in self.entries:
            if entry.domain == domain and entry.label == name:
                return entry
        offered = ", ".join(self.names(domain)) or "none"
        raise UnknownModelError(f"no model {name!r} for {domain} (this Space offers: {offered})")

    def model(self, domain: str, name: str) -> Recommender:
        """The loaded model (loaded once, on first use; a failed load is retried next time)."""
        entry = self.entry(domain, name)
        key = (domain, name)
        with self._lock:
            if key not in self._loaded:
                for role, path in entry.paths.items():
                    if not is_checkpoint(path):
                        raise FileNotFoundError(
                            f"the {role} checkpoint of {name} is missing: "
                            f"{Path(path).name} holds no "
                            f"{' or '.join(CHECKPOINT_FILES)}"
                        )
                model = entry.spec.load(entry.paths, self.device)
                if model.category != domain:
                    raise ValueError(
                        f"{name}: the checkpoint ranks the {model.category} catalog, not {domain}"
                    )
                self._loaded[key] = model
            return self._loaded[key]
