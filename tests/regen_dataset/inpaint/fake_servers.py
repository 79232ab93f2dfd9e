"""Loopback HTTP servers that speak the parts of the OpenAI and Gemini REST APIs the inpainting
backends use, so that tests drive the real `openai` and `google-genai` clients fully offline.

Each server is a ThreadingHTTPServer on 127.0.0.1 (a free port) in a daemon thread:
- the answer text comes from a function of the prompt that the test supplies;
- faults are scripted: `push_faults("429:0.2", "500", "slow", "drop", "malformed")` makes the next
  completion requests fail in that order; `fail_all = "401"` fails every request until reset;
  `push_poll_faults(...)` does the same for batch-status requests;
- a request for several answers (OpenAI `n`, Gemini `candidateCount`) gets that many, each from
  its own call of the answer function, unless the server is made with `candidates=False` (then it
  answers one, like servers that ignore the parameter) or with `refuse_candidates=True` (then it
  answers 400, as llama.cpp's server does);
- token counts are whitespace-separated words of the prompt (system included) and the answers;
- every request is recorded (method, path, lower-cased headers, body), and the most completion
  requests in flight at once is tracked (`max_in_flight`).

OpenAI: POST /v1/chat/completions, POST /v1/files (multipart), POST /v1/batches,
GET /v1/batches/{id}, GET /v1/files/{id}/content.
Gemini: POST /{version}/models/{model}:generateContent and :batchGenerateContent,
GET /{version}/batches/{id}, with inline batch answers in the job's metadata.output.

Fault names: "429[:seconds]" (rate limit; OpenAI sends Retry-After, Gemini a RetryInfo detail),
"quota" (OpenAI's 429 insufficient_quota), "400", "401", "500", "503", "slow" (answers after
`slow_seconds`, longer than the client's timeout), "drop" (closes the connection without an answer)
and "malformed" (a 200 answer whose text lost its last character). 200 answers that hold no
answer: "html" (a gateway's page) and "cut" (a JSON body cut off); OpenAI only: "no-choices"
(vLLM's `{"object": "error", ...}`); Gemini only: "error-object" (`{"error": ...}`) and
"no-candidates" (a blocked prompt). An OpenAI server made with `batch_api=False` answers 404 to
the Batch API; a Gemini server with `think_past_the_limit` ends every request that sends no
thinkingConfig with MAX_TOKENS and no text.
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from email.parser import BytesParser
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = Callable[[str], str]
Reply = tuple[int, dict[str, str], bytes]
DROP = None  # a reply of None closes the connection without an answer


def echo_answer(prompt: str) -> str:
    """The default answer: a JSON object that depends on the prompt."""
    return json.dumps({"echo": prompt[-60:], "length": len(prompt)})


def words(text: str | None) -> int:
    return len(text.split()) if text else 0


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class FakeServer:
    """What both fake APIs share: the HTTP server, the fault script and the records."""

    def __init__(
        self,
        answer: Answer = echo_answer,
        *,
        api_key: str | None = None,
        delay: float = 0.0,
        slow_seconds: float = 2.0,
        polls_until_done: int = 1,
        candidates: bool = True,
        refuse_candidates: bool = False,
    ):
        self.answer = answer
        # Whether several candidates per request (`n`, `candidateCount`) are returned, or only
        # one, as servers that ignore the parameter do.
        self.candidates = candidates
        self.refuse_candidates = refuse_candidates  # answer 400 to them, as llama.cpp does
        self.api_key = api_key  # when set, other keys get an auth error that echoes them
        self.delay = delay  # seconds each completion takes
        self.slow_seconds = slow_seconds
        self.polls_until_done = polls_until_done  # status requests before a batch job is done
        self.fail_all: str | None = None
        self.requests: list[Recorded] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.completed = 0  # completion answers sent
        self._faults: deque[str] = deque()
        self._poll_faults: deque[str] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,), daemon=True)

    # -- life cycle and script --

    def start(self) -> FakeServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def push_faults(self, *faults: str) -> None:
        self._faults.extend(faults)

    def push_poll_faults(self, *faults: str) -> None:
        self._poll_faults.extend(faults)

    def calls(self) -> list[Recorded]:
        """The completion requests received so far."""
        return [r for r in list(self.requests) if self.is_completion(r.path)]

    def called(self, method: str, pattern: str) -> list[Recorded]:
        return [r for r in list(self.requests) if r.method == method and re.search(pattern, r.path)]

    def next_id(self, prefix: str) -> str:
        return f"{prefix}{next(self._ids)}"

    # -- per provider --

    def is_completion(self, path: str) -> bool:
        raise NotImplementedError

    def key_of(self, headers: dict[str, str]) -> str | None:
        raise NotImplementedError

    def route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        raise NotImplementedError

    def error(self, status: int, message: str, retry_after: float | None = None) -> Reply:
        raise NotImplementedError

    def complete(self, body: dict[str, Any], texts: list[str]) -> Reply:
        """The provider's answer to a completion request `body` whose answers are `texts`."""
        raise NotImplementedError

    def candidates_asked(self, body: dict[str, Any]) -> int:
        """How many answers the completion request `body` asks for."""
        raise NotImplementedError

    # -- shared handling --

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply | None:
        self.requests.append(Recorded(method, path, headers, body))
        given = self.key_of(headers)
        if self.api_key is not None and given != self.api_key:
            return self.error(401, f"Incorrect API key provided: {given}")
        if self.fail_all:
            return self.fault(self.fail_all)
        if not self.is_completion(path):
            return self.route(method, path, headers, body)
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            fault = self._faults.popleft() if self._faults else None
        try:
            if self.delay:
                time.sleep(self.delay)
            if fault not in (None, "slow", "malformed"):
                return self.fault(fault)
            if fault == "slow":
                time.sleep(self.slow_seconds)
            request = json.loads(body)
            if self.refuse_candidates and self.candidates_asked(request) > 1:
                return self.error(400, "Only one completion choice is allowed")
            count = self.candidates_asked(request) if self.candidates else 1
            texts = [self.answer(self.prompt_of(request)) for _ in range(count)]
            if fault == "malformed":
                texts = [text[:-1] for text in texts]
            reply = self.complete(request, texts)
            with self._lock:
                self.completed += 1
            return reply
        finally:
            with self._lock:
                self.in_flight -= 1

    def poll_fault(self) -> Reply | None | bool:
        """A scripted fault for a batch-status request, or False for none."""
        with self._lock:
            fault = self._poll_faults.popleft() if self._poll_faults else None
        return self.fault(fault) if fault else False

    def fault(self, fault: str) -> Reply | None:
        name, _, seconds = fault.partition(":")
        if name == "drop":
            return DROP
        if name == "429":
            return self.error(429, "Rate limit reached", float(seconds) if seconds else None)
        messages = {
            "400": "Invalid request",
            "401": "Unauthorized",
            "500": "Internal error",
            "503": "Service unavailable",
        }
        return self.error(int(name), messages.get(name, "Error"))

    @staticmethod
    def prompt_of(request: dict[str, Any]) -> str:
        raise NotImplementedError

    @staticmethod
    def json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
        return status, {"Content-Type": "application/json", **(headers or {})}, _dumps(payload)


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload).encode("utf-8")


