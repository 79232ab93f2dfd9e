import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoModel

from regen_models.flare import FlareConfig, FlareModel
from regen_models.flare.data import NO_CRITIQUE, FlareCollator, SequenceExample


def tiny_config(**overrides) -> FlareConfig:
    values = dict(
        num_items=30,
        content_dim=8,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_sequence_length=8,
        num_latents=2,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    return FlareConfig(**{**values, **overrides})


def tiny_model(seed: int = 0, **overrides) -> FlareModel:
    torch.manual_seed(seed)
    model = FlareModel(tiny_config(**overrides))
    vectors = torch.randn(30, 3, 8)
    vectors[5, 2] = 0  # item 5 has no description
    model.set_content_vectors(vectors)
    return model.eval()


def batch_with_mask(model, critique=None):
    config = model.config
    pad, mask = config.pad_item_id, config.mask_item_id
    item_ids = torch.tensor([[pad, pad, 3, 4, mask], [1, 2, 3, 4, mask]])
    vectors = torch.zeros(2, 5, 8)
    if critique is not None:
        vectors[:, -1] = critique
    return dict(
        item_ids=item_ids, critique_vectors=vectors, critique_mask=vectors.abs().sum(-1) > 0
    )


def test_forward_scores_the_whole_catalog_at_the_masked_position():
    model = tiny_model()
    out = model(**batch_with_mask(model))
    assert out.logits.shape == (2, 30) and out.loss is None
    assert out.hidden_states.shape == (2, 5, 16)
    scores, items = model.recommend(top_k=5, **batch_with_mask(model))
    assert items.shape == (2, 5) and torch.all(scores[:, :-1] >= scores[:, 1:])


def test_loss_is_cloze_plus_contrastive_and_trains():
    model = tiny_model().train()
    batch = batch_with_mask(model)
    labels = torch.full_like(batch["item_ids"], -100)
    labels[:, -1] = torch.tensor([7, 8])
    out = model(**batch, labels=labels)
    assert out.logits.shape == (2, 30)
    expected = out.cloze_loss + model.config.contrastive_weight * out.contrastive_loss
    assert torch.isclose(out.loss, expected)
    out.loss.backward()
    assert model.item_encoder.id_embeddings.weight.grad is not None
    assert model.item_encoder.content_vectors.grad is None  # frozen
    no_content = tiny_model(use_content=False)
    out = no_content(**batch_with_mask(no_content), labels=labels)
    assert out.contrastive_loss is None and torch.isclose(out.loss, out.cloze_loss)


def test_the_steering_critique_changes_the_ranking_only_when_used():
    critique = torch.randn(8)
    model = tiny_model()
    plain = model(**batch_with_mask(model)).logits
    steered = model(**batch_with_mask(model, critique)).logits
    assert not torch.allclose(plain, steered)
    deaf = tiny_model(use_critiques=False)
    assert torch.allclose(
        deaf(**batch_with_mask(deaf)).logits, deaf(**batch_with_mask(deaf, critique)).logits
    )


def test_padding_does_not_change_the_scores():
    model = tiny_model()
    pad, mask = model.config.pad_item_id, model.config.mask_item_id
    short = model(item_ids=torch.tensor([[3, 4, mask]])).logits
    padded = model(item_ids=torch.tensor([[pad, pad, 3, 4, mask]])).logits
    assert torch.allclose(short, padded, atol=1e-5)


def test_flare_learns_to_follow_critiques():
    """Targets that only the critique reveals: with critiques the model finds them."""
    torch.manual_seed(0)
    config = tiny_config(hidden_size=32, intermediate_size=64, contrastive_weight=0.0)
    model = FlareModel(config)
    model.set_content_vectors(torch.randn(30, 3, 8))
    critique_of = torch.randn(30, 8)  # one distinct request per target item
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    mask = config.mask_item_id
    for _ in range(150):
        targets = torch.randint(0, 30, (64,))
        item_ids = torch.cat([torch.randint(0, 30, (64, 3)), torch.full((64, 1), mask)], dim=1)
        vectors = torch.zeros(64, 4, 8)
        vectors[:, -1] = critique_of[targets]
        labels = torch.full_like(item_ids, -100)
        labels[:, -1] = targets
        loss = model(item_ids=item_ids, critique_vectors=vectors, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    targets = torch.arange(30)
    item_ids = torch.cat([torch.randint(0, 30, (30, 3)), torch.full((30, 1), mask)], dim=1)
    vectors = torch.zeros(30, 4, 8)
    vectors[:, -1] = critique_of[targets]
    with_critique = model(item_ids=item_ids, critique_vectors=vectors).logits.argmax(-1) == targets
    without = model(item_ids=item_ids).logits.argmax(-1) == targets
    assert with_critique.float().mean() > 0.8 > without.float().mean() + 0.5


def test_round_trip_carries_the_content_vectors(tmp_path):
    model = tiny_model()
    model.save_pretrained(tmp_path)
    assert AutoConfig.from_pretrained(tmp_path).model_type == "flare"
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, FlareModel)
    assert torch.equal(loaded.item_encoder.content_vectors, model.item_encoder.content_vectors)
    batch = batch_with_mask(model, torch.randn(8))
    assert torch.allclose(loaded(**batch).logits, model(**batch).logits, atol=1e-6)


def test_a_checkpoint_of_another_model_is_refused_by_name(tmp_path):
    """transformers would load it with fresh weights (or fail deep in the config)."""
    import json

    from regen_models.fusion import FusionForCausalLM
    from regen_models.lumen import LumenForCausalLM

    tiny_model().save_pretrained(tmp_path / "flare")
    for model_class, name in ((LumenForCausalLM, "lumen"), (FusionForCausalLM, "fusion")):
        with pytest.raises(ValueError, match=f"holds a 'flare' checkpoint, not '{name}'"):
            model_class.from_pretrained(tmp_path / "flare")
    config = json.loads((tmp_path / "flare" / "config.json").read_text())
    (tmp_path / "flare" / "config.json").write_text(json.dumps(dict(config, model_type="lumen")))
    with pytest.raises(ValueError, match="holds a 'lumen' checkpoint, not 'flare'"):
        FlareModel.from_pretrained(tmp_path / "flare")


def test_a_checkpoint_that_lacks_weights_is_refused(tmp_path):
    """transformers would fill the gap with fresh weights and only log it."""
    from safetensors.torch import load_file, save_file

    tiny_model().save_pretrained(tmp_path)
    model, info = FlareModel.from_pretrained(tmp_path, output_loading_info=True)
    assert isinstance(model, FlareModel) and not info["missing_keys"]
    weights = load_file(tmp_path / "model.safetensors")
    weights = {k: v for k, v in weights.items() if "output_transform" not in k}
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="lacks 4 of this model's weights .*output_transform"):
        FlareModel.from_pretrained(tmp_path)


