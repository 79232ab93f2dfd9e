"""The narrator: an adapter that records its base, round-trips, refuses another base, generates
in batches from history prompts (a tiny random Gemma 3 here)."""

import json

import pytest
import torch

from regen_models.narrator import BaseModelMismatchError, Narrator, NarratorConfig, formatting
from regen_models.narrator.configuration_narrator import (
    NARRATOR_CONFIG_FILE,
    base_signature,
    max_new_tokens_of_references,
    max_new_tokens_per_kind,
)
from regen_models.narrator.loading import add_lora, four_bit_problem, load_base
from regen_models.prompts import build_prompt
from tests.regen_models.test_prompts import purchase, split_row
from tests.tiny_gemma import save_tiny_gemma, tiny_gemma, tiny_tokenizer

PROMPTS = [
    build_prompt(split_row(n)["history"], split_row(n)["target"], kind).text
    for n, kind in ((1, "purchase_reason"), (4, "user_profile"), (2, "product_endorsement"))
]


def save_adapter(base_folder, out, seed: int = 1):
    """An untrained adapter with random (non-zero) LoRA weights, saved as training saves one."""
    model, tokenizer = load_base(str(base_folder))
    peft_model = add_lora(model, str(base_folder), r=4, alpha=8, dropout=0.0)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.5)
    peft_model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    NarratorConfig(
        base_model=str(base_folder),
        base_signature=base_signature(model.config),
        kinds=["purchase_reason", "user_profile"],
        max_new_tokens={"purchase_reason": 12, "user_profile": 6},
        max_prompt_tokens=768,
        with_critiques=True,
    ).save(out)
    return peft_model.eval(), tokenizer


@pytest.fixture(scope="module")
def adapter(tiny_gemma_base, tmp_path_factory):
    out = tmp_path_factory.mktemp("narrator") / "adapter"
    model, tokenizer = save_adapter(tiny_gemma_base, out)
    return out, model, tokenizer


# peft's notice about a transformers rename is not shown (loading.py)
@pytest.mark.filterwarnings("error:`is_gradient_checkpointing`:FutureWarning")
def test_the_adapter_records_its_base_by_name(tiny_gemma_base, adapter, tmp_path, monkeypatch):
    out, _, _ = adapter
    recorded = json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert recorded == str(tiny_gemma_base.resolve())
    model, _ = load_base(str(tiny_gemma_base))
    # The embedded model is recorded by its name, never by the folder it is cached in.
    embedded = add_lora(model, "embedded")
    assert embedded.peft_config["default"].base_model_name_or_path == "embedded"
    # ... and saving never looks that name up on the Hub.
    from peft.utils import save_and_load

    def no_hub(*args, **kwargs):
        raise AssertionError(f"looked up on the Hub: {args}")

    monkeypatch.setattr(save_and_load, "check_file_exists_on_hf_hub", no_hub)
    embedded.save_pretrained(tmp_path / "saved")
    assert (tmp_path / "saved" / "adapter_model.safetensors").exists()


# peft's notice about a transformers rename is not shown (loading.py)
@pytest.mark.filterwarnings("error:`is_gradient_checkpointing`:FutureWarning")
def test_round_trip_gives_the_same_texts(adapter):
    out, model, tokenizer = adapter
    in_memory = Narrator(model, tokenizer, NarratorConfig.load(out))
    reloaded = Narrator.from_pretrained(out)
    assert reloaded.base_model == in_memory.base_model and reloaded.kinds == in_memory.kinds
    # A random model may end a text at once or write only blanks: forbid both (and special
    # tokens), so that the comparisons below compare words.
    blank = [i for i in range(len(tokenizer)) if not tokenizer.decode([i]).strip()]
    words_only = {"min_new_tokens": 6, "suppress_tokens": blank + tokenizer.all_special_ids}
    texts = reloaded.generate(PROMPTS, kind="purchase_reason", **words_only)
    assert texts == in_memory.generate(PROMPTS, kind="purchase_reason", **words_only)
    assert len(texts) == 3 and all(text.strip() for text in texts)
    # The adapter changes what the base writes (it is loaded, not silently dropped).
    base, _ = load_base(str(NarratorConfig.load(out).base_model))
    plain = Narrator(base, tokenizer, NarratorConfig.load(out))
    assert plain.generate(PROMPTS, kind="purchase_reason", **words_only) != texts


def own_tokens_only(tokenizer, prompts):
    """A `prefix_allowed_tokens_fn` that lets each prompt's row write only tokens found in that
    prompt and in no other, so that every prompt gets its own text: a random model otherwise
    writes the same words whatever the prompt, and rows that changed places would go unseen."""
    encoded = [set(formatting.encode_for_generation(tokenizer, p)) for p in prompts]
    own = [ids - set().union(*(o for o in encoded if o is not ids)) for ids in encoded]

    def allowed(batch_id, input_ids):
        present = set(input_ids.tolist())
        [tokens] = [tokens for tokens in own if tokens & present]  # the row's prompt
        return sorted(tokens)

    return allowed


