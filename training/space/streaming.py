"""Greedy generation of one prompt, streamed: the text so far after each decoded piece."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence


def stream_generation(
    model,
    tokenizer,
    input_ids: Sequence[int],
    *,
    max_new_tokens: int,
    stop_token_ids: Sequence[int],
    timeout_s: float = 300.0,
) -> Iterator[str]:
    """Run `model.generate` in a thread and yield the growing text as tokens arrive.

    An error in generation is raised here, in the caller's thread, once the stream ends.
    """
    import torch
    from transformers import TextIteratorStreamer

    streamer = TextIteratorStreamer(
        tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=timeout_s
    )
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_token_ids[0]
    device = next(model.parameters()).device
    ids = torch.tensor([list(input_ids)], dtype=torch.long, device=device)
    failure: list[BaseException] = []

    def generate() -> None:
        try:
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
        except BaseException as error:  # handed to the caller below
            failure.append(error)
            streamer.end()

    worker = threading.Thread(target=generate, daemon=True)
    worker.start()
    text = ""
    for piece in streamer:
        text += piece
        yield text.strip()
    worker.join()
    if failure:
        raise failure[0]
    yield text.strip()
