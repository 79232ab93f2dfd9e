"""The backends with the real `openai`, `google-genai` and (legacy) `google-generativeai` clients
against loopback fakes of the two APIs (fake_servers.py), fully offline; LocalBackend on a tiny
random model built in-process."""

from __future__ import annotations

import asyncio
import copy
import json
import socket
import sys
import types

import pytest

from regen_dataset.inpaint.backends import (
    AnswerCutOff,
    Backend,
    BackendError,
    Completion,
    GeminiBackend,
    LegacyGeminiBackend,
    LocalBackend,
    OpenAIBackend,
    PromptRefused,
    RetryableError,
    make_backend,
)
from regen_dataset.inpaint.runner import LLMRequest
from tests.regen_dataset.inpaint.fake_servers import FakeGemini, FakeOpenAI, echo_answer, words

OPENAI_KEY = "sk-test-not-a-secret"
GEMINI_KEY = "gemini-test-not-a-secret"


@pytest.fixture
def openai_server(monkeypatch):
    pytest.importorskip("openai")
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with FakeOpenAI(api_key=OPENAI_KEY, slow_seconds=1.5) as server:
        yield server


@pytest.fixture
def gemini_server(monkeypatch):
    pytest.importorskip("google.genai")
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with FakeGemini(api_key=GEMINI_KEY, slow_seconds=1.5) as server:
        yield server


def call(backend: Backend, work):
    """Run `work(backend)` in a fresh event loop, then close the backend's client."""

    async def go():
        try:
            return await work(backend)
        finally:
            await backend.aclose()

    return asyncio.run(go())


def complete(backend: Backend, prompt: str, **options) -> Completion:
    return call(backend, lambda b: b.complete(prompt, **options))


# -- OpenAI --------------------------------------------------------------------------------------


def test_openai_completion_request_and_tokens(openai_server):
    backend = make_backend("openai", "gpt-test", base_url=openai_server.base_url)
    assert isinstance(backend, OpenAIBackend)
    result = complete(
        backend,
        "rate this item",
        system="be brief",
        temperature=0.2,
        max_output_tokens=77,
        json_output=True,
    )
    assert result.text == echo_answer("rate this item")
    assert result.input_tokens == words("rate this item be brief")
    assert result.output_tokens == words(result.text)

    (request,) = openai_server.calls()
    assert request.path == "/v1/chat/completions"
    assert request.headers["authorization"] == f"Bearer {OPENAI_KEY}"
    body = request.json()
    assert body["model"] == "gpt-test"
    assert body["messages"] == [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "rate this item"},
    ]
    assert body["temperature"] == 0.2
    assert body["max_tokens"] == 77  # a compatible server: max_tokens
    assert body["response_format"] == {"type": "json_object"}

    complete(backend, "plain text please")
    body = openai_server.calls()[-1].json()
    assert "response_format" not in body and body["messages"][0]["role"] == "user"


