"""Gemini through the deprecated `google-generativeai` package, for machines that only have that
one: direct calls over its REST transport, no batch mode."""

from __future__ import annotations

import asyncio

from regen_dataset.inpaint.backends._common import Completion, transport_errors
from regen_dataset.inpaint.backends.gemini import GeminiSettings


class LegacyGeminiBackend(GeminiSettings):
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
            if isinstance(err, TimeoutError):
                raise self._failure(None, f"timed out after {self.timeout:g} s") from None
            if isinstance(err, transport_errors()):
                raise self._connection_failure(err) from None
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
