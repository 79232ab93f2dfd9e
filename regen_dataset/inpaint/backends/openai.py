"""OpenAI: chat completions through the official `openai` client, and the Batch API. `base_url`
points it at any OpenAI-compatible server (vLLM, Ollama, ...)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from regen_dataset.inpaint.backends._common import (
    DEFAULT_MODELS,
    AnswerCutOff,
    Backend,
    BackendError,
    Completion,
    LLMError,
    check_scheme,
    retry_after_from_headers,
    split_candidates,
    without_credentials,
)

if TYPE_CHECKING:
    from regen_dataset.inpaint.runner import LLMRequest

log = logging.getLogger(__name__)

OPENAI_KEY_ENV = ("OPENAI_API_KEY",)
# Sent to an OpenAI-compatible server that wants no key (the SDK insists on one).
NO_KEY_PLACEHOLDER = "no-key-needed"


class OpenAIBackend(Backend):
    """Chat completions through the official `openai` client; the Batch API for large runs."""

    name = "openai"
    supports_batch = True
    # The API takes up to 50,000 requests and 200 MB per file; REGEN prompts are about 10 KB.
    batch_limit = 10_000
    batch_bytes = 160_000_000  # the file must stay under 200 MB, the JSON around prompts too
    key_env = OPENAI_KEY_ENV
    max_candidates = 128  # the API's limit on `n`
    candidates_parameter = "n"
    supports_seed = True

    def __init__(
        self, model: str | None = None, *, base_url: str | None = None, timeout: float = 120.0
    ):
        self.model = model or DEFAULT_MODELS["openai"]
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.timeout = timeout
        check_scheme(self.base_url, "--base-url or OPENAI_BASE_URL")
        official = self.base_url is None or "api.openai.com" in self.base_url
        if official and not self._api_key():
            raise BackendError("the OpenAI API needs a key: set OPENAI_API_KEY in the environment")
        # OpenAI's own API wants max_completion_tokens (its reasoning models refuse max_tokens);
        # compatible servers (vLLM, Ollama...) have long understood max_tokens.
        self._max_tokens_field = "max_completion_tokens" if official else "max_tokens"

    def describe(self) -> str:
        where = f" at {without_credentials(self.base_url)}" if self.base_url else ""
        return f"openai model {self.model!r}{where}"

    def __repr__(self) -> str:
        shown = without_credentials(self.base_url)
        return f"OpenAIBackend(model={self.model!r}, base_url={shown!r})"

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
        *,
        count: int = 1,
        seed: int | None = None,
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
        if count > 1:
            body["n"] = count
        if seed is not None:
            body["seed"] = seed
        return body

    async def complete(
        self,
        prompt: str,
        *,
        system: str | None = None,
        temperature: float = 1.0,
        max_output_tokens: int = 1024,
        json_output: bool = False,
        seed: int | None = None,
    ) -> Completion:
        body = self._body(prompt, system, temperature, max_output_tokens, json_output, seed=seed)
        response = await self._create(body)
        completion = _chat_completion(response)
        if not completion.text and _cut_off(_choices(response)[0]):
            raise self._cut_off_error(completion, max_output_tokens)
        return completion

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
        body = self._body(prompt, system, temperature, max_output_tokens, json_output, count=count)
        response = await self._create(body)
        usage = response.get("usage") or {}
        tokens = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        texts = [
            text
            for choice in _choices(response)
            if (text := (choice.get("message") or {}).get("content") or "") or not _cut_off(choice)
        ]  # a choice cut off before any text is no answer: the Runner asks again alone
        if not texts:
            raise self._cut_off_error(Completion("", *tokens), max_output_tokens)
        return split_candidates(texts, *tokens)

    def _cut_off_error(self, completion: Completion, max_output_tokens: int) -> AnswerCutOff:
        return AnswerCutOff(
            f"{self.describe()}: the answer reached its {max_output_tokens} output tokens "
            "(finish_reason length) before any text (a reasoning model spends them on reasoning)",
            completion,
        )

    async def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        """The chat.completion object answering `body`, checked to hold choices: a gateway's HTML
        page, a body cut off or an error object sent with 200 is a failed call, never an answer
        (the Runner would cache it as an empty one)."""
        import openai

        try:
            raw = await self._client().chat.completions.with_raw_response.create(**body)
        except openai.APIError as err:
            raise self._error(err) from None
        response = raw.http_response
        try:
            answer = json.loads(response.content)
        except ValueError:
            problem = f"the body is not JSON: {response.text[:100]!r}"
            raise self._unusable_answer(response.status_code, problem) from None
        try:
            _choices(answer)
        except ValueError as err:
            raise self._unusable_answer(response.status_code, str(err)) from None
        return answer

    def _error(self, err: Exception) -> LLMError:
        import openai

        if isinstance(err, openai.APITimeoutError):
            return self._failure(None, f"timed out after {self.timeout:g} s")
        if isinstance(err, openai.APIConnectionError):
            return self._connection_failure(err.__cause__ or err)
        if isinstance(err, openai.APIStatusError):
            body = err.body if isinstance(err.body, dict) else {}
            message = str(body.get("message") or err.message or err)
            if err.status_code == 429 and err.code == "insufficient_quota":
                text = self._redact(f"{self.describe()}: HTTP 429: {message}")
                hint = self._hint(429, message)
                return BackendError(f"{text} (not retried); {hint}", status=429)
            retry_after = retry_after_from_headers(err.response.headers)
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
                        seed=request.sample or None,  # repeated samples: distinct requests
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
        except openai.NotFoundError as err:
            raise self._no_batch_api(err) from None
        except openai.APIError as err:
            raise self._error(err) from None
        return batch.id

    def _no_batch_api(self, err: Any) -> BackendError:
        where = f"{err.request.method} {err.request.url.path}"
        text = self._redact(f"{self.describe()}: HTTP 404 on {where}: {err.message}")
        return BackendError(
            f"{text} (not retried); the server has no batch API: run without --batch", status=404
        )

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
            completion = _batch_answer(row)
            if completion is None:
                failed += 1
            else:
                results[row["custom_id"]] = completion
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


def _choices(body: Any) -> list[Mapping[str, Any]]:
    """The choices of a chat.completion object; ValueError with the server's own words where it
    has none (vLLM answers e.g. an overloaded model with 200 and {"object": "error", ...})."""
    choices = body.get("choices") if isinstance(body, Mapping) else None
    if choices and isinstance(choices, list) and all(isinstance(c, Mapping) for c in choices):
        return choices
    raise ValueError(f"an answer without choices: {_server_message(body)}")


def _cut_off(choice: Mapping[str, Any]) -> bool:
    """Whether a choice ended at the output-token limit."""
    return choice.get("finish_reason") == "length"


def _server_message(body: Any) -> str:
    """What a body that is no chat.completion says: its error message, else its beginning."""
    error = body.get("error") if isinstance(body, Mapping) else None
    message = error.get("message") if isinstance(error, Mapping) else error
    if not message and isinstance(body, Mapping):
        message = body.get("message")
    return str(message) if message else json.dumps(body, ensure_ascii=False)[:100]


def _batch_answer(row: Mapping[str, Any]) -> Completion | None:
    """The answer on one line of a batch job's output; None for a request that failed (also
    one answered 200 without choices: it is then called directly)."""
    response = row.get("response") or {}
    if response.get("status_code") != 200 or row.get("error"):
        return None
    try:
        return _chat_completion(response["body"])
    except ValueError:
        return None


def _chat_completion(body: Mapping[str, Any]) -> Completion:
    """A Completion from a chat.completion object (as the API returns it); ValueError where it
    holds no choices."""
    message = _choices(body)[0].get("message") or {}
    usage = body.get("usage") or {}
    return Completion(
        text=message.get("content") or "",
        input_tokens=int(usage.get("prompt_tokens") or 0),
        output_tokens=int(usage.get("completion_tokens") or 0),
    )
