"""The fusion narrator with a tiny random Gemma 3: WALS factors and fold-in (against `implicit`'s
own solver), the normalisation and concatenation, the two adapters and the CF / content split of
the linear one, padding, the round trip through save_pretrained / AutoModel, decoding, and the
errors for bad input."""

import numpy as np
import pytest
import torch
from scipy import sparse
from transformers import AutoModel

from regen_models.fusion import FusionConfig, FusionForCausalLM, wals
from regen_models.fusion.data import FusionCollator, FusionEncoder, ReviewVectors, prompt_text
from regen_models.items import UnknownItemError
from regen_models.prompts import EmptyHistoryError
from tests.conftest import WordCountEncoder
from tests.regen_models.recording_streamer import RecordingStreamer
from tests.regen_models.test_flare import tiny_vocabulary
from tests.tiny_gemma import tiny_gemma, tiny_gemma2, tiny_tokenizer
from training.train_fusion import FusionModelArguments

NUM_ITEMS = 30


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def seq_row(user: str, items: list[int], narrative: str | None = "a reason") -> dict:
    entries = [{"item_id": f"I{i:03d}", "title": f"item number {i}"} for i in items]
    return {
        "user_id": user,
        "history": entries[:-1],
        "target": entries[-1],
        "narratives": {"purchase_reason": narrative, "user_summary_brief": None},
    }


def training_rows(users: int = 60, seed: int = 0) -> list[dict]:
    """Users who buy from one of three item groups (0-9, 10-19, 20-29), popular items first."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(users):
        group = user % 3
        items = rng.choice(10, size=5, replace=False, p=np.linspace(2, 0.2, 10) / 11)
        rows.append(seq_row(f"U{user}", [10 * group + int(i) for i in items]))
    return rows


# The fit's default regularization and alpha: the ones a model's config folds users in with.
SETTINGS = wals.WalsSettings(dim=8, iterations=10)


@pytest.fixture(scope="module")
def factors():
    rows = training_rows()
    matrix = wals.interaction_matrix(rows, tiny_vocabulary(NUM_ITEMS))
    return wals.fit_item_factors(matrix, SETTINGS), SETTINGS, matrix


def tiny_fusion(tokenizer, factors=None, seed=0, **config) -> FusionForCausalLM:
    """A fusion model on a tiny Gemma. Without `factors`, random CF vectors; with `user_token`,
    the user norm measured as training measures it, on `training_rows()`."""
    rng = np.random.default_rng(seed)
    cf = factors if factors is not None else rng.normal(size=(NUM_ITEMS, 8)).astype(np.float32)
    content = rng.normal(size=(NUM_ITEMS, 12)).astype(np.float32)
    content /= np.linalg.norm(content, axis=1, keepdims=True)
    if config.get("user_token") and config.get("signals", "both") != "content":
        sequences = [[int(i[1:]) for i in wals.sequence_item_ids(r)] for r in training_rows()]
        config.setdefault(
            "cf_user_norm",
            wals.mean_user_norm(cf, sequences, SETTINGS.regularization, SETTINGS.alpha),
        )
    model = FusionForCausalLM.from_base(
        tiny_gemma(tokenizer, seed),
        tokenizer,
        num_items=NUM_ITEMS,
        cf_factors=cf,
        content_vectors=content,
        **config,
    )
    model.attach_item_vocabulary(tiny_vocabulary(NUM_ITEMS))
    return model.eval()


# -- WALS ------------------------------------------------------------------------------------


def test_wals_factors_cluster_co_bought_items_and_zero_unseen_ones():
    # A milder confidence than the defaults: on 60 users the default fit overfits the rare items.
    matrix = wals.interaction_matrix(training_rows(), tiny_vocabulary(NUM_ITEMS))
    settings = wals.WalsSettings(dim=8, regularization=0.1, alpha=5.0, iterations=10)
    found = wals.fit_item_factors(matrix, settings)
    assert found.shape == (NUM_ITEMS, 8) and found.dtype == np.float32
    unit = found / np.linalg.norm(found, axis=1, keepdims=True)
    similarity = unit @ unit.T
    same = np.mean([similarity[i, j] for i in range(10) for j in range(10) if i != j])
    other = np.mean([similarity[i, j] for i in range(10) for j in range(10, 30)])
    assert same > other + 0.3, (same, other)
    # Popular items (bought more often) get longer vectors: what the normalisation keeps.
    norms = np.linalg.norm(found, axis=1)
    assert norms[0] > norms[9] and norms[10] > norms[19]
    # An item nobody bought in training is unknown to CF: zero, not random.
    matrix = wals.interaction_matrix(training_rows()[:3], tiny_vocabulary(NUM_ITEMS))
    sparse_fit = wals.fit_item_factors(matrix, wals.WalsSettings(dim=4, iterations=2))
    unseen = np.asarray(matrix.getnnz(axis=0)) == 0
    assert unseen.any() and not sparse_fit[unseen].any() and sparse_fit[~unseen].any()


def test_fold_in_is_the_als_user_step(factors):
    """Fails if the fold-in's system differs from the one ALS solves for a user (checked against
    `implicit`'s exact solver on the same item factors), e.g. with the confidence off by one."""
    from implicit.cpu.als import AlternatingLeastSquares

    found, settings, _ = factors
    reference = AlternatingLeastSquares(
        factors=8, regularization=settings.regularization, alpha=settings.alpha, use_cg=False
    )
    reference.item_factors = found
    new_user = [3, 3, 17, 22, 5]  # a user the fit never saw, with one item bought twice
    counts = sparse.csr_matrix(
        (np.array([2.0, 1, 1, 1]), np.array([3, 5, 17, 22]), np.array([0, 4])),
        shape=(1, NUM_ITEMS),
    )
    expected = reference.recalculate_user(0, counts)
    folded = wals.fold_in(
        torch.from_numpy(found),
        torch.tensor([[-1, -1, *new_user], [-1, -1, -1, -1, -1, -1, 7]]),
        settings.regularization,
        settings.alpha,
    )
    assert np.allclose(folded[0].numpy(), expected, atol=1e-4)
    assert folded.shape == (2, 8) and folded[1].norm() > 0
    with pytest.raises(ValueError, match="row 0 has no interaction"):
        wals.fold_in(torch.from_numpy(found), torch.tensor([[-1, -1]]), 0.1, 5.0)


