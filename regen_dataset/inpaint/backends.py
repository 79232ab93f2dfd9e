"""LLM backends for the inpainting pipeline: one small async interface over OpenAI, Gemini and a
local transformers model.

The pipeline asks an LLM for critiques, narratives and rater scores; `runner.Runner` adds caching,
retries, validation and batch jobs on top. A backend makes one call and says how it went: a
`Completion` with the provider's token counts, a `RetryableError` for what waiting may fix (429,
5xx, timeouts, dropped connections) or a `BackendError` for what it will not (400, 401, unknown
model). The SDKs' own retries are switched off so that the Runner is the one place that retries.

- `OpenAIBackend`: the official `openai` client on chat completions, and the Batch API. `base_url`
  points it at any OpenAI-compatible server (vLLM, Ollama, ...).
- `GeminiBackend`: the `google-genai` client, and Gemini batch mode with inline requests.
  `LegacyGeminiBackend` is a minimal fallback on the deprecated `google-generativeai` package for
  machines that only have that one (direct calls only).
- `LocalBackend`: a causal LM loaded through `regen_models.base.load_causal_lm`, lazily, on the
  first call; generation runs in a worker thread, one call at a time.

API keys come only from the environment. They are read when an SDK client is made and handed
straight to it: no backend attribute, repr or error message holds one, and error messages are
redacted in case a server echoes the key back.
"""

from __future__ import annotations

import abc
import asyncio
import email.utils
import json
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from regen_dataset.inpaint.runner import LLMRequest

log = logging.getLogger(__name__)

DEFAULT_MODELS = {"openai": "gpt-4o-mini", "gemini": "gemini-2.5-flash", "local": "embedded"}
OPENAI_KEY_ENV = ("OPENAI_API_KEY",)
GEMINI_KEY_ENV = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
# Sent to an OpenAI-compatible server that wants no key (the SDK insists on one).
NO_KEY_PLACEHOLDER = "no-key-needed"
# Shapes of provider keys, scrubbed from error messages even when they are not ours.
_KEY_SHAPES = re.compile(r"sk-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,}")
_MAX_MESSAGE = 400


@dataclass(frozen=True)
class Completion:
    """The text of one answer and the provider's token counts for it."""

    text: str
    input_tokens: int
    output_tokens: int


class LLMError(Exception):
    """Base of the errors of the LLM layer."""