def _handler_for(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name.lower(): value for name, value in self.headers.items()}
            path = self.path.partition("?")[0]  # the legacy Gemini SDK adds `?$alt=json...`
            reply = fake.handle(method, path, headers, body)
            try:
                if reply is DROP:
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                status, reply_headers, payload = reply
                self.send_response(status)
                for name, value in reply_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except OSError:  # the client gave up (timeout) and closed the connection
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


# -- OpenAI --------------------------------------------------------------------------------------


class FakeOpenAI(FakeServer):
    """Chat completions, files and the Batch API; `base_url` is `url + "/v1"`."""

    def __init__(self, answer: Answer = echo_answer, *, batch_api: bool = True, **kwargs: Any):
        super().__init__(answer, **kwargs)
        self.batch_api = batch_api  # False: no files or batches endpoints, as most servers
        self.files: dict[str, dict[str, Any]] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        # True: like a reasoning model, every choice spends the whole output budget reasoning and
        # ends "length" with empty content.
        self.reason_past_the_limit = False

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def is_completion(self, path: str) -> bool:
        return path == "/v1/chat/completions"

    def key_of(self, headers: dict[str, str]) -> str | None:
        auth = headers.get("authorization", "")
        return auth.removeprefix("Bearer ") if auth else None

    @staticmethod
    def prompt_of(request: dict[str, Any]) -> str:
        return next(m["content"] for m in reversed(request["messages"]) if m["role"] == "user")

    def error(self, status: int, message: str, retry_after: float | None = None) -> Reply:
        kinds = {400: "invalid_request_error", 401: "invalid_request_error", 429: "requests"}
        code = {401: "invalid_api_key", 429: "rate_limit_exceeded"}.get(status)
        payload = {
            "error": {
                "message": message,
                "type": kinds.get(status, "server_error"),
                "param": None,
                "code": code,
            }
        }
        headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else {}
        return self.json_reply(status, payload, headers)

    def fault(self, fault: str) -> Reply | None:
        if fault == "quota":
            payload = {
                "error": {
                    "message": "You exceeded your current quota.",
                    "type": "insufficient_quota",
                    "param": None,
                    "code": "insufficient_quota",
                }
            }
            return self.json_reply(429, payload)
        if fault == "no-choices":
            payload = {"object": "error", "message": "model is overloaded", "code": 503}
            return self.json_reply(200, payload)
        if fault == "html":
            return 200, {"Content-Type": "text/html"}, b"<html><body>Bad gateway</body></html>"
        if fault == "cut":
            return 200, {"Content-Type": "application/json"}, b'{"id": "chatcmpl-1", "choi'
        return super().fault(fault)

    def completion_body(self, request: dict[str, Any], texts: list[str]) -> dict[str, Any]:
        prompt_tokens = sum(words(m["content"]) for m in request["messages"])
        output_tokens = sum(words(text) for text in texts)  # one total for every choice
        finish = "stop"
        if self.reason_past_the_limit:
            texts = [""] * len(texts)
            limit = request.get("max_completion_tokens") or request.get("max_tokens") or 0
            output_tokens = len(texts) * limit
            finish = "length"
        return {
            "id": self.next_id("chatcmpl-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": request["model"],
            "choices": [
                {
                    "index": index,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": finish,
                }
                for index, text in enumerate(texts)
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": output_tokens,
                "total_tokens": prompt_tokens + output_tokens,
            },
        }

    def complete(self, body: dict[str, Any], texts: list[str]) -> Reply:
        return self.json_reply(200, self.completion_body(body, texts))

    def candidates_asked(self, body: dict[str, Any]) -> int:
        return int(body.get("n") or 1)

    def route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        if not self.batch_api:
            return self.error(404, f"no route for {method} {path}")
        if method == "POST" and path == "/v1/files":
            return self._upload(headers, body)
        if method == "POST" and path == "/v1/batches":
            return self._create_batch(json.loads(body))
        match = re.fullmatch(r"/v1/batches/([\w-]+)", path)
        if method == "GET" and match:
            fault = self.poll_fault()
            if fault is not False:
                return fault
            return self._retrieve_batch(match.group(1))
        match = re.fullmatch(r"/v1/files/([\w-]+)/content", path)
        if method == "GET" and match and match.group(1) in self.files:
            content = self.files[match.group(1)]["content"]
            return 200, {"Content-Type": "application/octet-stream"}, content
        return self.error(404, f"no route for {method} {path}")

    def _upload(self, headers: dict[str, str], body: bytes) -> Reply:
        message = BytesParser(policy=default_policy).parsebytes(
            f"Content-Type: {headers['content-type']}\r\n\r\n".encode() + body
        )
        fields: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            fields[name] = (part.get_filename(), part.get_payload(decode=True))
        filename, content = fields["file"]
        purpose = fields["purpose"][1].decode()
        file_id = self.next_id("file-")
        self.files[file_id] = {"content": content, "purpose": purpose, "filename": filename}
        return self.json_reply(200, self._file_object(file_id))

    def _file_object(self, file_id: str) -> dict[str, Any]:
        entry = self.files[file_id]
        return {
            "id": file_id,
            "object": "file",
            "bytes": len(entry["content"]),
            "created_at": int(time.time()),
            "filename": entry["filename"] or "upload",
            "purpose": entry["purpose"],
            "status": "processed",
        }

    def _create_batch(self, body: dict[str, Any]) -> Reply:
        if body.get("input_file_id") not in self.files:
            return self.error(400, "unknown input file")
        batch_id = self.next_id("batch_")
        self.batches[batch_id] = {
            "id": batch_id,
            "object": "batch",
            "endpoint": body["endpoint"],
            "input_file_id": body["input_file_id"],
            "completion_window": body["completion_window"],
            "created_at": int(time.time()),
            "status": "in_progress",
            "metadata": body.get("metadata"),
            "output_file_id": None,
            "error_file_id": None,
            "polls": 0,
        }
        return self.json_reply(200, self._public(batch_id))

    def _public(self, batch_id: str) -> dict[str, Any]:
        return {k: v for k, v in self.batches[batch_id].items() if k != "polls"}

    def _retrieve_batch(self, batch_id: str) -> Reply:
        if batch_id not in self.batches:
            return self.error(404, f"no batch {batch_id}")
        batch = self.batches[batch_id]
        batch["polls"] += 1
        if batch["status"] == "in_progress" and batch["polls"] >= self.polls_until_done:
            self._finish_batch(batch)
        return self.json_reply(200, self._public(batch_id))

    def _finish_batch(self, batch: dict[str, Any]) -> None:
        answers, failures = [], []
        lines = self.files[batch["input_file_id"]]["content"].decode().splitlines()
        for line in filter(None, lines):
            item = json.loads(line)
            request_id = self.next_id("req_")
            try:
                text = self.answer(self.prompt_of(item["body"]))
            except Exception as err:  # the answer function refuses: this request fails
                error = {"error": {"message": str(err), "type": "server_error"}}
                response = {"status_code": 500, "request_id": request_id, "body": error}
                failures.append(
                    {
                        "id": request_id,
                        "custom_id": item["custom_id"],
                        "response": response,
                        "error": None,
                    }
                )
                continue
            body = self.completion_body(item["body"], [text])
            response = {"status_code": 200, "request_id": request_id, "body": body}
            answers.append(
                {
                    "id": request_id,
                    "custom_id": item["custom_id"],
                    "response": response,
                    "error": None,
                }
            )
        for kind, rows in (("output_file_id", answers), ("error_file_id", failures)):
            if rows:
                file_id = self.next_id("file-")
                content = "".join(json.dumps(row) + "\n" for row in rows).encode()
                self.files[file_id] = {
                    "content": content,
                    "purpose": "batch_output",
                    "filename": f"{kind}.jsonl",
                }
                batch[kind] = file_id
        total = len(answers) + len(failures)
        batch["request_counts"] = {
            "total": total,
            "completed": len(answers),
            "failed": len(failures),
        }
        batch["status"] = "completed"
        batch["completed_at"] = int(time.time())


# -- Gemini --------------------------------------------------------------------------------------

_GOOGLE_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


class FakeGemini(FakeServer):
    """generateContent and batch mode with inline requests; `base_url` is `url`."""

    def __init__(self, answer: Answer = echo_answer, **kwargs: Any):
        super().__init__(answer, **kwargs)
        self.batches: dict[str, dict[str, Any]] = {}
        # True: like Gemini 2.5 Flash, a request without a thinkingConfig thinks until
        # maxOutputTokens and ends MAX_TOKENS without text.
        self.think_past_the_limit = False

    @property
    def base_url(self) -> str:
        return self.url

    def is_completion(self, path: str) -> bool:
        return bool(re.fullmatch(r"/v1(beta)?/models/[^/:]+:generateContent", path))

    def key_of(self, headers: dict[str, str]) -> str | None:
        return headers.get("x-goog-api-key")

    @staticmethod
    def prompt_of(request: dict[str, Any]) -> str:
        user = [c for c in request["contents"] if c.get("role", "user") == "user"]
        return "".join(part.get("text", "") for part in user[-1]["parts"])

    def error(self, status: int, message: str, retry_after: float | None = None) -> Reply:
        if status == 401:  # Google answers a bad API key with 400 API_KEY_INVALID
            status, message = 400, f"API key not valid. Please pass a valid API key. ({message})"
        error: dict[str, Any] = {
            "code": status,
            "message": message,
            "status": _GOOGLE_STATUS.get(status, "UNKNOWN"),
        }
        if retry_after is not None:
            error["details"] = [
                {
                    "@type": "type.googleapis.com/google.rpc.RetryInfo",
                    "retryDelay": f"{retry_after:g}s",
                }
            ]
        return self.json_reply(status, {"error": error})

    def fault(self, fault: str) -> Reply | None:
        if fault == "html":
            return 200, {"Content-Type": "text/html"}, b"<html><body>Bad gateway</body></html>"
        if fault == "cut":
            return 200, {"Content-Type": "application/json"}, b'{"candidates": [{"cont'
        if fault == "error-object":
            error = {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}
            return self.json_reply(200, {"error": error})
        if fault == "no-candidates":
            payload = {
                "promptFeedback": {"blockReason": "OTHER"},
                "usageMetadata": {"promptTokenCount": 3, "totalTokenCount": 3},
            }
            return self.json_reply(200, payload)
        return super().fault(fault)

    def response_body(self, request: dict[str, Any], texts: list[str]) -> dict[str, Any]:
        if self.think_past_the_limit and not (request.get("generationConfig") or {}).get(
            "thinkingConfig"
        ):  # a thinking model left to its default spends the whole output budget thinking
            limit = (request.get("generationConfig") or {}).get("maxOutputTokens") or 0
            return {
                "candidates": [
                    {"content": {"role": "model"}, "finishReason": "MAX_TOKENS", "index": index}
                    for index in range(len(texts))
                ],
                "usageMetadata": {
                    "promptTokenCount": 3,
                    "thoughtsTokenCount": limit,
                    "totalTokenCount": 3 + limit,
                },
            }
        system = request.get("systemInstruction") or {}
        prompt_tokens = words(self.prompt_of(request)) + sum(
            words(part.get("text")) for part in system.get("parts", [])
        )
        thoughts = 2  # like a thinking model: billed as output, not in the text
        output_tokens = sum(words(text) for text in texts)  # one total for every candidate
        return {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": text}]},
                    "finishReason": "STOP",
                    "index": index,
                }
                for index, text in enumerate(texts)
            ],
            "usageMetadata": {
                "promptTokenCount": prompt_tokens,
                "candidatesTokenCount": output_tokens,
                "thoughtsTokenCount": thoughts,
                "totalTokenCount": prompt_tokens + output_tokens + thoughts,
            },
            "modelVersion": "fake-gemini",
            "responseId": self.next_id("resp-"),
        }

    def complete(self, body: dict[str, Any], texts: list[str]) -> Reply:
        return self.json_reply(200, self.response_body(body, texts))

    def candidates_asked(self, body: dict[str, Any]) -> int:
        return int((body.get("generationConfig") or {}).get("candidateCount") or 1)

    def route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Reply:
        match = re.fullmatch(r"/v1(?:beta)?/models/([^/:]+):batchGenerateContent", path)
        if method == "POST" and match:
            return self._create_batch(match.group(1), json.loads(body))
        match = re.fullmatch(r"/v1(?:beta)?/batches/([\w-]+)", path)
        if method == "GET" and match:
            fault = self.poll_fault()
            if fault is not False:
                return fault
            return self._get_batch(match.group(1))
        return self.error(404, f"no route for {method} {path}")

    def _create_batch(self, model: str, body: dict[str, Any]) -> Reply:
        batch = body["batch"]
        batch_id = self.next_id("job")
        self.batches[batch_id] = {
            "model": f"models/{model}",
            "displayName": batch.get("displayName"),
            "requests": batch["inputConfig"]["requests"]["requests"],
            "state": "BATCH_STATE_PENDING",
            "output": None,
            "polls": 0,
        }
        return self.json_reply(200, self._operation(batch_id))

    def _operation(self, batch_id: str) -> dict[str, Any]:
        batch = self.batches[batch_id]
        name = f"batches/{batch_id}"
        metadata: dict[str, Any] = {
            "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatch",
            "model": batch["model"],
            "displayName": batch["displayName"],
            "name": name,
            "state": batch["state"],
            "createTime": "2025-01-01T00:00:00Z",
        }
        operation: dict[str, Any] = {"name": name, "metadata": metadata}
        if batch["output"] is not None:
            metadata["output"] = batch["output"]
            operation["done"] = True
            operation["response"] = {
                "@type": "type.googleapis.com/google.ai.generativelanguage.v1beta.GenerateContentBatchOutput",
                **batch["output"],
            }
        return operation

    def _get_batch(self, batch_id: str) -> Reply:
        if batch_id not in self.batches:
            return self.error(404, f"no batch {batch_id}")
        batch = self.batches[batch_id]
        batch["polls"] += 1
        if batch["output"] is None and batch["polls"] >= self.polls_until_done:
            inlined = []
            for item in batch["requests"]:
                try:
                    text = self.answer(self.prompt_of(item["request"]))
                    entry = {"response": self.response_body(item["request"], [text])}
                except Exception as err:  # the answer function refuses: this request fails
                    entry = {"error": {"code": 500, "message": str(err)}}
                if "metadata" in item:
                    entry["metadata"] = item["metadata"]
                inlined.append(entry)
            batch["output"] = {"inlinedResponses": {"inlinedResponses": inlined}}
            batch["state"] = "BATCH_STATE_SUCCEEDED"
        else:
            batch["state"] = batch["state"] if batch["output"] else "BATCH_STATE_RUNNING"
        return self.json_reply(200, self._operation(batch_id))
