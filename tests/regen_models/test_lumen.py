"""LUMEN with a tiny random Gemma 3: placeholders on the token scale, the joint loss, the item
table options, full-catalog ranking, switching decode, prompts and their bad input, and the
round trips through from_pretrained and the (loopback) Hub."""

import pyarrow as pa
import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoModelForCausalLM

from regen_models.items import UnknownItemError, VocabularyMismatchError
from regen_models.lumen import LumenForCausalLM
from regen_models.lumen.data import (
    ITEM_TOKEN,
    SWITCH_TOKEN,
    LumenCollator,
    LumenEncoder,
    add_item_tokens,
    training_examples,
)
from regen_models.lumen.modeling_lumen import IGNORE_INDEX, NO_ITEM
from regen_models.prompts import build_prompt
from tests.regen_models.recording_streamer import RecordingStreamer
from tests.regen_models.test_flare import tiny_vocabulary
from tests.regen_models.test_prompts import purchase, split_row
from tests.tiny_gemma import tiny_gemma, tiny_gemma2, tiny_tokenizer

NUM_ITEMS = 12


@pytest.fixture(scope="module")
def tokenizer():
    tokenizer = tiny_tokenizer()
    add_item_tokens(tokenizer)
    return tokenizer


def tiny_lumen(tokenizer, seed: int = 0, **config) -> LumenForCausalLM:
    model = LumenForCausalLM.from_base(tiny_gemma(tokenizer, seed), tokenizer, NUM_ITEMS, **config)
    return model.eval()


def ids(model, *pieces) -> torch.Tensor:
    """A one-row batch: ints are token ids, "item" the placeholder, "switch" the switch."""
    named = {"item": model.config.item_token_id, "switch": model.config.switch_token_id}
    return torch.tensor([[named.get(p, p) for p in pieces]])


@pytest.mark.parametrize("dim", [None, 8])
def test_placeholders_take_item_vectors_on_the_token_scale(tokenizer, dim):
    model = tiny_lumen(tokenizer, item_embedding_dim=dim)
    layer = model.get_input_embeddings()
    assert float(model.embed_scale) == pytest.approx(32**0.5)  # Gemma: sqrt(hidden_size)
    input_ids = ids(model, 10, "item", 11, "item", "switch")
    embedded = model.embed(input_ids, torch.tensor([[3, 7]]))
    scale = model.embed_scale
    vectors = model.items.input_vectors(torch.tensor([3, 7])) * scale
    assert torch.allclose(embedded[0, [1, 3]], vectors, atol=1e-6)
    assert torch.equal(embedded[0, [0, 2, 4]], layer(input_ids)[0, [0, 2, 4]])
    # An item enters the LM about as loud as a word does.
    items = model.items.input_vectors(torch.arange(NUM_ITEMS)) * scale
    words = layer(torch.arange(100)[None])[0]
    ratio = (items.norm(dim=-1).mean() / words.norm(dim=-1).mean()).detach()
    assert 0.5 < float(ratio) < 2.0, float(ratio)


def test_placeholder_and_item_counts_must_agree(tokenizer):
    model = tiny_lumen(tokenizer)
    with pytest.raises(ValueError, match="row 0 of the batch holds 2 item placeholders but 1"):
        model(ids(model, 10, "item", "item"), item_ids=torch.tensor([[3, NO_ITEM]]))
    with pytest.raises(ValueError, match="holds 1 item placeholders but 2 item ids"):
        model(ids(model, 10, "item"), item_ids=torch.tensor([[3, 4]]))
    with pytest.raises(ValueError, match="item id 12 is outside the item vocabulary of 12"):
        model(ids(model, 10, "item"), item_ids=torch.tensor([[12]]))


def joint_batch(model):
    """Prompt (one history item), then `<switch><item>` and three words of narrative."""
    input_ids = ids(model, 10, "item", 11, "switch", "item", 20, 21, 22)
    labels = input_ids.clone()
    labels[0, :3] = IGNORE_INDEX
    return dict(input_ids=input_ids, item_ids=torch.tensor([[3, 9]]), labels=labels)


