"""The files a run writes, each whole or not at all: a crash never leaves half a result that looks
like one.

Everything a run writes as a result (metrics.json, predictions.csv, checkpoints, exported models)
goes through here: it is written next to its destination, synced and renamed over it, so a reader
sees the old file or the new one, never a part.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch
from safetensors.torch import save_file
from torch import nn


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
        # Some writers (safetensors, mkstemp) create 0600: the mode a plain open() would give.
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(0o666 & ~umask)
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


def save_weights(model: nn.Module, path: str | Path) -> Path:
    """The model's state_dict as safetensors: plain tensors that anyone can load without pickle."""
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    with atomic_path(path, keep_suffix=True) as tmp:
        save_file(state, str(tmp))
    return Path(path)


def save_figure(figure: Any, path: str | Path) -> Path:
    """A matplotlib figure as a PNG, written whole or not at all; the figure is then freed."""
    import matplotlib.pyplot as plt

    with atomic_path(path, keep_suffix=True) as tmp:
        figure.savefig(tmp, dpi=100)
    plt.close(figure)
    return Path(path)


def write_json(data: dict[str, Any], path: str | Path) -> Path:
    """Write atomically, so a crash never leaves a half-written file that looks like a result."""
    with atomic_write(path) as file:
        file.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return Path(path)


def to_float(value: Any) -> Any:
    """Tensors and numbers as Python floats, for JSON."""
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value
