import shutil

import numpy as np
import pytest
import yaml

from regen_dataset.export import build_folder
from regen_models import items as items_module
from regen_models.items import (
    ItemVocabulary,
    UnknownItemError,
    VocabularyMismatchError,
    content_cache_path,
    content_token_vectors,
    content_vectors,
)
from tests.conftest import SAMPLES, WordCountEncoder


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("built") / "regen"
    sources = {c: [str(SAMPLES / f"{c}_synthetic.jsonl")] for c in ("office", "clothing")}
    build_folder(sources, out, progress=False)
    return out


def _without_catalogs(folder, tmp_path):
    """The same folder as one built before catalog configs existed."""
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    card = (old / "README.md").read_text()
    _, header, body = card.split("---\n", 2)
    meta = yaml.safe_load(header)
    meta["configs"] = [c for c in meta["configs"] if not c["config_name"].endswith("_items")]
    meta["dataset_info"] = [
        c for c in meta["dataset_info"] if not c["config_name"].endswith("_items")
    ]
    (old / "README.md").write_text("---\n" + yaml.safe_dump(meta) + "---\n" + body)
    for config in ("office_items", "clothing_items"):
        shutil.rmtree(old / "data" / config)
    return old


def test_vocabulary_is_every_item_of_the_split_rows_sorted(folder, tmp_path):
    import datasets

    vocabulary = ItemVocabulary.from_dataset(folder, "office_no_critique")
    rows = datasets.load_dataset(str(folder), "office")
    seen = {
        item["item_id"]
        for split in rows.values()
        for row in split
        for item in row["history"] + [row["target"]]
    }
    assert vocabulary.category == "office" and set(vocabulary.item_ids) == seen
    assert vocabulary.item_ids == sorted(seen)
    assert vocabulary.indices([vocabulary.item_ids[5], vocabulary.item_ids[0]]).tolist() == [5, 0]
    # A folder without catalog configs gives the same vocabulary from its split rows.
    old = ItemVocabulary.from_dataset(_without_catalogs(folder, tmp_path), "office")
    assert old.item_ids == vocabulary.item_ids
    assert old.table.equals(vocabulary.table)


def test_unknown_item_names_the_item_and_where(folder):
    vocabulary = ItemVocabulary.from_dataset(folder, "office")
    with pytest.raises(
        UnknownItemError, match=r"'B0NOPE' \(user U1, history\) is not in the office"
    ):
        vocabulary.indices(["B0NOPE"], where="user U1, history")


def test_save_load_round_trip(folder, tmp_path):
    vocabulary = ItemVocabulary.from_dataset(folder, "clothing")
    vocabulary.save(tmp_path)
    loaded = ItemVocabulary.load(tmp_path)
    assert loaded.category == "clothing" and loaded.table.equals(vocabulary.table)
    assert loaded.ids_fingerprint == vocabulary.ids_fingerprint
    with pytest.raises(FileNotFoundError, match="no item vocabulary"):
        ItemVocabulary.load(tmp_path / "elsewhere")


