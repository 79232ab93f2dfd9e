"""Run many LLM requests through a backend, safely and cheaply, and validate the answers.

`Runner.run(requests, validate)` is what the inpainting pipeline calls. It
- answers each request from an on-disk cache when it can and calls the backend otherwise, with
  at most `concurrency` calls in flight; identical requests are called once; requests that differ
  only in `sample` (the auto-rater's ensemble) are one request for several candidates where the
  backend can (`max_candidates`), and otherwise carry distinct seeds;
- retries what may pass later (`RetryableError`: 429, 5xx, timeouts, dropped connections) with
  exponential backoff and full jitter, waiting at least what the server asked for, and fails fast
  on what will not (`BackendError`: 400, 401...), after which no further call of that run starts;
- validates every answer with `validate(text)`; an answer it refuses (ValueError) gets up to
  `repair_attempts` follow-up calls that show the model its answer and the error. What is still
  invalid comes back as None and is counted in `usage.invalid`: bad model output never raises.
  Such an answer stays in the cache, so a rerun costs nothing; with `retry_invalid` a rerun asks
  again for a cached answer that is invalid, and its repairs (`usage.asked_again`);
- counts calls, cache hits, retries, repairs, tokens and cost in `usage`; with `track_output`,
  `output_usage()` sums what every answer an output used cost, also when earlier (killed or
  failed) processes paid for it.

The cache is a sqlite3 file (WAL mode) with one row per answer, committed as soon as the call
returns: the raw text, token counts and price factor, never the validated value (a better
validator can re-read the same answers for free). A run that is killed and started again pays for
no call twice.

`Runner.run_batch` sends the uncached requests through the provider's batch API instead (half
price, answers within 24 hours). Submitted job ids are stored in the same database before polling
starts, so a restarted run resumes polling its jobs instead of submitting them again.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import json
import logging
import os
import random
import sqlite3
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

from tqdm.auto import tqdm

from regen_dataset.inpaint.backends import (
    AnswerCutOff,
    Backend,
    BackendError,
    Completion,
    LLMError,
    PromptRefused,
    RetryableError,
    without_credentials,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

REPAIR_PROMPT = """\
Your answer to the request below could not be used.

=== REQUEST ===
{prompt}

=== YOUR ANSWER ===
{answer}