def test_fold_in_solves_in_float64_on_the_cpu_and_returns_float32(factors, tokenizer):
    """The float64 systems are built and solved on the CPU (MPS has no float64), from the same
    numbers as a float64 computation of the whole thing: the result does not change."""
    found, settings, _ = factors
    table = torch.from_numpy(found)
    ids = torch.tensor([[-1, 3, 3, 17], [4, 5, 6, 7]])
    expected = []
    for row in ids:
        unique, counts = torch.unique(row[row >= 0], return_counts=True)
        y, c = table.double()[unique], settings.alpha * counts.double()
        system = table.double().T @ table.double() + settings.regularization * torch.eye(8)
        system = system + y.T @ ((c - 1)[:, None] * y)
        expected.append(torch.linalg.solve(system, y.T @ c))
    folded = wals.fold_in(table, ids, settings.regularization, settings.alpha)
    assert folded.dtype == torch.float32 and folded.device == table.device
    assert torch.allclose(folded, torch.stack(expected).float(), atol=1e-6)
    model = tiny_fusion(tokenizer, found, signals="cf")
    gram = wals.cached_gram(model, model.inputs.cf_factors)
    assert gram.dtype == torch.float64 and gram.device.type == "cpu"
    assert torch.allclose(gram, table.double().T @ table.double())


