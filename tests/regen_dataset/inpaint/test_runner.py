"""Runner: order, concurrency, retries, repairs, the resumable cache and batch jobs, with the real
`openai` and `google-genai` clients against the loopback fakes of fake_servers.py."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

import pytest

from regen_dataset.inpaint import rater
from regen_dataset.inpaint.backends import (
    Backend,
    BackendError,
    Completion,
    LocalBackend,
    make_backend,
)
from regen_dataset.inpaint.rater import rating_requests
from regen_dataset.inpaint.runner import (
    CompletionCache,
    LLMRequest,
    RetriesExhausted,
    Runner,
    Usage,
    repair_request,
)
from tests.conftest import REPO
from tests.regen_dataset.inpaint.fake_servers import (
    FakeGemini,
    FakeOpenAI,
    FakeServer,
    echo_answer,
    words,
)

KEYS = {"openai": "sk-test-not-a-secret", "gemini": "gemini-test-not-a-secret"}
ENV = {"openai": "OPENAI_API_KEY", "gemini": "GEMINI_API_KEY"}
FAKES = {"openai": FakeOpenAI, "gemini": FakeGemini}
SDK = {"openai": "openai", "gemini": "google.genai"}
SUBMIT_PATH = {"openai": r"^/v1/batches$", "gemini": r":batchGenerateContent$"}
POLL_PATH = {"openai": r"^/v1/batches/", "gemini": r"^/v1beta/batches/"}


@dataclass
class Api:
    """A fake provider and how to reach it."""

    name: str
    server: FakeServer

    def backend(self, timeout: float = 5.0) -> Backend:
        model = f"{self.name}-test-model"
        return make_backend(self.name, model, base_url=self.server.base_url, timeout=timeout)

    def runner(self, cache_path, *, timeout: float = 5.0, **options) -> Runner:
        settings = {"progress": False, "base_delay": 0.001, "max_delay": 0.01, "concurrency": 4}
        settings.update(options)
        return Runner(self.backend(timeout), cache_path, **settings)

    def prompts_called(self, since: int = 0) -> list[str]:
        return [self.server.prompt_of(r.json()) for r in self.server.calls()[since:]]


@pytest.fixture(params=["openai", "gemini"])
def api(request, monkeypatch):
    name = request.param
    pytest.importorskip(SDK[name])
    monkeypatch.setenv(ENV[name], KEYS[name])
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with FAKES[name](api_key=KEYS[name], slow_seconds=1.5) as server:
        yield Api(name, server)


@pytest.fixture
def openai_api(monkeypatch):
    pytest.importorskip("openai")
    monkeypatch.setenv("OPENAI_API_KEY", KEYS["openai"])
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with FakeOpenAI(api_key=KEYS["openai"]) as server:
        yield Api("openai", server)


def parse(text: str) -> dict:
    """The validator of these tests: a JSON object with an "echo" field."""
    value = json.loads(text)
    if not isinstance(value, dict) or "echo" not in value:
        raise ValueError("expected a JSON object with an 'echo' field")
    return value


def answer_like_a_model(prompt: str) -> str:
    """echo_answer of the request itself, also when it comes inside a repair prompt."""
    if "=== REQUEST ===" in prompt:
        prompt = prompt.split("=== REQUEST ===\n", 1)[1].split("\n\n=== YOUR ANSWER ===", 1)[0]
    return echo_answer(prompt)


def requests_for(n: int, prefix: str = "prompt") -> list[LLMRequest]:
    return [LLMRequest(f"{prefix} {i}") for i in range(n)]


def cached_keys(cache_path) -> set[str]:
    with sqlite3.connect(cache_path) as db:
        return {key for (key,) in db.execute("SELECT key FROM completions")}


# -- order, usage, concurrency -------------------------------------------------------------------


def test_results_in_request_order_with_tokens_and_cost(api, tmp_path):
    def answer(prompt):  # later prompts answer sooner: completion order is not request order
        time.sleep(0.01 * (12 - int(prompt.split()[-1])))
        return echo_answer(prompt)

    api.server.answer = answer
    runner = api.runner(tmp_path / "cache.sqlite", prices=(2.0, 8.0), progress=True)
    requests = requests_for(12)
    results = runner.run(requests, parse)

    assert [r["echo"] for r in results] == [r.prompt for r in requests]
    usage = runner.usage
    assert (usage.calls, usage.cached, usage.retries, usage.invalid) == (12, 0, 0, 0)
    thinking = 2 if api.name == "gemini" else 0
    assert usage.input_tokens == sum(words(r.prompt) for r in requests)
    assert usage.output_tokens == sum(words(echo_answer(r.prompt)) + thinking for r in requests)
    expected = (usage.input_tokens * 2.0 + usage.output_tokens * 8.0) / 1e6
    assert usage.cost_usd == pytest.approx(expected)
    assert "12 calls, 0 cached" in usage.summary()


def test_concurrency_is_bounded(api, tmp_path):
    api.server.delay = 0.05
    runner = api.runner(tmp_path / "cache.sqlite", concurrency=3)
    runner.run(requests_for(15), parse)
    assert api.server.max_in_flight == 3


def test_identical_requests_are_called_once(api, tmp_path):
    runner = api.runner(tmp_path / "cache.sqlite")
    same = LLMRequest("the same prompt")
    other_sample = LLMRequest("the same prompt", sample=1)
    results = runner.run([same, other_sample, same], parse)
    assert results[0] == results[2]
    (call,) = api.server.calls()  # the two samples: one request for two candidates
    assert _candidates_asked(api, call.json()) == 2
    assert (runner.usage.calls, runner.usage.cached) == (1, 1)


def test_request_keys_cover_backend_model_and_every_field(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEYS["openai"])
    a = make_backend("openai", "model-a", base_url="http://127.0.0.1:9/v1")
    b = make_backend("openai", "model-b", base_url="http://127.0.0.1:9/v1")
    local = LocalBackend("model-a")
    request = LLMRequest("p")
    variants = [
        request,
        LLMRequest("p", system="s"),
        LLMRequest("p", temperature=0.5),
        LLMRequest("p", max_output_tokens=10),
        LLMRequest("p", json_output=False),
        LLMRequest("p", sample=1),
    ]
    elsewhere = make_backend("openai", "model-a", base_url="http://127.0.0.2:9/v1")
    keys = {v.key(a) for v in variants} | {request.key(b), request.key(local)}
    keys.add(request.key(elsewhere))
    assert len(keys) == len(variants) + 3
    assert request.key(a) == LLMRequest("p").key(a)
    same = make_backend("openai", "model-a", base_url="http://127.0.0.1:9/v1/")
    assert request.key(same) == request.key(a)  # a trailing slash is the same server


def test_two_compatible_servers_do_not_share_answers(tmp_path, monkeypatch):
    pytest.importorskip("openai")
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    cache = tmp_path / "cache.sqlite"
    with FakeOpenAI() as first, FakeOpenAI(lambda p: json.dumps({"echo": "other"})) as second:
        answers = []
        for server in (first, second):
            backend = make_backend("openai", "llama", base_url=server.base_url)
            runner = Runner(backend, cache, progress=False)
            answers.append(runner.run([LLMRequest("same prompt")], parse)[0]["echo"])
            assert runner.usage.calls == 1
    assert answers == ["same prompt", "other"]


def test_a_changed_password_in_the_base_url_keeps_the_cache_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEYS["openai"])
    request = LLMRequest("p")
    keys = {
        request.key(make_backend("openai", "m", base_url=url))
        for url in (
            "https://alice:old-pass@vllm.example.org/v1",
            "https://alice:new-pass@vllm.example.org/v1",
            "https://vllm.example.org/v1/",
        )
    }
    assert len(keys) == 1


# -- retries -------------------------------------------------------------------------------------


def test_retries_with_backoff_honour_retry_after(api, tmp_path):
    api.server.push_faults("429:0.3", "500", "503", "drop")
    runner = api.runner(tmp_path / "cache.sqlite", concurrency=1)
    started = time.perf_counter()
    (result,) = runner.run([LLMRequest("only")], parse)
    assert result["echo"] == "only"
    assert time.perf_counter() - started >= 0.3  # waited what the server asked, not base_delay
    assert runner.usage.retries == 4
    assert runner.usage.calls == 1
    assert len(api.server.calls()) == 5


def test_timeouts_are_retried(api, tmp_path):
    api.server.push_faults("slow")
    runner = api.runner(tmp_path / "cache.sqlite", timeout=1.0)
    (result,) = runner.run([LLMRequest("patience")], parse)
    assert result["echo"] == "patience"
    assert runner.usage.retries == 1


def test_gives_up_after_max_attempts_with_a_clear_error(api, tmp_path):
    api.server.fail_all = "503"
    runner = api.runner(tmp_path / "cache.sqlite", max_attempts=3)
    with pytest.raises(RetriesExhausted) as caught:
        runner.run([LLMRequest("doomed")], parse)
    message = str(caught.value)
    assert f"{api.name} model '{api.name}-test-model'" in message
    assert "gave up after 3 attempts" in message and "HTTP 503" in message
    assert len(api.server.calls()) == 3
    assert runner.usage.retries == 2


@pytest.mark.parametrize("fault", ["400", "401"])
def test_fails_fast_on_errors_retrying_cannot_fix(api, tmp_path, fault):
    api.server.fail_all = fault
    runner = api.runner(tmp_path / "cache.sqlite", concurrency=1)
    with pytest.raises(BackendError, match="not retried"):
        runner.run(requests_for(5, "bad"), parse)
    # A 400 may be one request's own (skipped) until several different ones get it alike.
    assert len(api.server.calls()) == (3 if fault == "400" else 1)
    assert runner.usage.retries == 0


def test_backoff_is_full_jitter_seeded_and_capped(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEYS["openai"])
    backend = make_backend("openai", "m", base_url="http://127.0.0.1:9/v1")
    first = Runner(backend, "unused.sqlite", base_delay=1.0, max_delay=5.0, seed=7)
    second = Runner(backend, "unused.sqlite", base_delay=1.0, max_delay=5.0, seed=7)
    delays = [first._backoff(attempt, None) for attempt in range(1, 9)]
    assert delays == [second._backoff(attempt, None) for attempt in range(1, 9)]
    for attempt, delay in enumerate(delays, start=1):
        assert 0.0 <= delay <= min(5.0, 2 ** (attempt - 1))
    assert first._backoff(1, 30.0) == 30.0  # the server's Retry-After wins


# -- validation and repair -----------------------------------------------------------------------


def test_malformed_answer_is_repaired(api, tmp_path):
    api.server.answer = answer_like_a_model
    api.server.push_faults("malformed")
    runner = api.runner(tmp_path / "cache.sqlite", concurrency=1)
    (result,) = runner.run([LLMRequest("rate the stapler")], parse)
    assert result["echo"] == "rate the stapler"
    assert (runner.usage.calls, runner.usage.repaired, runner.usage.invalid) == (2, 1, 0)
    first, repair = api.prompts_called()
    assert first == "rate the stapler"
    assert "rate the stapler" in repair  # the original request
    assert echo_answer("rate the stapler")[:-1] in repair  # the invalid answer
    assert "Expecting" in repair or "delimiter" in repair  # the JSON error
    assert "corrected JSON only" in repair


def test_never_valid_answer_is_none_and_counted(api, tmp_path):
    api.server.answer = lambda p: "Sure! Here is JSON: {oops" if "broken" in p else echo_answer(p)
    runner = api.runner(tmp_path / "cache.sqlite", repair_attempts=2)
    results = runner.run([LLMRequest("fine"), LLMRequest("broken"), LLMRequest("fine too")], parse)
    assert results[0]["echo"] == "fine" and results[2]["echo"] == "fine too"
    assert results[1] is None
    assert runner.usage.invalid == 1 and runner.usage.repaired == 0
    assert runner.usage.calls == 3 + 2  # two repair calls for the broken one
    first, second = [p for p in api.prompts_called() if "=== REQUEST ===" in p]
    assert first != second and "Correction attempt 2" in second


def test_repair_request_keeps_settings_and_has_its_own_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEYS["openai"])
    backend = make_backend("openai", "m", base_url="http://127.0.0.1:9/v1")
    request = LLMRequest("p", system="s", temperature=0.3, max_output_tokens=99, sample=4)
    repair = repair_request(request, "{bad", ValueError("no"))
    assert (repair.system, repair.temperature, repair.max_output_tokens, repair.sample) == (
        "s",
        0.3,
        99,
        4,
    )
    assert repair.key(backend) != request.key(backend)
    plain = repair_request(LLMRequest("p", json_output=False), "x", "too short")
    assert "corrected answer only" in plain.prompt


# -- the cache: restarts pay for nothing twice ---------------------------------------------------


def test_second_run_is_served_from_the_cache_for_free(api, tmp_path):
    cache = tmp_path / "cache.sqlite"
    api.server.answer = answer_like_a_model
    api.server.push_faults("malformed")
    requests = requests_for(6)
    first = api.runner(cache, concurrency=1, prices=(1.0, 1.0))
    expected = first.run(requests, parse)
    calls = len(api.server.calls())

    again = api.runner(cache, prices=(1.0, 1.0))
    assert again.run(requests, parse) == expected
    assert len(api.server.calls()) == calls
    assert again.usage == Usage(cached=7, repaired=1)  # 6 answers and the cached repair


def test_run_that_fails_midway_resumes_without_repeating_calls(api, tmp_path):
    cache = tmp_path / "cache.sqlite"
    answered = []

    def answer(prompt):
        answered.append(prompt)
        if len(answered) == 5:
            api.server.fail_all = "400"  # from now on every call fails hard
        return echo_answer(prompt)

    api.server.answer = answer
    requests = requests_for(20)
    with pytest.raises(BackendError):
        api.runner(cache, concurrency=2).run(requests, parse)
    done = cached_keys(cache)
    assert 1 <= len(done) <= 5

    api.server.fail_all = None
    before = len(api.server.calls())
    runner = api.runner(cache, concurrency=2)
    results = runner.run(requests, parse)
    assert [r["echo"] for r in results] == [r.prompt for r in requests]
    key_of = {r.prompt: r.key(runner.backend) for r in requests}
    again = {key_of[p] for p in api.prompts_called(before)}
    assert not again & done  # no completed call is made twice
    assert runner.usage.cached == len(done) and runner.usage.calls == 20 - len(done)


KILLED_RUN = """
import json, sys
from regen_dataset.inpaint.backends import make_backend
from regen_dataset.inpaint.runner import LLMRequest, Runner
backend = make_backend("openai", "kill-test", base_url=sys.argv[1])
runner = Runner(backend, sys.argv[2], concurrency=2, progress=False)
runner.run([LLMRequest(f"prompt {i}") for i in range(int(sys.argv[3]))], json.loads)
print("finished")
"""


def test_killed_process_restarts_without_repeating_calls(openai_api, tmp_path):
    cache, total = tmp_path / "cache.sqlite", 40
    server = openai_api.server
    server.delay = 0.05
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_RUN, server.base_url, str(cache), str(total)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 20
    while server.completed < 8 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)  # no cleanup of any kind
    out, err = process.communicate()
    assert b"finished" not in out, err.decode()[-2000:]
    done = cached_keys(cache)
    assert 1 <= len(done) < total

    before = len(server.calls())
    runner = Runner(
        make_backend("openai", "kill-test", base_url=server.base_url), cache, progress=False
    )
    requests = requests_for(total)
    results = runner.run(requests, parse)
    assert [r["echo"] for r in results] == [r.prompt for r in requests]  # nothing lost
    key_of = {r.prompt: r.key(runner.backend) for r in requests}
    again = [key_of[p] for p in openai_api.prompts_called(before)]
    assert not set(again) & done  # nothing committed is paid for twice
    assert len(again) == total - len(done)
    assert runner.usage.cached == len(done)


def test_threads_opening_a_new_cache_file_at_once_all_get_it(tmp_path):
    # Two connections switching a new file to WAL at once can deadlock; SQLite then says
    # "locked" at once to one of them, without waiting (about 1 open in 30 failed so).
    failures = []

    def open_cache(path, ready):
        ready.wait()
        try:
            CompletionCache(path).db.close()
        except sqlite3.OperationalError as error:
            failures.append(error)

    for round_ in range(60):
        ready = threading.Barrier(3)
        path = tmp_path / f"cache-{round_}.sqlite"
        threads = [threading.Thread(target=open_cache, args=(path, ready)) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not failures


def test_two_threads_share_one_cache_file(openai_api, tmp_path):
    cache = tmp_path / "cache.sqlite"
    openai_api.server.delay = 0.01
    batches = [requests_for(30)[:20], requests_for(30)[10:]]  # overlapping halves
    outcomes: list = [None, None]

    def work(index):
        outcomes[index] = openai_api.runner(cache, concurrency=4).run(batches[index], parse)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for batch, results in zip(batches, outcomes, strict=True):
        assert [r["echo"] for r in results] == [r.prompt for r in batch]
    assert len(cached_keys(cache)) == 30


def test_cache_is_sqlite_wal_with_raw_text_and_tokens(openai_api, tmp_path):
    cache = tmp_path / "cache.sqlite"
    runner = openai_api.runner(cache)
    runner.run([LLMRequest("hello there")], parse)
    with sqlite3.connect(cache) as db:
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        row = db.execute(
            "SELECT backend, model, text, input_tokens, output_tokens FROM completions"
        )
        backend, model, text, input_tokens, output_tokens = row.fetchone()
    assert (backend, model) == ("openai", "openai-test-model")
    assert text == echo_answer("hello there")
    assert (input_tokens, output_tokens) == (2, words(text))


# -- batch jobs ----------------------------------------------------------------------------------


def test_run_batch_submits_uncached_requests_and_falls_back_for_failures(api, tmp_path):
    cache = tmp_path / "cache.sqlite"
    requests = requests_for(6)
    api.runner(cache).run(requests[:1], parse)  # one answer is already cached
    refused = {"prompt 3"}  # the batch job fails this one; the direct call answers it

    def answer(prompt):
        if prompt in refused:
            refused.discard(prompt)
            raise RuntimeError("refused in the batch")
        return echo_answer(prompt)

    api.server.answer = answer
    api.server.polls_until_done = 2
    runner = api.runner(cache, prices=(1.0, 1.0))
    results = runner.run_batch(requests, parse, poll_interval=0.01)

    assert [r["echo"] for r in results] == [r.prompt for r in requests]
    assert len(api.server.called("POST", SUBMIT_PATH[api.name])) == 1
    assert len(api.server.called("GET", POLL_PATH[api.name])) == 2
    assert api.prompts_called(1) == ["prompt 3"]  # the only direct call after the first run
    usage = runner.usage
    assert (usage.calls, usage.cached) == (5, 1)  # 4 from the job, 1 direct; 1 was cached
    batch_tokens = sum(
        words(r.prompt) + words(echo_answer(r.prompt)) + (2 if api.name == "gemini" else 0)
        for r in requests[1:]
        if r.prompt != "prompt 3"
    )
    direct_tokens = usage.input_tokens + usage.output_tokens - batch_tokens
    assert usage.cost_usd == pytest.approx((0.5 * batch_tokens + direct_tokens) / 1e6)

    again = api.runner(cache, prices=(1.0, 1.0))
    again.track_output("out.jsonl")
    assert again.run_batch(requests, parse, poll_interval=0.01) == results
    assert len(api.server.called("POST", SUBMIT_PATH[api.name])) == 1  # nothing resubmitted
    assert again.usage.calls == 0 and again.usage.cached == 6
    # What the output's answers cost, whoever paid: each at its own price (batch at half).
    paid = again.output_usage()
    first_tokens = words("prompt 0") + words(echo_answer("prompt 0"))
    first_tokens += 2 if api.name == "gemini" else 0
    assert paid.calls == 6
    assert paid.input_tokens + paid.output_tokens == batch_tokens + direct_tokens + first_tokens
    expected = (0.5 * batch_tokens + direct_tokens + first_tokens) / 1e6
    assert paid.cost_usd == pytest.approx(expected)


def test_run_batch_resumes_a_submitted_job_after_a_crash(api, tmp_path):
    cache = tmp_path / "cache.sqlite"
    requests = requests_for(5)
    api.server.push_poll_faults("400")  # the first status request fails hard
    with pytest.raises(BackendError):
        api.runner(cache).run_batch(requests, parse, poll_interval=0.01)
    assert cached_keys(cache) == set()
    (submitted,) = api.server.called("POST", SUBMIT_PATH[api.name])

    runner = api.runner(cache)
    results = runner.run_batch(requests, parse, poll_interval=0.01)
    assert [r["echo"] for r in results] == [r.prompt for r in requests]
    assert api.server.called("POST", SUBMIT_PATH[api.name]) == [submitted]  # not resubmitted
    polled = {r.path for r in api.server.called("GET", POLL_PATH[api.name])}
    assert len(polled) == 1  # the same job, polled again
    assert api.server.calls() == []  # and no direct call
    assert runner.usage.calls == 5
    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT status FROM batch_jobs").fetchall() == [("done",)]


def test_an_earlier_job_the_provider_no_longer_knows_is_dropped_not_fatal(openai_api, tmp_path):
    cache = tmp_path / "cache.sqlite"
    requests = requests_for(3)
    backend = openai_api.backend()
    store = CompletionCache(cache)  # as a run killed while polling leaves it
    store.add_job("batch_deleted_since", backend, [r.key(backend) for r in requests])
    store.close()
    runner = openai_api.runner(cache)
    results = runner.run_batch(requests, parse, poll_interval=0.01)
    assert [r["echo"] for r in results] == [r.prompt for r in requests]
    assert len(openai_api.server.calls()) == 3  # called directly
    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT status FROM batch_jobs").fetchall() == [("done",)]
    again = openai_api.runner(cache)
    again.run_batch(requests, parse, poll_interval=0.01)
    assert again.usage.calls == 0 and again.usage.cached == 3


def test_run_batch_splits_into_chunks(openai_api, tmp_path):
    runner = openai_api.runner(tmp_path / "cache.sqlite")
    results = runner.run_batch(requests_for(5), parse, poll_interval=0.01, chunk_size=2)
    assert len(openai_api.server.called("POST", r"^/v1/batches$")) == 3
    assert len(results) == 5 and runner.usage.calls == 5


def test_batch_jobs_are_cut_by_their_prompts_bytes_too():
    from regen_dataset.inpaint.runner import _batch_chunks

    requests = [LLMRequest("x" * n) for n in (40, 40, 30, 100, 5, 5)]
    sizes = [[len(r.prompt) for r in chunk] for chunk in _batch_chunks(requests, 3, 80)]
    assert sizes == [[40, 40], [30], [100], [5, 5]]  # the oversized one alone
    assert [len(c) for c in _batch_chunks(requests, 4, 0)] == [4, 2]


def test_run_batch_without_a_batch_api_calls_directly(tmp_path):
    class Echo(Backend):
        name, model = "local", "echo"

        async def complete(self, prompt, **options):
            return Completion(echo_answer(prompt), 1, 1)

    runner = Runner(Echo(), tmp_path / "cache.sqlite", progress=False)
    results = runner.run_batch(requests_for(3), parse)
    assert [r["echo"] for r in results] == ["prompt 0", "prompt 1", "prompt 2"]
    assert runner.usage.calls == 3


# -- calling conventions -------------------------------------------------------------------------


def test_run_works_from_a_thread_and_refuses_a_running_loop(openai_api, tmp_path):
    runner = openai_api.runner(tmp_path / "cache.sqlite")
    box = {}
    thread = threading.Thread(target=lambda: box.update(r=runner.run(requests_for(2), parse)))
    thread.start()
    thread.join(30)
    assert [r["echo"] for r in box["r"]] == ["prompt 0", "prompt 1"]

    async def inside_a_loop():
        return runner.run(requests_for(1), parse)

    with pytest.raises(RuntimeError, match="to_thread"):
        asyncio.run(inside_a_loop())


def test_a_validator_bug_is_not_hidden(openai_api, tmp_path):
    def buggy(text):
        return json.loads(text)["no such field"]  # KeyError: a bug, not bad output

    with pytest.raises(KeyError):
        openai_api.runner(tmp_path / "cache.sqlite").run(requests_for(1), buggy)


# -- secrets -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["openai", "gemini"])
def test_api_keys_never_reach_logs_errors_or_the_cache(name, tmp_path, monkeypatch, caplog):
    pytest.importorskip(SDK[name])
    secret = f"{name}-secret-KEY-0123456789"
    monkeypatch.setenv(ENV[name], secret)
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    caplog.set_level(logging.DEBUG)
    cache = tmp_path / "cache.sqlite"
    errors = []
    with FAKES[name](api_key=secret) as good:
        api = Api(name, good)
        good.push_faults("429:0.01", "500", "malformed")
        runner = api.runner(cache, concurrency=1)
        runner.run(requests_for(3), parse)
        runner.run_batch(requests_for(3, "batch"), parse, poll_interval=0.01)
        good.fail_all = "503"
        with pytest.raises(RetriesExhausted) as caught:
            api.runner(cache, max_attempts=2).run([LLMRequest("x")], parse)
        errors.append(caught.value)
        texts = [repr(runner), repr(runner.backend), runner.usage.summary()]
    with FAKES[name](api_key="the-server-wants-another-key") as strict:  # echoes ours back
        with pytest.raises(BackendError) as caught:
            Api(name, strict).runner(cache).run([LLMRequest("y")], parse)
        errors.append(caught.value)

    assert good.calls()[0].headers  # the key did travel, in the headers only
    header = "authorization" if name == "openai" else "x-goog-api-key"
    assert secret in good.calls()[0].headers[header]
    assert secret in str(strict.requests[0].headers)
    for error in errors:
        texts += [str(error), repr(error), repr(error.args)]
    assert secret not in caplog.text and secret not in "\n".join(texts)
    assert caplog.text  # the SDKs and the runner did log
    for path in tmp_path.iterdir():  # the database, its WAL and shared-memory files
        assert secret.encode() not in path.read_bytes()


def test_a_cache_written_before_answers_kept_their_price_still_works(openai_api, tmp_path):
    cache = tmp_path / "cache.sqlite"
    runner = openai_api.runner(cache)
    old = requests_for(1, "old")[0]
    with sqlite3.connect(cache) as db:  # the table as earlier versions wrote it
        db.execute(
            "CREATE TABLE completions (key TEXT PRIMARY KEY, backend TEXT, model TEXT, "
            "text TEXT NOT NULL, input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, "
            "created REAL NOT NULL)"
        )
        db.execute(
            "INSERT INTO completions VALUES (?, 'openai', 'm', ?, 3, 4, 0)",
            (old.key(runner.backend), echo_answer("old 0")),
        )
    runner.track_output("out")
    results = runner.run([old, *requests_for(2)], parse)
    assert [r["echo"] for r in results] == ["old 0", "prompt 0", "prompt 1"]
    assert runner.usage.calls == 2 and runner.output_usage().calls == 3


# -- repeated samples (the auto-rater's ensemble) ------------------------------------------------


def numbered_answers():
    """An answer function whose every answer differs, as a sampling model's would."""
    counter = itertools.count()
    return lambda prompt: json.dumps({"echo": prompt, "draw": next(counter)})


