"""Batches over rows, with a progress bar where a long prediction run wants one."""

from __future__ import annotations

from collections.abc import Iterator


def batch_spans(
    count: int, batch_size: int, *, progress: bool = False, description: str = ""
) -> Iterator[tuple[int, int]]:
    """(start, stop) of each batch of `count` rows; with `progress`, a bar over the rows on
    stderr (`regen predict` shows one; the models' Python methods do not by default)."""
    from tqdm.auto import tqdm

    with tqdm(total=count, desc=description, unit="row", disable=not progress) as bar:
        for start in range(0, count, batch_size):
            stop = min(start + batch_size, count)
            yield start, stop
            bar.update(stop - start)