def test_item_factors_are_fitted_on_the_train_rows_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("REGEN_CACHE", str(tmp_path))
    vocabulary = tiny_vocabulary(NUM_ITEMS)
    settings = wals.WalsSettings(dim=4, iterations=3)
    rows = training_rows(12)
    first, path = wals.item_factors(rows, vocabulary, settings)
    assert path.exists() and path.is_relative_to(tmp_path / "wals")
    calls = []
    monkeypatch.setattr(wals, "fit_item_factors", lambda *a, **k: calls.append(a))
    again, same_path = wals.item_factors(rows, vocabulary, settings)
    assert same_path == path and np.array_equal(again, first) and not calls
    # Other training interactions are another fit, never the cached one.
    other, other_path = wals.item_factors(training_rows(13), vocabulary, settings)
    assert other_path != path and calls
    with pytest.raises(UnknownItemError, match="train split user X"):
        wals.item_factors([seq_row("X", [1, 99])], vocabulary, settings)


# -- fusion: normalisation, adapter, soft tokens ----------------------------------------------


def test_cf_vectors_are_divided_by_the_mean_item_norm(tokenizer, factors):
    found, _, _ = factors
    model = tiny_fusion(tokenizer, found, signals="both")
    assert model.config.cf_item_norm == pytest.approx(np.linalg.norm(found, axis=1).mean())
    fused = model.inputs.interactions(torch.arange(NUM_ITEMS), torch.float32)
    cf, content = fused[:, :8], fused[:, 8:]
    assert torch.allclose(cf, torch.from_numpy(found) / model.config.cf_item_norm)
    assert cf.norm(dim=-1).mean() == pytest.approx(1.0, abs=1e-5)  # one on average ...
    assert cf.norm(dim=-1).std() > 0.05  # ... but the popular items stay longer
    assert torch.allclose(content.norm(dim=-1), torch.ones(NUM_ITEMS), atol=1e-3)
    assert model.config.input_dim == 20


@pytest.mark.parametrize(
    ("signals", "width"), [("cf", 8), ("content", 12), ("both", 20)]
)  # fmt: skip
def test_signals_select_the_parts(tokenizer, signals, width):
    model = tiny_fusion(tokenizer, signals=signals)
    assert model.config.input_dim == width
    assert hasattr(model.inputs, "cf_factors") == (signals != "content")
    assert hasattr(model.inputs, "content_vectors") == (signals != "cf")
    vectors, mask = model.fused_vectors(torch.tensor([[-1, 2, 4]]))
    assert vectors.shape == (1, 3, width) and mask.tolist() == [[False, True, True]]


def test_no_user_token_by_default_and_the_prompt_says_what_the_vectors_are(tokenizer, factors):
    """The paper has one soft token per interaction: a user token is an option, off by default,
    and the prompt names the first vector as the shopper's only when there is one."""
    found, _, _ = factors
    assert FusionConfig().user_token is False
    assert FusionModelArguments().user_token is False
    items = torch.tensor([[-1, 2, 4, 6]])
    plain = tiny_fusion(tokenizer, found, signals="both")
    with_user = tiny_fusion(tokenizer, found, signals="both", user_token=True)
    tokens, mask = plain.soft_tokens(items)
    assert tokens.shape[1] == 5 and mask.sum() == 4  # BOS and three interactions
    tokens, mask = with_user.soft_tokens(items)
    assert tokens.shape[1] == 6 and mask.sum() == 5  # BOS, the user, three interactions
    vectors, _ = with_user.fused_vectors(items)
    folded = wals.fold_in(torch.from_numpy(found), items, SETTINGS.regularization, SETTINGS.alpha)
    assert torch.allclose(vectors[:, 0, :8], folded / with_user.config.cf_user_norm, atol=1e-5)
    texts = {}
    for model in (plain, with_user):
        encoder = FusionEncoder(
            tokenizer, model.item_vocabulary, user_token=model.config.user_token
        )
        example = encoder.training_example(seq_row("A", [2, 4, 6], "A reason."), "purchase_reason")
        batch = FusionCollator(tokenizer.pad_token_id)([example])
        assert float(model(**batch).loss.detach()) > 0
        texts[model.config.user_token] = tokenizer.decode(example["input_ids"])
    assert "a shopper's purchases" in texts[False] and "stands for a shopper" not in texts[False]
    assert "The first vector before this text stands for a shopper" in texts[True]
    assert prompt_text("purchase_reason") in texts[False]
    assert prompt_text("purchase_reason", user_token=True) in texts[True]