def test_joint_loss_is_text_plus_weighted_item_loss(tokenizer):
    model = tiny_lumen(tokenizer, item_loss_weight=0.5)
    batch = joint_batch(model)
    out = model(**batch)
    full = model(batch["input_ids"], item_ids=batch["item_ids"])
    # Text: the switch and the words after the item (positions 2, 4, 5, 6 predict 3, 5, 6, 7).
    text_positions, text_targets = [2, 4, 5, 6], batch["input_ids"][0, [3, 5, 6, 7]]
    text = F.cross_entropy(full.logits[0, text_positions], text_targets)
    # Item: the switch's position (3) scores the catalog against the target item 9.
    hidden = full.hidden_states[0, 3]
    item = F.cross_entropy(model.items.scores(hidden[None]), torch.tensor([9]))
    assert torch.isclose(out.text_loss, text, atol=1e-5)
    assert torch.isclose(out.item_loss, item, atol=1e-5)
    assert torch.isclose(out.loss, text + 0.5 * item, atol=1e-5)
    assert out.item_logits.shape == (1, NUM_ITEMS)


def test_the_item_loss_reaches_the_item_table_and_the_lm(tokenizer):
    model = tiny_lumen(tokenizer).train()
    model(**joint_batch(model)).loss.backward()
    table = model.items.embeddings.weight.grad
    assert table is not None and table[9].abs().sum() > 0  # the target, through the head
    assert table[3].abs().sum() > 0  # the history item, through the LM
    no_items = tiny_lumen(tokenizer, item_loss_weight=0.0).train()
    no_items(**joint_batch(no_items)).loss.backward()
    assert no_items.items.output_bias.grad.abs().sum() == 0


@pytest.mark.parametrize(
    ("dim", "tied", "expected"),
    [
        # the paper: one table of the hidden size (+ a bias per item and the scale)
        (None, True, NUM_ITEMS * 32 + NUM_ITEMS + 1),
        (8, True, NUM_ITEMS * 8 + 8 * 32 + NUM_ITEMS + 1),  # factorised
        (None, False, 2 * NUM_ITEMS * 32 + NUM_ITEMS + 1),  # a head of its own
        (8, False, 2 * (NUM_ITEMS * 8 + 8 * 32) + NUM_ITEMS + 1),
    ],
)
def test_item_table_options(tokenizer, dim, tied, expected):
    model = tiny_lumen(tokenizer, item_embedding_dim=dim, tie_item_head=tied)
    assert sum(p.numel() for p in model.items.parameters()) == expected
    hidden = torch.randn(3, 32)
    scores = model.items.scores(hidden)
    if tied:  # the head scores against the very vectors the input reads
        vectors = model.items.input_vectors(torch.arange(NUM_ITEMS))
        expected = model.items.logit_scale * (hidden @ vectors.T) + model.items.output_bias
        assert torch.allclose(scores, expected, atol=1e-5)
    assert scores.shape == (3, NUM_ITEMS)


def test_the_untrained_item_head_is_about_as_unsure_as_a_uniform_guess(tokenizer):
    """Scaled to the LM's hidden length, random item vectors give scores of spread about one:
    the first item loss is near log(items), not a confident, wrong ranking. (An LM whose last
    hidden states are long, as Gemma's are: its final norm multiplies them by 20 here.)"""
    import math

    language_model = tiny_gemma(tokenizer)
    with torch.no_grad():
        language_model.model.norm.weight.fill_(19.0)  # Gemma's norm multiplies by 1 + weight
    model = LumenForCausalLM.from_base(language_model, tokenizer, NUM_ITEMS).eval()
    out = model(**joint_batch(model))
    assert math.log(NUM_ITEMS) - 1 < float(out.item_loss) < math.log(NUM_ITEMS) + 2
    spread = model.item_logits(out.hidden_states[0]).std(dim=-1)
    assert bool(((spread > 0.3) & (spread < 3)).all()), spread


def test_recommend_scores_the_catalog_in_one_pass_and_ignores_padding(tokenizer):
    model = tiny_lumen(tokenizer)
    long = ids(model, 10, "item", 11, 12, 13, "switch")
    short = ids(model, 14, "item", "switch")
    alone = [model.score_items(x, item_ids=torch.tensor([[n]])) for x, n in ((long, 3), (short, 5))]
    collate = LumenCollator(tokenizer.pad_token_id, "left")
    batch = collate(
        [
            {"input_ids": long[0].tolist(), "labels": None, "item_ids": [3]},
            {"input_ids": short[0].tolist(), "labels": None, "item_ids": [5]},
        ]
    )
    assert batch["input_ids"][1, 0] == tokenizer.pad_token_id  # left padding
    scores, top = model.recommend(top_k=NUM_ITEMS, **batch)
    assert top.shape == (2, NUM_ITEMS) and torch.all(scores[:, :-1] >= scores[:, 1:])
    together = model.score_items(**batch)
    assert torch.allclose(together, torch.cat(alone), atol=1e-4)
    with pytest.raises(ValueError, match="end with the switch token"):
        model.recommend(input_ids=ids(model, 10, 11))


