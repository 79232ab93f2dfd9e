"""What every inpainting LLM backend shares: the `Backend` interface, its `Completion`, the errors
that tell the Runner whether to retry, and the helpers for keys and HTTP failures.

A backend makes one call and says how it went: a `Completion` with the provider's token counts, a
`RetryableError` for what waiting may fix (429, 5xx, timeouts, dropped connections) or a
`BackendError` for what it will not (400, 401, unknown model). The SDKs' own retries are switched
off so that the Runner is the one place that retries.

API keys come only from the environment. They are read when an SDK client is made and handed
straight to it: no backend attribute, repr or error message holds one, and error messages are
redacted in case a server echoes the key back.
"""

from __future__ import annotations

import abc
import asyncio
import email.utils
import inspect
import ipaddress
import os
import re
import time
import urllib.parse
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from regen_dataset.inpaint.runner import LLMRequest

DEFAULT_MODELS = {"openai": "gpt-4o-mini", "gemini": "gemini-2.5-flash", "local": "embedded"}
# Shapes of provider keys, scrubbed from error messages even when they are not ours.
_KEY_SHAPES = re.compile(r"sk-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}")
_MAX_MESSAGE = 400
SERVICE_FAILED_HINT = "the service failed: run again later (answers so far are cached)"


@dataclass(frozen=True)
class Completion:
    """The text of one answer and the provider's token counts for it."""

    text: str
    input_tokens: int
    output_tokens: int


def split_candidates(texts: list[str], input_tokens: int, output_tokens: int) -> list[Completion]:
    """The answers of one multi-candidate request, the request's token counts on the first (the
    providers report one total for all candidates)."""
    return [
        Completion(text, input_tokens if number == 0 else 0, output_tokens if number == 0 else 0)
        for number, text in enumerate(texts)
    ]