def test_config_folds_users_in_with_the_fits_settings_and_needs_the_user_norm(tokenizer):
    """Fails if the config's fold-in settings differ from the fit's defaults, or if a CF user
    token goes without the training users' norm (it fell back to 1.0)."""
    config = FusionConfig()
    defaults = wals.WalsSettings()
    assert (config.wals_regularization, config.wals_alpha) == (
        defaults.regularization,
        defaults.alpha,
    )
    arguments = FusionModelArguments()
    assert (arguments.wals_regularization, arguments.wals_alpha) == (
        defaults.regularization,
        defaults.alpha,
    )
    with pytest.raises(ValueError, match="a user token with CF signals needs cf_user_norm"):
        FusionConfig(user_token=True, signals="both")
    with pytest.raises(ValueError, match="needs cf_user_norm"):
        tiny_fusion(tokenizer, signals="cf", user_token=True, cf_user_norm=None)
    assert FusionConfig(user_token=True, signals="content").cf_user_norm is None
    with pytest.raises(ValueError, match="cf_user_norm must be positive, got 0"):
        FusionConfig(cf_user_norm=0)


def test_unknown_signals_or_adapter_are_clear_errors():
    with pytest.raises(ValueError, match="unknown signals 'ids': expected one of"):
        FusionConfig(signals="ids")
    with pytest.raises(ValueError, match="unknown adapter 'transformer'"):
        FusionConfig(adapter="transformer")


def test_linear_adapter_splits_into_cf_and_content_projections(tokenizer):
    model = tiny_fusion(tokenizer, signals="both", adapter="linear")
    assert len(model.adapter.layers) == 1
    items = torch.arange(NUM_ITEMS)
    cf, content = model.inputs.parts(items, torch.float32)
    layer = model.adapter.first_layer
    weight = layer.weight
    soft = model.adapter(torch.cat([cf, content], dim=-1))
    cf_part, content_part = cf @ weight[:, :8].T, content @ weight[:, 8:].T
    assert torch.allclose(soft, cf_part + content_part + layer.bias, atol=1e-5)
    cf_norm, content_norm = model.signal_norms(items)
    assert torch.allclose(cf_norm, cf_part.norm(dim=-1), atol=1e-5)
    assert torch.allclose(content_norm, content_part.norm(dim=-1), atol=1e-5)
    with pytest.raises(ValueError, match="signals 'both'"):
        tiny_fusion(tokenizer, signals="cf").signal_norms(items)


def test_mlp_adapter_and_soft_tokens_on_the_token_scale(tokenizer):
    model = tiny_fusion(tokenizer, signals="both", adapter="mlp", adapter_hidden_size=24)
    linears = [m for m in model.adapter.layers if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(20, 24), (24, 32)]
    tokens, mask = model.soft_tokens(torch.arange(NUM_ITEMS)[None])
    # BOS, then one per item; all on the scale of the LM's own embeddings.
    assert tokens.shape == (1, NUM_ITEMS + 1, 32) and bool(mask.all())
    words = model.get_input_embeddings()(torch.arange(100, 400))
    ratio = tokens[0, 1:].detach().norm(dim=-1).mean() / words.detach().norm(dim=-1).mean()
    assert 0.3 < float(ratio) < 3, float(ratio)
    bos = model.get_input_embeddings()(torch.tensor([tokenizer.bos_token_id]))
    assert torch.equal(tokens[0, 0], bos[0])