def test_openai_official_api_wants_a_key_and_max_completion_tokens(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(BackendError, match="OPENAI_API_KEY"):
        make_backend("openai")
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    backend = make_backend("openai")
    assert backend.model == "gpt-4o-mini"
    body = backend._body("p", None, 1.0, 50, False)
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body


def test_openai_compatible_server_needs_no_key(monkeypatch):
    pytest.importorskip("openai")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with FakeOpenAI() as server:  # like a local vLLM: no key checked
        backend = make_backend("openai", "llama", base_url=server.base_url)
        assert complete(backend, "hi").text == echo_answer("hi")
        assert server.calls()[0].headers["authorization"] == "Bearer no-key-needed"


@pytest.mark.parametrize(
    "fault, error, retry_after",
    [
        ("429:0.25", RetryableError, 0.25),
        ("500", RetryableError, None),
        ("503", RetryableError, None),
        ("drop", RetryableError, None),
        ("slow", RetryableError, None),
        ("400", BackendError, None),
        ("quota", BackendError, None),  # 429 insufficient_quota: waiting will not help
    ],
)
def test_openai_errors_are_classified(openai_server, fault, error, retry_after):
    backend = make_backend("openai", "gpt-test", base_url=openai_server.base_url, timeout=1.0)
    openai_server.push_faults(fault)
    with pytest.raises(error) as caught:
        complete(backend, "hello")
    assert "openai model 'gpt-test'" in str(caught.value)
    if error is RetryableError:
        assert caught.value.retry_after == retry_after
    if fault == "slow":
        assert "timed out" in str(caught.value)
    assert len(openai_server.calls()) == 1  # the SDK itself does not retry


def test_openai_bad_key_fails_with_a_clean_message(openai_server, monkeypatch):
    wrong = "sk-wrong-key-that-the-server-echoes"
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    backend = make_backend("openai", "gpt-test", base_url=openai_server.base_url)
    with pytest.raises(BackendError) as caught:
        complete(backend, "hello")
    message = str(caught.value)
    assert "HTTP 401" in message and "Incorrect API key" in message
    assert wrong not in message and wrong not in repr(caught.value)
    assert caught.value.__suppress_context__


def test_openai_batch_submit_and_poll(openai_server):
    openai_server.polls_until_done = 2
    refused = "prompt 2"

    def answer(prompt):
        if prompt == refused:
            raise RuntimeError("refused")
        return echo_answer(prompt)

    openai_server.answer = answer
    backend = make_backend("openai", "gpt-test", base_url=openai_server.base_url)
    requests = [LLMRequest(f"prompt {i}", system="sys", max_output_tokens=9) for i in range(4)]
    job_id = call(backend, lambda b: b.submit_batch(requests))

    (upload,) = openai_server.called("POST", r"^/v1/files$")
    assert upload.headers["content-type"].startswith("multipart/form-data")
    (stored,) = openai_server.files.values()
    assert stored["purpose"] == "batch"
    lines = [json.loads(line) for line in stored["content"].decode().splitlines()]
    assert [line["custom_id"] for line in lines] == [r.key(backend) for r in requests]
    assert {line["url"] for line in lines} == {"/v1/chat/completions"}
    assert {line["method"] for line in lines} == {"POST"}
    assert lines[0]["body"]["messages"][0] == {"role": "system", "content": "sys"}
    assert lines[0]["body"]["response_format"] == {"type": "json_object"}
    (create,) = openai_server.called("POST", r"^/v1/batches$")
    assert create.json()["endpoint"] == "/v1/chat/completions"
    assert create.json()["completion_window"] == "24h"

    assert call(backend, lambda b: b.poll_batch(job_id)) is None  # still in progress
    answers = call(backend, lambda b: b.poll_batch(job_id))
    expected = {r.key(backend): echo_answer(r.prompt) for r in requests if r.prompt != refused}
    assert {key: c.text for key, c in answers.items()} == expected  # the failed one is absent
    first = answers[requests[0].key(backend)]
    assert first.input_tokens == words("sys prompt 0")
    assert first.output_tokens == words(first.text)


# -- Gemini --------------------------------------------------------------------------------------


def test_gemini_completion_request_and_tokens(gemini_server):
    backend = make_backend("gemini", "gemini-test", base_url=gemini_server.base_url)
    assert isinstance(backend, GeminiBackend)
    result = complete(
        backend,
        "rate this item",
        system="be brief",
        temperature=0.2,
        max_output_tokens=77,
        json_output=True,
    )
    assert result.text == echo_answer("rate this item")
    assert result.input_tokens == words("rate this item be brief")
    assert result.output_tokens == words(result.text) + 2  # thinking tokens count as output

    (request,) = gemini_server.calls()
    assert request.path == "/v1beta/models/gemini-test:generateContent"
    assert request.headers["x-goog-api-key"] == GEMINI_KEY
    body = request.json()
    assert body["contents"] == [{"role": "user", "parts": [{"text": "rate this item"}]}]
    assert body["systemInstruction"]["parts"] == [{"text": "be brief"}]
    assert body["generationConfig"] == {
        "temperature": 0.2,
        "maxOutputTokens": 77,
        "responseMimeType": "application/json",
    }


def test_gemini_key_from_google_api_key(monkeypatch):
    pytest.importorskip("google.genai")
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "google-test-key")
    with FakeGemini(api_key="google-test-key") as server:
        backend = make_backend("gemini", "gemini-test", base_url=server.base_url)
        assert complete(backend, "hi").text == echo_answer("hi")
    monkeypatch.delenv("GOOGLE_API_KEY")
    with pytest.raises(BackendError, match="GEMINI_API_KEY"):
        make_backend("gemini")


