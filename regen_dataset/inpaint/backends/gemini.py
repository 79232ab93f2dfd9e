"""Gemini through the `google-genai` client: generate_content, and batch mode with inline
requests. `GeminiSettings` is what it shares with the legacy SDK's backend (`gemini_legacy.py`).

Gemini 2.5 models think before they answer, and their thinking tokens count against
`maxOutputTokens`: a rating asked with 256 output tokens may end MAX_TOKENS before any text.
`thinking_budget` sets `thinkingConfig.thinkingBudget`, and the output limit sent grows by it so
that the answer keeps its own budget. By default ("auto", `default_thinking_budget`) thinking is off
(0) on 2.5 Flash and Flash-Lite, and at its minimum (128) on 2.5 Pro, which cannot turn it off;
None sends no thinking config (the model's own default). The budget is part of the cache key.
An answer that still ends MAX_TOKENS without text is an `AnswerCutOff`: counted, never cached.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any, NoReturn

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
    transport_errors,
    without_credentials,
)

if TYPE_CHECKING:
    from regen_dataset.inpaint.runner import LLMRequest

log = logging.getLogger(__name__)

GEMINI_KEY_ENV = ("GEMINI_API_KEY", "GOOGLE_API_KEY")


def default_thinking_budget(model: str) -> int | None:
    """The thinking budget "auto" picks for `model`: 0 (off) for Gemini 2.5 Flash and Flash-Lite,
    128 (the least it takes) for 2.5 Pro, None (send none) for other models."""
    name = model.rpartition("/")[2].lower()
    if name.startswith("gemini-2.5-flash"):
        return 0
    if name.startswith("gemini-2.5-pro"):
        return 128
    return None


class GeminiSettings(Backend):
    """What both Gemini SDKs share: the model, endpoint, timeout and key."""

    name = "gemini"
    key_env = GEMINI_KEY_ENV

    def __init__(
        self, model: str | None = None, *, base_url: str | None = None, timeout: float = 120.0
    ):
        self.model = model or DEFAULT_MODELS["gemini"]
        check_scheme(base_url, "--base-url")
        self.base_url = base_url
        self.timeout = timeout
        if not self._api_key():
            raise BackendError("the Gemini API needs a key: set GEMINI_API_KEY (or GOOGLE_API_KEY)")

    def describe(self) -> str:
        where = f" at {without_credentials(self.base_url)}" if self.base_url else ""
        return f"gemini model {self.model!r}{where}"


class GeminiBackend(GeminiSettings):
    """`google-genai` generate_content; Gemini batch mode with inline requests for large runs."""

    supports_batch = True
    batch_limit = 1_000
    batch_bytes = 16_000_000  # inline requests must stay under 20 MB, the JSON around them too
    api_version = "v1beta"  # batch mode lives there
    max_candidates = 8  # the API's limit on `candidate_count`
    candidates_parameter = "candidate_count"
    supports_seed = True

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        timeout: float = 120.0,
        thinking_budget: int | str | None = "auto",
    ):
        from google import genai  # noqa: F401  (ImportError: make_backend tries the legacy SDK)

        super().__init__(model, base_url=base_url, timeout=timeout)
        if thinking_budget == "auto":
            thinking_budget = default_thinking_budget(self.model)
        if thinking_budget is not None and (
            isinstance(thinking_budget, bool)
            or not isinstance(thinking_budget, int)
            or thinking_budget < -1
        ):
            raise ValueError(
                f"thinking_budget must be 'auto', None, -1 (dynamic) or a number of tokens >= 0, "
                f"not {thinking_budget!r}"
            )
        self.thinking_budget = thinking_budget
        if thinking_budget is not None:  # it changes the answers: part of the cache key
            self.decoding = f"thinking_budget={thinking_budget}"

    def __repr__(self) -> str:
        return (
            f"GeminiBackend(model={self.model!r}, base_url={without_credentials(self.base_url)!r}, "
            f"thinking_budget={self.thinking_budget!r})"
        )

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
        self,
        system: str | None,
        temperature: float,
        max_output_tokens: int,
        json_output: bool,
        *,
        count: int = 1,
        seed: int | None = None,
    ) -> Any:
        from google.genai import types

        budget = self.thinking_budget
        return types.GenerateContentConfig(
            system_instruction=system or None,
            temperature=temperature,
            # thinking tokens count against the limit: the answer keeps its own budget
            max_output_tokens=max_output_tokens + (budget if budget and budget > 0 else 0),
            response_mime_type="application/json" if json_output else None,
            candidate_count=count if count > 1 else None,
            seed=seed,
            thinking_config=None
            if budget is None
            else types.ThinkingConfig(thinking_budget=budget),
        )

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
        config = self._config(system, temperature, max_output_tokens, json_output, seed=seed)
        response = await self._generate(prompt, config)
        completion = _gemini_completion(response)
        if not completion.text and _cut_off(response.candidates[0]):
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
        config = self._config(system, temperature, max_output_tokens, json_output, count=count)
        response = await self._generate(prompt, config)
        total = _gemini_completion(response)  # the token counts of the whole request
        texts = [
            text
            for candidate in response.candidates
            if (text := _candidate_text(candidate)) or not _cut_off(candidate)
        ]  # a candidate cut off before any text is no answer: the Runner asks again alone
        if not texts:
            raise self._cut_off_error(total, max_output_tokens)
        return split_candidates(texts, total.input_tokens, total.output_tokens)

    def _cut_off_error(self, completion: Completion, max_output_tokens: int) -> AnswerCutOff:
        budget = self.thinking_budget
        thinking = (
            "thinking is off"
            if budget == 0
            else f"thinking budget {budget}"
            if budget is not None
            else "thinking tokens count against it; set a thinking budget"
        )
        return AnswerCutOff(
            f"{self.describe()}: the answer reached its {max_output_tokens} output tokens "
            f"(MAX_TOKENS) before any text ({thinking})",
            completion,
        )

    async def _generate(self, prompt: str, config: Any) -> Any:
        """The response to `prompt`, checked to hold candidates: a 200 whose body is no JSON (a
        gateway's HTML page, a body cut off), an error object or no candidates is a failed call
        that is retried, never an answer (the Runner would cache it as an empty one)."""
        try:
            response = await self._client().aio.models.generate_content(
                model=self.model, contents=prompt, config=config
            )
        except json.JSONDecodeError as err:  # the SDK raises errors for statuses other than 2xx
            raise self._unusable_answer(200, f"the body is not JSON: {err.doc[:100]!r}") from None
        except Exception as err:
            self._raise_failure(err)
        if not response.candidates:
            blocked = _block_reason(response)
            if blocked is not None:
                raise self._prompt_refused(blocked)
            problem = "an answer without candidates (an error object or an empty body)"
            raise self._unusable_answer(200, problem)
        return response

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
            retry_after = retry_after_from_headers(headers) or retry_delay_from_details(err.details)
            message = f"{err.status or ''} {err.message or ''}".strip() or str(err)
            return self._failure(err.code, message, retry_after=retry_after)
        if isinstance(err, TimeoutError):
            return self._failure(None, f"timed out after {self.timeout:g} s")
        if isinstance(err, transport_errors()):
            return self._connection_failure(err)
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
                    seed=request.sample or None,  # repeated samples: distinct requests
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
            response = item.response
            # A request answered without candidates, or cut off before any text, is called
            # directly afterwards (where it is retried, or counted as cut off).
            if key and response is not None and not item.error and response.candidates:
                completion = _gemini_completion(response)
                if completion.text or not _cut_off(response.candidates[0]):
                    results[key] = completion
                    continue
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


def _candidate_text(candidate: Any) -> str:
    parts = (candidate.content.parts if candidate.content else None) or []
    return "".join(part.text for part in parts if part.text and not part.thought)


def _cut_off(candidate: Any) -> bool:
    """Whether `candidate` ended at the output-token limit."""
    reason = candidate.finish_reason
    return reason is not None and getattr(reason, "name", str(reason)) == "MAX_TOKENS"


def _block_reason(response: Any) -> str | None:
    """Why the service blocked the prompt of a response without candidates (SAFETY, ...), or
    None where it says nothing (an error object, an empty body)."""
    feedback = response.prompt_feedback
    reason = feedback.block_reason if feedback is not None else None
    name = None if reason is None else str(getattr(reason, "name", reason))
    return None if name in (None, "BLOCKED_REASON_UNSPECIFIED") else name


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


def retry_delay_from_details(details: Any) -> float | None:
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