def test_a_padded_batch_reads_like_each_row_alone(tokenizer):
    """Fails if padding shifts the soft tokens or the positions (a row's logits would change
    with the other rows of its batch)."""
    model = tiny_fusion(tokenizer, signals="both", adapter="mlp")
    encoder = FusionEncoder(tokenizer, model.item_vocabulary)
    # Row B has fewer interactions and a longer prompt: pads before both of its blocks.
    examples = [
        encoder.generation_example(seq_row("A", [1, 2, 3, 4, 5]), "user_profile"),
        encoder.generation_example(seq_row("B", [7, 8]), "user_summary_long"),
    ]
    assert len(examples[0]["input_ids"]) < len(examples[1]["input_ids"])
    batch = FusionCollator(tokenizer.pad_token_id)(examples)
    together = model(**batch).logits[:, -1]
    for row, example in enumerate(examples):
        alone = model(**FusionCollator(tokenizer.pad_token_id)([example])).logits[:, -1]
        assert torch.allclose(together[row], alone[0], atol=1e-4)


def test_loss_is_on_the_completion_only_and_decoding_follows_it(tokenizer):
    model = tiny_fusion(tokenizer, signals="content")
    encoder = FusionEncoder(tokenizer, model.item_vocabulary)
    example = encoder.training_example(
        seq_row("A", [1, 2, 3], "Paper for the office."), "purchase_reason"
    )
    prompt = encoder.prompt_ids("purchase_reason")
    assert example["labels"][: len(prompt)] == [-100] * len(prompt)
    assert example["labels"][len(prompt) :] == example["input_ids"][len(prompt) :]
    assert example["item_ids"] == [1, 2, 3] and prompt[0] != tokenizer.bos_token_id
    batch = FusionCollator(tokenizer.pad_token_id)([example])
    loss = model(**batch).loss
    assert loss.requires_grad and float(loss.detach()) > 0
    # The logits at text position t predict token t + 1: the loss is the cross-entropy of the
    # completion tokens against the logits one position before each (fails if unshifted).
    logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits[0, :-1]
    targets = batch["labels"][0, 1:]
    scored = targets != -100
    expected = torch.nn.functional.cross_entropy(logits[scored].float(), targets[scored])
    assert float(loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-5)
    # Greedy decoding picks the argmax of the same logits the forward pass gives.
    generation = FusionCollator(tokenizer.pad_token_id)(
        [encoder.generation_example(seq_row("A", [1, 2, 3]), "purchase_reason")]
    )
    first = int(model(**generation).logits[0, -1].argmax())
    written = model.generate(
        generation["input_ids"], generation["item_ids"], generation["attention_mask"],
        stop_token_ids=[tokenizer.eos_token_id], max_new_tokens=4,
    )  # fmt: skip
    assert written[0][:1] == [first] or first == tokenizer.eos_token_id
    # A streamer sees the same tokens as they are chosen, and the end once; a batch is refused.
    streamer = RecordingStreamer()
    streamed = model.generate(
        generation["input_ids"], generation["item_ids"], generation["attention_mask"],
        stop_token_ids=[], max_new_tokens=4, streamer=streamer,
    )  # fmt: skip
    assert len(streamed[0]) == 4 and streamer.tokens == streamed[0] and streamer.ends == 1
    with pytest.raises(ValueError, match="one prompt, not a batch of 2"):
        model.generate(
            generation["input_ids"].repeat(2, 1), generation["item_ids"].repeat(2, 1),
            stop_token_ids=[], streamer=RecordingStreamer(),
        )  # fmt: skip