def _candidates_asked(api: Api, body: dict) -> int | None:
    if api.name == "openai":
        return body.get("n")
    return body["generationConfig"].get("candidateCount")


def _seed(api: Api, body: dict) -> int | None:
    return body.get("seed") if api.name == "openai" else body["generationConfig"].get("seed")


def test_samples_of_one_prompt_are_one_request_for_several_candidates(api, tmp_path):
    api.server.answer = numbered_answers()
    runner = api.runner(tmp_path / "cache.sqlite", prices=(1.0, 1.0))
    runner.track_output("out")
    requests = rating_requests("rate this", 7)
    results = runner.run(requests, parse)

    (call,) = api.server.calls()  # the input is sent, and paid, once
    assert _candidates_asked(api, call.json()) == 7
    assert sorted(r["draw"] for r in results) == list(range(7))  # seven distinct samples
    assert runner.usage.calls == 1 and runner.usage.cached == 0
    assert runner.usage.input_tokens == words("rate this") + words(rater.SYSTEM)
    paid = runner.output_usage()
    assert (paid.calls, paid.input_tokens) == (1, runner.usage.input_tokens)
    assert paid.output_tokens == runner.usage.output_tokens

    again = api.runner(tmp_path / "cache.sqlite")
    assert again.run(requests, parse) == results and again.usage.cached == 7
    assert len(api.server.calls()) == 1