@pytest.mark.parametrize(
    "fault, error, retry_after",
    [
        ("429:0.25", RetryableError, 0.25),  # from the RetryInfo detail of the error body
        ("500", RetryableError, None),
        ("503", RetryableError, None),
        ("drop", RetryableError, None),
        ("slow", RetryableError, None),
        ("400", BackendError, None),
    ],
)
def test_gemini_errors_are_classified(gemini_server, fault, error, retry_after):
    backend = make_backend("gemini", "gemini-test", base_url=gemini_server.base_url, timeout=1.0)
    gemini_server.push_faults(fault)
    with pytest.raises(error) as caught:
        complete(backend, "hello")
    assert "gemini model 'gemini-test'" in str(caught.value)
    if error is RetryableError:
        assert caught.value.retry_after == retry_after
    assert len(gemini_server.calls()) == 1  # the SDK itself does not retry


@pytest.mark.parametrize(
    "backend, fault, said",
    [
        ("gemini", "html", "the body is not JSON: '<html><body>Bad gateway"),
        ("gemini", "cut", """the body is not JSON: '{"candidates": [{"cont'"""),
        (
            "gemini",
            "error-object",
            "an answer without candidates (an error object or an empty body)",
        ),
        ("openai", "no-choices", "an answer without choices: model is overloaded"),
        ("openai", "html", "the body is not JSON: '<html><body>Bad gateway"),
        ("openai", "cut", """the body is not JSON: '{"id": "chatcmpl-1", "choi'"""),
    ],
)
@pytest.mark.parametrize("candidates", [1, 3])
def test_a_200_without_an_answer_is_a_failed_call(request, backend, fault, said, candidates):
    server = request.getfixturevalue(f"{backend}_server")
    model = make_backend(backend, f"{backend}-test", base_url=server.base_url)
    server.push_faults(fault)
    with pytest.raises(RetryableError) as caught:
        if candidates == 1:
            complete(model, "hello")
        else:
            call(model, lambda b: b.complete_candidates("hello", candidates))
    message = str(caught.value)
    assert f"model '{backend}-test' at {server.base_url}: HTTP 200: {said}" in message
    assert "run again later" in message and caught.value.status == 200


@pytest.mark.parametrize("name", ["gemini", "gemini-legacy"])
@pytest.mark.parametrize("candidates", [1, 3])
def test_a_blocked_prompt_is_refused_not_retried(request, monkeypatch, name, candidates):
    # Gemini answers a prompt it blocks (SAFETY, OTHER) with no candidates: the same prompt is
    # blocked again, so it is that request's refusal, which the Runner skips and counts.
    pytest.importorskip("google.genai" if name == "gemini" else "google.generativeai")
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with FakeGemini(api_key=GEMINI_KEY) as server:
        model = make_backend(name, "gemini-test", base_url=server.base_url)
        server.push_faults("no-candidates")
        with pytest.raises(PromptRefused) as caught:
            if candidates == 1:
                complete(model, "hello")
            else:
                call(model, lambda b: b.complete_candidates("hello", candidates))
        assert str(caught.value).endswith(
            f"model 'gemini-test' at {server.base_url}: prompt blocked: OTHER (not retried)"
        )