def test_older_purchases_cut_and_rows_without_a_reference_are_counted(tokenizer):
    """Fails if the oldest purchases beyond max_interactions are dropped without a count."""
    vocabulary = tiny_vocabulary(NUM_ITEMS)
    encoder = FusionEncoder(tokenizer, vocabulary, max_interactions=5)
    long = seq_row("L", list(range(12)), "A reason.")  # 11 purchases, then the target
    example = encoder.training_example(long, "purchase_reason")
    assert example["item_ids"] == [7, 8, 9, 10, 11]
    long["narratives"]["user_summary_brief"] = "A summary."
    encoder.training_example(long, "user_summary_brief")  # the same row, another kind
    assert encoder.training_example(seq_row("S", [1, 2, 3]), "user_summary_brief") is None
    encoder.training_example(seq_row("S", [1, 2, 3]), "purchase_reason")
    stats = encoder.stats
    assert (stats.histories_cut, stats.purchases_dropped) == (1, 7)  # once per row
    assert stats.examples == {"purchase_reason": 2, "user_summary_brief": 1}
    assert stats.missing_reference == {"user_summary_brief": 1}
    assert encoder.summary() == (
        "3 examples (purchase_reason 2, user_summary_brief 1); 1 histories cut to the newest "
        "4 purchases (7 oldest purchases dropped); 1 rows skipped without a reference "
        "narrative (user_summary_brief 1)"
    )


def reviewed_row(user: str, items: list[int], reviews: list[str | None]) -> dict:
    """`seq_row` whose interactions carry the given review texts (the last: the target's)."""
    row = seq_row(user, items, "A reason.")
    for entry, text in zip([*row["history"], row["target"]], reviews, strict=True):
        entry.update(review_title=None, review_text=text)
    return row


def test_history_reviews_are_read_once_each_and_the_targets_never(tokenizer):
    """Fails if an interaction's content omits the user's review (the paper embeds item
    metadata and review together), if the target's review (a label) is read, or if a text
    repeated across rows is encoded twice."""
    reviews = ReviewVectors(encoder_model=WordCountEncoder())
    encoder = FusionEncoder(tokenizer, tiny_vocabulary(NUM_ITEMS), 4, reviews=reviews)
    rows = [
        reviewed_row("A", [1, 2, 3, 4, 5], ["old one", "great pen", None, "great pen", "SECRET"]),
        reviewed_row("B", [6, 7], ["great pen", "TARGET REVIEW"]),
    ]
    first = encoder.training_example(rows[0], "purchase_reason")
    second = encoder.training_example(rows[1], "purchase_reason")
    # The newest three purchases (the oldest review is cut with its purchase), then the target.
    assert first["item_ids"] == [2, 3, 4, 5] and first["review_ids"] == [0, -1, 0, -1]
    assert second["review_ids"] == [0, -1]
    assert "great pen" in reviews  # neither target's review, nor the cut purchase's
    assert not any(text in reviews for text in ("old one", "SECRET", "TARGET REVIEW"))
    assert encoder.stats.without_review == 1
    assert "1 purchases without a review" in encoder.summary()
    reviews.encode()
    assert reviews.encoder_model.texts == 1 and reviews.table.shape == (1, 64)
    assert reviews.table.dtype == np.float16
    # A text seen again is not encoded again; a new one is, onto the same table.
    encoder.generation_example(reviewed_row("C", [8, 9], ["great pen", None]), "purchase_reason")
    third = encoder.generation_example(
        reviewed_row("D", [8, 9], ["a new one", None]), "purchase_reason"
    )
    reviews.encode()
    assert third["review_ids"] == [1, -1] and reviews.encoder_model.texts == 2
    assert reviews.table.shape == (2, 64)


def test_review_vectors_are_cached_on_disk_by_their_texts(tmp_path, monkeypatch):
    monkeypatch.setenv("REGEN_CACHE", str(tmp_path))
    first = ReviewVectors(encoder_model=WordCountEncoder())
    for text in ("great pen", "bad ink"):
        first.index(text)
    first.encode(cache=True)
    again = ReviewVectors(encoder_model=WordCountEncoder())
    for text in ("great pen", "bad ink"):
        again.index(text)
    again.encode(cache=True)
    assert again.encoder_model.texts == 0 and np.array_equal(again.table, first.table)
    assert list((tmp_path / "content" / "reviews").glob("*.npy"))
    other = ReviewVectors(encoder_model=WordCountEncoder())
    other.index("great pen")
    other.encode(cache=True)
    assert other.encoder_model.texts == 1