def test_samples_a_server_does_not_return_are_asked_with_distinct_seeds(api, tmp_path):
    api.server.candidates = False  # ignores `n` / `candidateCount`, as some servers do
    api.server.answer = numbered_answers()
    runner = api.runner(tmp_path / "cache.sqlite")
    results = runner.run(rating_requests("rate this", 4), parse)

    bodies = [call.body for call in api.server.calls()]
    assert len(bodies) == 4 and len(set(bodies)) == 4  # no two byte-identical requests
    seeds = sorted(_seed(api, json.loads(body)) or 0 for body in bodies)
    assert seeds == [0, 1, 2, 3]
    assert sorted(r["draw"] for r in results) == [0, 1, 2, 3]
    assert runner.usage.candidates_missing == 3 and runner.usage.calls == 4


def test_samples_in_a_batch_job_carry_distinct_seeds(openai_api, tmp_path):
    runner = openai_api.runner(tmp_path / "cache.sqlite")
    runner.run_batch(rating_requests("rate this", 3), parse, poll_interval=0.01)
    (stored,) = [f for f in openai_api.server.files.values() if f["purpose"] == "batch"]
    lines = [json.loads(line)["body"] for line in stored["content"].decode().splitlines()]
    assert [line.get("seed") for line in lines] == [None, 1, 2]