def token_model(seed: int = 0) -> tuple[FlareModel, torch.Tensor]:
    """A tiny FLARE that reads 4 token vectors per item text, and those vectors."""
    torch.manual_seed(seed)
    model = FlareModel(tiny_config(content_tokens=4))
    tokens = torch.randn(30, 3, 4, 8)
    tokens[:, :, 3] = 0  # every text has 3 tokens
    tokens[5, 2] = 0  # item 5 has no description
    model.set_content_vectors(tokens)
    return model.eval(), tokens


def test_content_tokens_are_read_token_by_token_and_pool_for_the_output():
    model, tokens = token_model()
    batch = batch_with_mask(model, torch.randn(8))
    before = model(**batch).logits
    assert before.shape == (2, 30)
    # The output side sees each field's normalised token mean: the vectors a pooled model holds.
    pooled = tiny_model()
    state = {k: v for k, v in model.state_dict().items() if k != "item_encoder.content_vectors"}
    pooled.load_state_dict(state, strict=False)
    pooled.set_content_vectors(torch.nn.functional.normalize(tokens[:, :, :3].mean(2), dim=-1))
    assert torch.allclose(
        model.item_encoder.output_embeddings(), pooled.item_encoder.output_embeddings(), atol=1e-3
    )
    # The resampler reads the tokens themselves: their order within a text changes the input
    # of the sequence (a pooled vector could not tell), and a token of a seen item moves scores.
    shuffled = tokens.clone()
    shuffled[3, 0, :3] = tokens[3, 0, [2, 0, 1]] * torch.tensor([2.0, 0.5, 1.0]).view(3, 1)
    model.set_content_vectors(shuffled)
    assert not torch.allclose(model(**batch).logits, before)
    # Training reaches the projection through the token path; the vectors stay frozen.
    model.train()
    labels = torch.full_like(batch["item_ids"], -100)
    labels[:, -1] = torch.tensor([7, 8])
    model(**batch, labels=labels).loss.backward()
    assert model.item_encoder.content_projection.weight.grad.abs().sum() > 0
    assert model.item_encoder.content_vectors.grad is None