@pytest.mark.parametrize(
    "model, budget, sent_budget, sent_limit",
    [
        ("gemini-2.5-flash", "auto", 0, 77),  # thinking off
        ("gemini-2.5-flash-lite", "auto", 0, 77),
        ("gemini-2.5-pro", "auto", 128, 77 + 128),  # the least it takes, on top of the answer's
        ("gemini-2.0-flash", "auto", None, 77),  # no thinking model: no thinkingConfig
        ("gemini-2.5-flash", 512, 512, 77 + 512),
        ("gemini-2.5-flash", None, None, 77),  # the model's own default
    ],
)
def test_gemini_thinking_budget_leaves_the_answer_its_output_tokens(
    gemini_server, model, budget, sent_budget, sent_limit
):
    backend = make_backend("gemini", model, base_url=gemini_server.base_url, thinking_budget=budget)
    complete(backend, "rate this", max_output_tokens=77)
    config = gemini_server.calls()[-1].json()["generationConfig"]
    assert config["maxOutputTokens"] == sent_limit
    if sent_budget is None:
        assert "thinkingConfig" not in config and backend.decoding is None
    else:
        # protobuf JSON takes either spelling; this SDK version sends the snake_case one
        sent = {key.replace("_b", "B"): value for key, value in config["thinkingConfig"].items()}
        assert sent == {"thinkingBudget": sent_budget}
        assert backend.decoding == f"thinking_budget={sent_budget}"  # in the cache key
    assert f"thinking_budget={sent_budget!r}" in repr(backend)