def test_a_server_that_refuses_several_candidates_gets_seeded_samples(api, tmp_path):
    api.server.refuse_candidates = True  # 400 to `n` > 1, as llama.cpp's server answers
    api.server.answer = numbered_answers()
    runner = api.runner(tmp_path / "cache.sqlite", concurrency=1)
    requests = rating_requests("rate this", 3) + rating_requests("rate that", 3)
    results = runner.run(requests, parse)

    asked = [json.loads(call.body) for call in api.server.calls()]
    # Both prompts' requests for 3 went out before a sample answered alone showed that the
    # server takes one answer a request; none after.
    assert [_candidates_asked(api, body) for body in asked] == [3, 3] + [None] * 6
    assert sorted(_seed(api, body) or 0 for body in asked[2:]) == [0, 0, 1, 1, 2, 2]
    assert sorted(r["draw"] for r in results) == list(range(6))
    assert runner.usage.candidates_refused == 1 and runner.usage.calls == 6


def test_a_refusal_of_n_in_openais_words_falls_back_to_one_answer_a_request(tmp_path, monkeypatch):
    # "... is not supported with this model" names the model: it must not read as an unknown
    # model, which ends the run.
    pytest.importorskip("openai")
    monkeypatch.setenv("OPENAI_API_KEY", KEYS["openai"])

    class NoN(FakeOpenAI):
        def handle(self, method, path, headers, body):
            if self.is_completion(path) and json.loads(body).get("n", 1) > 1:
                message = "Unsupported parameter: 'n' is not supported with this model."
                return self.error(400, message)
            return super().handle(method, path, headers, body)

    with NoN(api_key=KEYS["openai"]) as server:
        server.answer = numbered_answers()
        runner = Api("openai", server).runner(tmp_path / "cache.sqlite", concurrency=1)
        results = runner.run(rating_requests("rate this", 3), parse)
        assert sorted(r["draw"] for r in results) == [0, 1, 2]
        assert runner.usage.candidates_refused == 1