def test_batched_generation_matches_one_at_a_time(adapter):
    out, _, _ = adapter
    narrator = Narrator.from_pretrained(out)
    logits, generate = [], narrator.model.generate

    def recording(**kwargs):
        output = generate(**kwargs, output_logits=True, return_dict_in_generate=True)
        logits.extend(torch.stack(output.logits, dim=1))  # a [steps, vocab] tensor per row
        return output.sequences

    narrator.model.generate = recording
    options = {"prefix_allowed_tokens_fn": own_tokens_only(narrator.tokenizer, PROMPTS)}
    lengths = [len(formatting.encode_for_generation(narrator.tokenizer, p)) for p in PROMPTS]
    assert len(set(lengths)) == 3  # so the batches are left-padded
    # Two batches: the first pads one prompt to the other's length.
    batched = narrator.generate(PROMPTS, kind="user_profile", batch_size=2, **options)
    alone = [narrator.generate([p], kind="user_profile", **options)[0] for p in PROMPTS]
    assert batched == alone and len(set(alone)) == 3
    for row in range(3):  # what the model saw of each prompt, padding or not
        torch.testing.assert_close(logits[row], logits[3 + row], rtol=1e-4, atol=1e-4)


def test_generation_options_given_with_greedy_decoding_are_passed_on(adapter):
    out, _, _ = adapter
    narrator = Narrator.from_pretrained(out)
    calls, generate = [], narrator.model.generate

    def recording(**kwargs):
        calls.append(kwargs)
        return generate(**kwargs)

    narrator.model.generate = recording
    [text] = narrator.generate(PROMPTS[:1], kind="user_profile", top_k=1, repetition_penalty=1.3)
    assert isinstance(text, str)
    # Greedy decoding clears the base's sampling defaults, but not what the caller asked for.
    assert calls[0]["top_k"] == 1 and calls[0]["repetition_penalty"] == 1.3
    assert calls[0]["top_p"] is None and calls[0]["temperature"] is None
    narrator.generate(PROMPTS[:1], kind="user_profile", do_sample=True, top_p=0.5)
    assert calls[1]["top_p"] == 0.5 and "top_k" not in calls[1]


def test_max_new_tokens_per_kind_bounds_the_output(adapter):
    out, _, _ = adapter
    narrator = Narrator.from_pretrained(out)
    counter = formatting.completion_token_counter(narrator.tokenizer)
    for text in narrator.generate(PROMPTS, kind="user_profile"):
        assert counter(text) <= 6 + 1  # decoding may merge or split a token at the end
    assert narrator.max_new_tokens(None) == 12
    assert narrator.generate(PROMPTS, kind="user_profile", max_new_tokens=0) == ["", "", ""]
    for length in (None, 4):  # an explicit length does not skip the check of the kind
        with pytest.raises(ValueError, match="trained for .* not for 'user_summary_long'"):
            narrator.generate(PROMPTS, kind="user_summary_long", max_new_tokens=length)


def test_a_listed_kind_without_a_length_says_it_was_never_trained():
    config = NarratorConfig("base", {}, ["purchase_reason", "user_profile"],
                            {"purchase_reason": 12}, None, True)  # fmt: skip
    with pytest.raises(ValueError, match="lists 'user_profile' among its kinds, but its training"):
        Narrator(None, None, config).max_new_tokens("user_profile")


def test_another_base_than_asked_is_a_clear_error(adapter, tmp_path):
    out, _, _ = adapter
    with pytest.raises(BaseModelMismatchError, match="trained on the base model .* not 'embedded'"):
        Narrator.from_pretrained(out, base="embedded")
    # The recorded base itself changed shape since: refused before peft fails on shapes.
    other = save_tiny_gemma(tmp_path / "other")
    config = json.loads((other / "config.json").read_text())
    config["num_hidden_layers"], config["layer_types"] = 1, config["layer_types"][:1]
    (other / "config.json").write_text(json.dumps(config))
    copy = tmp_path / "adapter"
    copy.mkdir()
    for path in out.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    adapter_config = json.loads((copy / "adapter_config.json").read_text())
    adapter_config["base_model_name_or_path"] = str(other)
    (copy / "adapter_config.json").write_text(json.dumps(adapter_config))
    with pytest.raises(BaseModelMismatchError, match="its shape is .*'num_hidden_layers': 1"):
        Narrator.from_pretrained(copy)