def test_a_thinking_budget_is_refused_where_it_means_nothing(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    with pytest.raises(ValueError, match="takes no thinking budget"):
        make_backend("openai", "m", thinking_budget=0)


@pytest.mark.parametrize("candidates", [1, 3])
def test_gemini_answer_cut_off_before_any_text_is_no_answer(gemini_server, candidates):
    gemini_server.think_past_the_limit = True
    backend = make_backend(
        "gemini", "gemini-2.5-flash", base_url=gemini_server.base_url, thinking_budget=None
    )
    with pytest.raises(AnswerCutOff) as caught:
        if candidates == 1:
            complete(backend, "rate this", max_output_tokens=256)
        else:
            call(backend, lambda b: b.complete_candidates("rate this", candidates))
    assert "(MAX_TOKENS) before any text" in str(caught.value)
    assert caught.value.completion.output_tokens > 0  # paid for all the same
    # The default budget turns thinking off, and the answer comes.
    backend = make_backend("gemini", "gemini-2.5-flash", base_url=gemini_server.base_url)
    assert complete(backend, "rate this", max_output_tokens=256).text == echo_answer("rate this")


def test_gemini_bad_key_fails_with_a_clean_message(gemini_server, monkeypatch):
    wrong = "gemini-wrong-key-that-the-server-echoes"
    monkeypatch.setenv("GEMINI_API_KEY", wrong)
    backend = make_backend("gemini", "gemini-test", base_url=gemini_server.base_url)
    with pytest.raises(BackendError) as caught:
        complete(backend, "hello")
    assert "API key not valid" in str(caught.value)
    assert wrong not in str(caught.value) and wrong not in repr(caught.value)


def test_gemini_batch_submit_and_poll(gemini_server):
    gemini_server.polls_until_done = 2
    refused = "prompt 1"

    def answer(prompt):
        if prompt == refused:
            raise RuntimeError("refused")
        return echo_answer(prompt)

    gemini_server.answer = answer
    backend = make_backend("gemini", "gemini-test", base_url=gemini_server.base_url)
    requests = [LLMRequest(f"prompt {i}", system="sys", temperature=0.5) for i in range(3)]
    job_id = call(backend, lambda b: b.submit_batch(requests))
    assert job_id.startswith("batches/")

    (create,) = gemini_server.called("POST", r":batchGenerateContent$")
    assert create.path == "/v1beta/models/gemini-test:batchGenerateContent"
    inline = create.json()["batch"]["inputConfig"]["requests"]["requests"]
    assert [item["metadata"]["key"] for item in inline] == [r.key(backend) for r in requests]
    first = inline[0]["request"]
    assert first["contents"] == [{"role": "user", "parts": [{"text": "prompt 0"}]}]
    assert first["systemInstruction"]["parts"] == [{"text": "sys"}]
    assert first["generationConfig"]["responseMimeType"] == "application/json"

    assert call(backend, lambda b: b.poll_batch(job_id)) is None
    answers = call(backend, lambda b: b.poll_batch(job_id))
    expected = {r.key(backend): echo_answer(r.prompt) for r in requests if r.prompt != refused}
    assert {key: c.text for key, c in answers.items()} == expected
    assert gemini_server.called("GET", r"^/v1beta/batches/job\d+$")


# -- the factory ---------------------------------------------------------------------------------


def test_make_backend_names_defaults_and_reprs(monkeypatch):
    pytest.importorskip("google.genai")
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    with pytest.raises(ValueError, match="unknown backend"):
        make_backend("claude")
    with pytest.raises(ValueError, match="base_url"):
        make_backend("local", base_url="http://127.0.0.1:1")
    local = make_backend("local")
    assert isinstance(local, LocalBackend) and local.model == "embedded"
    assert not local.supports_batch
    openai_backend = make_backend("OpenAI", base_url="http://127.0.0.1:9/v1")
    gemini_backend = make_backend("gemini")
    assert gemini_backend.model == "gemini-2.5-flash" and gemini_backend.supports_batch
    for backend in (openai_backend, gemini_backend, local):
        text = repr(backend) + str(vars(backend))
        assert OPENAI_KEY not in text and GEMINI_KEY not in text


# -- local ---------------------------------------------------------------------------------------

TEMPLATE = (
    "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }} {% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}"
)


@pytest.fixture(scope="module")
def tiny_lm():
    """A random 1-layer Llama and a word-level tokenizer with a chat template, built offline."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    vocabulary = "<pad> <eos> <unk> <user> <system> <assistant> hello world rate the item json"
    vocab = {word: index for index, word in enumerate(vocabulary.split())}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, eos_token="<eos>", pad_token="<pad>", unk_token="<unk>"
    )
    tokenizer.chat_template = TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
        eos_token_id=1,
        pad_token_id=0,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config), tokenizer


def test_local_backend_loads_lazily_through_regen_models_base(tiny_lm, monkeypatch):
    loaded = []

    def load_causal_lm(name_or_path="embedded"):
        loaded.append(name_or_path)
        return tiny_lm

    fake_base = types.ModuleType("regen_models.base")
    fake_base.load_causal_lm = load_causal_lm
    monkeypatch.setitem(sys.modules, "regen_models.base", fake_base)

    backend = make_backend("local", "some/tiny-model")
    assert loaded == []  # nothing loads before the first call

    async def two_at_once(b):
        return await asyncio.gather(
            b.complete("rate the item", system="json", max_output_tokens=4, temperature=0.0),
            b.complete("hello world", max_output_tokens=3),
        )

    first, second = call(backend, two_at_once)
    assert loaded == ["some/tiny-model"]  # once, under the model lock
    model, tokenizer = tiny_lm
    templated = tokenizer.apply_chat_template(
        [{"role": "system", "content": "json"}, {"role": "user", "content": "rate the item"}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert templated == "<system> json <user> rate the item <assistant>"
    assert first.input_tokens == len(tokenizer(templated, add_special_tokens=False).input_ids)
    assert 1 <= first.output_tokens <= 4 and 1 <= second.output_tokens <= 3
    assert isinstance(first.text, str)


def test_local_backend_without_chat_template(tiny_lm):
    model, tokenizer = tiny_lm
    plain = copy.deepcopy(tokenizer)
    plain.chat_template = None
    backend = LocalBackend("tiny", loader=lambda name: (model, plain))
    result = complete(backend, "hello world", system="json", max_output_tokens=2)
    expected = plain("json\n\nhello world").input_ids  # the system text goes first
    assert result.input_tokens == len(expected)
    assert result.output_tokens <= 2


# -- failures that retrying cannot fix ------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("name, path", [("openai", "/v1"), ("gemini", "")])
def test_refused_loopback_connection_is_not_retryable(name, path, monkeypatch):
    pytest.importorskip("openai" if name == "openai" else "google.genai")
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    url = f"http://127.0.0.1:{_closed_port()}{path}"
    with pytest.raises(BackendError) as caught:
        complete(make_backend(name, "m", base_url=url), "hello")
    message = str(caught.value)
    assert "connection refused (not retried)" in message and url in message


def test_failures_say_what_to_check(openai_server):
    backend = make_backend("openai", "gpt-test", base_url=openai_server.base_url)
    openai_server.push_faults("quota")
    with pytest.raises(BackendError, match="check the account's quota"):
        complete(backend, "hello")
    openai_server.push_faults("500")
    with pytest.raises(RetryableError, match="run again later"):
        complete(backend, "hello")


def test_openai_batch_line_of_200_without_choices_is_a_failed_request(openai_server):
    answered = openai_server.completion_body

    def overloaded_for_prompt_1(request, texts):
        if openai_server.prompt_of(request) == "prompt 1":
            return {"object": "error", "message": "model is overloaded"}
        return answered(request, texts)

    openai_server.completion_body = overloaded_for_prompt_1
    backend = make_backend("openai", "gpt-test", base_url=openai_server.base_url)
    requests = [LLMRequest(f"prompt {i}") for i in range(3)]
    job_id = call(backend, lambda b: b.submit_batch(requests))
    answers = call(backend, lambda b: b.poll_batch(job_id))
    assert set(answers) == {requests[0].key(backend), requests[2].key(backend)}


def test_openai_batch_without_a_batch_api_says_so(monkeypatch):
    pytest.importorskip("openai")
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    with FakeOpenAI(batch_api=False) as server:
        backend = make_backend("openai", "gpt-test", base_url=server.base_url)
        with pytest.raises(BackendError) as caught:
            call(backend, lambda b: b.submit_batch([LLMRequest("p")]))
    message = str(caught.value)
    assert "HTTP 404 on POST /v1/files" in message
    assert "the server has no batch API: run without --batch" in message
    assert "model name" not in message


@pytest.mark.parametrize("url", ["127.0.0.1:8000/v1", "localhost:8000/v1", "user:pw@host/v1"])
def test_openai_base_url_without_a_scheme_is_refused_at_once(monkeypatch, url):
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    with pytest.raises(ValueError, match="needs a scheme: http://") as caught:
        make_backend("openai", "m", base_url=url)
    assert "pw" not in str(caught.value)


@pytest.mark.parametrize("name", ["openai", "gemini", "gemini-legacy"])
def test_openai_base_url_credentials_are_never_shown(monkeypatch, name):
    if name != "openai":
        pytest.importorskip("google.genai" if name == "gemini" else "google.generativeai")
    monkeypatch.setenv("OPENAI_API_KEY", OPENAI_KEY)
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    backend = make_backend(name, "m", base_url="http://user:hunter2@127.0.0.1:9/v1")
    assert backend.describe().endswith("model 'm' at http://127.0.0.1:9/v1")
    assert "hunter2" not in repr(backend) and "http://127.0.0.1:9/v1" in repr(backend)
    # Without a scheme the credentials cannot be told from the host: refused, unshown.
    for url in ("user:s3cret@127.0.0.1:1", "user:s3cret@example.com/v1"):
        with pytest.raises(ValueError, match="needs a scheme") as caught:
            make_backend(name, "m", base_url=url)
        assert "s3cret" not in str(caught.value)


def test_api_key_whitespace_is_stripped(openai_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", f"  {OPENAI_KEY}\n")  # pasted with its newline
    backend = make_backend("openai", "gpt-test", base_url=openai_server.base_url)
    assert complete(backend, "hi").text == echo_answer("hi")
    assert openai_server.calls()[0].headers["authorization"] == f"Bearer {OPENAI_KEY}"


# -- Gemini through the legacy google-generativeai SDK --------------------------------------------


@pytest.fixture
def legacy_server(monkeypatch):
    pytest.importorskip("google.generativeai")
    monkeypatch.setenv("GEMINI_API_KEY", GEMINI_KEY)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with FakeGemini(api_key=GEMINI_KEY, slow_seconds=1.5) as server:
        yield server


def test_legacy_gemini_completion_request_and_tokens(legacy_server):
    backend = make_backend("gemini-legacy", "gemini-test", base_url=legacy_server.base_url)
    assert isinstance(backend, LegacyGeminiBackend) and not backend.supports_batch
    result = complete(
        backend,
        "rate this item",
        system="be brief",
        temperature=0.2,
        max_output_tokens=77,
        json_output=True,
    )
    assert result.text == echo_answer("rate this item")
    assert result.input_tokens == words("rate this item be brief")
    assert result.output_tokens == words(result.text)  # this SDK reports no thinking tokens

    (request,) = legacy_server.calls()
    assert request.path == "/v1beta/models/gemini-test:generateContent"
    assert request.headers["x-goog-api-key"] == GEMINI_KEY
    body = request.json()
    assert body["contents"] == [{"role": "user", "parts": [{"text": "rate this item"}]}]
    assert body["systemInstruction"]["parts"] == [{"text": "be brief"}]
    assert body["generationConfig"] == {
        "temperature": 0.2,
        "maxOutputTokens": 77,
        "responseMimeType": "application/json",
    }


def test_legacy_gemini_candidates_in_one_request(legacy_server):
    drawn = iter(range(100))
    legacy_server.answer = lambda prompt: json.dumps({"draw": next(drawn)})
    backend = make_backend("gemini-legacy", "gemini-test", base_url=legacy_server.base_url)
    answers = call(backend, lambda b: b.complete_candidates("rate", 3, system="s"))
    assert [json.loads(a.text)["draw"] for a in answers] == [0, 1, 2]
    assert answers[0].input_tokens == words("rate s") and answers[1].input_tokens == 0
    assert sum(a.output_tokens for a in answers) == 3 * words(json.dumps({"draw": 0}))
    (request,) = legacy_server.calls()
    assert request.json()["generationConfig"]["candidateCount"] == 3


@pytest.mark.parametrize(
    "fault, error, retry_after",
    [
        ("429:0.25", RetryableError, 0.25),
        ("500", RetryableError, None),
        ("503", RetryableError, None),
        ("drop", RetryableError, None),
        ("slow", RetryableError, None),
        ("400", BackendError, None),
    ],
)
def test_legacy_gemini_errors_are_classified(legacy_server, fault, error, retry_after):
    backend = make_backend(
        "gemini-legacy", "gemini-test", base_url=legacy_server.base_url, timeout=1.0
    )
    legacy_server.push_faults(fault)
    with pytest.raises(error) as caught:
        complete(backend, "hello")
    assert "gemini model 'gemini-test'" in str(caught.value)
    if error is RetryableError:
        assert caught.value.retry_after == retry_after
    if fault == "slow":
        assert "timed out" in str(caught.value)
    assert len(legacy_server.calls()) == 1  # the SDK itself does not retry


def test_legacy_gemini_bad_key_fails_with_a_clean_message(legacy_server, monkeypatch):
    wrong = "gemini-wrong-key-that-the-server-echoes"
    monkeypatch.setenv("GEMINI_API_KEY", wrong)
    backend = make_backend("gemini-legacy", "gemini-test", base_url=legacy_server.base_url)
    with pytest.raises(BackendError) as caught:
        complete(backend, "hello")
    assert "API key not valid" in str(caught.value) and "GEMINI_API_KEY" in str(caught.value)
    assert wrong not in str(caught.value) and wrong not in repr(caught.value)


def test_legacy_gemini_refused_loopback_connection_is_not_retryable(legacy_server):
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(BackendError, match="connection refused"):
        complete(make_backend("gemini-legacy", "m", base_url=url), "hello")


def test_gemini_falls_back_to_the_legacy_sdk(legacy_server, monkeypatch):
    import google

    for module in ("google.genai", "google.genai.types"):
        monkeypatch.setitem(sys.modules, module, None)  # as if google-genai were not installed
    monkeypatch.delattr(google, "genai", raising=False)
    backend = make_backend("gemini", "gemini-test", base_url=legacy_server.base_url)
    assert isinstance(backend, LegacyGeminiBackend)
    assert complete(backend, "hi").text == echo_answer("hi")