def test_a_bad_key_on_a_request_for_candidates_ends_the_run(api, tmp_path, monkeypatch):
    monkeypatch.setenv(ENV[api.name], "a-wrong-key")  # Google answers 400, OpenAI 401
    runner = api.runner(tmp_path / "cache.sqlite")
    with pytest.raises(BackendError, match="(?i)api key"):
        runner.run(rating_requests("rate this", 3), parse)
    assert runner.usage.candidates_refused == 0 and len(api.server.calls()) == 1


# -- a 200 answer that holds no answer -----------------------------------------------------------


@pytest.mark.parametrize("fault", ["no-choices", "html", "cut"])
@pytest.mark.parametrize("samples", [1, 3])  # a plain call; the rater's request for candidates
def test_a_200_without_an_answer_is_retried_and_never_cached(openai_api, tmp_path, fault, samples):
    cache = tmp_path / "cache.sqlite"
    requests = rating_requests("rate this", samples)
    openai_api.server.push_faults(fault)
    runner = openai_api.runner(cache)
    assert all(r["echo"] == "rate this" for r in runner.run(requests, parse))
    assert runner.usage.retries == 1 and runner.usage.calls == 1

    openai_api.server.fail_all = fault
    doomed = rating_requests("doomed", samples)
    runner = openai_api.runner(cache, max_attempts=2)
    with pytest.raises(RetriesExhausted) as caught:
        runner.run(doomed, parse)
    message = str(caught.value)
    assert f"at {openai_api.server.base_url}: HTTP 200: " in message
    if fault == "no-choices":
        assert "model is overloaded" in message
    assert not cached_keys(cache) & {r.key(runner.backend) for r in doomed}