def greedy_without_cache(model, input_ids, item_ids, steps: int) -> list[int]:
    """The next `steps` greedy text tokens by full forward passes (no cache)."""
    out = []
    for _ in range(steps):
        logits = model(input_ids, item_ids=item_ids).logits[0, -1].clone()
        logits[model.config.item_token_id] = float("-inf")
        logits[model.config.switch_token_id] = float("-inf")
        token = int(logits.argmax())
        out.append(token)
        input_ids = torch.cat([input_ids, torch.tensor([[token]])], dim=1)
    return out


def test_decoding_switches_to_an_item_and_writes_about_it(tokenizer, monkeypatch):
    model = tiny_lumen(tokenizer)
    config = model.config
    prompt, history = ids(model, 10, "item", 11), torch.tensor([[3]])
    # A model that always wants the switch (and the placeholder): it switches at once, names one
    # item of the catalog, never writes the placeholder and never switches twice.
    original = model.text_logits

    def eager_to_switch(hidden):
        logits = original(hidden).clone()
        logits[..., [config.switch_token_id, config.item_token_id]] += 1e4
        return logits

    monkeypatch.setattr(model, "text_logits", eager_to_switch)
    stops = [tokenizer.eos_token_id]
    out = model.generate(prompt, item_ids=history, stop_token_ids=stops, max_new_tokens=5)
    assert out.prefix_ids == [[]] and not bool(out.forced_switch[0])
    item = int(out.items[0])
    switch_prompt = torch.cat([prompt, torch.tensor([[config.switch_token_id]])], dim=1)
    assert item == int(model.score_items(switch_prompt, item_ids=history).argmax())
    narrative = out.narrative_ids[0]
    assert narrative and not {config.item_token_id, config.switch_token_id} & set(narrative)
    monkeypatch.undo()

    # The narrative follows from the emitted item: the cached decoding equals full forward
    # passes over `... <switch><item>` with that item, and another item changes it.
    written = model.generate(
        prompt, item_ids=history, stop_token_ids=[], max_new_tokens=4, max_text_before_item=0
    )
    assert bool(written.forced_switch[0])  # a random model does not switch by itself
    chosen = int(written.items[0])
    teacher = torch.cat([switch_prompt, torch.tensor([[config.item_token_id]])], dim=1)
    expected = greedy_without_cache(model, teacher, torch.tensor([[3, chosen]]), 4)
    assert written.narrative_ids[0] == expected
    other = (chosen + 1) % NUM_ITEMS
    forced = model.generate(
        prompt, item_ids=history, stop_token_ids=[], max_new_tokens=4, max_text_before_item=0,
        items=torch.tensor([other]),
    )  # fmt: skip
    assert int(forced.items[0]) == other
    assert forced.narrative_ids[0] == greedy_without_cache(
        model, teacher, torch.tensor([[3, other]]), 4
    )
    # A streamer gets the narrative's tokens (not the text before the item) and the end once.
    streamer = RecordingStreamer()
    streamed = model.generate(
        prompt, item_ids=history, stop_token_ids=[], max_new_tokens=4, max_text_before_item=0,
        items=torch.tensor([other]), streamer=streamer,
    )  # fmt: skip
    assert streamer.tokens == streamed.narrative_ids[0] == forced.narrative_ids[0]
    assert streamer.ends == 1


def test_sampling_is_seeded_and_emits_only_catalog_items(tokenizer):
    model = tiny_lumen(tokenizer)
    prompt, history = ids(model, 10, "item", 11), torch.tensor([[3]])

    def sample(seed):
        return model.generate(
            prompt.repeat(4, 1), item_ids=history.repeat(4, 1), stop_token_ids=[],
            max_new_tokens=3, max_text_before_item=1, do_sample=True, temperature=2.0,
            generator=torch.Generator().manual_seed(seed),
        )  # fmt: skip

    first, again = sample(1), sample(1)
    assert torch.equal(first.items, again.items) and first.narrative_ids == again.narrative_ids
    assert bool(((first.items >= 0) & (first.items < NUM_ITEMS)).all())