def test_an_adapter_follows_its_local_base_to_a_new_folder(tiny_gemma_base, tmp_path):
    import shutil

    moved_base = tmp_path / "moved-base"
    shutil.copytree(tiny_gemma_base, tmp_path / "base")
    out = tmp_path / "adapter"
    _, tokenizer = save_adapter(tmp_path / "base", out)
    before = Narrator.from_pretrained(out).generate(PROMPTS[:1], kind="purchase_reason")
    (tmp_path / "base").rename(moved_base)
    with pytest.raises(FileNotFoundError, match="which is not there any more: name the base's new"):
        Narrator.from_pretrained(out)
    assert (
        Narrator.from_pretrained(out, base=str(moved_base)).generate(
            PROMPTS[:1], kind="purchase_reason"
        )
        == before
    )
    # Another folder than the recorded one, while that one is there, is refused as before.
    moved_base.rename(tmp_path / "base")
    with pytest.raises(BaseModelMismatchError, match="trained on the base model"):
        Narrator.from_pretrained(out, base=str(tiny_gemma_base))


def test_a_folder_without_a_narrator_config_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=f"has no {NARRATOR_CONFIG_FILE}"):
        Narrator.from_pretrained(tmp_path)


def test_training_and_generation_see_the_same_context(tiny_gemma_base):
    _, tokenizer = load_base(str(tiny_gemma_base))
    example = formatting.training_example(tokenizer, PROMPTS[0], "Because it is red.")
    whole = tokenizer.apply_chat_template(example["prompt"] + example["completion"], tokenize=False)
    prompt = formatting.generation_text(tokenizer, PROMPTS[0])
    assert prompt.endswith("<start_of_turn>model\n") and whole.startswith(prompt)
    assert whole[len(prompt) :] == "Because it is red.<end_of_turn>\n"
    end_of_turn = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    assert end_of_turn in formatting.stop_token_ids(tokenizer)


CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
LLAMA3 = (
    "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def tokenizer_with_template(template: str, special_tokens: list[str]):
    tokenizer = tiny_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": special_tokens})
    tokenizer.chat_template = template
    return tokenizer


@pytest.mark.parametrize(
    "template, special_tokens, end",
    [
        (CHATML, ["<|im_start|>", "<|im_end|>"], "<|im_end|>"),
        (LLAMA3, ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"], "<|eot_id|>"),
        ("{% for m in messages %}{{ m['content'] }}\n{% endfor %}", [], None),
    ],
    ids=["chatml", "llama3", "no-end-token"],
)
def test_the_end_of_a_turn_comes_from_the_chat_template(template, special_tokens, end):
    tokenizer = tokenizer_with_template(template, special_tokens)
    stops = tokenizer.convert_ids_to_tokens(formatting.stop_token_ids(tokenizer))
    assert stops == ["<eos>"] + ([end] if end else [])


def test_generation_stops_at_the_end_of_a_chatml_turn():
    tokenizer = tokenizer_with_template(CHATML, ["<|im_start|>", "<|im_end|>"])
    model = tiny_gemma(tokenizer).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id  # as a base model's says
    config = NarratorConfig("base", {}, ["user_profile"], {"user_profile": 8}, None, True)
    narrator = Narrator(model, tokenizer, config)
    lengths, generate = [], model.generate

    def recording(**kwargs):
        output = generate(**kwargs)
        lengths.append(output.shape[1] - kwargs["input_ids"].shape[1])
        return output

    model.generate = recording
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    # A model that ends its turn at once: one new token, not eight.
    narrator.generate(PROMPTS[:1], kind="user_profile", sequence_bias={(end,): 100.0})
    assert lengths == [1]


def test_max_new_tokens_come_from_the_reference_lengths():
    pairs = [{"kind": "a", "completion": "w " * n} for n in range(1, 101)]
    pairs += [{"kind": "b", "completion": "w"}]
    lengths = max_new_tokens_per_kind(pairs, lambda text: len(text.split()))
    assert lengths == {"a": 124, "b": 16}  # 1.25 x the 99th percentile (99), and the floor
    rows = [{"narratives": {"a": "w " * n, "b": " "}} for n in range(1, 101)]
    rows += [{"narratives": None}, {"narratives": {"c": "w " * 500}}]
    count = lambda text: len(text.split())  # noqa: E731
    assert max_new_tokens_of_references(rows, ["a", "b"], count) == {"a": 124}


def test_four_bit_needs_cuda_and_bitsandbytes():
    problem = four_bit_problem()
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible")
    assert problem and ("CUDA" in problem or "bitsandbytes is not installed" in problem)


def test_prompts_fit_the_narrator_budget(adapter):
    out, _, _ = adapter
    narrator = Narrator.from_pretrained(out)
    row = split_row(n_history=30)
    prompt = build_prompt(row["history"], row["target"], "purchase_reason",
                          count_tokens=narrator.count_prompt_tokens(),
                          max_tokens=narrator.max_prompt_tokens)  # fmt: skip
    assert prompt.cut and narrator.count_prompt_tokens()(prompt.text) <= 768
    assert build_prompt([purchase(1)], purchase(2), "user_profile").purchases_kept == 1
