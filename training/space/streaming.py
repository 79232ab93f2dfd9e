"""Generation streamed: the text so far after each decoded piece, while a thread generates."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence


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
    caller's thread, once the stream ends.
    """
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(
        tokenizer, skip_prompt=skip_prompt, skip_special_tokens=True, timeout=timeout_s
    )
    failure: list[BaseException] = []

    def run() -> None:
        try:
            generate(streamer)
        except BaseException as error:  # handed to the caller below
            failure.append(error)
            streamer.end()

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    text = ""
    for piece in streamer:
        text += piece
        yield text.strip()
    worker.join()
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