class LLMError(Exception):
    """Base of the errors of the LLM layer; `status` is the HTTP status where there was one."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class RetryableError(LLMError):
    """A call that may succeed later: rate limit (429), server error (5xx), timeout, reset."""

    def __init__(
        self, message: str, retry_after: float | None = None, *, status: int | None = None
    ):
        super().__init__(message, status=status)
        self.retry_after = retry_after  # seconds, from the server when it said


class BackendError(LLMError):
    """A call that retrying will not fix: bad request, bad key, unknown model, no quota."""


class PromptRefused(BackendError):
    """The service declined this prompt itself (a safety block): that request's problem alone,
    skipped and counted like a bad request, never retried (the same prompt is blocked again)."""


class AnswerCutOff(LLMError):
    """An answer that reached the output-token limit before any text (a thinking model can spend
    the whole budget thinking): nothing to validate or repair. It is never cached; the Runner
    counts it as invalid (`usage.cut_off`). `completion` holds the tokens it was billed."""

    def __init__(self, message: str, completion: Completion):
        super().__init__(message)
        self.completion = completion


class Backend(abc.ABC):
    """One LLM behind `complete`; `submit_batch`/`poll_batch` where the provider has batch jobs."""

    name: str = ""
    model: str = ""
    supports_batch: bool = False
    batch_limit: int = 0  # most requests in one batch job
    batch_bytes: int = 0  # most bytes of prompts in one batch job (0: no limit)
    key_env: tuple[str, ...] = ()
    base_url: str | None = None  # where a remote backend sends its requests (None: the default)
    decoding: str | None = None  # a constraint on decoding that changes answers (part of the key)
    # Answers one request can return (OpenAI `n`, Gemini `candidate_count`), and that parameter's
    # name; a backend with 1 is never asked for more.
    max_candidates: int = 1
    candidates_parameter: str = ""
    supports_seed: bool = False  # `complete` takes `seed` (distinct requests for repeated samples)

    @abc.abstractmethod
    async def complete(
        self,
        prompt: str,
        *,
        system: str | None = None,
        temperature: float = 1.0,
        max_output_tokens: int = 1024,
        json_output: bool = False,
    ) -> Completion:
        """One answer to `prompt`; raises RetryableError or BackendError."""

    async def complete_candidates(
        self,
        prompt: str,
        count: int,
        *,
        system: str | None = None,
        temperature: float = 1.0,
        max_output_tokens: int = 1024,
        json_output: bool = False,
    ) -> list[Completion]:
        """Up to `count` independent answers to `prompt` from one request (the input is paid
        once). The first carries the request's token counts, the others none, so that the
        counts add up to what was billed. A server may return fewer than asked."""
        raise BackendError(f"{self.describe()} answers one candidate per request")

    async def submit_batch(self, requests: list[LLMRequest]) -> str:
        """Start a provider batch job over `requests`; returns its job id."""
        raise BackendError(f"{self.describe()} has no batch API")

    async def poll_batch(self, job_id: str) -> dict[str, Completion] | None:
        """None while the job runs; once it has ended, its answers by request key (a request
        that failed inside the job is absent)."""
        raise BackendError(f"{self.describe()} has no batch API")

    async def aclose(self) -> None:
        """Close the client of the running event loop (the Runner calls this when a run ends)."""
        client = self._loop_clients().pop(asyncio.get_running_loop(), None)
        if client is not None:
            await self._close_client(client)

    @classmethod
    def from_options(
        cls,
        model: str | None,
        *,
        base_url: str | None = None,
        timeout: float = 120.0,
        constrained_decoding: bool = True,
        thinking_budget: int | str | None = "auto",
    ) -> Backend:
        """The backend for `model` with those of the common options its constructor takes; a
        `base_url` given to a backend that takes none is an error, and so is a thinking budget
        other than "auto". `constrained_decoding` only concerns backends that decode themselves
        (local); `thinking_budget` the Gemini API."""
        parameters = inspect.signature(cls.__init__).parameters
        if base_url and "base_url" not in parameters:
            raise ValueError(f"the {cls.name} backend takes no base_url (it runs in this process)")
        if thinking_budget != "auto" and "thinking_budget" not in parameters:
            raise ValueError(f"the {cls.name} backend takes no thinking budget")
        options = {
            "base_url": base_url,
            "timeout": timeout,
            "constrained_decoding": constrained_decoding,
            "thinking_budget": thinking_budget,
        }
        return cls(model, **{key: value for key, value in options.items() if key in parameters})

    def describe(self) -> str:
        return f"{self.name} model {self.model!r}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(model={self.model!r})"

    # -- helpers for SDK backends --

    def _loop_clients(self) -> weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]:
        # SDK HTTP clients belong to the event loop that made them, and Runner.run starts a loop
        # per run: each loop gets its own client, closed by `aclose` when the run ends.
        return self.__dict__.setdefault("_clients", weakref.WeakKeyDictionary())

    def _client(self) -> Any:
        """The SDK client of the running event loop, made on first use."""
        clients = self._loop_clients()
        loop = asyncio.get_running_loop()
        if loop not in clients:
            clients[loop] = self._new_client()
        return clients[loop]

    def _new_client(self) -> Any:
        raise NotImplementedError

    async def _close_client(self, client: Any) -> None:
        """Close an SDK client made by `_new_client`."""
        raise NotImplementedError

    def _api_key(self) -> str | None:
        """The key from the environment, without the whitespace around it: a key pasted with its
        newline is no valid HTTP header, and the SDK reports that as a failed connection."""
        for variable in self.key_env:
            key = os.environ.get(variable, "").strip()
            if key:
                return key
        return None

    def _redact(self, text: str) -> str:
        """`text` without any API key: ours (from the environment) or anything shaped like one."""
        for variable in self.key_env:
            secret = os.environ.get(variable, "").strip()
            if len(secret) >= 4:
                text = text.replace(secret, "<redacted>")
        text = _KEY_SHAPES.sub("<redacted>", text)
        return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."

    def _failure(
        self, status: int | None, message: str, *, retry_after: float | None = None
    ) -> LLMError:
        """The error for an HTTP status (None: no answer at all), named, redacted, and ending
        with what to check where the status says."""
        what = f"HTTP {status}" if status is not None else "no answer"
        retryable = status is None or status in (408, 409, 429) or status >= 500
        text = self._redact(f"{self.describe()}: {what}: {message}")
        hint = self._hint(status, message)
        if retryable:
            message = f"{text}; {hint}" if hint else text
            return RetryableError(message, retry_after=retry_after, status=status)
        return BackendError(f"{text} (not retried){f'; {hint}' if hint else ''}", status=status)

    def _prompt_refused(self, reason: str) -> PromptRefused:
        return PromptRefused(
            self._redact(f"{self.describe()}: prompt blocked: {reason} (not retried)")
        )

    def _unusable_answer(self, status: int, problem: str) -> RetryableError:
        """The error for an answer whose status says success but whose body holds no answer (an
        error object, a gateway's HTML page, a body cut off): retried, like a 5xx."""
        text = self._redact(f"{self.describe()}: HTTP {status}: {problem}")
        return RetryableError(f"{text}; {SERVICE_FAILED_HINT}", status=status)

    def _connection_failure(self, err: BaseException) -> LLMError:
        """The error for a connection that failed. A refused connection to this machine cannot
        succeed by waiting (nothing listens there), so it is not retried; elsewhere a server may
        be restarting, so it is."""
        if _refused(err) and _is_loopback(self.base_url):
            return BackendError(
                f"{self.describe()}: connection refused (not retried); check that a server is "
                f"running at {without_credentials(self.base_url)}, or the base URL (--base-url)"
            )
        return self._failure(None, f"connection failed ({type(err).__name__})")

    def _hint(self, status: int | None, message: str) -> str:
        """What the user should check for a failure with this status, or ""."""
        if status in (401, 403) or "api key" in message.lower():
            return f"check the API key in {' or '.join(self.key_env) or 'the environment'}"
        if status == 404:
            return "check the model name (--model) and the base URL (--base-url)"
        if status == 429 and "quota" in message.lower():
            return "check the account's quota and billing"
        if status == 429:
            return "rate limited: lower --concurrency or run again later"
        if status is None:
            where = without_credentials(self.base_url) or "the provider's API"
            return f"check the network and that {where} answers"
        if status >= 500:
            return SERVICE_FAILED_HINT
        return ""


def check_scheme(base_url: str | None, option: str) -> None:
    """Refuse a base URL without http:// or https://: the SDK would fail every call as a
    connection that failed and retry it, and a `user:password@` in it could not be told from the
    host, so it would be shown. The message never holds what comes before an `@`."""
    if base_url and urllib.parse.urlsplit(base_url).scheme not in ("http", "https"):
        shown = base_url.rpartition("@")[2]
        raise ValueError(
            f"the base URL {shown!r} needs a scheme: http://{shown} or https://{shown} ({option})"
        )


def without_credentials(url: str | None) -> str | None:
    """`url` without the `user:password@` a server URL may carry, for messages and manifests."""
    if not url:
        return url
    parts = urllib.parse.urlsplit(url)
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


def retry_after_from_headers(headers: Any) -> float | None:
    """Seconds to wait from `retry-after-ms` or `retry-after` (seconds or an HTTP date)."""
    if not headers:
        return None
    for header, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(header)
        if value is None:
            continue
        try:
            return max(0.0, float(value) * scale)
        except ValueError:
            pass
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            continue
        return max(0.0, moment.timestamp() - time.time())
    return None


def transport_errors() -> tuple[type[BaseException], ...]:
    """Exceptions of the HTTP stacks the Gemini SDKs may use for a connection that failed."""
    found: list[type[BaseException]] = [ConnectionError]
    for module, attribute in (
        ("aiohttp", "ClientError"),
        ("httpx2", "TransportError"),
        ("httpx", "TransportError"),
        ("requests", "ConnectionError"),
        ("requests", "Timeout"),
    ):
        try:
            found.append(getattr(__import__(module), attribute))
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def _refused(err: BaseException) -> bool:
    """Whether `err` comes from a refused TCP connection, however deep the SDK wrapped it."""
    pending: list[object] = [err]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return True
        pending += [current.__cause__, current.__context__, *current.args]
        # aiohttp keeps the socket error in `os_error`, urllib3 in `reason`
        pending += [getattr(current, "os_error", None), getattr(current, "reason", None)]
    return False


def _is_loopback(url: str | None) -> bool:
    host = urllib.parse.urlsplit(url).hostname if url else None
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
