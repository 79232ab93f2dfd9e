"""Decoding constrained to each task's JSON Schema: on a tiny random causal LM with a byte-level
BPE tokenizer, both built in-process, and (smoke) on the embedded Gemma 3 270M."""

from __future__ import annotations

import asyncio
import json

import jsonschema
import pytest

from regen_dataset.inpaint import prompts
from regen_dataset.inpaint.backends import LocalBackend, make_backend
from regen_dataset.inpaint.constrained import (
    ANY_JSON_OBJECT,
    JSONSchemaLogitsProcessor,
    compile_schema,
    json_schema_processors,
    request_schema,
)
from regen_dataset.inpaint.runner import LLMRequest, repair_request
from tests.conftest import SAMPLES

EXTRA_LOGIT_ROWS = 5  # the model scores more tokens than the tokenizer has, as Gemma's does


def _sample_users(count: int) -> list[dict]:
    with open(SAMPLES / "office_synthetic.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line, _ in zip(handle, range(count), strict=False)]


def _task_prompts() -> dict[str, tuple[list[str], dict, object]]:
    """Per task: three real prompts of different lengths, the task's schema and its parser."""
    users = _sample_users(3)
    histories = [user["purchase_history"][: 2 + index] for index, user in enumerate(users)]
    critique = [prompts.critique_prompt(h[-2]["item"], h[-1]["item"]) for h in histories]
    texts = {key: "Likes tidy desks." for key in prompts.NARRATIVE_KEYS}
    return {
        "critique": (critique, prompts.CRITIQUES_SCHEMA, prompts.parse_critiques),
        "narratives": (
            [prompts.narratives_prompt(h) for h in histories],
            prompts.NARRATIVES_SCHEMA,
            prompts.parse_narratives,
        ),
        "endorsement": (
            [prompts.endorsement_prompt(h) for h in histories],
            prompts.ENDORSEMENT_SCHEMA,
            prompts.parse_endorsement,
        ),
        "rating": (
            [prompts.rater_prompt("user", h, **texts) for h in histories],
            prompts.scores_schema("user"),
            prompts.score_parser("user"),
        ),
    }


# Short prompts of three lengths, for a batch with padding: the tiny model reads nothing anyway.
PROMPTS = ["Answer:", "Answer in JSON:", "Write the JSON answer to the request above now:"]


@pytest.fixture(scope="module")
def tiny_lm():
    """A random 1-layer Llama and a byte-level BPE tokenizer trained on the pipeline's prompts.

    The output layer has a bias towards tokens that hold a quote or a closing bracket, so that
    the model's strings and arrays end soon: constrained answers stay short and the test fast."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=700,
        special_tokens=["<pad>", "<eos>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    corpus = [text for texts, _, _ in _task_prompts().values() for text in texts]
    core.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<eos>", pad_token="<pad>")
    tokenizer.padding_side = "left"
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer) + EXTRA_LOGIT_ROWS,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config).eval()
    head = torch.nn.Linear(config.hidden_size, config.vocab_size, bias=True)
    with torch.no_grad():
        head.weight.copy_(model.lm_head.weight)
        head.bias.zero_()
        for token, index in tokenizer.get_vocab().items():
            if any(mark in tokenizer.convert_tokens_to_string([token]) for mark in '"]}'):
                head.bias[index] = 4.0
    model.lm_head = head
    return model, tokenizer


def _generate(model, tokenizer, texts, schemas, seed: int, max_new_tokens: int = 400):
    """Sampled answers to `texts` as one left-padded batch, and whether each one stopped."""
    import torch

    inputs = tokenizer(texts, return_tensors="pt", padding=True)
    assert inputs["attention_mask"].min() == 0  # the batch is padded
    torch.manual_seed(seed)
    extra = {}
    if schemas is not None:
        extra["logits_processor"] = json_schema_processors(model, tokenizer, schemas)
    with torch.no_grad():
        output = model.generate(
            **inputs,
            do_sample=True,
            max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            **extra,
        )
    answers, stopped = [], []
    for row in output[:, inputs["input_ids"].shape[1] :].tolist():
        stopped.append(tokenizer.eos_token_id in row)
        answers.append(tokenizer.decode(row, skip_special_tokens=True))
    return answers, stopped


# -- the schemas and the parsers ------------------------------------------------------------


def test_each_prompt_maps_to_its_task_schema():
    tasks = _task_prompts()
    for texts, schema, _ in tasks.values():
        assert all(prompts.answer_schema(text) == schema for text in texts)
    history = _sample_users(1)[0]["purchase_history"][:3]
    for group in prompts.RATING_PROMPT_GROUPS:
        texts = {
            "purchase_reason": "r",
            "purchase_reason_explanation": "e",
            "user_summary_brief": "b",
            "user_summary_long": "l",
            "user_profile": "p",
            "product_endorsement": "x",
        }
        if group == "critique":
            text = prompts.critique_rater_prompt(
                history[:1], history[1]["item"], history[2]["item"], "More blue, please."
            )
        else:
            text = prompts.rater_prompt(group, history, **texts)
        assert prompts.answer_schema(text) == prompts.scores_schema(group)
    critique_prompt = tasks["critique"][0][0]
    repair = repair_request(LLMRequest(critique_prompt), "not json", ValueError("no JSON"))
    assert prompts.answer_schema(repair.prompt) == prompts.CRITIQUES_SCHEMA
    assert prompts.answer_schema("Name one colour of ink.") is None
    assert request_schema("Name one colour of ink.", json_output=True) == ANY_JSON_OBJECT
    assert request_schema(critique_prompt, json_output=False) is None
    for schema in (
        prompts.CRITIQUES_SCHEMA,
        prompts.NARRATIVES_SCHEMA,
        prompts.scores_schema("user"),
    ):
        jsonschema.Draft202012Validator.check_schema(schema)


def test_parsers_hold_answers_to_their_schemas():
    parse = prompts.score_parser("critique")
    ok = {"quality": "5", "specificity": 6.0, "relevance": 7, "confidence": 1, "extra": 9}
    assert parse(json.dumps(ok)) == {
        "quality": 5,
        "specificity": 6,
        "relevance": 7,
        "confidence": 1,
    }
    for bad, message in (
        (4.5, "not of type 'integer'"),  # was read as 4
        (8, "greater than the maximum of 7"),
        (True, "not of type 'integer'"),
    ):
        with pytest.raises(ValueError, match=message):
            parse(json.dumps({**ok, "quality": bad}))
    with pytest.raises(ValueError, match="'relevance' is missing"):
        parse(json.dumps({"quality": 5, "specificity": 6, "confidence": 1}))

    narratives = dict.fromkeys(prompts.NARRATIVE_KEYS, "Buys pens.")
    assert prompts.parse_narratives(json.dumps({**narratives, "purchase_reason": None}))
    too_long = {**narratives, "user_profile": "word " * 100}  # was accepted
    with pytest.raises(ValueError, match=r"\['user_profile'\]: breaks maxLength 100"):
        prompts.parse_narratives(json.dumps(too_long))
    with pytest.raises(ValueError, match="'user_profile' must be a non-empty string"):
        prompts.parse_narratives(json.dumps({**narratives, "user_profile": "  "}))

    many = [f"Show me option {index}." for index in range(prompts.MAX_CRITIQUES + 3)]
    kept = prompts.parse_critiques(json.dumps({"critiques": ["", 3, "x" * 301, *many]}))
    assert kept == many[: prompts.MAX_CRITIQUES]
    with pytest.raises(ValueError, match="no usable critique"):
        prompts.parse_critiques(json.dumps({"critiques": ["  "]}))
    too_long = {"product_endorsement": "y" * (prompts.MAX_ENDORSEMENT_CHARS + 1)}
    with pytest.raises(ValueError, match="breaks maxLength"):
        prompts.parse_endorsement(json.dumps(too_long))


# -- constrained generation on the tiny model ------------------------------------------------


@pytest.mark.parametrize("task", ["critique", "narratives", "endorsement", "rating"])
def test_constrained_batched_generation_always_validates(tiny_lm, task):
    model, tokenizer = tiny_lm
    _, schema, parse = _task_prompts()[task]
    for seed in range(3):
        answers, stopped = _generate(model, tokenizer, PROMPTS, [schema], seed)
        assert all(stopped), answers  # each answer was complete before the token limit
        for answer in answers:
            value = json.loads(answer)  # compact JSON, nothing around it
            jsonschema.validate(value, schema)
            parse(answer)


def test_unconstrained_generation_of_the_same_model_is_not_json(tiny_lm):
    model, tokenizer = tiny_lm
    for _, _, parse in _task_prompts().values():
        answers, _ = _generate(model, tokenizer, PROMPTS, None, seed=0, max_new_tokens=60)
        for answer in answers:
            with pytest.raises(ValueError):
                parse(answer)


def test_one_batch_may_mix_schemas(tiny_lm):
    model, tokenizer = tiny_lm
    tasks = _task_prompts()
    chosen = [tasks[name] for name in ("critique", "rating", "narratives")]
    answers, stopped = _generate(model, tokenizer, PROMPTS, [task[1] for task in chosen], seed=3)
    assert all(stopped)
    for answer, (_, schema, parse) in zip(answers, chosen, strict=True):
        jsonschema.validate(json.loads(answer), schema)
        parse(answer)


def test_grammars_are_compiled_once_per_tokenizer_and_schema(tiny_lm):
    model, tokenizer = tiny_lm
    size = model.config.vocab_size
    schema = prompts.scores_schema("user")
    first = compile_schema(tokenizer, schema, vocab_size=size, stop_token_ids=[1])
    again = compile_schema(tokenizer, dict(schema), vocab_size=size, stop_token_ids=[1])
    assert again is first
    other = compile_schema(tokenizer, schema, vocab_size=size, stop_token_ids=[0, 1])
    assert other is not first


def test_json_strings_hold_no_raw_control_characters_and_are_not_blank(tiny_lm):
    # xgrammar 0.2.8 lets control characters into length-limited strings, where JSON forbids
    # them, and a blank string meets minLength 1, where the parsers refuse it.
    import xgrammar

    model, tokenizer = tiny_lm
    grammar = compile_schema(
        tokenizer, prompts.CRITIQUES_SCHEMA, vocab_size=model.config.vocab_size, stop_token_ids=[1]
    )
    for text, allowed in (
        ('{"critiques": ["A blue one, please', True),
        ('{"critiques": ["A blue\x06', False),
        ('{"critiques": ["A blue\t', False),
        ('{"critiques": [" ', False),  # the parsers refuse blank strings
        ('{"critiques": ["\u00a0', False),
        ('{"critiques": ["A ', True),
        # no letter, though in a script's block: Devanagari's danda and digits, Greek's question
        # mark, the katakana middle dot; the block's letters pass
        ('{"critiques": ["\u0964', False),
        ('{"critiques": ["\u0966', False),
        ('{"critiques": ["\u037e', False),
        ('{"critiques": ["\u30fb', False),
        ('{"critiques": ["\u0915', True),
        ('{"critiques": ["\u30ab', True),
    ):
        assert xgrammar.GrammarMatcher(grammar).accept_string(text) is allowed, text


def test_processor_refuses_a_mismatched_batch_or_vocabulary(tiny_lm):
    import torch

    model, tokenizer = tiny_lm
    grammar = compile_schema(
        tokenizer, ANY_JSON_OBJECT, vocab_size=model.config.vocab_size, stop_token_ids=[1]
    )
    ids = torch.zeros((3, 4), dtype=torch.long)
    with pytest.raises(ValueError, match="2 grammars for a batch of 3"):
        JSONSchemaLogitsProcessor([grammar, grammar])(ids, torch.zeros(3, model.config.vocab_size))
    with pytest.raises(ValueError, match="compiled for"):
        JSONSchemaLogitsProcessor([grammar])(ids, torch.zeros(3, model.config.vocab_size - 1))


# -- through the local backend ---------------------------------------------------------------


def _complete(backend, prompt: str, json_output: bool = True):
    return asyncio.run(backend.complete(prompt, max_output_tokens=400, json_output=json_output))


def test_local_backend_constrains_json_requests_unless_told_not_to(tiny_lm):
    import torch

    model, tokenizer = tiny_lm
    texts, _, parse = _task_prompts()["rating"]
    prompt = texts[0]
    constrained = LocalBackend("tiny", loader=lambda name: tiny_lm)
    torch.manual_seed(0)
    answer = _complete(constrained, prompt)
    assert set(parse(answer.text)) == set(prompts.scores_schema("user")["properties"])
    assert answer.output_tokens < 400  # it stopped after the JSON object

    free = LocalBackend("tiny", loader=lambda name: tiny_lm, constrained_decoding=False)
    torch.manual_seed(0)
    with pytest.raises(ValueError):
        parse(_complete(free, prompt).text)
    torch.manual_seed(0)
    with pytest.raises(ValueError):  # no JSON asked for: no constraint
        parse(_complete(constrained, prompt, json_output=False).text)

    assert make_backend("local").constrained_decoding is True
    assert make_backend("local", constrained_decoding=False).constrained_decoding is False


# -- the embedded Gemma 3 270M ---------------------------------------------------------------


@pytest.mark.smoke
def test_embedded_gemma_answers_real_prompts_with_valid_json():
    import torch

    backend = make_backend("local")
    tasks = _task_prompts()
    for task, limit in (("rating", 64), ("critique", 384)):
        texts, _, parse = tasks[task]
        torch.manual_seed(0)
        answer = asyncio.run(
            backend.complete(
                texts[0],
                system=prompts.SYSTEM,
                temperature=0.0,
                max_output_tokens=limit,
                json_output=True,
            )
        )
        parse(answer.text)  # raises if the answer is not valid


def test_cli_turns_constrained_decoding_off(tmp_path):
    import argparse

    from regen_dataset import cli

    parser = argparse.ArgumentParser()
    cli._add_llm_arguments(parser)
    for extra, expected in (([], True), (["--no-constrained-decoding"], False)):
        args = parser.parse_args(["--backend", "local", *extra])
        runner, _ = cli._llm(args, str(tmp_path / "out"))
        assert runner.backend.constrained_decoding is expected


def test_placeholder_answers_are_refused():
    """What a small model copies from a prompt's answer format is not an answer."""
    from regen_dataset.inpaint import prompts

    with pytest.raises(ValueError, match="no usable critique"):
        prompts.parse_critiques('{"critiques": ["...", "..."]}')
    assert prompts.parse_critiques('{"critiques": ["...", "In navy, please."]}') == [
        "In navy, please."
    ]


def test_constrained_and_free_answers_do_not_share_the_cache():
    from regen_dataset.inpaint.runner import LLMRequest

    request = LLMRequest(prompt="p")
    constrained = LocalBackend(constrained_decoding=True)
    free = LocalBackend(constrained_decoding=False)
    assert request.key(constrained) != request.key(free)