@pytest.mark.parametrize("fault", ["html", "cut", "error-object"])
@pytest.mark.parametrize("samples", [1, 3])
def test_a_gemini_200_without_an_answer_is_retried_and_never_cached(
    monkeypatch, tmp_path, fault, samples
):
    pytest.importorskip("google.genai")
    monkeypatch.setenv("GEMINI_API_KEY", KEYS["gemini"])
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with FakeGemini(api_key=KEYS["gemini"]) as server:
        gemini = Api("gemini", server)
        cache = tmp_path / "cache.sqlite"
        server.push_faults(fault)
        runner = gemini.runner(cache)
        assert all(
            r["echo"] == "rate this"
            for r in runner.run(rating_requests("rate this", samples), parse)
        )
        assert runner.usage.retries == 1 and runner.usage.calls == 1

        server.fail_all = fault
        doomed = rating_requests("doomed", samples)
        runner = gemini.runner(cache, max_attempts=2)
        with pytest.raises(RetriesExhausted) as caught:
            runner.run(doomed, parse)
        assert f"at {server.base_url}: HTTP 200: " in str(caught.value)
        assert not cached_keys(cache) & {r.key(runner.backend) for r in doomed}


@pytest.mark.parametrize("samples", [1, 3])
def test_a_gemini_answer_cut_off_before_any_text_is_counted_never_cached(
    monkeypatch, tmp_path, samples
):
    pytest.importorskip("google.genai")
    monkeypatch.setenv("GEMINI_API_KEY", KEYS["gemini"])
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)
    with FakeGemini(api_key=KEYS["gemini"]) as server:
        server.think_past_the_limit = True  # a thinking model left to its default
        backend = make_backend(
            "gemini", "gemini-2.5-flash", base_url=server.base_url, thinking_budget=None
        )
        cache = tmp_path / "cache.sqlite"
        runner = Runner(backend, cache, progress=False, base_delay=0.001)
        requests = rating_requests("rate this", samples)
        assert runner.run(requests, parse) == [None] * samples
        assert runner.usage.invalid == samples and runner.usage.cut_off == samples
        assert runner.usage.repaired == 0 and "cut off at the output-token limit" in (
            runner.usage.summary()
        )
        assert runner.usage.output_tokens > 0  # paid for all the same
        assert not cached_keys(cache)  # no empty answer stands for one
        # With the default budget (thinking off) the same requests are answered.
        backend = make_backend("gemini", "gemini-2.5-flash", base_url=server.base_url)
        runner = Runner(backend, cache, progress=False)
        assert all(r["echo"] == "rate this" for r in runner.run(requests, parse))