def test_prompt_places_one_placeholder_per_kept_purchase(tokenizer):
    row = split_row(n_history=3)
    prompt = build_prompt(row["history"], None, "purchase_reason", item_marker=ITEM_TOKEN)
    assert prompt.text.count(f"START\nID: {ITEM_TOKEN}\nTitle:") == 3
    assert "Next item:" not in prompt.text
    assert prompt.text.endswith(
        "Task: name the item this shopper buys next, then write the reason this shopper buys "
        "the next item, in one or two sentences."
    )
    alone = build_prompt(row["history"], None, None)
    assert alone.text.endswith("Task: name the item this shopper buys next.")
    assert ITEM_TOKEN not in alone.text
    with pytest.raises(ValueError, match="needs a narrative kind"):
        build_prompt(row["history"], row["target"], None)


def encoder_for(tokenizer, rows, budget=None, with_critiques=True):
    items = sorted({p["item_id"] for r in rows for p in [*r["history"], r["target"]]})
    from regen_dataset.schema import ITEM_FEATURES
    from regen_models.items import ItemVocabulary

    table = pa.Table.from_pylist(
        [{n: None for n in ITEM_FEATURES.arrow_schema.names} | {"item_id": i} for i in items],
        schema=ITEM_FEATURES.arrow_schema,
    )
    return LumenEncoder(tokenizer, ItemVocabulary("office", table), with_critiques, budget)


def test_examples_carry_items_in_placeholder_order_and_cut_oldest_first(tokenizer):
    row = split_row(n_history=12)
    row["narratives"] = {"purchase_reason": "Needs pens.", "user_profile": "A writer."}
    encoder = encoder_for(tokenizer, [row], budget=600)
    example = encoder.training_example(row, "purchase_reason")
    kept = len(example.item_ids) - 1
    assert 0 < kept < 12 and encoder.stats.purchases_dropped == 12 - kept  # oldest cut, counted
    newest = [encoder.vocabulary.index(p["item_id"]) for p in row["history"][-kept:]]
    assert example.item_ids == [*newest, encoder.vocabulary.index(row["target"]["item_id"])]
    assert example.input_ids.count(encoder.item_token_id) == kept + 1
    completion = [t for t, label in zip(example.input_ids, example.labels, strict=True)
                  if label != IGNORE_INDEX]  # fmt: skip
    text = tokenizer.decode(completion)
    assert text == f"ID: {SWITCH_TOKEN}{ITEM_TOKEN}\nText: Needs pens.<end_of_turn>"
    ranking = encoder.ranking_example(row)
    assert ranking.input_ids[-1] == encoder.switch_token_id and ranking.labels is None
    assert ranking.target == example.item_ids[-1]
    # Kinds in turn, the item alone first; a missing narrative falls back to the item alone.
    rows = [dict(row, user_id=f"u{i}") for i in range(4)]
    rows[2] = dict(rows[2], narratives={"purchase_reason": None})
    examples = training_examples(encoder, rows, ["purchase_reason", "user_profile"])
    assert [e.kind for e in examples] == [None, "purchase_reason", None, None]
    assert encoder.stats.missing_narrative["user_profile"] == 1
    with_prefixes = training_examples(encoder, rows[:1], [], history_prefixes=2)
    targets = [row["target"], row["history"][-1], row["history"][-2]]
    assert [e.target for e in with_prefixes] == [
        encoder.vocabulary.index(p["item_id"]) for p in targets
    ]
    for prefix in with_prefixes:
        assert prefix.input_ids.count(encoder.item_token_id) == len(prefix.item_ids)


