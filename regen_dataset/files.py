"""Atomic writes: a file appears complete under its name, or not at all.

Everything this project writes goes through `atomic_path` (for writers that want a path, such as
matplotlib or parquet) or `atomic_open` (for a file handle; `.gz` names are gzipped). The
temporary file sits beside the target and carries the writer's process id, so that a later run can
tell the leftovers of a killed writer (`remove_dead_partials`) from a write still in progress.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

_PARTIAL = re.compile(r"\.partial-(\d+)")


def is_partial(path: str | os.PathLike) -> bool:
    """Whether `path` is named like the temporary file of a writer (finished or killed): a
    search for input files must never pick one up, since it may hold half a file."""
    return bool(_PARTIAL.search(os.path.basename(os.fspath(path))))


def _partial_name(path: str) -> str:
    root, extension = os.path.splitext(path)
    # Keep the extension last, so that writers that infer a format from it still do.
    return f"{root}.partial-{os.getpid()}{extension}"


def is_gzip(path: str | os.PathLike) -> bool:
    """Whether the file is gzip-compressed, by its first two bytes, whatever its name says."""
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """A temporary path that replaces `path` when the block ends without an exception."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = _partial_name(path)
    try:
        yield partial
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(partial)
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w", encoding: str = "utf-8"):
    """`open` for writing, atomically; a name ending in `.gz` is gzip-compressed."""
    if not mode.startswith("w"):
        raise ValueError(f"atomic_open writes whole files; mode {mode!r} is not a write mode")
    binary = "b" in mode
    with atomic_path(path) as partial:
        if os.fspath(path).endswith(".gz"):
            gzip_mode = "wb" if binary else "wt"
            opened = gzip.open(partial, gzip_mode, encoding=None if binary else encoding)
        else:
            opened = open(partial, mode, encoding=None if binary else encoding)
        with opened as handle:
            yield handle


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


def write_json(path: str | os.PathLike, payload, *, indent: int | None = 2) -> None:
    with atomic_open(path) as handle:
        json.dump(payload, handle, indent=indent, ensure_ascii=False, default=str)
        handle.write("\n")


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def remove_dead_partials(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that killed writers of `path` left beside it; returns them."""
    target = Path(path)
    root, extension = os.path.splitext(target.name)
    removed = []
    for candidate in target.parent.glob(f"{glob_escape(root)}.partial-*{glob_escape(extension)}"):
        match = _PARTIAL.search(candidate.name[len(root) :])
        if match and not process_alive(int(match.group(1))):
            with contextlib.suppress(FileNotFoundError):
                candidate.unlink()
            removed.append(candidate)
    return removed


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def without_folders(text: str) -> str:
    """`text` with its absolute paths cut to their last part (`/home/alice/models/gemma` ->
    `gemma`): for what others read, a published card or a page, while where the files lie is for
    this machine's log. A quoted path (as Python's errors, JSON, shell words and Markdown code
    quote them) is cut whole, spaces and all; URLs and relative paths stay as they are."""
    text = re.sub(r"(['\"`])/[^'\"`\n]*/([^/'\"`\n]+)\1", r"\1\2\1", text)
    return re.sub(r"(?<![\w.~/:-])/(?:[^\s/'\"`]+/)+([^\s/'\"`]+)", r"\1", text)