def test_reviews_whose_encoding_failed_are_encoded_at_their_rows_next_time():
    class FailsOnce(WordCountEncoder):
        failed = False

        def encode(self, texts, **options):
            if not self.failed:
                self.failed = True
                raise RuntimeError("out of memory")
            return super().encode(texts, **options)

    reviews = ReviewVectors(encoder_model=FailsOnce())
    rows = [reviews.index(text) for text in ("great pen", "bad ink")]
    with pytest.raises(RuntimeError, match="out of memory"):
        reviews.encode()
    rows.append(reviews.index("fine paper here"))
    reviews.encode()
    expected = ReviewVectors(encoder_model=WordCountEncoder())
    for text in ("great pen", "bad ink", "fine paper here"):
        expected.index(text)
    expected.encode()
    assert rows == [0, 1, 2] and np.array_equal(reviews.table, expected.table)


def test_a_review_joins_its_interactions_content_vector(tokenizer):
    assert not FusionConfig().use_reviews  # a checkpoint saved without the field reads none
    model = tiny_fusion(tokenizer, signals="both", use_reviews=True)
    assert model.config.reads_reviews
    items = torch.tensor([[-1, 3, 4, 5]])
    review = torch.nn.functional.normalize(torch.randn(12), dim=0)
    reviews = torch.zeros(1, 4, 12)
    reviews[0, 1] = review
    vectors, _ = model.fused_vectors(items, reviews)
    plain, _ = model.fused_vectors(items)
    item = model.inputs.content_vectors[3].float()
    expected = torch.nn.functional.normalize(item + review, dim=0)
    assert torch.allclose(vectors[0, 1, 8:], expected, atol=1e-5)
    assert torch.allclose(vectors[0, 1, :8], plain[0, 1, :8])  # CF part unchanged
    assert torch.allclose(vectors[0, 2:], plain[0, 2:], atol=1e-3)  # no review: the item's
    # The collator turns review ids into vectors aligned with the left-padded items.
    table = ReviewVectors(table=np.stack([review.numpy(), -review.numpy()]).astype(np.float16))
    examples = [
        {"input_ids": [5, 6], "item_ids": [3, 4, 5], "review_ids": [1, -1, -1]},
        {"input_ids": [5], "item_ids": [7, 8], "review_ids": [0, -1]},
    ]
    batch = FusionCollator(tokenizer.pad_token_id, table)(examples)
    assert batch["review_vectors"].shape == (2, 3, 12)
    assert torch.allclose(batch["review_vectors"][0, 0], -review, atol=1e-3)
    assert torch.allclose(batch["review_vectors"][1, 1], review, atol=1e-3)
    assert not batch["review_vectors"][1, 0].any() and not batch["review_vectors"][0, 1:].any()
    assert model(**batch).logits.shape[0] == 2
    with pytest.raises(ValueError, match="indexed but not encoded"):
        FusionCollator(tokenizer.pad_token_id, table)([{**examples[0], "review_ids": [2, -1, -1]}])
    with pytest.raises(ValueError, match="this model reads no reviews"):
        tiny_fusion(tokenizer, signals="cf", use_reviews=True).fused_vectors(items, reviews)
    with pytest.raises(ValueError, match="reads no reviews"):
        tiny_fusion(tokenizer).fused_vectors(items, reviews)
    with pytest.raises(ValueError, match="expected \\(1, 4, 12\\)"):
        model.fused_vectors(items, reviews[:, :3])