def test_bad_rows_are_named(tokenizer):
    row = split_row(n_history=3)
    encoder = encoder_for(tokenizer, [row])
    unknown = dict(row, user_id="u7", history=[*row["history"][:2], purchase(999)])
    with pytest.raises(UnknownItemError, match="user u7, history position 2"):
        encoder.training_example(unknown, None)
    quoted = [dict(p) for p in row["history"]]
    quoted[0]["review_text"] = f"I typed {ITEM_TOKEN} in my review"
    with pytest.raises(ValueError, match="user u8: the prompt holds 4 item placeholders for 3"):
        encoder.training_example(dict(row, user_id="u8", history=quoted), None)
    for marker in (ITEM_TOKEN, SWITCH_TOKEN):  # in the narrative to learn: refused, named
        narratives = {"purchase_reason": f"Bought it {marker} again."}
        with pytest.raises(ValueError, match="user u9: the purchase_reason narrative contains"):
            encoder.training_example(
                dict(row, user_id="u9", narratives=narratives), "purchase_reason"
            )


def test_round_trip_carries_vocabulary_and_auto_classes(tokenizer, tmp_path):
    model = tiny_lumen(tokenizer, item_embedding_dim=8)
    with pytest.raises(VocabularyMismatchError, match="13 items does not fit this model"):
        model.attach_item_vocabulary(tiny_vocabulary(13))
    model.attach_item_vocabulary(tiny_vocabulary(NUM_ITEMS))
    model.save_pretrained(tmp_path)
    for auto in (AutoModel, AutoModelForCausalLM):
        loaded = auto.from_pretrained(tmp_path).eval()
        assert type(loaded) is LumenForCausalLM
        assert loaded.item_vocabulary.item_ids == model.item_vocabulary.item_ids
        batch = joint_batch(model)
        assert torch.allclose(loaded(**batch).loss, model(**batch).loss, atol=1e-5)
    assert loaded.config.item_embedding_dim == 8 and loaded.config.text_config.hidden_size == 32


PUSH_AND_LOAD = """
import sys, torch
from transformers import AutoModel, AutoTokenizer
import regen_models.lumen
from tests.regen_models.test_flare import tiny_vocabulary
from tests.regen_models.test_lumen import NUM_ITEMS, tiny_lumen
from tests.tiny_gemma import tiny_tokenizer
from regen_models.lumen.data import add_item_tokens, ITEM_TOKEN
tokenizer = tiny_tokenizer()
add_item_tokens(tokenizer)
model = tiny_lumen(tokenizer)
model.attach_item_vocabulary(tiny_vocabulary(NUM_ITEMS))
model.push_to_hub(sys.argv[1])
tokenizer.push_to_hub(sys.argv[1])
loaded = AutoModel.from_pretrained(sys.argv[1])
loaded_tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
assert loaded.item_vocabulary.item_ids == model.item_vocabulary.item_ids
assert torch.equal(loaded.items.embeddings.weight, model.items.embeddings.weight)
assert loaded_tokenizer.convert_tokens_to_ids(ITEM_TOKEN) == loaded.config.item_token_id
print("loaded", type(loaded).__name__, len(loaded.item_vocabulary))
"""