def test_round_trip_carries_the_content_token_vectors(tmp_path):
    model, _ = token_model()
    model.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path).eval()
    assert loaded.config.content_tokens == 4
    assert loaded.item_encoder.content_vectors.shape == (30, 3, 4, 8)
    assert torch.equal(loaded.item_encoder.content_vectors, model.item_encoder.content_vectors)
    batch = batch_with_mask(model, torch.randn(8))
    assert torch.allclose(loaded(**batch).logits, model(**batch).logits, atol=1e-6)
    with pytest.raises(ValueError, match=r"expects \(30, 3, 4, 8\)"):
        model.set_content_vectors(torch.randn(30, 3, 8))
    with pytest.raises(ValueError, match="content_tokens must be a whole number of at least 0"):
        tiny_config(content_tokens=-1)


def test_tied_item_embeddings_score_each_item_against_its_input_vector():
    model = tiny_model(tie_item_embeddings=True)
    items = torch.arange(30)
    inputs = model.item_encoder(items.unsqueeze(0))[0]
    assert torch.allclose(model.item_encoder.output_embeddings(), inputs, atol=1e-6)
    untied = tiny_model()
    batch = batch_with_mask(model)
    assert not torch.allclose(model(**batch).logits, untied(**batch).logits)
    with torch.no_grad():  # the cached table of inference is the same table
        cached = model(**batch).logits
    assert torch.allclose(cached, model(**batch).logits, atol=1e-5)
    # The resampler shapes the output side only when tied.
    model.item_encoder.output_embeddings().sum().backward()
    assert model.item_encoder.resampler.latents.grad.abs().sum() > 0
    untied.item_encoder.output_embeddings().sum().backward()
    assert untied.item_encoder.resampler.latents.grad is None
    # Training fuses the catalog once for both sides; the input side reads the same vectors.
    model.eval()
    fused = model.item_encoder.fuse_catalog()
    ids = batch["item_ids"]
    assert torch.allclose(model.item_encoder(ids, fused_catalog=fused), model.item_encoder(ids))
    assert torch.allclose(model.item_encoder.output_embeddings(fused), inputs, atol=1e-6)


def test_seen_item_bias_moves_exactly_the_visible_items_of_each_row():
    plain = tiny_model()
    model = tiny_model(seen_item_bias=True)
    assert torch.equal(model.seen_bias, torch.tensor(0.0))
    with torch.no_grad():
        model.seen_bias.fill_(-2.5)
    batch = batch_with_mask(model)
    shift = model(**batch).logits - plain(**batch).logits
    expected = torch.zeros(2, 30)
    expected[0, [3, 4]] = -2.5  # padding and the mask are not items
    expected[1, [1, 2, 3, 4]] = -2.5
    assert torch.allclose(shift, expected, atol=1e-6)
    # In training a masked item is hidden, so it is not seen by its own row.
    labels = torch.full_like(batch["item_ids"], -100)
    labels[:, -1] = torch.tensor([7, 8])
    masked = dict(batch, item_ids=batch["item_ids"].clone())
    masked["item_ids"][1, 0] = model.config.mask_item_id
    labels[1, 0] = 1
    shift = model(**masked, labels=labels).logits - plain(**masked, labels=labels).logits
    assert torch.allclose(shift[:, 1], torch.tensor([0.0, 0.0, 0.0]))  # item 1 hidden in row 1
    assert torch.allclose(shift[:, 2], torch.tensor([0.0, -2.5, -2.5]))


def test_seen_item_bias_learns_that_users_do_not_come_back():
    """The gradient of the cloze loss pushes the bias down when no target is in its sequence."""
    model = tiny_model(seen_item_bias=True).train()
    batch = batch_with_mask(model)
    labels = torch.full_like(batch["item_ids"], -100)
    labels[:, -1] = torch.tensor([7, 8])
    model(**batch, labels=labels).loss.backward()
    assert model.seen_bias.grad > 0
    model.zero_grad()
    labels[:, -1] = torch.tensor([3, 4])  # both rows come back to an item they show
    model(**batch, labels=labels).loss.backward()
    assert model.seen_bias.grad < 0


