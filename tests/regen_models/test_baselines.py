import datasets
import numpy as np
import pyarrow as pa
import pytest

from regen_dataset.export import build_folder
from regen_models import baselines
from tests.conftest import WordCountEncoder, user, write_lines


def _brute_force(queries, pool, own, allowed=None):
    """The neighbour search as it was: the whole [queries, pool] matrix, then argmax."""
    similarity = queries @ pool.T
    rows = np.flatnonzero(own >= 0)
    similarity[rows, own[rows]] = -np.inf
    if allowed is not None:
        similarity = np.where(allowed[None, :], similarity, -np.inf)
    return similarity.argmax(axis=1)


@pytest.mark.parametrize("block", [1, 3, 7, 64, 4096])
def test_blockwise_neighbours_equal_the_full_matrix(block):
    rng = np.random.default_rng(0)
    queries = rng.standard_normal((50, 16)).astype(np.float32)
    pool = np.concatenate([queries[:30], rng.standard_normal((23, 16)).astype(np.float32)])
    own = np.array([row if row < 30 else -1 for row in range(50)])
    expected = _brute_force(queries, pool, own)
    assert np.array_equal(baselines.nearest_neighbours(queries, pool, own, block=block), expected)
    assert not np.any(expected[:30] == np.arange(30))  # never the user themselves
    # One mask per narrative kind, two of them alike: each equals its own full-matrix search.
    allowed = rng.random((3, len(pool))) > 0.3
    allowed[2] = allowed[0]
    found = baselines.nearest_neighbours(queries, pool, own, allowed, block=block)
    for mask, neighbours in zip(allowed, found, strict=True):
        assert np.array_equal(neighbours, _brute_force(queries, pool, own, mask))
        assert mask[neighbours].all()


def test_a_query_with_no_one_else_to_borrow_from_is_an_error():
    vectors = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match="query row 1 has no allowed pool row other than itself"):
        baselines.nearest_neighbours(
            vectors, vectors, np.arange(3), np.array([False, True, False]), block=2
        )


@pytest.mark.parametrize("block", [1, 2, 5, 4096])
def test_ties_go_to_the_first_pool_row_as_with_the_full_matrix(block):
    # Small integers: every dot product is exact, so the ties are real ties.
    pool = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [1, 0]], dtype=np.float32)
    queries = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    own = np.array([0, -1, 4])
    expected = _brute_force(queries, pool, own)
    assert expected.tolist() == [2, 1, 0]
    assert baselines.nearest_neighbours(queries, pool, own, block=block).tolist() == [2, 1, 0]


@pytest.fixture(scope="module")
def test_split(tmp_path_factory):
    root = tmp_path_factory.mktemp("baselines")
    lines = [user(f"U{i}", 3 + i % 4) for i in range(9)]
    for i, line in enumerate(lines):
        line["user"]["profile"] = f"profile of U{i}"
        for j, entry in enumerate(line["purchase_history"]):
            entry["item"]["title"] = f"title {(i + j) % 5} word{j}"
    lines[5]["user"]["profile"] = None  # a user without reference is never borrowed from
    build_folder({"office": [str(write_lines(root / "office.jsonl", lines))]}, root / "regen")
    return datasets.load_dataset(str(root / "regen"), "office", split="test")


def test_user_vectors_are_the_mean_title_embedding_in_any_block_size(test_split):
    encoder = WordCountEncoder()
    means = []
    for history in test_split["history"]:
        vectors = encoder.encode([item["title"] for item in history])
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        means.append(vectors.mean(axis=0))
    expected = np.stack(means) / np.linalg.norm(means, axis=1, keepdims=True)
    table = test_split.data.table
    # Two chunks, the second a slice whose list offsets do not start at 0.
    chunked = datasets.Dataset(pa.concat_tables([table.slice(0, 2), table.slice(2)]))
    assert chunked.data.table.column("history").num_chunks == 2
    for split in (test_split, chunked):
        for block in (1, 2, 4096):
            vectors = baselines.user_vectors(split, encoder, block=block)
            np.testing.assert_allclose(vectors, expected, rtol=1e-5, atol=1e-6)


def test_neighbour_narratives_skip_missing_references_and_the_user(test_split):
    small = baselines.nearest_neighbour_narratives(
        test_split, test_split, ["user_profile"], WordCountEncoder(), block=2
    )
    large = baselines.nearest_neighbour_narratives(
        test_split, test_split, ["user_profile"], WordCountEncoder()
    )
    assert small == large
    profiles = small["user_profile"]
    u5 = list(test_split["user_id"]).index("U5")
    assert test_split["narratives"][u5]["user_profile"] is None
    assert None not in profiles and "profile of U5" not in profiles
    for user_id, profile in zip(test_split["user_id"], profiles, strict=True):
        assert profile != f"profile of {user_id}"


def test_the_note_says_when_test_users_references_are_borrowed(test_split):
    assert baselines.narrative_kinds(test_split) >= {"user_profile", "purchase_reason"}
    assert "other test user" in baselines.neighbour_note("test", "test")
    assert "labels of the evaluated split" in baselines.neighbour_note("test", "test")
    assert "labels" not in baselines.neighbour_note("train", "test")
