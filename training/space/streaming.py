"""Generation streamed: the text so far after each decoded piece, while a thread generates."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence


class GenerationStopped(Exception):
    """Raised inside a generation whose reader has gone (the visitor left or sent a new turn),
    or when the server shuts down."""


# The stop switch and thread of every generation running now (`stop_generations`).
_running: dict[threading.Thread, threading.Event] = {}
_running_lock = threading.Lock()


def stop_generations(timeout_s: float = 30.0) -> None:
    """Stop every generation still running, each at its next token, and wait for their threads
    (the server is shutting down)."""
    with _running_lock:
        running = list(_running.items())
    for _, stop in running:
        stop.set()
    deadline = time.monotonic() + timeout_s
    for worker, _ in running:
        worker.join(max(0.0, deadline - time.monotonic()))


def stream_text(
    tokenizer,
    generate: Callable[[object], object],
    *,
    skip_prompt: bool = False,
    timeout_s: float = 300.0,
) -> Iterator[str]:
    """Run `generate(streamer)` in a thread and yield the growing text as tokens arrive.

    `generate` hands the streamer (transformers' `TextIteratorStreamer`) to a decoding loop
    that calls its `put` per token and `end` when done; `skip_prompt` drops the first `put`,
    which `model.generate` uses for the prompt. An error in generation is raised here, in the
    caller's thread, once the stream ends. When the caller stops reading (closes this
    generator), the generation stops at its next token and its thread is joined, instead of
    decoding on, unread, beside the next request.
    """
    from transformers import TextIteratorStreamer

    stop = threading.Event()

    class StoppableStreamer(TextIteratorStreamer):
        def put(self, value) -> None:
            if stop.is_set():
                raise GenerationStopped
            super().put(value)

    streamer = StoppableStreamer(
        tokenizer, skip_prompt=skip_prompt, skip_special_tokens=True, timeout=timeout_s
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            generate(streamer)
        except GenerationStopped:
            streamer.end()  # a reader still there sees the text so far
        except BaseException as error:  # handed to the caller below
            failure.append(error)
            streamer.end()
        finally:
            with _running_lock:
                _running.pop(threading.current_thread(), None)

    # Not a daemon: the interpreter waits for it at exit instead of killing it inside torch's
    # C++ code, which aborts the process ("terminate called without an active exception").
    # A handler cancelled mid-turn can still start one after `stop_generations`.
    worker = threading.Thread(target=run, daemon=False)
    with _running_lock:
        _running[worker] = stop
    worker.start()
    text = ""
    try:
        for piece in streamer:
            text += piece
            yield text.strip()
    finally:
        stop.set()
        worker.join(timeout_s)
    if failure:
        raise failure[0]
    yield text.strip()


def stream_generation(
    model,
    tokenizer,
    input_ids: Sequence[int],
    *,
    max_new_tokens: int,
    stop_token_ids: Sequence[int],
    timeout_s: float = 300.0,
) -> Iterator[str]:
    """Greedy `model.generate` of one prompt, streamed."""
    import torch

    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_token_ids[0]
    device = next(model.parameters()).device
    ids = torch.tensor([list(input_ids)], dtype=torch.long, device=device)

    def generate(streamer) -> None:
        with torch.no_grad():
            model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                eos_token_id=list(stop_token_ids),
                pad_token_id=pad_id,
                streamer=streamer,
            )

    return stream_text(tokenizer, generate, skip_prompt=True, timeout_s=timeout_s)