def test_round_trip_carries_the_seen_item_bias(tmp_path):
    model = tiny_model(seen_item_bias=True)
    with torch.no_grad():
        model.seen_bias.fill_(-1.75)
    model.save_pretrained(tmp_path)
    loaded = FlareModel.from_pretrained(tmp_path).eval()
    assert loaded.config.seen_item_bias and float(loaded.seen_bias.detach()) == -1.75
    batch = batch_with_mask(model)
    assert torch.allclose(loaded(**batch).logits, model(**batch).logits, atol=1e-6)


def test_bad_shapes_are_clear_errors():
    model = tiny_model()
    with pytest.raises(ValueError, match=r"do not fit this model, which expects \(30, 3, 8\)"):
        model.set_content_vectors(np.zeros((29, 3, 8)))
    too_long = torch.zeros(1, 9, dtype=torch.long)
    with pytest.raises(ValueError, match="exceed max_sequence_length"):
        model(item_ids=too_long)
    with pytest.raises(ValueError, match="multiple of num_attention_heads"):
        FlareConfig(hidden_size=10, num_attention_heads=3)


def test_collator_pads_left_and_masks_at_least_one_item():
    examples = [
        SequenceExample("a", [1, 2, 3], [NO_CRITIQUE, 0, 1], 3),
        SequenceExample("b", [4], [NO_CRITIQUE], 4),
    ]
    critiques = np.eye(2, 8, dtype=np.float32)
    train = FlareCollator(30, 31, critiques, mask_probability=0.01)(examples)
    assert train["attention_mask"].tolist() == [[1, 1, 1], [0, 0, 1]]
    masked = train["labels"] != -100
    assert masked.any(dim=1).all() and (train["item_ids"][masked] == 31).all()
    assert train["item_ids"][1, 0] == 30  # padding on the left
    assert train["critique_mask"].tolist() == [[False, True, True], [False, False, False]]
    assert torch.equal(train["critique_vectors"][0, 2], torch.tensor(critiques[1]))
    evaluation = FlareCollator(30, 31, None, train=False)(examples)
    assert "labels" not in evaluation and evaluation["targets"].tolist() == [3, 4]
    assert "critique_vectors" not in evaluation


def test_last_item_masking_hides_only_the_most_recent_item_of_that_share():
    examples = [SequenceExample(str(u), list(range(10)), [NO_CRITIQUE] * 10, 9) for u in range(400)]
    collate = FlareCollator(30, 31, None, mask_probability=0.5, last_item_mask_probability=0.25)
    masked = collate(examples)["labels"] != -100
    last_only = masked[:, -1] & (masked.sum(dim=1) == 1)
    assert 0.15 < last_only.float().mean() < 0.35  # the share, plus the rare random draw
    assert masked.sum(dim=1).float().mean() > 3  # the others keep the cloze task
    never = FlareCollator(30, 31, None, mask_probability=0.5)(examples)["labels"] != -100
    assert (never[:, -1] & (never.sum(dim=1) == 1)).float().mean() < 0.02
    with pytest.raises(ValueError, match="last_item_mask_probability must be in"):
        FlareConfig(last_item_mask_probability=1.5)


def test_prefix_crop_ends_that_share_of_sequences_at_a_random_item():
    examples = [
        SequenceExample(str(u), list(range(10)), list(range(100, 110)), 9) for u in range(400)
    ]
    collate = FlareCollator(30, 31, None, mask_probability=0.2, prefix_crop_probability=0.5)
    batch = collate(examples)
    lengths = batch["attention_mask"].sum(dim=1)
    cut = lengths < 10
    assert 0.35 < cut.float().mean() < 0.55  # the share (a draw of the full length is no cut)
    assert lengths.min() >= 2 and len(set(lengths[cut].tolist())) == 8  # every end, 2 to 9
    # a cut sequence is the history up to its end: its last real item is the one before the end
    seen = torch.where(batch["labels"] != -100, batch["labels"], batch["item_ids"])
    assert torch.equal(seen[:, -1], lengths - 1)
    again = collate(examples)["attention_mask"].sum(dim=1)
    assert not torch.equal(again, lengths)  # new cuts at each call
    untouched = FlareCollator(30, 31, None, prefix_crop_probability=1.0, train=False)(examples)
    assert untouched["attention_mask"].sum(dim=1).eq(10).all()
    with pytest.raises(ValueError, match="prefix_crop_probability must be in"):
        FlareConfig(prefix_crop_probability=-0.1)