def test_bad_rows_are_clear_errors(tokenizer):
    model = tiny_fusion(tokenizer, signals="both")
    encoder = FusionEncoder(tokenizer, model.item_vocabulary)
    with pytest.raises(EmptyHistoryError, match="user E has an empty history"):
        encoder.generation_example(seq_row("E", [3]), "purchase_reason")
    with pytest.raises(UnknownItemError, match="item 'I099' \\(user U\\)"):
        encoder.generation_example(seq_row("U", [3, 99]), "purchase_reason")
    with pytest.raises(ValueError, match="unknown narrative kind 'poem'"):
        prompt_text("poem")
    with pytest.raises(ValueError, match="outside the item vocabulary of 30 items"):
        model.fused_vectors(torch.tensor([[1, 30]]))
    with pytest.raises(ValueError, match="row 0 of the batch has no interaction"):
        model.fused_vectors(torch.tensor([[-1, -1]]))


def test_round_trip_carries_adapter_tables_and_vocabulary(tokenizer, tmp_path):
    model = tiny_fusion(tokenizer, signals="both", adapter="mlp", kinds=["purchase_reason"])
    model.save_pretrained(tmp_path / "fusion")
    loaded = AutoModel.from_pretrained(tmp_path / "fusion").eval()
    assert type(loaded) is FusionForCausalLM and loaded.config.signals == "both"
    assert loaded.item_vocabulary.item_ids == model.item_vocabulary.item_ids
    for name in ("cf_factors", "content_vectors"):
        assert torch.equal(getattr(loaded.inputs, name), getattr(model.inputs, name))
    assert loaded.config.cf_item_norm == model.config.cf_item_norm
    items = torch.tensor([[-1, 3, 4, 5]])
    ids = torch.tensor([[10, 11, 12]])
    assert torch.allclose(model(ids, items).logits, loaded(ids, items).logits, atol=1e-5)


def test_a_checkpoint_from_before_the_user_token_prompt_keeps_the_prompt_it_learned(
    tokenizer, factors
):
    """Checkpoints saved while the user token was on by default were trained on the prompt
    that does not name it: their config lacks `prompt_names_user_token`, and they keep it."""
    from regen_models.fusion.narrator import FusionNarrator

    found, _, _ = factors
    older = tiny_fusion(tokenizer, found, signals="both", user_token=True)
    assert older.config.prompt_names_user_token is False  # as a config.json without the key
    prompt = FusionNarrator(older, tokenizer).encoder.prompt_ids("purchase_reason")
    assert "stands for a shopper" not in tokenizer.decode(prompt)
    older.config.prompt_names_user_token = True  # as train_fusion saves one now
    prompt = FusionNarrator(older, tokenizer).encoder.prompt_ids("purchase_reason")
    assert "stands for a shopper" in tokenizer.decode(prompt)


def test_a_gemma2_base_keeps_its_eager_attention(tokenizer, tmp_path):
    # Gemma 2 (the paper recipe's LM) has no sdpa attention: the wrapper's default must not
    # reach it, in training or after a reload.
    rng = np.random.default_rng(0)
    model = FusionForCausalLM.from_base(
        tiny_gemma2(tokenizer),
        tokenizer,
        num_items=NUM_ITEMS,
        cf_factors=rng.normal(size=(NUM_ITEMS, 8)).astype(np.float32),
        content_vectors=rng.normal(size=(NUM_ITEMS, 12)).astype(np.float32),
    ).eval()
    assert model.language_model.config._attn_implementation == "eager"
    batch = {"input_ids": torch.tensor([[5, 6, 7]]), "item_ids": torch.tensor([[1, 2]])}
    logits = model(**batch).logits
    model.save_pretrained(tmp_path / "gemma2")
    loaded = FusionForCausalLM.from_pretrained(tmp_path / "gemma2").eval()
    assert loaded.language_model.config._attn_implementation == "eager"
    assert torch.allclose(loaded(**batch).logits, logits, atol=1e-6)
