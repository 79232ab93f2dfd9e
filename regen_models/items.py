"""The item vocabulary of a REGEN category, and the cached content vectors of its items.

Every model of this project scores or embeds items by an integer id. `ItemVocabulary` fixes that
id: the catalog of the category (the `office_items` / `clothing_items` config, or, for folders
built before catalogs existed, every item of the split rows), sorted by item id. A checkpoint
saves its vocabulary beside its weights, and prediction checks it against the dataset, so that a
model never scores shifted ids.

Content vectors are sentence embeddings of each item's text by a frozen encoder
(all-MiniLM-L6-v2, offline, by default; any sentence-transformers id or path). They are computed
once per (encoder, catalog) and cached under `$REGEN_CACHE/content/`. `content_token_vectors`
keeps the encoder's token vectors instead of their pooled mean, for models that read an item's
text token by token (FLARE's Perceiver with `content_tokens`); they take about
`items x fields x tokens x dim x 2` bytes, fine for MovieLens, not for a catalog of 376,847 items.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from regen_dataset.catalog import CatalogCollector
from regen_dataset.files import atomic_path
from regen_dataset.schema import ITEM_FEATURES, ITEMS_SPLIT, config_category, items_config
from regen_models import vocabulary_io
from regen_models.base import cache_dir
from regen_models.vocabulary_io import VOCABULARY_FILE, VocabularyMismatchError  # noqa: F401

DEFAULT_ENCODER = "all-MiniLM-L6-v2"
CONTENT_FIELDS = ("title", "categories", "description")


class UnknownItemError(KeyError, ValueError):
    """An item id that the vocabulary does not hold (bad input: a `ValueError` too, which the
    `regen` command reports in one line)."""

    def __str__(self) -> str:  # KeyError would print the repr of its message
        return str(self.args[0])


@dataclass
class ItemVocabulary:
    """Items of one category in a fixed order (sorted by item id); index = item id number."""

    category: str
    table: pa.Table  # schema ITEM_FEATURES
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self):
        self.table = self.table.cast(ITEM_FEATURES.arrow_schema)
        ids = self.table.column("item_id").to_pylist()
        if ids != sorted(ids) or len(set(ids)) != len(ids):
            raise ValueError("an item vocabulary needs unique item ids in sorted order")
        self._index = {item_id: index for index, item_id in enumerate(ids)}

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def from_dataset(cls, dataset_name: str | os.PathLike, config: str) -> ItemVocabulary:
        """The catalog of `config`'s category in a built folder or Hub dataset."""
        import datasets

        category = config_category(config)
        name = os.fspath(dataset_name)
        if items_config(category) not in datasets.get_dataset_config_names(name):
            # A folder built before catalog configs existed.
            return cls.from_split_rows(category, datasets.load_dataset(name, config).values())
        items = datasets.load_dataset(name, items_config(category), split=ITEMS_SPLIT)
        return cls(category, items.with_format("arrow")[:])

    @classmethod
    def from_split_rows(cls, category: str, splits: Iterable) -> ItemVocabulary:
        """Every item of the history and target of the given split rows (`datasets` splits)."""
        collector = CatalogCollector()
        for split in splits:
            for batch in split.with_format("arrow").iter(batch_size=4096):
                for record_batch in batch.to_batches():
                    collector.add(record_batch)
        return cls(category, collector.table())

    # -- lookups -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return self.table.num_rows

    def __contains__(self, item_id: str) -> bool:
        return item_id in self._index

    @property
    def item_ids(self) -> list[str]:
        return self.table.column("item_id").to_pylist()

    def index(self, item_id: str, where: str = "") -> int:
        try:
            return self._index[item_id]
        except KeyError:
            place = f" ({where})" if where else ""
            raise UnknownItemError(
                f"item {item_id!r}{place} is not in the {self.category} item vocabulary "
                f"of {len(self):,} items"
            ) from None

    def indices(self, item_ids: Sequence[str], where: str = "") -> np.ndarray:
        return np.fromiter(
            (self.index(item_id, where) for item_id in item_ids),
            dtype=np.int64,
            count=len(item_ids),
        )

    def texts(self, field: str) -> list[str]:
        """One text per item for a content field: `title`, `categories` or `description`."""
        if field not in CONTENT_FIELDS:
            raise ValueError(f"unknown content field {field!r}; expected one of {CONTENT_FIELDS}")
        values = self.table.column(field).to_pylist()
        if field == "categories":
            return [" > ".join(path or []) for path in values]
        return [(value or "").strip() for value in values]

    # -- identity ----------------------------------------------------------------------------

    @property
    def ids_fingerprint(self) -> str:
        """Changes whenever an id changes place: what a trained model depends on."""
        digest = hashlib.sha256()
        for item_id in self.item_ids:
            digest.update(item_id.encode())
            digest.update(b"\0")
        return digest.hexdigest()[:16]

    @property
    def content_fingerprint(self) -> str:
        """Changes whenever an id or an item's text changes: what content vectors depend on."""
        digest = hashlib.sha256(self.ids_fingerprint.encode())
        for field_name in CONTENT_FIELDS:
            for text in self.texts(field_name):
                digest.update(text.encode())
                digest.update(b"\0")
        return digest.hexdigest()[:16]

    def check_matches(self, other: ItemVocabulary, *, mine: str, theirs: str) -> None:
        """Raise `VocabularyMismatchError` unless `other` numbers the same items the same way."""
        if self.category == other.category and self.ids_fingerprint == other.ids_fingerprint:
            return
        ours, their_ids = self.item_ids, other.item_ids
        first = next(
            (i for i, (a, b) in enumerate(zip(ours, their_ids, strict=False)) if a != b),
            min(len(ours), len(their_ids)),
        )
        detail = (
            f"the first difference is at id {first}: "
            f"{_at(ours, first)} in the {mine}, {_at(their_ids, first)} in the {theirs}"
        )
        raise VocabularyMismatchError(
            f"the {mine} was trained on another item vocabulary than the {theirs}'s: "
            f"{self.category} with {len(ours):,} items against {other.category} with "
            f"{len(their_ids):,}; {detail}. Predict on the dataset (and config) the model was "
            "trained on, or train a model on this one."
        )

    # -- persistence -------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike) -> Path:
        return vocabulary_io.write_vocabulary_file(directory, self.category, self.table)

    @classmethod
    def load(cls, directory: str | os.PathLike) -> ItemVocabulary:
        return cls(*vocabulary_io.read_vocabulary_file(directory))