def nine_item_examples(mask_id: int, **options):
    """Examples of one user who bought items 0 to 8, then 9, read 4 positions at a time."""
    from regen_models.flare.data import build_examples

    class Vocabulary:
        def index(self, item_id, where=""):
            return int(item_id)

    history = [{"item_id": str(i), "critique": None} for i in range(9)]
    rows = [{"user_id": "u", "history": history, "critique": None, "target": {"item_id": "9"}}]
    return build_examples(rows, Vocabulary(), None, max_length=4, mask_id=mask_id, **options)


def test_examples_keep_the_recent_positions_and_window_the_rest():
    kept = nine_item_examples(99, predict=False)
    assert [e.item_ids for e in kept] == [[6, 7, 8, 9]]
    windows = nine_item_examples(99, predict=False, windows=True)
    assert [e.item_ids for e in windows] == [[6, 7, 8, 9], [2, 3, 4, 5], [0, 1]]
    (predict,) = nine_item_examples(99, predict=True)
    assert predict.item_ids == [6, 7, 8, 99] and predict.target == 9


def test_inference_caches_follow_weight_and_content_changes():
    model = tiny_model()
    batch = batch_with_mask(model)
    with torch.no_grad():
        before = model(**batch).logits
        model.set_content_vectors(torch.randn(30, 3, 8))
        after_content = model(**batch).logits
        assert not torch.allclose(before, after_content)
        model.item_encoder.id_embeddings.weight.add_(0.5)
        after_weights = model(**batch).logits
        assert not torch.allclose(after_content, after_weights)
        fresh = FlareModel(model.config)
        fresh.load_state_dict(model.state_dict())
        assert torch.allclose(fresh.eval()(**batch).logits, after_weights, atol=1e-6)


def tiny_vocabulary(size: int = 30):
    import pyarrow as pa

    from regen_dataset.schema import ITEM_FEATURES
    from regen_models.items import ItemVocabulary

    columns = ITEM_FEATURES.arrow_schema.names
    rows = [{name: None for name in columns} | {"item_id": f"I{i:03d}"} for i in range(size)]
    for i, row in enumerate(rows):
        row["title"] = f"item number {i}"
    return ItemVocabulary("office", pa.Table.from_pylist(rows, schema=ITEM_FEATURES.arrow_schema))


def test_round_trip_carries_the_item_vocabulary(tmp_path):
    from regen_models.items import VOCABULARY_FILE, VocabularyMismatchError

    model = tiny_model()
    with pytest.raises(VocabularyMismatchError, match="31 items does not fit this model"):
        model.attach_item_vocabulary(tiny_vocabulary(31))
    model.attach_item_vocabulary(tiny_vocabulary())
    model.save_pretrained(tmp_path / "with")
    assert (tmp_path / "with" / VOCABULARY_FILE).exists()
    loaded = AutoModel.from_pretrained(tmp_path / "with")
    assert loaded.item_vocabulary.item_ids == model.item_vocabulary.item_ids
    assert loaded.item_vocabulary.texts("title")[7] == "item number 7"

    tiny_model().save_pretrained(tmp_path / "without")
    assert not (tmp_path / "without" / VOCABULARY_FILE).exists()
    assert FlareModel.from_pretrained(tmp_path / "without").item_vocabulary is None


@pytest.mark.parametrize("name", ["runs/flare/best", "/no/such/checkpoint", "./flare-office"])
def test_a_checkpoint_path_that_is_not_there_is_named(tmp_path, monkeypatch, name):
    from regen_models.flare.ranking import FlareRanker

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"{name}: no such checkpoint folder"):
        FlareRanker.from_pretrained(name)
    with pytest.raises(FileNotFoundError, match="no such checkpoint folder"):
        FlareModel.from_pretrained(tmp_path / name.lstrip("./"))


