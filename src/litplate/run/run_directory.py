"""One run per directory: a fresh run never writes into another run's directory.

Two runs pointed at the same `hydra.run.dir` would leave one run's config beside the other's
weights and metrics. `OneRunPerDirectory`, a Hydra callback (configs/hydra/default.yaml), stops a
fresh run before Hydra writes anything there when the directory already holds a run, and holds a
lock on it while the run is live, so a concurrent second run stops too. Resuming with a
`ckpt_path` inside the directory stays allowed.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import IO, Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, open_dict, read_write

from litplate.run.errors import UserInputError

# What a run leaves in its directory; any of them marks it as taken (a `.hydra` alone, left by a
# run that stopped on a config error, does not: the retry may use the directory).
RUN_MARKERS = ("checkpoints", "metrics.json", "model.safetensors")
LOCK_FILE = ".run.lock"


class RunDirectoryTaken(UserInputError):
    """The run directory holds another run, or another run is writing into it now."""


def _rank_zero() -> bool:
    # DDP and SLURM start the other ranks with the same command and the same run directory.
    return all(os.environ.get(name, "0") == "0" for name in ("LOCAL_RANK", "RANK", "SLURM_PROCID"))


def _inside(path: str | None, directory: Path) -> bool:
    return bool(path) and Path(path).resolve().is_relative_to(directory.resolve())


class OneRunPerDirectory(Callback):
    def __init__(self) -> None:
        self._lock: IO[Any] | None = None

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra turns a callback's exception into a warning and goes on: exit instead (code 1).
        try:
            self.claim(config)
        except RunDirectoryTaken as err:
            print(f"Error: {err}", file=sys.stderr)
            raise SystemExit(1) from None

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra calls this after the job, failed or not: another run in this process may start.
        if self._lock is not None:
            Path(self._lock.name).unlink(missing_ok=True)
            self._lock.close()
            self._lock = None

    def claim(self, config: DictConfig) -> None:
        if not _rank_zero():
            # Rank 0 writes the run's .hydra; another rank writing it first would look like a
            # run already in the directory when rank 0 checks.
            with read_write(config.hydra), open_dict(config.hydra):
                config.hydra.output_subdir = None
            return
        run_dir = Path(config.hydra.run.dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = lock_run_directory(run_dir)
        taken = [name for name in RUN_MARKERS if (run_dir / name).exists()]
        if taken and not _inside(config.get("ckpt_path"), run_dir):
            raise RunDirectoryTaken(
                f"{run_dir} already holds a run ({', '.join(taken)}): nothing was written. "
                "Choose another hydra.run.dir, or resume that run with a ckpt_path inside it, "
                f"e.g. ckpt_path={run_dir}/checkpoints/last.ckpt"
            )


def lock_run_directory(run_dir: Path) -> IO[Any] | None:
    """An exclusive lock on the run directory, held until the returned file is closed (or the
    process ends); None where the system has no `fcntl` (Windows), which then goes unlocked."""
    try:
        import fcntl
    except ImportError:
        return None
    lock = (run_dir / LOCK_FILE).open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise RunDirectoryTaken(
            f"{run_dir}: another run is writing into this directory now; nothing was written"
        ) from None
    return lock