=== PROBLEM ===
{error}
{attempt}
Answer the same request again. Reply with the corrected {what} only: no explanation, no code \
fences."""


@dataclass(frozen=True)
class LLMRequest:
    """One call to make: the prompt and its generation settings."""

    prompt: str
    system: str | None = None
    temperature: float = 1.0
    max_output_tokens: int = 1024
    json_output: bool = True
    sample: int = 0  # distinguishes repeated samples of one prompt (e.g. a rater ensemble of 7)
    # Whom the request is about (e.g. the user id), to name in reports; not part of the key.
    label: str | None = field(default=None, compare=False)

    def key(self, backend: Backend) -> str:
        """The cache key: sha256 over the backend name, the model, the server (where it is not
        the provider's default: two OpenAI-compatible servers may serve different models under
        one name) and every field but `label`."""
        fields = {"backend": backend.name, "model": backend.model, **asdict(self)}
        del fields["label"]
        if backend.base_url:  # left out otherwise, so that caches of the default API stay valid
            # without a user:password@, so that a changed password re-pays no call
            fields["base_url"] = without_credentials(backend.base_url).rstrip("/")
        if backend.decoding:  # how a self-decoding backend constrains its answers
            fields["decoding"] = backend.decoding
        text = json.dumps(fields, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class Usage:
    """What a Runner has spent so far (cache hits cost nothing)."""

    calls: int = 0  # paid completions (direct, repair and batch)
    cached: int = 0  # answers served from the cache (or by an identical request of the same run)
    retries: int = 0
    repaired: int = 0  # answers made valid by a repair call
    invalid: int = 0  # answers still invalid after the repairs (their results are None)
    asked_again: int = 0  # cached invalid answers asked for again (`retry_invalid`)
    # Samples that a request for several candidates did not return (asked again one by one), and
    # such requests the server refused (400: it takes one candidate; then asked one by one).
    candidates_missing: int = 0
    candidates_refused: int = 0
    # Answers that reached the output-token limit before any text (counted in `invalid` too):
    # never cached, never repaired.
    cut_off: int = 0
    # Requests the service refused as bad requests (400, e.g. a history over the context
    # length), skipped and counted in `invalid` too, and the labels (users) they were about.
    rejected: int = 0
    rejected_labels: list[str] = field(default_factory=list)
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    def summary(self) -> str:
        again = f" ({self.asked_again:,} cached invalid asked again)" if self.asked_again else ""
        if self.cut_off:
            again += f" ({self.cut_off:,} cut off at the output-token limit before any text)"
        if self.rejected:
            about = sorted(set(self.rejected_labels))
            named = f" about {', '.join(about[:10])}{', ...' if len(about) > 10 else ''}"
            again += (
                f" ({self.rejected:,} refused as bad requests and skipped{named if about else ''})"
            )
        return (
            f"{self.calls:,} calls, {self.cached:,} cached, {self.retries:,} retries, "
            f"{self.repaired:,} repaired, {self.invalid:,} invalid{again}; "
            f"{self.input_tokens:,} input + {self.output_tokens:,} output tokens, "
            f"${self.cost_usd:,.4f}"
        )


class RetriesExhausted(LLMError):
    """A call still failed after `max_attempts` attempts."""


LOCK_TIMEOUT_S = 60.0
# A bad request (400) is skipped as one request's problem (e.g. a history over the context
# length) until requests about this many different users (labels; prompts where unlabelled) in
# a row got one: then the requests are not to blame (a bad parameter, model or server) and the
# run stops. One user's long history makes many different prompts, all refused.
REJECTIONS_IN_A_ROW = 3


class _Rejected(Exception):
    """A request the service refused as a bad request of its own: skipped, not retried."""

    def __init__(self, error: BackendError):
        super().__init__(str(error))
        self.error = error


def _request_specific(error: BackendError) -> bool:
    """Whether a refusal may concern this request alone: a 400 that names no key, model or
    parameter problem (those fail every request alike)."""
    if isinstance(error, PromptRefused):
        return True
    message = str(error).lower()
    if error.status != 400 or "api key" in message or "api_key" in message:
        return False
    unknown_model = "model" in message and any(
        word in message
        for word in ("not found", "does not exist", "unknown model", "not supported")
    )
    return not unknown_model


def _switch_to_wal(db: sqlite3.Connection) -> None:
    """WAL mode, waiting for whoever else opens the file at the same moment. Two connections
    that switch a new file at once can deadlock on its locks, and SQLite then tells one of them
    "database is locked" at once instead of waiting out the busy timeout."""
    deadline = time.monotonic() + LOCK_TIMEOUT_S
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


class CompletionCache:
    """The sqlite3 file behind a Runner: completed calls, and batch jobs still to collect."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, timeout=LOCK_TIMEOUT_S)
        _switch_to_wal(self.db)
        self.db.execute("PRAGMA synchronous=NORMAL")  # with WAL: a commit survives a killed process
        with self.db:
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS completions (key TEXT PRIMARY KEY, backend TEXT, "
                "model TEXT, text TEXT NOT NULL, input_tokens INTEGER NOT NULL, "
                "output_tokens INTEGER NOT NULL, created REAL NOT NULL, "
                "price_factor REAL NOT NULL DEFAULT 1.0, calls INTEGER NOT NULL DEFAULT 1)"
            )
            # Caches written before answers kept their price and their share of the calls: a
            # call per answer, at list price (those versions made no batch or multi-answer calls
            # that differ).
            columns = {row[1] for row in self.db.execute("PRAGMA table_info(completions)")}
            for column, definition in (
                ("price_factor", "REAL NOT NULL DEFAULT 1.0"),
                ("calls", "INTEGER NOT NULL DEFAULT 1"),
            ):
                if column not in columns:
                    self.db.execute(f"ALTER TABLE completions ADD COLUMN {column} {definition}")
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS batch_jobs (job_id TEXT PRIMARY KEY, backend TEXT, "
                "model TEXT, keys TEXT NOT NULL, status TEXT NOT NULL, submitted REAL NOT NULL)"
            )
            # What answers replaced by a new call (`retry_invalid`) cost: paid for all the same.
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS superseded (key TEXT NOT NULL, "
                "input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL, "
                "price_factor REAL NOT NULL, calls INTEGER NOT NULL)"
            )
            # The answers each output used, so that its manifest can sum what they cost, over
            # every process that paid for them.
            self.db.execute(
                "CREATE TABLE IF NOT EXISTS output_answers (output TEXT NOT NULL, "
                "key TEXT NOT NULL, PRIMARY KEY (output, key))"
            )

    def get(self, key: str) -> Completion | None:
        row = self.db.execute(
            "SELECT text, input_tokens, output_tokens FROM completions WHERE key = ?", (key,)
        ).fetchone()
        return Completion(*row) if row else None

    def missing(self, keys: Iterable[str]) -> list[str]:
        """Those of `keys` with no stored completion, in order."""
        return [key for key in keys if self.get(key) is None]

    def put(
        self,
        items: Iterable[tuple[str, Completion]],
        backend: Backend,
        price_factor: float = 1.0,
        *,
        one_call: bool = False,
        superseding: bool = False,
    ) -> None:
        """Store completions, paid at `price_factor` times the list price, and commit at once.
        Each is one paid call, or with `one_call` all came from the first one's call. With
        `superseding` they were asked for again, and what the answers they replace cost is kept.
        """
        now = time.time()
        rows = [
            (key, backend.name, backend.model, c.text, c.input_tokens, c.output_tokens, now)
            + (price_factor, 0 if one_call and position else 1)
            for position, (key, c) in enumerate(items)
        ]
        with self.db:
            if superseding:
                self.db.executemany(
                    "INSERT INTO superseded SELECT key, input_tokens, output_tokens, "
                    "price_factor, calls FROM completions WHERE key = ?",
                    ((row[0],) for row in rows),
                )
            self.db.executemany(
                "INSERT OR REPLACE INTO completions (key, backend, model, text, input_tokens, "
                "output_tokens, created, price_factor, calls) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def clear_output(self, output: str) -> None:
        with self.db:
            self.db.execute("DELETE FROM output_answers WHERE output = ?", (output,))

    def mark_used(self, output: str, keys: Iterable[str]) -> None:
        with self.db:
            self.db.executemany(
                "INSERT OR IGNORE INTO output_answers VALUES (?, ?)",
                ((output, key) for key in keys),
            )

    def output_usage(self, output: str, prices: tuple[float, float] | None) -> Usage:
        """What the answers `output` used cost when they were paid for, whichever process paid:
        each answer once, at its own price factor (batch answers are cheaper), and the answers
        they replaced too."""
        per_input, per_output = prices or (0.0, 0.0)
        calls, input_tokens, output_tokens, cost = self.db.execute(
            "SELECT COALESCE(SUM(c.calls), 0), COALESCE(SUM(c.input_tokens), 0), "
            "COALESCE(SUM(c.output_tokens), 0), "
            "COALESCE(SUM(c.price_factor * (c.input_tokens * ? + c.output_tokens * ?)), 0) "
            "FROM output_answers AS o JOIN (SELECT key, input_tokens, output_tokens, "
            "price_factor, calls FROM completions UNION ALL SELECT key, input_tokens, "
            "output_tokens, price_factor, calls FROM superseded) AS c "
            "ON c.key = o.key WHERE o.output = ?",
            (per_input, per_output, output),
        ).fetchone()
        return Usage(
            calls=calls,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=cost / 1_000_000,
        )

    def add_job(self, job_id: str, backend: Backend, keys: Sequence[str]) -> None:
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO batch_jobs VALUES (?, ?, ?, ?, 'running', ?)",
                (job_id, backend.name, backend.model, json.dumps(list(keys)), time.time()),
            )

    def running_jobs(self, backend: Backend) -> dict[str, list[str]]:
        rows = self.db.execute(
            "SELECT job_id, keys FROM batch_jobs WHERE backend = ? AND model = ? "
            "AND status = 'running' ORDER BY submitted",
            (backend.name, backend.model),
        )
        return {job_id: json.loads(keys) for job_id, keys in rows}

    def finish_job(self, job_id: str) -> None:
        with self.db:
            self.db.execute("UPDATE batch_jobs SET status = 'done' WHERE job_id = ?", (job_id,))

    def close(self) -> None:
        self.db.close()