# -- invalid answers in the cache ----------------------------------------------------------------


def test_cached_invalid_answers_are_asked_again_only_when_told(api, tmp_path):
    cache = tmp_path / "cache.sqlite"
    broken = True
    api.server.answer = lambda p: "{oops" if broken and "broken" in p else answer_like_a_model(p)
    requests = [LLMRequest("fine"), LLMRequest("broken")]
    assert api.runner(cache).run(requests, parse)[1] is None
    calls = len(api.server.calls())  # 2 answers, 1 repair

    again = api.runner(cache)  # by default a rerun is free, invalid answers included
    assert again.run(requests, parse)[1] is None and len(api.server.calls()) == calls
    assert again.usage.asked_again == 0

    still = api.runner(cache, retry_invalid=True)  # asked again, repair included: still broken
    assert still.run(requests, parse)[1] is None
    assert (still.usage.asked_again, still.usage.calls, still.usage.invalid) == (1, 2, 1)

    broken = False
    retried = api.runner(cache, retry_invalid=True)
    results = retried.run(requests, parse)
    assert [r["echo"] for r in results] == ["fine", "broken"]
    assert (retried.usage.asked_again, retried.usage.calls) == (1, 1)
    assert "1 cached invalid asked again" in retried.usage.summary()

    last = api.runner(cache, retry_invalid=True)  # the new answer replaced the invalid one
    assert last.run(requests, parse) == results and last.usage.calls == 0


def test_an_output_counts_the_invalid_answers_that_were_asked_for_again(api, tmp_path):
    cache = tmp_path / "cache.sqlite"
    broken = True
    api.server.answer = lambda p: "{oops" if broken and "broken" in p else answer_like_a_model(p)
    requests = [LLMRequest("fine"), LLMRequest("broken")]
    first = api.runner(cache)
    first.track_output("out.jsonl")
    first.run(requests, parse)
    broken = False
    again = api.runner(cache, retry_invalid=True)
    again.track_output("out.jsonl")
    again.run(requests, parse)
    # Every call was paid for: the first run's 3 (a repair included) and the new answer.
    assert (first.usage.calls, again.usage.calls) == (3, 1)
    paid = again.output_usage()
    assert paid.calls == 4
    both = first.usage.input_tokens + again.usage.input_tokens
    assert paid.input_tokens == both


# -- a bad request of one request's own ------------------------------------------------------------


class _RefusesLongPrompts(FakeOpenAI):
    """Answers 400 (context length exceeded) to prompts holding "TOO LONG"."""

    def handle(self, method, path, headers, body):
        if self.is_completion(path) and b"TOO LONG" in body:
            self.requests.append(None)
            return self.error(400, "This model's maximum context length is 8192 tokens.")
        return super().handle(method, path, headers, body)

    def calls(self):
        return [r for r in list(self.requests) if r is not None and self.is_completion(r.path)]


def test_a_request_refused_as_too_long_is_skipped_and_named(monkeypatch, tmp_path):
    pytest.importorskip("openai")
    monkeypatch.setenv("OPENAI_API_KEY", KEYS["openai"])
    cache = tmp_path / "cache.sqlite"
    requests = [LLMRequest(f"user {i}", label=f"U{i}") for i in range(4)]
    requests.insert(2, LLMRequest("user TOO LONG", label="U-long"))
    with _RefusesLongPrompts(api_key=KEYS["openai"]) as server:
        for _ in range(2):  # a resumed run skips it again rather than stopping
            runner = Api("openai", server).runner(cache, concurrency=1)
            results = runner.run(requests, parse)
            assert results[2] is None and all(
                r is not None for i, r in enumerate(results) if i != 2
            )
            assert runner.usage.rejected == 1 and runner.usage.invalid == 1
            assert runner.usage.rejected_labels == ["U-long"]
            assert "1 refused as bad requests and skipped about U-long" in runner.usage.summary()
        assert len(server.calls()) == 4  # the answers of the first run were cached