def catalog_item_ids(dataset_name: str | os.PathLike, config: str) -> list[str]:
    """Sorted item ids of the catalog of `config`'s category (`office_no_critique` -> office)."""
    return ItemVocabulary.from_dataset(dataset_name, config).item_ids


def split_item_ids(split) -> pa.ChunkedArray:
    """Item ids of every interaction of a split's rows (history and target), with repeats."""
    table = split.with_format("arrow")[:]
    history_ids = pc.struct_field(pc.list_flatten(table.column("history")), "item_id")
    target_ids = pc.struct_field(table.column("target"), "item_id")
    return pa.chunked_array(history_ids.chunks + target_ids.chunks, type=pa.string())


def _at(ids: list[str], index: int) -> str:
    return repr(ids[index]) if index < len(ids) else "nothing"


def content_vectors(
    vocabulary: ItemVocabulary,
    encoder: str | None = None,
    *,
    fields: Sequence[str] = CONTENT_FIELDS,
    batch_size: int = 256,
    progress: bool = True,
    encoder_model=None,
) -> np.ndarray:
    """float32 [items, fields, dim] unit-norm embeddings of each item's texts, cached on disk.

    An empty text (an item without a description, say) gets a zero vector, so that a model can
    tell it is missing. `encoder` names the sentence-transformers model (None: the offline
    all-MiniLM-L6-v2); `encoder_model` passes one already loaded under that name.
    """
    name = encoder or DEFAULT_ENCODER

    def compute(encoder_model):
        per_field = [
            encode_texts(vocabulary.texts(f), encoder_model, batch_size, progress, f"{name}: {f}")
            for f in fields
        ]
        return np.stack(per_field, axis=1)

    path = content_cache_path(vocabulary, name, fields)
    return cached_array(path, (len(vocabulary), len(fields)), compute, encoder, encoder_model)


