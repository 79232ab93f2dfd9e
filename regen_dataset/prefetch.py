"""Run an iterator in a background thread, a few items ahead, so that reading overlaps parsing."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass


@dataclass
class _Failure:
    error: BaseException


def prefetch(items: Iterator, depth: int = 1) -> Iterator:
    """Iterate `items` from a background thread, `depth` ahead.

    An exception in the thread is raised in the consumer; closing the returned iterator early
    stops the thread and closes `items`.
    """
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            with contextlib.closing(items):
                for item in items:
                    if not put(item):
                        return
            put(done)
        except BaseException as error:  # handed to the consumer
            put(_Failure(error))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    try:
        while (item := buffer.get()) is not done:
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