def test_the_same_bad_request_for_several_prompts_stops_the_run(monkeypatch, tmp_path):
    pytest.importorskip("openai")
    monkeypatch.setenv("OPENAI_API_KEY", KEYS["openai"])
    with _RefusesLongPrompts(api_key=KEYS["openai"]) as server:
        runner = Api("openai", server).runner(tmp_path / "cache.sqlite", concurrency=1)
        requests = [LLMRequest(f"user {i} TOO LONG", label=f"U{i}") for i in range(6)]
        with pytest.raises(
            BackendError, match="requests about 3 different users in a row were refused"
        ):
            runner.run(requests, parse)
        assert len(server.requests) == 3  # no request after the third refusal


def test_one_users_many_refused_prompts_do_not_stop_the_run(monkeypatch, tmp_path):
    # A long history makes many different prompts (one per critique to rate), all too long.
    pytest.importorskip("openai")
    monkeypatch.setenv("OPENAI_API_KEY", KEYS["openai"])
    with _RefusesLongPrompts(api_key=KEYS["openai"]) as server:
        runner = Api("openai", server).runner(tmp_path / "cache.sqlite", concurrency=1)
        requests = [LLMRequest(f"critique {i} TOO LONG", label="U-long") for i in range(5)]
        requests += [LLMRequest(f"critique {i}", label=f"U{i}") for i in range(3)]
        results = runner.run(requests, parse)
        assert results[:5] == [None] * 5 and all(r is not None for r in results[5:])
        assert runner.usage.rejected == 5 and set(runner.usage.rejected_labels) == {"U-long"}


def test_a_prompt_refused_for_several_answers_keeps_them_for_other_prompts(api, tmp_path):
    # A 400 to one too-long prompt's request for several samples says nothing of the server:
    # it takes several answers a request only if that prompt, asked alone, is refused too.
    class RefusesLong(FAKES[api.name]):
        def handle(self, method, path, headers, body):
            if self.is_completion(path) and b"TOO LONG" in body:
                return self.error(400, "The input is longer than the model's context.")
            return super().handle(method, path, headers, body)

    with RefusesLong(api_key=KEYS[api.name]) as server:
        api = Api(api.name, server)
        runner = api.runner(tmp_path / "cache.sqlite", concurrency=1)
        requests = rating_requests("TOO LONG", 3) + rating_requests("rate that", 3)
        results = runner.run(requests, parse)
        assert results[:3] == [None] * 3 and all(r is not None for r in results[3:])
        asked = [_candidates_asked(api, json.loads(call.body)) for call in server.calls()]
        assert asked == [3]  # the refused prompt's calls are not recorded by this fake
        assert runner.usage.candidates_refused == 0 and runner.usage.rejected == 3


def test_a_blocked_prompt_is_skipped_and_the_run_goes_on(monkeypatch, tmp_path):
    pytest.importorskip("google.genai")
    monkeypatch.setenv("GEMINI_API_KEY", KEYS["gemini"])
    monkeypatch.delenv("GOOGLE_API_KEY", raising=False)

    class Blocks(FakeGemini):
        blocked = 0

        def handle(self, method, path, headers, body):
            if self.is_completion(path) and b"BLOCKED" in body:
                Blocks.blocked += 1
                return self.json_reply(200, {"promptFeedback": {"blockReason": "SAFETY"}})
            return super().handle(method, path, headers, body)

    with Blocks(api_key=KEYS["gemini"]) as server:
        requests = [LLMRequest(f"user {i}", label=f"U{i}") for i in range(3)]
        requests.insert(1, LLMRequest("user BLOCKED", label="U-blocked"))
        requests += rating_requests("BLOCKED too", 3)
        runner = Api("gemini", server).runner(tmp_path / "cache.sqlite", concurrency=1)
        results = runner.run(requests, parse)
        assert [r is not None for r in results] == [True, False, True, True, False, False, False]
        assert runner.usage.rejected == 4 and runner.usage.retries == 0
        assert runner.usage.candidates_refused == 0
        assert Blocks.blocked == 2  # once for each prompt: its other samples are not asked
        assert "U-blocked" in runner.usage.rejected_labels


@pytest.mark.parametrize("samples", [1, 3])
def test_an_openai_answer_cut_off_before_any_text_is_counted_never_cached(
    openai_api, tmp_path, samples
):
    openai_api.server.reason_past_the_limit = True  # a reasoning model's whole budget
    cache = tmp_path / "cache.sqlite"
    runner = openai_api.runner(cache)
    assert runner.run(rating_requests("rate this", samples), parse) == [None] * samples
    assert runner.usage.cut_off == samples and runner.usage.repaired == 0
    assert runner.usage.output_tokens > 0 and not cached_keys(cache)


def test_a_batch_submission_that_got_no_answer_is_not_sent_twice(monkeypatch, tmp_path):
    """The job may exist on the server although the reply came too late: a second submission
    would be a second paid job that nothing polls."""
    pytest.importorskip("openai")
    monkeypatch.setenv("OPENAI_API_KEY", KEYS["openai"])

    class SlowToAnswer(FakeOpenAI):
        def _create_batch(self, body):
            reply = super()._create_batch(body)  # the job exists on the server now
            time.sleep(1.5)  # ... and the reply comes after the client's timeout
            return reply

    with SlowToAnswer(api_key=KEYS["openai"]) as server:
        backend = make_backend("openai", "m", base_url=server.base_url, timeout=1.0)
        runner = Runner(backend, tmp_path / "cache.sqlite", progress=False, base_delay=0.001)
        with pytest.raises(BackendError, match="may have created the batch job all the same"):
            runner.run_batch(requests_for(3), parse, poll_interval=0.01)
        assert len(server.batches) == 1
