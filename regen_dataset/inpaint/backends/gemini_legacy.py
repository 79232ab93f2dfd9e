"""Gemini through the deprecated `google-generativeai` package, for machines that only have that
one: direct calls over its REST transport (`base_url` becomes its `api_endpoint`), several
candidates per request, no batch mode and no seed (that SDK has neither). Its usage metadata
has no count of thinking tokens, so a thinking model's output tokens are under-counted.

The SDK keeps its configuration (key, endpoint) for the whole process (`genai.configure`), so
one process uses one legacy endpoint at a time: each backend configures it when it is made.
"""

from __future__ import annotations

import asyncio
from typing import Any

from regen_dataset.inpaint.backends._common import (
    AnswerCutOff,
    Completion,
    LLMError,
    split_candidates,
    transport_errors,
    without_credentials,
)
from regen_dataset.inpaint.backends.gemini import (
    GeminiSettings,
    _cut_off,
    retry_delay_from_details,
)


class LegacyGeminiBackend(GeminiSettings):
    """Gemini through the deprecated `google-generativeai` package, for machines without
    `google-genai`. Direct calls only: no batch mode."""

    supports_batch = False
    max_candidates = 8
    candidates_parameter = "candidate_count"

    def __init__(
        self, model: str | None = None, *, base_url: str | None = None, timeout: float = 120.0
    ):
        import google.generativeai as legacy

        super().__init__(model, base_url=base_url, timeout=timeout)
        endpoint = {"api_endpoint": base_url} if base_url else None
        legacy.configure(api_key=self._api_key(), transport="rest", client_options=endpoint)
        self._legacy = legacy

    def __repr__(self) -> str:
        shown = without_credentials(self.base_url)
        return f"LegacyGeminiBackend(model={self.model!r}, base_url={shown!r})"

    async def complete(
        self,
        prompt: str,
        *,
        system: str | None = None,
        temperature: float = 1.0,
        max_output_tokens: int = 1024,
        json_output: bool = False,
    ) -> Completion:
        response = await self._generate(
            prompt, system, temperature, max_output_tokens, json_output, count=1
        )
        try:
            text = response.text
        except ValueError:  # no text part
            text = ""
        completion = Completion(text or "", *_token_counts(response))
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
        response = await self._generate(
            prompt, system, temperature, max_output_tokens, json_output, count=count
        )
        texts = [
            text
            for candidate in response.candidates
            if (text := "".join(part.text for part in candidate.content.parts if part.text))
            or not _cut_off(candidate)
        ]  # a candidate cut off before any text is no answer: the Runner asks again alone
        if not texts:
            raise self._cut_off_error(Completion("", *_token_counts(response)), max_output_tokens)
        return split_candidates(texts, *_token_counts(response))

    def _cut_off_error(self, completion: Completion, max_output_tokens: int) -> AnswerCutOff:
        return AnswerCutOff(
            f"{self.describe()}: the answer reached its {max_output_tokens} output tokens "
            "(MAX_TOKENS) before any text",
            completion,
        )

    async def _generate(
        self,
        prompt: str,
        system: str | None,
        temperature: float,
        max_output_tokens: int,
        json_output: bool,
        *,
        count: int,
    ) -> Any:
        legacy = self._legacy
        model = legacy.GenerativeModel(self.model, system_instruction=system or None)
        config = legacy.GenerationConfig(
            temperature=temperature,
            max_output_tokens=max_output_tokens,
            response_mime_type="application/json" if json_output else None,
            candidate_count=count if count > 1 else None,
        )
        options = {"timeout": self.timeout, "retry": None}  # no SDK retries
        try:  # the REST transport is synchronous: run it in a worker thread
            response = await asyncio.to_thread(
                model.generate_content, prompt, generation_config=config, request_options=options
            )
        except Exception as err:
            failure = self._error(err)
            if failure is None:
                raise
            raise failure from None
        if not response.candidates:
            feedback = getattr(response, "prompt_feedback", None)
            reason = getattr(feedback, "block_reason", None)
            if reason:  # 0 is BLOCK_REASON_UNSPECIFIED: no block
                raise self._prompt_refused(str(getattr(reason, "name", reason)))
            problem = "an answer without candidates (an error object or an empty body)"
            raise self._unusable_answer(200, problem)
        return response

    def _error(self, err: Exception) -> LLMError | None:
        """Our error for an SDK or transport error `err`; None for anything else (a bug)."""
        status = getattr(err, "code", None)  # google.api_core errors carry the HTTP status
        if isinstance(status, int):
            message = getattr(err, "message", None) or str(err)
            retry_after = retry_delay_from_details({"details": getattr(err, "details", None)})
            return self._failure(status, message, retry_after=retry_after)
        if isinstance(err, TimeoutError):
            return self._failure(None, f"timed out after {self.timeout:g} s")
        if isinstance(err, transport_errors()):
            if _timed_out(err):
                return self._failure(None, f"timed out after {self.timeout:g} s")
            return self._connection_failure(err)
        return None


def _token_counts(response: Any) -> tuple[int, int]:
    usage = response.usage_metadata
    return (
        int(getattr(usage, "prompt_token_count", 0) or 0),
        int(getattr(usage, "candidates_token_count", 0) or 0),
    )


def _timed_out(err: BaseException) -> bool:
    try:
        import requests
    except ImportError:
        return False
    return isinstance(err, requests.Timeout)