def content_token_vectors(
    vocabulary: ItemVocabulary,
    encoder: str | None = None,
    *,
    tokens: int,
    fields: Sequence[str] = CONTENT_FIELDS,
    batch_size: int = 256,
    progress: bool = True,
    encoder_model=None,
) -> np.ndarray:
    """float16 [items, fields, tokens, dim]: the encoder's token vectors of each item's texts
    (its special tokens included, the first `tokens` of a longer text), cached on disk.

    Zero vectors pad a short text and fill an empty one. The vectors are divided by the median
    norm of the catalog's token vectors, one number, so that a typical token has norm 1 while the
    normalised mean of a text's tokens stays the encoder's pooled vector (for a mean-pooling
    encoder such as all-MiniLM-L6-v2, where the text fits in `tokens`).
    """
    if tokens < 1:
        raise ValueError(f"tokens must be at least 1, got {tokens}")
    name = encoder or DEFAULT_ENCODER

    def compute(encoder_model):
        per_field = [
            encode_token_texts(
                vocabulary.texts(f), encoder_model, tokens, batch_size, progress, f"{name}: {f}"
            )
            for f in fields
        ]
        truncated = sum(count for _, count in per_field)
        if truncated:
            print(
                f"{truncated:,} item texts are longer than {tokens} tokens; the content token "
                "vectors keep their first tokens"
            )
        vectors = np.stack([field_vectors for field_vectors, _ in per_field], axis=1)
        norms = np.linalg.norm(vectors, axis=-1)
        scale = float(np.median(norms[norms > 0])) if (norms > 0).any() else 1.0
        return (vectors / scale).astype(np.float16)

    path = content_cache_path(vocabulary, name, fields, tokens=tokens)
    shape = (len(vocabulary), len(fields), tokens)
    return cached_array(path, shape, compute, encoder, encoder_model)


def cached_array(path: Path, shape: tuple[int, ...], compute, encoder, encoder_model) -> np.ndarray:
    """The array at `path` if its leading dimensions are `shape`, else `compute(encoder_model)`
    (the encoder loaded by name if none is given), written there atomically."""
    if path.exists():
        vectors = np.load(path)
        if vectors.shape[: len(shape)] == shape:
            return vectors
    if encoder_model is None:
        encoder_model = load_encoder(encoder)
    vectors = compute(encoder_model)
    with atomic_path(path) as partial:
        with open(partial, "wb") as handle:
            np.save(handle, vectors)
    return vectors


def load_encoder(encoder: str | None = None):
    """The sentence encoder by name (None: the offline all-MiniLM-L6-v2 package)."""
    from regen_models.metrics import load_encoder as load_sentence_encoder

    return load_sentence_encoder(encoder)


def encode_texts(
    texts: Sequence[str],
    encoder_model,
    batch_size: int = 256,
    progress: bool = False,
    description: str = "encoding",
) -> np.ndarray:
    """float32 [texts, dim] unit-norm embeddings; empty texts get zero vectors."""
    from tqdm.auto import tqdm

    present = [index for index, text in enumerate(texts) if text]
    chunks = []
    for start in tqdm(
        range(0, len(present), batch_size), disable=not progress, desc=description, unit="batch"
    ):
        batch = [texts[index] for index in present[start : start + batch_size]]
        chunks.append(
            np.asarray(
                encoder_model.encode(batch, batch_size=batch_size, convert_to_numpy=True),
                dtype=np.float32,
            )
        )
    dim = chunks[0].shape[1] if chunks else embedding_dimension(encoder_model)
    vectors = np.zeros((len(texts), dim), dtype=np.float32)
    if chunks:
        encoded = np.concatenate(chunks)
        encoded /= np.maximum(np.linalg.norm(encoded, axis=1, keepdims=True), 1e-12)
        vectors[present] = encoded
    return vectors