class Runner:
    """Calls a backend for many requests: cache, bounded concurrency, retries, validation."""

    def __init__(
        self,
        backend: Backend,
        cache_path: str | os.PathLike,
        *,
        concurrency: int = 8,
        max_attempts: int = 6,
        base_delay: float = 1.0,
        max_delay: float = 60.0,
        repair_attempts: int = 1,
        prices: tuple[float, float] | None = None,  # USD per 1M input, output tokens
        batch_price_factor: float = 0.5,  # OpenAI and Gemini bill batch jobs at half price
        progress: bool = True,
        seed: int = 0,
        retry_invalid: bool = False,
    ):
        if concurrency < 1 or max_attempts < 1 or repair_attempts < 0:
            raise ValueError("need concurrency >= 1, max_attempts >= 1 and repair_attempts >= 0")
        self.backend = backend
        self.cache_path = Path(cache_path)
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.repair_attempts = repair_attempts
        self.prices = prices
        self.batch_price_factor = batch_price_factor
        self.progress = progress
        self.retry_invalid = retry_invalid
        self.usage = Usage()
        self._random = random.Random(seed)
        # The error that ended the current run: calls waiting for a slot then raise it instead of
        # asking a service that has just refused (a bad key fails every call alike).
        self._fatal: LLMError | None = None
        self.output: str | None = None  # see `track_output`
        self._one_candidate_only = False  # set when the server refuses several candidates
        # Prompts whose request for several answers was refused: if one of them is then answered
        # alone, the server takes one answer per request; if not, the prompt was to blame.
        self._candidates_refused: dict[str, BackendError] = {}
        self._blocked: dict[str, PromptRefused] = {}  # prompts the service blocks: not asked again
        self._used: list[str] = []  # keys of the answers used in this session
        self._rejected_in_a_row: set[str] = set()  # users (prompts) refused since the last answer

    # -- public, synchronous ----------------------------------------------------------------

    def track_output(self, output: str | os.PathLike) -> None:
        """Record from now on which cached answers the output `output` uses (forgetting what an
        earlier, unfinished run recorded for it), for `output_usage`."""
        self.output = os.fspath(output)
        cache = CompletionCache(self.cache_path)
        try:
            cache.clear_output(self.output)
        finally:
            cache.close()

    def output_usage(self) -> Usage:
        """The paid calls behind every answer the tracked output used, summed from the cache:
        calls made by earlier (killed or failed) processes count too, cached repeats do not."""
        if self.output is None:
            raise RuntimeError("call track_output before the runs whose usage you want")
        cache = CompletionCache(self.cache_path)
        try:
            return cache.output_usage(self.output, self.prices)
        finally:
            cache.close()

    def run(self, requests: Sequence[LLMRequest], validate: Callable[[str], T]) -> list[T | None]:
        """Validated answers to `requests`, in their order; None where the answer stayed invalid.

        Raises RetriesExhausted or BackendError when a call cannot be made; the calls completed
        until then are in the cache, so running again continues where this run stopped.
        """
        requests = list(requests)
        return self._sync(lambda cache: self._answer_all(requests, validate, cache))

    def run_batch(
        self,
        requests: Sequence[LLMRequest],
        validate: Callable[[str], T],
        *,
        poll_interval: float = 30.0,
        chunk_size: int | None = None,
    ) -> list[T | None]:
        """Like `run`, with the uncached requests sent as provider batch jobs of at most
        `chunk_size` requests (default: the backend's limit), polled every `poll_interval`
        seconds. Requests a job did not answer, and repairs, go through direct calls."""
        requests = list(requests)
        if not self.backend.supports_batch:
            log.info("%s has no batch API; calling it directly", self.backend.describe())
            return self.run(requests, validate)

        async def work(cache: CompletionCache) -> list[T | None]:
            fresh = await self._collect_batches(requests, cache, poll_interval, chunk_size)
            return await self._answer_all(requests, validate, cache, fresh=fresh)

        return self._sync(work)

    # -- event loop and cache session -------------------------------------------------------

    def _sync(self, work: Callable[[CompletionCache], Coroutine[Any, Any, R]]) -> R:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self._session(work))
        raise RuntimeError(
            "Runner.run is synchronous and starts its own event loop: call it from code without "
            "a running loop (from async code, use `await asyncio.to_thread(runner.run, ...)`)"
        )

    async def _session(self, work: Callable[[CompletionCache], Awaitable[R]]) -> R:
        cache = CompletionCache(self.cache_path)
        self._fatal = None
        self._used = []
        self._rejected_in_a_row = set()
        self._candidates_refused = {}
        self._blocked = {}
        try:
            return await work(cache)
        finally:
            if self.output is not None:
                cache.mark_used(self.output, self._used)
            cache.close()
            await self.backend.aclose()

    # -- direct calls -----------------------------------------------------------------------

    async def _answer_all(
        self,
        requests: list[LLMRequest],
        validate: Callable[[str], T],
        cache: CompletionCache,
        fresh: set[str] | None = None,
    ) -> list[T | None]:
        positions: dict[str, list[int]] = {}
        for index, request in enumerate(requests):
            positions.setdefault(request.key(self.backend), []).append(index)
        # Samples of one prompt (requests that differ only in `sample`) are asked for together,
        # in one request for several candidates, where the backend can.
        groups: dict[str, list[str]] = {}
        for key, indices in positions.items():
            groups.setdefault(self._sample_group(requests[indices[0]], key), []).append(key)
        fresh = set() if fresh is None else fresh
        results: list[T | None] = [None] * len(requests)
        semaphore = asyncio.Semaphore(self.concurrency)
        bar = tqdm(
            total=len(requests),
            desc=self.backend.describe(),
            unit="req",
            disable=not self.progress,
        )

        async def answer(key: str, indices: list[int]) -> None:
            request = requests[indices[0]]
            value = await self._answer(request, key, validate, cache, semaphore, fresh)
            for index in indices:
                results[index] = value
            self.usage.cached += len(indices) - 1  # identical requests share one answer
            bar.update(len(indices))

        async def answer_group(keys: list[str]) -> None:
            if len(keys) > 1:
                members = [(requests[positions[key][0]], key) for key in keys]
                await self._sample_together(members, cache, semaphore, fresh)
            await asyncio.gather(*(answer(key, positions[key]) for key in keys))

        try:
            await _gather_or_cancel(answer_group(keys) for keys in groups.values())
        finally:
            bar.close()
        return results

    def _sample_group(self, request: LLMRequest, key: str) -> str:
        if self.backend.max_candidates <= 1 or request.sample == 0:
            return key  # a sample 0 is the group's first member: the group's key is its own
        return replace(request, sample=0).key(self.backend)

    async def _sample_together(
        self,
        members: list[tuple[LLMRequest, str]],
        cache: CompletionCache,
        semaphore: asyncio.Semaphore,
        fresh: set[str],
    ) -> None:
        """Put answers to the uncached samples of one prompt in the cache, asking for several
        candidates per request. Samples a server did not return are left to single calls."""
        missing = [(request, key) for request, key in members if cache.get(key) is None]
        step = self.backend.max_candidates
        for start in range(0, len(missing), step):
            chunk = missing[start : start + step]
            if len(chunk) < 2:
                return  # a single sample is a plain call
            request = chunk[0][0]
            ask = functools.partial(
                self.backend.complete_candidates,
                request.prompt,
                len(chunk),
                system=request.system,
                temperature=request.temperature,
                max_output_tokens=request.max_output_tokens,
                json_output=request.json_output,
            )
            async with semaphore:
                if self._fatal is not None:
                    raise self._fatal
                if self._one_candidate_only:
                    return  # plain calls, one per sample
                try:
                    answers = await self._with_retries(
                        functools.partial(_candidates_or_refusal, ask)
                    )
                except AnswerCutOff as cut:  # no candidate with text: asked one by one
                    self._account(cut.completion)
                    return
                except _CandidatesRefused as refusal:
                    # A server that takes one candidate per request (llama.cpp answers 400), or
                    # a prompt of its own fault (too long, blocked): its samples are asked one by
                    # one, and the first answer tells which (`_completion`).
                    if isinstance(refusal.error, PromptRefused):  # blocked again if asked
                        self._blocked[request.prompt] = refusal.error
                    else:
                        self._candidates_refused[request.prompt] = refusal.error
                    return
            answered = list(zip([key for _, key in chunk], answers, strict=False))
            cache.put(answered, self.backend, one_call=True)
            if answered:
                self._account(answered[0][1])
                for _, completion in answered[1:]:
                    self._account(completion, calls=0)
            fresh.update(key for key, _ in answered)
            if len(answered) < len(chunk):
                first = not self.usage.candidates_missing  # a server that ignores `n` always will
                self.usage.candidates_missing += len(chunk) - len(answered)
                log.log(
                    logging.WARNING if first else logging.DEBUG,
                    "%s returned %d of %d candidates; the others are asked one by one",
                    self.backend.describe(),
                    len(answered),
                    len(chunk),
                )

    async def _answer(
        self,
        request: LLMRequest,
        key: str,
        validate: Callable[[str], T],
        cache: CompletionCache,
        semaphore: asyncio.Semaphore,
        fresh: set[str],
    ) -> T | None:
        # An answer of an earlier run (not one just collected from a batch job) that is invalid
        # may be asked for again; what was called in this run is never asked twice.
        earlier = self.retry_invalid and key not in fresh and cache.get(key) is not None
        try:
            value, error = await self._valid_answer(request, key, validate, cache, semaphore, fresh)
            if error is not None and earlier:
                self.usage.asked_again += 1
                value, error = await self._valid_answer(
                    request, key, validate, cache, semaphore, fresh, ask_again=True
                )
        except AnswerCutOff as cut:
            self.usage.cut_off += 1
            error = ValueError(str(cut))
        except _Rejected as rejected:
            self.usage.rejected += 1
            if request.label is not None:
                self.usage.rejected_labels.append(request.label)
            about = f" about {request.label}" if request.label is not None else ""
            log.warning("request %s%s skipped: %s", key[:12], about, _short(str(rejected)))
            self.usage.invalid += 1
            return None
        if error is None:
            return value
        self.usage.invalid += 1
        log.warning(
            "invalid answer for request %s after %d repair(s): %s",
            key[:12],
            self.repair_attempts,
            _short(str(error)),
        )
        return None

    async def _valid_answer(
        self,
        request: LLMRequest,
        key: str,
        validate: Callable[[str], T],
        cache: CompletionCache,
        semaphore: asyncio.Semaphore,
        fresh: set[str],
        *,
        ask_again: bool = False,
    ) -> tuple[T | None, ValueError | None]:
        """(value, None) for an answer that is valid or repaired, else (None, the last error).
        With `ask_again` the answer and its repairs are called for, whatever the cache holds."""
        completion = await self._completion(request, key, cache, semaphore, fresh, ask_again)
        try:
            return validate(completion.text), None
        except ValueError as err:
            error = err
        answer = completion.text
        for attempt in range(1, self.repair_attempts + 1):
            repair = repair_request(request, answer, error, attempt)
            completion = await self._completion(
                repair, repair.key(self.backend), cache, semaphore, fresh, ask_again
            )
            try:
                value = validate(completion.text)
            except ValueError as err:
                answer, error = completion.text, err
                continue
            self.usage.repaired += 1
            return value, None
        return None, error

    async def _completion(
        self,
        request: LLMRequest,
        key: str,
        cache: CompletionCache,
        semaphore: asyncio.Semaphore,
        fresh: set[str],
        ask_again: bool = False,
    ) -> Completion:
        """The answer to `request`: from the cache, or from the backend (and then cached, in
        place of the stored one where `ask_again`)."""
        self._used.append(key)
        stored = None if ask_again else cache.get(key)
        if stored is not None:
            if key not in fresh:  # answers just collected from a batch job were paid for here
                self.usage.cached += 1
            return stored
        if request.prompt in self._blocked:  # its other samples were blocked: so is this one
            raise _Rejected(self._blocked[request.prompt])
        async with semaphore:
            if self._fatal is not None:
                raise self._fatal
            # A repeated sample asked on its own carries a seed, so that no two requests are
            # byte-identical (a caching proxy or a deterministic server would repeat the answer).
            seeded = (
                {"seed": request.sample} if request.sample and self.backend.supports_seed else {}
            )
            try:
                completion = await self._with_retries(
                    lambda: self.backend.complete(
                        request.prompt,
                        system=request.system,
                        temperature=request.temperature,
                        max_output_tokens=request.max_output_tokens,
                        json_output=request.json_output,
                        **seeded,
                    )
                )
            except AnswerCutOff as cut:  # paid for, but no answer: not cached
                self._account(cut.completion)
                raise
            except BackendError as err:
                if not _request_specific(err):
                    raise
                if isinstance(err, PromptRefused):
                    self._blocked[request.prompt] = err
                self._rejected_in_a_row.add(
                    request.prompt if request.label is None else f"label {request.label}"
                )
                if len(self._rejected_in_a_row) >= REJECTIONS_IN_A_ROW:
                    about = "prompts" if request.label is None else "users"
                    self._fatal = BackendError(
                        f"{err} (requests about {len(self._rejected_in_a_row)} different {about} "
                        "in a row were refused as bad requests: the requests are not to blame)",
                        status=err.status,
                    )
                    raise self._fatal from None
                raise _Rejected(err) from None  # one request's problem: the run goes on
            self._rejected_in_a_row.clear()
            refused = self._candidates_refused.pop(request.prompt, None)
            if refused is not None and not self._one_candidate_only:
                # Refused for several answers, answered alone: ask this server for one sample at
                # a time, with seeds, for the rest of this runner's life.
                self._one_candidate_only = True
                self.usage.candidates_refused += 1
                log.warning("%s; the samples are asked one by one", refused)
        cache.put([(key, completion)], self.backend, superseding=ask_again)
        self._account(completion)
        return completion

    async def _with_retries(
        self, call: Callable[[], Awaitable[R]], *, retry_unanswered: bool = True
    ) -> R:
        """`call()`, retried with backoff on what waiting may fix. `retry_unanswered=False`: a
        call that got no answer at all (a timeout, a dropped connection) is not sent again, for
        calls that may have taken effect on the server all the same."""
        for attempt in range(1, self.max_attempts + 1):
            try:
                return await call()
            except BackendError as err:
                if not _request_specific(err):  # a refusal of this request alone is the caller's
                    self._fatal = err
                raise
            except RetryableError as err:
                if err.status is None and not retry_unanswered:
                    self._fatal = BackendError(
                        f"{err} (not retried: the server may have created the batch job all the "
                        "same, and a second one would be paid twice; look for it in the "
                        "provider's batch list, cancel it or wait for it, then run again)"
                    )
                    raise self._fatal from None
                if attempt == self.max_attempts:
                    self._fatal = RetriesExhausted(f"gave up after {attempt} attempts: {err}")
                    raise self._fatal from None
                delay = self._backoff(attempt, err.retry_after)
                self.usage.retries += 1
                log.info("%s; retry %d in %.2f s", err, attempt, delay)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Full jitter: uniform in [0, min(max_delay, base_delay * 2**(attempt-1))], and at
        least what the server asked for."""
        ceiling = min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
        delay = self._random.uniform(0.0, ceiling)
        return max(delay, retry_after) if retry_after is not None else delay

    def _account(self, completion: Completion, price_factor: float = 1.0, calls: int = 1) -> None:
        self.usage.calls += calls
        self.usage.input_tokens += completion.input_tokens
        self.usage.output_tokens += completion.output_tokens
        if self.prices is not None:
            per_input, per_output = self.prices
            cost = completion.input_tokens * per_input + completion.output_tokens * per_output
            self.usage.cost_usd += price_factor * cost / 1_000_000

    # -- batch jobs -------------------------------------------------------------------------

    async def _collect_batches(
        self,
        requests: list[LLMRequest],
        cache: CompletionCache,
        poll_interval: float,
        chunk_size: int | None,
    ) -> set[str]:
        """Put answers to every uncached request in the cache through batch jobs (resuming the
        jobs an earlier run submitted); returns the keys answered here."""
        backend = self.backend
        unique = {request.key(backend): request for request in requests}
        missing = set(cache.missing(unique))
        jobs = {
            job_id: keys
            for job_id, keys in cache.running_jobs(backend).items()
            if missing.intersection(keys)
        }
        if jobs:
            log.info("resuming %d batch job(s) submitted earlier: %s", len(jobs), ", ".join(jobs))
        resumed = set(jobs)
        covered = {key for keys in jobs.values() for key in keys}
        todo = [request for key, request in unique.items() if key in missing - covered]
        size = chunk_size or backend.batch_limit or len(todo) or 1
        for chunk in _batch_chunks(todo, size, backend.batch_bytes):
            job_id = await self._with_retries(
                lambda chunk=chunk: backend.submit_batch(chunk), retry_unanswered=False
            )
            keys = [request.key(backend) for request in chunk]
            cache.add_job(job_id, backend, keys)  # before polling: a restart resumes this job
            jobs[job_id] = keys
            log.info("submitted batch %s with %d requests", job_id, len(chunk))

        fresh: set[str] = set()
        bar = tqdm(
            total=len(missing),
            desc=f"{backend.describe()} (batch)",
            unit="req",
            disable=not self.progress or not missing,
        )
        try:
            while jobs:
                for job_id in list(jobs):
                    poll = functools.partial(backend.poll_batch, job_id)
                    try:
                        answers = await self._with_retries(
                            functools.partial(_poll_or_gone, poll, job_id in resumed)
                        )
                    except _JobGone:
                        # Deleted, expired or another key's: resuming it would fail every run.
                        log.warning(
                            "%s knows no batch %s (HTTP 404: deleted, expired or another key's); "
                            "the %d requests that an earlier run sent in it are called directly",
                            backend.describe(),
                            job_id,
                            len(jobs[job_id]),
                        )
                        cache.finish_job(job_id)
                        del jobs[job_id]
                        continue
                    if answers is None:
                        continue
                    keys = set(jobs.pop(job_id))
                    answers = {key: c for key, c in answers.items() if key in keys}
                    cache.put(answers.items(), backend, self.batch_price_factor)
                    cache.finish_job(job_id)
                    for completion in answers.values():
                        self._account(completion, self.batch_price_factor)
                    fresh.update(answers)
                    bar.update(len(missing.intersection(answers)))
                    if len(answers) < len(keys):
                        log.warning(
                            "batch %s left %d of %d requests unanswered; they are called directly",
                            job_id,
                            len(keys) - len(answers),
                            len(keys),
                        )
                if jobs:
                    await asyncio.sleep(poll_interval)
        finally:
            bar.close()
        return fresh


def _batch_chunks(
    requests: list[LLMRequest], size: int, max_bytes: int
) -> Iterator[list[LLMRequest]]:
    """`requests` in order, cut into chunks of at most `size` requests and, where `max_bytes`
    is set, at most that many bytes of prompts (a request larger than that goes alone: the
    provider says whether it takes it)."""
    chunk: list[LLMRequest] = []
    used = 0
    for request in requests:
        weight = len(request.prompt.encode()) + len((request.system or "").encode())
        if chunk and (len(chunk) == size or (max_bytes and used + weight > max_bytes)):
            yield chunk
            chunk, used = [], 0
        chunk.append(request)
        used += weight
    if chunk:
        yield chunk


class _JobGone(Exception):
    """A batch job of an earlier run that the provider no longer knows (404)."""

    def __init__(self, error: BackendError):
        super().__init__(str(error))
        self.error = error


async def _poll_or_gone(poll: Callable[[], Awaitable[R]], resumed: bool) -> R:
    """`poll()`, with a 404 for a job an earlier run submitted turned into `_JobGone` (no
    LLMError: the retry loop neither retries it nor ends the run with it)."""
    try:
        return await poll()
    except BackendError as err:
        if resumed and err.status == 404:
            raise _JobGone(err) from None
        raise


class _CandidatesRefused(Exception):
    """A request for several candidates that the server refused as a bad request."""

    def __init__(self, error: BackendError):
        super().__init__(str(error))
        self.error = error


async def _candidates_or_refusal(ask: Callable[[], Awaitable[list[Completion]]]):
    """`ask()`, with a 400 answer turned into `_CandidatesRefused` (which is no LLMError, so that
    the retry loop neither retries it nor ends the run with it)."""
    try:
        return await ask()
    except BackendError as err:
        # A 400 that names no key (a server refusing `n`, whatever its wording, or this prompt
        # refused), or a blocked prompt; Google answers a bad key with a 400.
        refused = err.status == 400 and "api key" not in str(err).lower()
        if refused or isinstance(err, PromptRefused):
            raise _CandidatesRefused(err) from None
        raise


def repair_request(
    request: LLMRequest, answer: str, error: Exception | str, attempt: int = 1
) -> LLMRequest:
    """The follow-up request that shows the model its unusable answer and what was wrong.

    Later attempts say so: a model that repeats itself must not get the previous repair back
    from the cache, which an identical request would."""
    prompt = REPAIR_PROMPT.format(
        prompt=request.prompt,
        answer=answer,
        error=_short(str(error), 1000),
        attempt=f"(Correction attempt {attempt}: the earlier ones were not usable either.)\n"
        if attempt > 1
        else "",
        what="JSON" if request.json_output else "answer",
    )
    return LLMRequest(
        prompt=prompt,
        system=request.system,
        temperature=request.temperature,
        max_output_tokens=request.max_output_tokens,
        json_output=request.json_output,
        sample=request.sample,
        label=request.label,
    )


async def _gather_or_cancel(coroutines: Iterable[Coroutine[Any, Any, None]]) -> None:
    """Run all; on the first error cancel the rest (their finished calls are already cached)."""
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


__all__ = [
    "BackendError",
    "CompletionCache",
    "LLMRequest",
    "RetriesExhausted",
    "RetryableError",
    "Runner",
    "Usage",
    "repair_request",
]