PUSH_AND_LOAD = """
import sys, torch
from transformers import AutoModel
import regen_models.flare
from tests.regen_models.test_flare import tiny_model, tiny_vocabulary
model = tiny_model()
model.attach_item_vocabulary(tiny_vocabulary())
model.push_to_hub(sys.argv[1])
loaded = AutoModel.from_pretrained(sys.argv[1])
assert loaded.item_vocabulary.item_ids == model.item_vocabulary.item_ids
assert torch.equal(loaded.item_encoder.content_vectors, model.item_encoder.content_vectors)
print("loaded", type(loaded).__name__, len(loaded.item_vocabulary))
import pathlib, tempfile
with tempfile.TemporaryDirectory() as folder:
    # a run's output folder holds more than this save writes: none of it is pushed
    (pathlib.Path(folder) / "checkpoint-500").mkdir()
    (pathlib.Path(folder) / "checkpoint-500" / "optimizer.pt").write_bytes(b"state")
    (pathlib.Path(folder) / "training_args.bin").write_bytes(b"arguments")
    (pathlib.Path(folder) / ".model.safetensors.partial-9").write_bytes(b"half")
    model.save_pretrained(folder, push_to_hub=True, repo_id=sys.argv[1] + "-saved")
again = AutoModel.from_pretrained(sys.argv[1] + "-saved")
assert again.item_vocabulary.item_ids == model.item_vocabulary.item_ids
"""


def test_push_to_hub_and_back_carries_vocabulary_and_content_vectors(tmp_path):
    """Against the loopback Hub: push_to_hub uploads the weights (with the content vectors) and
    the vocabulary, and `AutoModel.from_pretrained(repo_id)` downloads both."""
    import subprocess
    import sys

    from regen_models.items import VOCABULARY_FILE
    from tests.conftest import REPO
    from tests.fake_hub import FakeHub, hub_env

    with FakeHub() as hub:
        result = subprocess.run(
            [sys.executable, "-c", PUSH_AND_LOAD, "test-org/flare-tiny"],
            cwd=REPO,
            env=hub_env(tmp_path, hf_endpoint=hub.url),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert result.returncode == 0, f"{hub.errors}\n{result.stdout}\n{result.stderr}"
    assert "loaded FlareModel 30" in result.stdout
    assert {"config.json", "model.safetensors", VOCABULARY_FILE} <= hub.files.keys()
    saved = hub.repo_files["test-org/flare-tiny-saved"]  # save_pretrained(push_to_hub=True)
    assert set(saved) == {"config.json", "model.safetensors", VOCABULARY_FILE}
    assert hub.created[0]["name"] == "flare-tiny" and hub.created[0].get("type") in (None, "model")


def test_seen_item_bias_also_reaches_the_items_before_the_window():
    (predict,) = nine_item_examples(31, predict=True)
    assert predict.earlier_item_ids == [0, 1, 2, 3, 4, 5]
    windows = nine_item_examples(31, predict=False, windows=True)
    assert [e.earlier_item_ids for e in windows] == [[0, 1, 2, 3, 4, 5], [0, 1], []]
    batch = FlareCollator(30, 31, None, train=False, earlier_items=True)([predict, windows[2]])
    assert batch["earlier_item_ids"].tolist() == [[0, 1, 2, 3, 4, 5], [30] * 6]
    assert "earlier_item_ids" not in FlareCollator(30, 31, None, train=False)([predict])
    cropped = FlareCollator(30, 31, None, prefix_crop_probability=1.0, earlier_items=True)(
        [windows[0]] * 8
    )
    assert (cropped["earlier_item_ids"] == torch.tensor([0, 1, 2, 3, 4, 5])).all()

    model = tiny_model(seen_item_bias=True, max_sequence_length=4).eval()
    with torch.no_grad():
        model.seen_bias.fill_(-2.5)
        inputs = {k: v for k, v in batch.items() if k != "targets"}
        shifted = model(**inputs).logits
        inputs.pop("earlier_item_ids")
        plain = model(**inputs).logits
    moved = (shifted - plain).abs() > 1e-5
    assert moved[0].nonzero().flatten().tolist() == [0, 1, 2, 3, 4, 5]
    assert torch.allclose((shifted - plain)[0, :6], torch.full((6,), -2.5))
    assert not moved[1].any()


def test_masks_are_drawn_anew_in_every_data_loader_worker_and_epoch():
    """A worker holds a copy of the collator: with the collator's own generator, every epoch and
    every worker would replay the same masks and cuts."""
    from torch.utils.data import DataLoader

    examples = [SequenceExample(str(u), list(range(20)), [-1] * 20, 19) for u in range(32)]
    collate = FlareCollator(30, 31, None, mask_probability=0.3, prefix_crop_probability=0.5)
    loader = DataLoader(examples, batch_size=8, collate_fn=collate, num_workers=2)
    epochs = [[batch["labels"] for batch in loader] for _ in range(2)]
    assert not all(torch.equal(a, b) for a, b in zip(*epochs, strict=True))
    assert not torch.equal(epochs[0][0], epochs[0][1])  # the two workers' first batches