def test_an_interrupted_save_leaves_the_previous_file(folder, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    from regen_models import vocabulary_io

    clothing, office = (ItemVocabulary.from_dataset(folder, c) for c in ("clothing", "office"))
    clothing.save(tmp_path)
    write_table = pq.write_table

    def interrupted(table, where, **kwargs):
        write_table(table.slice(0, 1), where, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(vocabulary_io.pq, "write_table", interrupted)
    # The full vocabulary and the one a checkpoint's shipped code reads save the same way.
    for vocabulary in (office, vocabulary_io.StoredItemVocabulary(office.category, office.table)):
        with pytest.raises(KeyboardInterrupt):
            vocabulary.save(tmp_path)
        assert ItemVocabulary.load(tmp_path).category == "clothing"
        assert [path.name for path in tmp_path.iterdir()] == ["item_vocabulary.parquet"]


def test_mismatch_is_a_clear_error(folder):
    office = ItemVocabulary.from_dataset(folder, "office")
    clothing = ItemVocabulary.from_dataset(folder, "clothing")
    office.check_matches(
        ItemVocabulary.from_dataset(folder, "office_no_critique"),
        mine="checkpoint",
        theirs="dataset",
    )
    with pytest.raises(VocabularyMismatchError, match="office with 93 items against clothing"):
        office.check_matches(clothing, mine="checkpoint", theirs="dataset")
    fewer = ItemVocabulary("office", office.table.slice(1))
    with pytest.raises(VocabularyMismatchError, match="first difference is at id 0"):
        office.check_matches(fewer, mine="checkpoint", theirs="dataset")


def test_content_vectors_are_cached_per_encoder_and_catalog(folder, tmp_path, monkeypatch):
    monkeypatch.setenv("REGEN_CACHE", str(tmp_path / "cache"))
    vocabulary = ItemVocabulary.from_dataset(folder, "office")
    encoder = WordCountEncoder()
    vectors = content_vectors(vocabulary, "test-encoder", encoder_model=encoder, progress=False)
    assert vectors.shape == (len(vocabulary), 3, 64) and vectors.dtype == np.float32
    norms = np.linalg.norm(vectors, axis=2)
    assert np.allclose(norms[norms > 0], 1.0, atol=1e-5)
    encoded = encoder.texts
    assert 2 * len(vocabulary) <= encoded <= 3 * len(vocabulary)  # empty texts are not encoded
    again = content_vectors(vocabulary, "test-encoder", encoder_model=encoder, progress=False)
    assert encoder.texts == encoded and np.array_equal(again, vectors)  # from the cache
    other_encoder = content_cache_path(vocabulary, "another/encoder")
    other_catalog = content_cache_path(
        ItemVocabulary.from_dataset(folder, "clothing"), "test-encoder"
    )
    assert len({content_cache_path(vocabulary, "test-encoder"), other_encoder, other_catalog}) == 3
    # A changed item text changes the key: vectors never describe stale texts.
    assert vocabulary.texts("categories")[0].startswith("Office Products > ")
    texts = vocabulary.table.column("title").to_pylist()
    texts[0] = texts[0] + " (new edition)"
    changed = ItemVocabulary(
        "office", vocabulary.table.set_column(1, "title", items_module.pa.array(texts))
    )
    assert content_cache_path(changed, "test-encoder") != content_cache_path(
        vocabulary, "test-encoder"
    )


def test_a_local_encoder_folder_keys_the_cache_by_its_files_and_full_path(tmp_path, monkeypatch):
    """A local encoder retrained in place, or the same relative path seen from another folder,
    must not read the vectors of the encoder that was there before."""
    import os

    from regen_models.items import encoder_cache_slug

    for where in ("a", "b"):
        (tmp_path / where / "encoder").mkdir(parents=True)
        (tmp_path / where / "encoder" / "model.safetensors").write_bytes(b"weights")
    monkeypatch.chdir(tmp_path / "a")
    first = encoder_cache_slug("encoder")
    assert first.startswith("encoder-") and encoder_cache_slug("encoder") == first
    weights = tmp_path / "a" / "encoder" / "model.safetensors"
    weights.write_bytes(b"retrained")
    os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    assert encoder_cache_slug("encoder") != first
    monkeypatch.chdir(tmp_path / "b")
    assert encoder_cache_slug("encoder") not in {first, encoder_cache_slug(str(weights.parent))}
    assert encoder_cache_slug("org/encoder") == encoder_cache_slug("org/encoder")  # a Hub id


def test_content_token_vectors_pool_to_the_content_vectors(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("REGEN_CACHE", str(tmp_path / "cache"))
    vocabulary = ItemVocabulary.from_dataset(folder, "office")
    encoder = WordCountEncoder()
    tokens = content_token_vectors(vocabulary, "test-encoder", tokens=64, encoder_model=encoder)
    assert tokens.shape == (len(vocabulary), 3, 64, 64) and tokens.dtype == np.float16
    calls = encoder.calls
    again = content_token_vectors(vocabulary, "test-encoder", tokens=64, encoder_model=encoder)
    assert encoder.calls == calls and np.array_equal(again, tokens)  # from the cache
    fields = ("title", "categories", "description")
    words = np.array(
        [[len(vocabulary.texts(f)[i].split()) for f in fields] for i in range(len(vocabulary))]
    )
    longer = int((words > 64).sum())
    assert (
        0 < longer and f"{longer:,} item texts are longer than 64 tokens" in capsys.readouterr().out
    )
    # Where a text fits, its normalised token mean is its pooled vector.
    pooled = content_vectors(vocabulary, "test-encoder", encoder_model=encoder, progress=False)
    tokens = tokens.astype(np.float32)
    present = np.abs(tokens).sum(-1, keepdims=True) > 0
    means = (tokens * present).sum(2) / np.maximum(present.sum(2), 1)
    means /= np.maximum(np.linalg.norm(means, axis=-1, keepdims=True), 1e-12)
    fits = (words <= 64) & (words > 0)
    assert fits.sum() > len(vocabulary) and np.allclose(means[fits], pooled[fits], atol=1e-3)
    assert not tokens[words == 0].any()  # an empty text has no token at all
    assert (present[..., 0].sum(-1) == np.minimum(words, 64)).all()  # the first 64 are kept
    with pytest.raises(ValueError, match="tokens must be at least 1"):
        content_token_vectors(vocabulary, "test-encoder", tokens=0, encoder_model=encoder)


def test_empty_texts_get_zero_vectors():
    from regen_models.items import encode_texts

    vectors = encode_texts(["red pen", "", "blue pen"], WordCountEncoder())
    assert vectors.shape == (3, 64) and not vectors[1].any() and vectors[0].any()