class RetryableError(LLMError):
    """A call that may succeed later: rate limit (429), server error (5xx), timeout, reset."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after  # seconds, from the server when it said


class BackendError(LLMError):
    """A call that retrying will not fix: bad request, bad key, unknown model, no quota."""


class Backend(abc.ABC):
    """One LLM behind `complete`; `submit_batch`/`poll_batch` where the provider has batch jobs."""

    name: str = ""
    model: str = ""
    supports_batch: bool = False
    batch_limit: int = 0  # most requests in one batch job
    key_env: tuple[str, ...] = ()

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
        for variable in self.key_env:
            if os.environ.get(variable):
                return os.environ[variable]
        return None

    def _redact(self, text: str) -> str:
        """`text` without any API key: ours (from the environment) or anything shaped like one."""
        for variable in self.key_env:
            secret = os.environ.get(variable)
            if secret and len(secret) >= 4:
                text = text.replace(secret, "<redacted>")
        text = _KEY_SHAPES.sub("<redacted>", text)
        return text if len(text) <= _MAX_MESSAGE else text[:_MAX_MESSAGE] + "..."

    def _failure(
        self, status: int | None, message: str, *, retry_after: float | None = None
    ) -> LLMError:
        """The error for an HTTP status (None: no answer at all), named and redacted."""
        what = f"HTTP {status}" if status is not None else "no answer"
        retryable = status is None or status in (408, 409, 429) or status >= 500
        text = self._redact(f"{self.describe()}: {what}: {message}")
        if retryable:
            return RetryableError(text, retry_after=retry_after)
        return BackendError(text + " (not retried)")


# -- OpenAI --------------------------------------------------------------------------------------


class OpenAIBackend(Backend):
    """Chat completions through the official `openai` client; the Batch API for large runs."""

    name = "openai"
    supports_batch = True
    # The API takes up to 50,000 requests and 200 MB per file; REGEN prompts are about 10 KB.
    batch_limit = 10_000
    key_env = OPENAI_KEY_ENV

    def __init__(
        self, model: str | None = None, *, base_url: str | None = None, timeout: float = 120.0
    ):
        self.model = model or DEFAULT_MODELS["openai"]
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.timeout = timeout
        official = self.base_url is None or "api.openai.com" in self.base_url
        if official and not self._api_key():
            raise BackendError("the OpenAI API needs a key: set OPENAI_API_KEY in the environment")
        # OpenAI's own API wants max_completion_tokens (its reasoning models refuse max_tokens);
        # compatible servers (vLLM, Ollama...) have long understood max_tokens.
        self._max_tokens_field = "max_completion_tokens" if official else "max_tokens"

    def describe(self) -> str:
        where = f" at {self.base_url}" if self.base_url else ""
        return f"openai model {self.model!r}{where}"

    def __repr__(self) -> str:
        return f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r})"

    def _new_client(self) -> Any:
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            api_key=self._api_key() or NO_KEY_PLACEHOLDER,
            base_url=self.base_url,
            timeout=self.timeout,
            max_retries=0,  # the Runner retries
        )

    async def _close_client(self, client: Any) -> None:
        await client.close()

    def _body(
        self,
        prompt: str,
        system: str | None,
        temperature: float,
        max_output_tokens: int,
        json_output: bool,
    ) -> dict[str, Any]:
        messages = [{"role": "system", "content": system}] if system else []
        messages.append({"role": "user", "content": prompt})
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": temperature,
            self._max_tokens_field: max_output_tokens,
        }
        if json_output:
            body["response_format"] = {"type": "json_object"}
        return body

    async def complete(
        self,
        prompt: str,
        *,
        system: str | None = None,
        temperature: float = 1.0,
        max_output_tokens: int = 1024,
        json_output: bool = False,
    ) -> Completion:
        import openai

        body = self._body(prompt, system, temperature, max_output_tokens, json_output)
        try:
            response = await self._client().chat.completions.create(**body)
        except openai.APIError as err:
            raise self._error(err) from None
        return _chat_completion(response.model_dump())

    def _error(self, err: Exception) -> LLMError:
        import openai

        if isinstance(err, openai.APITimeoutError):
            return self._failure(None, f"timed out after {self.timeout:g} s")
        if isinstance(err, openai.APIConnectionError):
            cause = type(err.__cause__).__name__ if err.__cause__ else "connection error"
            return self._failure(None, f"connection failed ({cause})")
        if isinstance(err, openai.APIStatusError):
            body = err.body if isinstance(err.body, dict) else {}
            message = str(body.get("message") or err.message or err)
            if err.status_code == 429 and err.code == "insufficient_quota":
                return BackendError(self._redact(f"{self.describe()}: HTTP 429: {message}"))
            retry_after = _retry_after(err.response.headers)
            return self._failure(err.status_code, message, retry_after=retry_after)
        return self._failure(None, f"{type(err).__name__}: {err}")

    async def submit_batch(self, requests: list[LLMRequest]) -> str:
        import openai

        lines = [
            json.dumps(
                {
                    "custom_id": request.key(self),
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": self._body(
                        request.prompt,
                        request.system,
                        request.temperature,
                        request.max_output_tokens,
                        request.json_output,
                    ),
                },
                ensure_ascii=False,
            )
            for request in requests
        ]
        content = ("\n".join(lines) + "\n").encode("utf-8")
        client = self._client()
        try:
            upload = await client.files.create(
                file=("regen-inpaint-batch.jsonl", content, "application/jsonl"), purpose="batch"
            )
            batch = await client.batches.create(
                input_file_id=upload.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata={"source": "regen_dataset.inpaint"},
            )
        except openai.APIError as err:
            raise self._error(err) from None
        return batch.id

    async def poll_batch(self, job_id: str) -> dict[str, Completion] | None:
        import openai

        client = self._client()
        try:
            batch = await client.batches.retrieve(job_id)
            if batch.status in ("validating", "in_progress", "finalizing", "cancelling"):
                return None
            output = b""
            if batch.output_file_id:
                output = (await client.files.content(batch.output_file_id)).content
        except openai.APIError as err:
            raise self._error(err) from None
        results: dict[str, Completion] = {}
        failed = 0
        for line in output.decode("utf-8").splitlines():
            if not line.strip():
                continue
            row = json.loads(line)
            response = row.get("response") or {}
            if response.get("status_code") == 200 and not row.get("error"):
                results[row["custom_id"]] = _chat_completion(response["body"])
            else:
                failed += 1
        counts = batch.request_counts.failed if batch.request_counts else 0
        failed = max(failed, counts or 0)
        if batch.status != "completed" or failed:
            errors = [e.message for e in (batch.errors.data or [])] if batch.errors else []
            log.warning(
                "%s: batch %s ended %s; %d answers, %d failed requests%s",
                self.describe(),
                job_id,
                batch.status,
                len(results),
                failed,
                self._redact(f"; {errors[0]}") if errors and errors[0] else "",
            )
        return results


def _chat_completion(body: Mapping[str, Any]) -> Completion:
    """A Completion from a chat.completion object (as the API returns it)."""
    choices = body.get("choices") or [{}]
    message = choices[0].get("message") or {}
    usage = body.get("usage") or {}
    return Completion(
        text=message.get("content") or "",
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
    )


# -- Gemini --------------------------------------------------------------------------------------


class _GeminiSettings(Backend):
    """What both Gemini SDKs share: the model, endpoint, timeout and key."""

    name = "gemini"
    key_env = GEMINI_KEY_ENV

    def __init__(
        self, model: str | None = None, *, base_url: str | None = None, timeout: float = 120.0
    ):
        self.model = model or DEFAULT_MODELS["gemini"]
        self.base_url = base_url
        self.timeout = timeout
        if not self._api_key():
            raise BackendError("the Gemini API needs a key: set GEMINI_API_KEY (or GOOGLE_API_KEY)")

    def describe(self) -> str:
        where = f" at {self.base_url}" if self.base_url else ""
        return f"gemini model {self.model!r}{where}"


class GeminiBackend(_GeminiSettings):
    """`google-genai` generate_content; Gemini batch mode with inline requests for large runs."""

    supports_batch = True
    batch_limit = 1_000  # inline requests must stay under 20 MB; REGEN prompts are about 10 KB
    api_version = "v1beta"  # batch mode lives there

    def __init__(
        self, model: str | None = None, *, base_url: str | None = None, timeout: float = 120.0
    ):
        from google import genai  # noqa: F401  (ImportError: make_backend tries the legacy SDK)

        super().__init__(model, base_url=base_url, timeout=timeout)

    def __repr__(self) -> str:
        return f"GeminiBackend(model={self.model!r}, base_url={self.base_url!r})"

    def _new_client(self) -> Any:
        from google import genai
        from google.genai import types

        options = types.HttpOptions(
            base_url=self.base_url,
            api_version=self.api_version,
            timeout=max(1, int(self.timeout * 1000)),  # milliseconds
            # One attempt: the Runner retries. Setting this also stops the SDK's own retry of
            # dropped aiohttp connections.
            retry_options=types.HttpRetryOptions(attempts=1),
        )
        return genai.Client(api_key=self._api_key(), http_options=options)

    async def _close_client(self, client: Any) -> None:
        await client.aio.aclose()
        client.close()

    def _config(
        self, system: str | None, temperature: float, max_output_tokens: int, json_output: bool
    ) -> Any:
        from google.genai import types

        return types.GenerateContentConfig(
            system_instruction=system or None,
            temperature=temperature,
            max_output_tokens=max_output_tokens,
            response_mime_type="application/json" if json_output else None,
        )

    async def complete(
        self,
        prompt: str,
        *,
        system: str | None = None,
        temperature: float = 1.0,
        max_output_tokens: int = 1024,
        json_output: bool = False,
    ) -> Completion:
        config = self._config(system, temperature, max_output_tokens, json_output)
        try:
            response = await self._client().aio.models.generate_content(
                model=self.model, contents=prompt, config=config
            )
        except Exception as err:
            self._raise_failure(err)
        return _gemini_completion(response)

    def _raise_failure(self, err: Exception) -> NoReturn:
        """Raise our error for an SDK or transport error `err`; anything else (a bug) as it is."""
        failure = self._error(err)
        if failure is None:
            raise err
        raise failure from None

    def _error(self, err: Exception) -> LLMError | None:
        from google.genai import errors

        if isinstance(err, errors.APIError):
            headers = getattr(err.response, "headers", None)
            retry_after = _retry_after(headers) or _retry_delay(err.details)
            message = f"{err.status or ''} {err.message or ''}".strip() or str(err)
            return self._failure(err.code, message, retry_after=retry_after)
        if isinstance(err, TimeoutError):
            return self._failure(None, f"timed out after {self.timeout:g} s")
        if isinstance(err, _transport_errors()):
            return self._failure(None, f"connection failed ({type(err).__name__})")
        return None

    async def submit_batch(self, requests: list[LLMRequest]) -> str:
        from google.genai import types

        inlined = [
            types.InlinedRequest(
                contents=request.prompt,
                metadata={"key": request.key(self)},
                config=self._config(
                    request.system,
                    request.temperature,
                    request.max_output_tokens,
                    request.json_output,
                ),
            )
            for request in requests
        ]
        try:
            job = await self._client().aio.batches.create(
                model=self.model,
                src=types.BatchJobSource(inlined_requests=inlined),
                config=types.CreateBatchJobConfig(display_name="regen-inpaint"),
            )
        except Exception as err:
            self._raise_failure(err)
        if not job.name:
            raise BackendError(f"{self.describe()}: the batch job came back without a name")
        return job.name

    async def poll_batch(self, job_id: str) -> dict[str, Completion] | None:
        try:
            job = await self._client().aio.batches.get(name=job_id)
        except Exception as err:
            self._raise_failure(err)
        if not job.done:
            return None
        destination = job.dest
        if destination is not None and destination.file_name and not destination.inlined_responses:
            raise BackendError(
                f"{self.describe()}: batch {job_id} wrote its answers to the file "
                f"{destination.file_name}; only inline answers are read"
            )
        results: dict[str, Completion] = {}
        failed = 0
        for item in (destination.inlined_responses if destination else None) or []:
            key = (item.metadata or {}).get("key")
            if key and item.response is not None and not item.error:
                results[key] = _gemini_completion(item.response)
            else:
                failed += 1
        state = job.state.name if job.state is not None else "unknown"
        if state != "JOB_STATE_SUCCEEDED" or failed:
            reason = job.error.message if job.error and job.error.message else ""
            log.warning(
                "%s: batch %s ended %s; %d answers, %d failed requests%s",
                self.describe(),
                job_id,
                state,
                len(results),
                failed,
                self._redact(f"; {reason}") if reason else "",
            )
        return results


def _gemini_completion(response: Any) -> Completion:
    usage = response.usage_metadata
    output = 0
    if usage is not None:  # thinking tokens are billed as output
        output = (usage.candidates_token_count or 0) + (usage.thoughts_token_count or 0)
    return Completion(
        text=response.text or "",
        input_tokens=int((usage.prompt_token_count if usage else 0) or 0),
        output_tokens=int(output),
    )


def _transport_errors() -> tuple[type[BaseException], ...]:
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


class LegacyGeminiBackend(_GeminiSettings):
    """Gemini through the deprecated `google-generativeai` package, for machines without
    `google-genai`. Direct calls only: no batch mode. Kept minimal; it is not exercised by the
    test suite, which runs with `google-genai`."""

    supports_batch = False

    def __init__(
        self, model: str | None = None, *, base_url: str | None = None, timeout: float = 120.0
    ):
        import google.generativeai as legacy

        super().__init__(model, base_url=base_url, timeout=timeout)
        endpoint = {"api_endpoint": base_url} if base_url else None
        legacy.configure(api_key=self._api_key(), transport="rest", client_options=endpoint)
        self._legacy = legacy

    async def complete(
        self,
        prompt: str,
        *,
        system: str | None = None,
        temperature: float = 1.0,
        max_output_tokens: int = 1024,
        json_output: bool = False,
    ) -> Completion:
        legacy = self._legacy
        model = legacy.GenerativeModel(self.model, system_instruction=system or None)
        config = legacy.GenerationConfig(
            temperature=temperature,
            max_output_tokens=max_output_tokens,
            response_mime_type="application/json" if json_output else None,
        )
        options = {"timeout": self.timeout, "retry": None}  # no SDK retries
        try:  # the REST transport is synchronous: run it in a worker thread
            response = await asyncio.to_thread(
                model.generate_content, prompt, generation_config=config, request_options=options
            )
        except Exception as err:
            status = getattr(err, "code", None)
            if isinstance(status, int):
                raise self._failure(status, str(err)) from None
            if isinstance(err, (TimeoutError, *_transport_errors())):
                raise self._failure(None, type(err).__name__) from None
            raise
        try:
            text = response.text
        except ValueError:  # no text part: blocked or empty
            text = ""
        usage = response.usage_metadata
        return Completion(
            text=text or "",
            input_tokens=int(getattr(usage, "prompt_token_count", 0) or 0),
            output_tokens=int(getattr(usage, "candidates_token_count", 0) or 0),
        )


# -- local transformers model --------------------------------------------------------------------


def _load_causal_lm(name_or_path: str) -> tuple[Any, Any]:
    from regen_models.base import load_causal_lm

    return load_causal_lm(name_or_path)


class LocalBackend(Backend):
    """A local `transformers` causal LM, loaded on the first call; one generation at a time."""

    name = "local"
    supports_batch = False

    def __init__(
        self,
        model: str | None = None,
        *,
        device: str | None = None,
        loader: Callable[[str], tuple[Any, Any]] | None = None,
        constrained_decoding: bool = True,
    ):
        self.model = model or DEFAULT_MODELS["local"]
        self.device = device
        # JSON requests: decode within the task's JSON Schema (regen_dataset.inpaint.constrained)
        self.constrained_decoding = constrained_decoding
        self._loader = loader or _load_causal_lm
        self._lm: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()  # one model, one generation at a time

    async def complete(
        self,
        prompt: str,
        *,
        system: str | None = None,
        temperature: float = 1.0,
        max_output_tokens: int = 1024,
        json_output: bool = False,
    ) -> Completion:
        schema = None
        if self.constrained_decoding:
            from regen_dataset.inpaint.constrained import request_schema

            schema = request_schema(prompt, json_output)
        return await asyncio.to_thread(
            self._generate, prompt, system, temperature, max_output_tokens, schema
        )

    def _load(self) -> tuple[Any, Any]:
        if self._lm is None:
            started = time.perf_counter()
            model, tokenizer = self._loader(self.model)
            device = self.device
            if device is None:
                import torch

                device = "cuda" if torch.cuda.is_available() else None
            if device is not None:
                model = model.to(device)
            model.eval()
            self._lm, self._tokenizer = model, tokenizer
            log.info("loaded %s in %.1f s", self.describe(), time.perf_counter() - started)
        return self._lm, self._tokenizer

    def _generate(
        self,
        prompt: str,
        system: str | None,
        temperature: float,
        max_output_tokens: int,
        schema: dict | None = None,
    ) -> Completion:
        import torch

        with self._lock:
            model, tokenizer = self._load()
            text, templated = _chat_text(tokenizer, prompt, system)
            inputs = tokenizer(text, return_tensors="pt", add_special_tokens=not templated)
            inputs = {name: tensor.to(model.device) for name, tensor in inputs.items()}
            eos = tokenizer.eos_token_id
            pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
            sampling: dict[str, Any] = {"do_sample": temperature > 0}
            if temperature > 0:
                sampling["temperature"] = temperature
            if schema is not None:
                from regen_dataset.inpaint.constrained import json_schema_processors

                sampling["logits_processor"] = json_schema_processors(model, tokenizer, [schema])
            with torch.no_grad():
                output = model.generate(
                    **inputs,
                    max_new_tokens=max_output_tokens,
                    pad_token_id=pad,
                    **sampling,
                )
            prompt_length = inputs["input_ids"].shape[1]
            new_tokens = output[0, prompt_length:].tolist()
            if eos is not None and eos in new_tokens:  # keep the eos token, drop padding after it
                new_tokens = new_tokens[: new_tokens.index(eos) + 1]
            answer = tokenizer.decode(new_tokens, skip_special_tokens=True)
        return Completion(text=answer, input_tokens=prompt_length, output_tokens=len(new_tokens))


def _chat_text(tokenizer: Any, prompt: str, system: str | None) -> tuple[str, bool]:
    """The model's input text, and whether it came from the tokenizer's chat template."""
    if not getattr(tokenizer, "chat_template", None):
        return (f"{system}\n\n{prompt}" if system else prompt), False
    messages = [{"role": "user", "content": prompt}]
    if system:
        messages.insert(0, {"role": "system", "content": system})
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception:  # templates without a system role (Gemma 2) raise: fold it into the prompt
        if not system:
            raise
        messages = [{"role": "user", "content": f"{system}\n\n{prompt}"}]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return text, True


# -- shared helpers ------------------------------------------------------------------------------


def _retry_after(headers: Any) -> float | None:
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


def _retry_delay(details: Any) -> float | None:
    """Seconds from a google.rpc.RetryInfo in a Google error body (`"retryDelay": "37s"`)."""
    if isinstance(details, list) and len(details) == 1:
        details = details[0]
    if not isinstance(details, dict):
        return None
    error = details.get("error", details)
    entries = error.get("details") if isinstance(error, dict) else None
    for detail in entries if isinstance(entries, list) else []:
        delay = detail.get("retryDelay") if isinstance(detail, dict) else None
        if isinstance(delay, str) and delay.endswith("s"):
            try:
                return max(0.0, float(delay[:-1]))
            except ValueError:
                return None
    return None


def make_backend(
    name: str,
    model: str | None = None,
    *,
    base_url: str | None = None,
    timeout: float = 120.0,
    constrained_decoding: bool = True,
) -> Backend:
    """The backend called `name` ("openai", "gemini" or "local") for `model` (its default if
    None). `base_url` points OpenAI at a compatible server, or Gemini at another endpoint;
    `constrained_decoding=False` lets the local model write JSON answers unconstrained."""
    name = name.lower()
    if name == "openai":
        return OpenAIBackend(model, base_url=base_url, timeout=timeout)
    if name == "gemini":
        try:
            return GeminiBackend(model, base_url=base_url, timeout=timeout)
        except ImportError:
            try:
                return LegacyGeminiBackend(model, base_url=base_url, timeout=timeout)
            except ImportError:
                raise ImportError("the gemini backend needs `pip install google-genai`") from None
    if name == "local":
        if base_url:
            raise ValueError("the local backend takes no base_url (it runs in this process)")
        return LocalBackend(model, constrained_decoding=constrained_decoding)
    raise ValueError(f"unknown backend {name!r}: choose openai, gemini or local")