def encode_token_texts(
    texts: Sequence[str],
    encoder_model,
    tokens: int,
    batch_size: int = 256,
    progress: bool = False,
    description: str = "encoding",
) -> tuple[np.ndarray, int]:
    """(float32 [texts, tokens, dim] token vectors, zero-padded, zero for an empty text; how many
    texts had more than `tokens` tokens and were cut)."""
    from tqdm.auto import tqdm

    present = [index for index, text in enumerate(texts) if text]
    vectors = None
    truncated = 0
    for start in tqdm(
        range(0, len(present), batch_size), disable=not progress, desc=description, unit="batch"
    ):
        indices = present[start : start + batch_size]
        encoded = encoder_model.encode(
            [texts[index] for index in indices],
            batch_size=batch_size,
            output_value="token_embeddings",
        )
        for index, token_vectors in zip(indices, encoded, strict=True):
            if hasattr(token_vectors, "cpu"):  # sentence-transformers returns torch tensors
                token_vectors = token_vectors.float().cpu().numpy()
            token_vectors = np.asarray(token_vectors, dtype=np.float32)
            if vectors is None:
                vectors = np.zeros((len(texts), tokens, token_vectors.shape[1]), np.float32)
            truncated += len(token_vectors) > tokens
            kept = token_vectors[:tokens]
            vectors[index, : len(kept)] = kept
    if vectors is None:
        vectors = np.zeros((len(texts), tokens, embedding_dimension(encoder_model)), np.float32)
    return vectors, truncated


def embedding_dimension(encoder_model) -> int:
    """The size of a sentence encoder's vectors (sentence-transformers renamed the getter in 5.x;
    an encoder that reports none is asked for one vector)."""
    for name in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
        getter = getattr(encoder_model, name, None)
        if getter is not None and getter():
            return int(getter())
    return int(np.asarray(encoder_model.encode(["x"], convert_to_numpy=True)).shape[1])


def content_cache_path(
    vocabulary: ItemVocabulary,
    encoder: str,
    fields: Sequence[str] = CONTENT_FIELDS,
    *,
    tokens: int | None = None,
) -> Path:
    """Where the vectors of (catalog, encoder, fields) are cached; `tokens` for token vectors."""
    slug = encoder_cache_slug(encoder)
    kind = "" if tokens is None else f"-tokens{tokens}"
    name = f"{vocabulary.category}-{vocabulary.content_fingerprint}-{'-'.join(fields)}{kind}.npy"
    return cache_dir() / "content" / slug / name


def encoder_cache_slug(encoder: str) -> str:
    """A cache folder name for a sentence encoder: readable, and unique to what the name stands
    for. A local folder counts by its full path and the times its files were written, so that
    an encoder retrained in place, or the same relative path seen from elsewhere, reads no
    stale vectors; a Hub id by itself."""
    identity = encoder
    folder = Path(encoder).expanduser()
    if folder.is_dir():
        written = max((f.stat().st_mtime_ns for f in folder.rglob("*") if f.is_file()), default=0)
        identity = f"{folder.resolve()}@{written}"
    digest = hashlib.blake2b(identity.encode(), digest_size=6).hexdigest()
    readable = re.sub(r"[^A-Za-z0-9._-]+", "--", encoder.strip("/"))[-60:]
    return f"{readable}-{digest}"


class ItemVocabularyMixin(vocabulary_io.ItemVocabularyMixin):
    """`vocabulary_io.ItemVocabularyMixin` that loads the full `ItemVocabulary` (prediction checks
    it against the dataset's)."""

    item_vocabulary: ItemVocabulary | None = None
    vocabulary_class = ItemVocabulary