def test_push_to_hub_and_back_with_the_tokenizer(tmp_path):
    import subprocess
    import sys

    from regen_models.items import VOCABULARY_FILE
    from tests.conftest import REPO
    from tests.fake_hub import FakeHub, hub_env

    with FakeHub() as hub:
        result = subprocess.run(
            [sys.executable, "-c", PUSH_AND_LOAD, "test-org/lumen-tiny"],
            cwd=REPO,
            env=hub_env(tmp_path, hf_endpoint=hub.url),
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert result.returncode == 0, f"{hub.errors}\n{result.stdout}\n{result.stderr[-3000:]}"
    assert f"loaded LumenForCausalLM {NUM_ITEMS}" in result.stdout
    expected = {"config.json", "model.safetensors", VOCABULARY_FILE, "tokenizer.json"}
    assert expected <= hub.files.keys()


def test_no_end_before_the_item(tokenizer, monkeypatch):
    """A model that wants to stop at once still names an item first (the switch is forced),
    then stops: the end of the turn can only come after the item."""
    model = tiny_lumen(tokenizer)
    original, stop = model.text_logits, tokenizer.eos_token_id

    def eager_to_stop(hidden):
        logits = original(hidden).clone()
        logits[..., stop] += 1e4
        return logits

    monkeypatch.setattr(model, "text_logits", eager_to_stop)
    out = model.generate(
        ids(model, 10, "item", 11), item_ids=torch.tensor([[3]]), stop_token_ids=[stop],
        max_new_tokens=5, max_text_before_item=2,
    )  # fmt: skip
    assert len(out.prefix_ids[0]) == 2 and stop not in out.prefix_ids[0]
    assert bool(out.forced_switch[0]) and 0 <= int(out.items[0]) < NUM_ITEMS
    assert out.narrative_ids == [[]]


def test_a_tokenizer_without_a_pad_token_pads_with_its_end_of_sequence():
    tokenizer = tiny_tokenizer()
    tokenizer.pad_token = None
    collate = LumenCollator.for_tokenizer(tokenizer, "left")
    example = {"input_ids": [5, 6, 7], "labels": None, "item_ids": [], "target": 0}
    batch = collate([example, {**example, "input_ids": [8]}])
    assert batch["input_ids"][1].tolist() == [tokenizer.eos_token_id] * 2 + [8]


def test_the_new_tokens_start_among_the_lms_token_embeddings():
    """Rows drawn at the initializer's scale would start the switch token far from what the LM
    writes (on the embedded Gemma: half the median norm); mean resizing starts it among them."""
    tokenizer = tiny_tokenizer()
    language_model = tiny_gemma(tokenizer)
    with torch.no_grad():
        language_model.get_input_embeddings().weight *= 50  # trained rows, far from init
    add_item_tokens(tokenizer)
    model = LumenForCausalLM.from_base(language_model, tokenizer, NUM_ITEMS)
    norms = model.get_input_embeddings().weight.norm(dim=-1)
    median = norms[: len(tokenizer) - 2].median()
    assert 0.5 < norms[model.config.switch_token_id] / median < 2


@pytest.mark.parametrize("tied", [True, False])
def test_the_switch_token_trains_its_own_rows_under_a_frozen_lm(tokenizer, tied):
    """Under LoRA the LM's embeddings are frozen, the added switch token's rows among them: LUMEN
    reads and writes the switch through trainable rows of its own, and merging them back leaves
    the model as it was (ranking, text logits and decoding)."""
    base = tiny_gemma(tokenizer)
    if not tied:  # a head of its own, as many LMs have
        base.config.tie_word_embeddings = False
        base = type(base)(base.config)
    model = LumenForCausalLM.from_base(base, tokenizer, NUM_ITEMS).train()
    model.requires_grad_(False)
    rows = model.train_switch_rows()
    assert rows.tied is tied and len(list(rows.parameters())) == (1 if tied else 2)
    batch = joint_batch(model)  # reads the switch and is taught to write it
    model(**batch).loss.backward()
    for row in rows.parameters():
        assert row.grad is not None and row.grad.abs().sum() > 0
    with torch.no_grad():  # as if trained
        for row in rows.parameters():
            row.add_(torch.randn_like(row))

    model.eval()
    prompt, history = ids(model, 10, "item", 11, "switch"), torch.tensor([[3]])
    switch = model.config.switch_token_id

    def outputs():
        full = model(batch["input_ids"], item_ids=batch["item_ids"])
        written = model.generate(
            prompt[:, :-1], item_ids=history, stop_token_ids=[], max_new_tokens=4,
            max_text_before_item=0,
        )  # fmt: skip
        return full.logits, model.score_items(prompt, item_ids=history), written.narrative_ids

    logits, scores, narrative = outputs()
    frozen = model.get_input_embeddings().weight[switch].clone()
    model.merge_switch_rows()
    assert model.switch_rows is None and not any("switch_rows" in k for k in model.state_dict())
    assert not torch.equal(model.get_input_embeddings().weight[switch], frozen)
    merged_logits, merged_scores, merged_narrative = outputs()
    assert torch.allclose(merged_logits, logits, atol=1e-5)
    assert torch.allclose(merged_scores, scores, atol=1e-5)
    assert merged_narrative == narrative


def test_a_narrative_that_runs_on_into_another_block_is_cut_and_counted(tokenizer, monkeypatch):
    from regen_models.lumen.modeling_lumen import LumenGeneration
    from regen_models.lumen.recommender import Lumen, narrative_of
    from training.space.registry import LumenModel

    assert narrative_of(" Text: Good pens. ") == ("Good pens.", False)
    assert narrative_of("Text: Good pens.\nText: Good pens.\nID: ") == ("Good pens.", True)
    assert narrative_of("Good pens.\n\n ID: \nTitle: Pens") == ("Good pens.", True)
    kept = "Good pens.\nTextured grip.\nText messages?\nID card holders too.\nIDs on the cap."
    assert narrative_of(kept) == (kept, False)
    model = tiny_lumen(tokenizer)
    model.attach_item_vocabulary(tiny_vocabulary(NUM_ITEMS))
    lumen = Lumen(model, tokenizer)
    # A model that has not learnt to end its turn: it opens another `Text:` block.
    written = tokenizer("Text: Good pens.\nText: Good pens again.", add_special_tokens=False)
    written = written["input_ids"]

    def generate(input_ids, streamer=None, **kwargs):
        rows = len(input_ids)
        for token in written if streamer is not None else ():
            streamer.put(torch.tensor([token]))
        if streamer is not None:
            streamer.end()
        nothing = torch.zeros(rows, dtype=torch.bool)
        return LumenGeneration(torch.zeros(rows, dtype=torch.long), torch.zeros(rows),
                               [written] * rows, [[]] * rows, nothing)  # fmt: skip

    monkeypatch.setattr(model, "generate", generate)
    row = split_row(n_history=2)
    for index, bought in enumerate(row["history"]):
        bought["item_id"] = f"I{index:03d}"
    texts = [w.text for w in lumen.write([row, row], "purchase_reason")]
    assert texts == ["Good pens.", "Good pens."] and lumen.narratives_cut == 2
    # The Space streams the same text and stops there.
    streamed = list(LumenModel(lumen).narrate(row, "I001", "purchase_reason"))
    assert streamed[-1] == "Good pens." and "again" not in "".join(streamed)
    # A line opening with a word that starts like a label is streamed to the end, token by token.
    pieces = ("Text: Good pens.", "\nText", "ured", " grip.")
    written = [t for p in pieces for t in tokenizer(p, add_special_tokens=False)["input_ids"]]
    streamed = list(LumenModel(lumen).narrate(row, "I001", "purchase_reason"))
    assert streamed[-1] == "Good pens.\nTextured grip."


def test_the_lms_own_attention_is_kept_through_wrapping_and_reloading(tokenizer, tmp_path):
    # Gemma 2 (the paper recipe's LM) has no sdpa attention: LUMEN's default must not reach it.
    gemma2 = tiny_gemma2(tokenizer)
    assert gemma2.config._attn_implementation == "eager"
    model = LumenForCausalLM.from_base(gemma2, tokenizer, NUM_ITEMS).eval()
    assert model.config._attn_implementation == "eager"
    assert model.language_model.config._attn_implementation == "eager"
    input_ids = ids(model, 10, "item", 11, "switch")
    scores = model.score_items(input_ids, item_ids=torch.tensor([[3]]))
    model.save_pretrained(tmp_path / "gemma2")
    loaded = LumenForCausalLM.from_pretrained(tmp_path / "gemma2").eval()
    assert loaded.language_model.config._attn_implementation == "eager"
    assert torch.allclose(loaded.score_items(input_ids, item_ids=torch.tensor([[3]])), scores)
    # A Gemma 3 loaded with eager attention keeps it; one asked for nothing gets sdpa.
    gemma3 = tiny_gemma(tokenizer)
    gemma3.config._attn_implementation = "eager"
    wrapped = LumenForCausalLM.from_base(gemma3, tokenizer, NUM_ITEMS)
    assert wrapped.language_model.config._attn_implementation == "eager"
    assert tiny_lumen(tokenizer).language_model.config._attn_implementation == "sdpa"


def test_a_save_with_unmerged_switch_rows_is_refused_on_load(tokenizer, tmp_path):
    model = tiny_lumen(tokenizer)
    rows = model.train_switch_rows()
    with torch.no_grad():
        rows.input_row.add_(1.0)  # trained: the embeddings' own row is not this one
    model.save_pretrained(tmp_path / "unmerged")
    with pytest.raises(ValueError, match=r"switch-token rows unmerged \(switch_rows.input_row\)"):
        LumenForCausalLM.from_pretrained(tmp_path / "unmerged")
    model.merge_switch_rows()
    model.save_pretrained(tmp_path / "merged")
    loaded = LumenForCausalLM.from_pretrained(tmp_path / "merged")
    switch = model.config.switch_token_id
    assert torch.equal(
        loaded.get_input_embeddings().weight[switch], model.get_input_embeddings().weight[switch]
    )
