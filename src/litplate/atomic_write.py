"""Files that appear whole or not at all: a crash never leaves half a result that looks like one.

Everything a run writes as a result (metrics.json, predictions.csv, checkpoints, exported models)
goes through here: it is written next to its destination, synced and renamed over it, so a reader
sees the old file or the new one, never a part.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_path(path: str | Path, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed over `path` when the block succeeds,
    removed when it fails. `keep_suffix`: the temporary name ends as `path` does, for writers
    that choose the format by the suffix."""
    path = Path(path)
    hidden = f".{path.stem}.{os.getpid()}.tmp{path.suffix}" if keep_suffix else None
    tmp = path.with_name(hidden or f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", **open_kwargs: Any) -> Iterator[IO[Any]]:
    """`open(path, mode)` that replaces `path` only once the block has written and synced all."""
    with atomic_path(path) as tmp, tmp.open(mode, **open_kwargs) as file:
        yield file
        file.flush()
        os.fsync(file.fileno())
