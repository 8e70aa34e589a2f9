"""The files a run writes, each whole or not at all: written beside the destination, synced and
renamed over it, so a crash never leaves half a result that looks like one."""

from __future__ import annotations

import errno
import json
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import torch
from safetensors.torch import save_file
from torch import nn

from litplate.run.errors import UserInputError

DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


class DiskFull(UserInputError):
    """A file of the run could not be written: the disk (or the file size limit) is full."""


def disk_full(error: BaseException, name: object) -> DiskFull | None:
    """`error` as a DiskFull naming `name` if a full disk caused it (torch says "enforce fail")."""
    if getattr(error, "errno", None) not in DISK_FULL and "enforce fail" not in str(error):
        return None
    return DiskFull(
        f"{name} not written: no space left on the device, or the file is too large for it "
        f"({' '.join(str(error).split())[:200]})"
    )


@contextmanager
def atomic_path(path: str | Path, keep_suffix: bool = False) -> Iterator[Path]:
    """A temporary path beside `path`, renamed over it when the block succeeds; `keep_suffix` for
    writers that choose the format by the suffix."""
    path = Path(path)
    stem, suffix = (path.stem, path.suffix) if keep_suffix else (path.name, "")
    tmp = path.with_name(f".{stem}.{os.getpid()}.tmp{suffix}")
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


def save_figure(figure: Any, path: str | Path) -> Any:
    """A matplotlib figure as a PNG, then freed; returns its RGB pixels (for TensorBoard)."""
    import matplotlib.image
    import matplotlib.pyplot as plt
    import numpy as np

    figure.canvas.draw()
    pixels = np.asarray(figure.canvas.buffer_rgba())[..., :3].copy()
    plt.close(figure)
    with atomic_path(path, keep_suffix=True) as tmp:
        matplotlib.image.imsave(tmp, pixels)
    return pixels


def write_json(data: dict[str, Any], path: str | Path) -> None:
    with atomic_write(path) as file:
        file.write(json.dumps(data, indent=2, sort_keys=True) + "\n")


def to_float(value: Any) -> Any:
    """A logged value (a scalar tensor, or a number) as a Python number, for JSON."""
    return value.item() if isinstance(value, torch.Tensor) else value


@contextmanager
def full_disk_named(run_dir: str | Path) -> Iterator[None]:
    """A full disk while the block writes a run's files is one DiskFull naming the file; the
    report of TensorBoard's writer thread (which meets it first) is left to the main thread."""
    in_threads: list[BaseException] = []
    previous = threading.excepthook

    def hook(args: threading.ExceptHookArgs) -> None:
        if isinstance(args.exc_value, OSError) and args.exc_value.errno in DISK_FULL:
            in_threads.append(args.exc_value)
        else:
            previous(args)

    threading.excepthook = hook
    try:
        yield
    except OSError as error:
        if error.errno not in DISK_FULL:
            raise
        name = error.filename
        if not name and error in in_threads:  # the writer thread's: the newest events file's
            events = sorted(Path(run_dir).rglob("events.out.tfevents.*"), key=os.path.getmtime)
            name = events[-1] if events else None
        raise disk_full(error, name or run_dir) from None
    finally:
        threading.excepthook = previous
