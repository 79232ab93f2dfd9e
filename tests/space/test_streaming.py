"""Streamed generation: the text grows token by token, errors reach the reader, and a stream
that nobody reads any more stops generating."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from training.space.streaming import stop_generations, stream_text


class CharTokenizer:
    """Token ids are character codes: enough for transformers' `TextIteratorStreamer`."""

    def decode(self, ids, **kwargs) -> str:
        return "".join(chr(i) for i in ids)


def slow_generation(tokens: int, calls: list[int], finished: threading.Event):
    import torch

    def generate(streamer) -> None:
        try:
            for _ in range(tokens):
                calls.append(1)
                streamer.put(torch.tensor([ord("a")]))
                time.sleep(0.01)
            streamer.end()
        finally:
            finished.set()

    return generate


def test_the_text_grows_and_ends_with_the_whole_text():
    calls, finished = [], threading.Event()
    texts = list(stream_text(CharTokenizer(), slow_generation(5, calls, finished)))
    assert texts[-1] == "aaaaa"
    assert len(texts) >= 2 and all(texts[i] <= texts[i + 1] for i in range(len(texts) - 1))
    assert finished.is_set()


def test_a_stream_closed_early_stops_its_generation():
    calls, finished = [], threading.Event()
    stream = stream_text(CharTokenizer(), slow_generation(1000, calls, finished))
    next(stream)
    stream.close()  # what happens when the visitor leaves or sends the next turn
    assert finished.wait(5), "the generation thread is still decoding"
    assert len(calls) < 100


def test_stopping_all_generations_ends_the_streams_being_read():
    """What the server does when it shuts down, while a visitor still reads a narrative."""
    calls, finished = [], threading.Event()
    stream = stream_text(CharTokenizer(), slow_generation(1000, calls, finished))
    first = next(stream)
    stop_generations(timeout_s=5)
    assert finished.is_set()
    rest = list(stream)  # the text so far, then the stream ends
    assert rest and rest[-1].startswith(first) and len(rest[-1]) <= len(calls) < 100


def test_an_error_in_generation_reaches_the_reader():
    def generate(streamer) -> None:
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError, match="out of memory"):
        list(stream_text(CharTokenizer(), generate))


def test_the_interpreter_waits_for_a_generation_before_it_exits(tmp_path):
    """A generation thread killed at exit inside torch aborts the process: it must end first."""
    import subprocess
    import sys
    import textwrap

    done = tmp_path / "done"
    script = textwrap.dedent(
        f"""
        import time, torch
        from training.space.streaming import stream_text

        class CharTokenizer:
            def decode(self, ids, **kwargs):
                return "".join(chr(i) for i in ids)

        def generate(streamer):
            for _ in range(30):
                streamer.put(torch.tensor([ord("a")]))
                time.sleep(0.02)
            streamer.end()
            open({str(done)!r}, "w").close()

        stream = stream_text(CharTokenizer(), generate)
        next(stream)  # the main thread ends here, the generation still running
        """
    )
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert done.exists()
