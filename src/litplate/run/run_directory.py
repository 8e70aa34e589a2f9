"""One run per directory: a fresh run never writes into another run's directory.

Two runs pointed at the same `hydra.run.dir` would leave one run's config beside the other's
weights and metrics. `OneRunPerDirectory`, a Hydra callback (configs/hydra/default.yaml), stops a
fresh run before Hydra writes anything there when the directory already holds a run, and holds a
lock on it while the run is live, so a concurrent second run stops too. Resuming with a
`ckpt_path` inside the directory stays allowed for training (`resume`); eval, export and predict
never enter a directory holding a run. A sweep is guarded the same way: a second sweep into a
used (or live) sweep directory stops before anything is written, except a persisted study
(`hydra.sweeper.storage`), which continues in its directory; there each job's directory is
checked and locked as the job starts.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import IO, Any

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from litplate.run.errors import UserInputError
from litplate.run.sweep import FAILURE_FILE, SUMMARY_FILE

# What a run leaves in its directory; any of them marks it as taken (a `.hydra` alone, left by a
# run that stopped on a config error, does not: the retry may use the directory).
RUN_MARKERS = ("checkpoints", "metrics.json", "model.safetensors")
# A job of a sweep that failed leaves failure.json instead; a finished sweep, summary.csv.
JOB_MARKERS = (*RUN_MARKERS, FAILURE_FILE)
LOCK_FILE = ".run.lock"


class RunDirectoryTaken(UserInputError):
    """The run directory holds another run, or another run is writing into it now."""


def _rank_zero() -> bool:
    # DDP and SLURM start the other ranks with the same command and the same run directory.
    return all(os.environ.get(name, "0") == "0" for name in ("LOCAL_RANK", "RANK", "SLURM_PROCID"))


def _inside(path: str | None, directory: Path) -> bool:
    return bool(path) and Path(path).resolve().is_relative_to(directory.resolve())


def _exit_if_taken(claim: Any, *args: Any) -> IO[Any] | None:
    # Hydra turns a callback's exception into a warning and goes on: exit instead (code 1).
    try:
        return claim(*args)
    except RunDirectoryTaken as err:
        print(f"Error: {err}", file=sys.stderr)
        raise SystemExit(1) from None


def _release(lock: IO[Any] | None) -> None:
    if lock is not None:
        Path(lock.name).unlink(missing_ok=True)
        lock.close()


# The locks this process holds, by what for: kept out of the callback, which launchers pickle.
_held: dict[str, IO[Any] | None] = {}


class OneRunPerDirectory(Callback):
    def __init__(self, resume: bool = True) -> None:
        self.resume = resume  # whether a run with a ckpt_path inside a taken directory may enter

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _held["run"] = _exit_if_taken(self.claim, config)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        # Hydra calls this after the job, failed or not: another run in this process may start.
        _release(_held.pop("run", None))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _held["sweep"] = _exit_if_taken(claim_sweep, config)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        _release(_held.pop("sweep", None))

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        # A job's other ranks (SLURM tasks of a DDP job) share rank 0's directory and claim.
        if HydraConfig.get().mode == RunMode.MULTIRUN and _rank_zero():
            job_dir = Path(config.hydra.runtime.output_dir)
            # Hydra has written the job's .hydra by now: the rest of the directory stays as it was.
            hint = "the sweep stopped before this job ran; Hydra had rewritten only its .hydra"
            _held["job"] = _exit_if_taken(claim, job_dir, JOB_MARKERS, "job", hint)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status == JobStatus.FAILED:
            # A failed job's return_value raises its error, and says so on stderr: Hydra says it.
            try:
                with contextlib.redirect_stderr(io.StringIO()):
                    job_return.return_value  # noqa: B018
            except Exception as error:
                log_to_files(error)
        _release(_held.pop("job", None))

    def claim(self, config: DictConfig) -> IO[Any] | None:
        if not _rank_zero():
            # Rank 0 writes the run's .hydra; another rank writing it first would look like a
            # run already in the directory when rank 0 checks.
            with read_write(config.hydra), open_dict(config.hydra):
                config.hydra.output_subdir = None
            return None
        run_dir = Path(config.hydra.run.dir)
        if self.resume and _inside(config.get("ckpt_path"), run_dir):
            run_dir.mkdir(parents=True, exist_ok=True)
            return lock_run_directory(run_dir)
        hint = "Choose another hydra.run.dir (by default each run gets its own)"
        if self.resume:
            hint += f", or resume that run with ckpt_path={run_dir}/checkpoints/last.ckpt"
        return claim(run_dir, RUN_MARKERS, "run", hint)


def claim(directory: Path, markers: tuple[str, ...], what: str, hint: str = "") -> IO[Any] | None:
    """A lock on `directory` (see `lock_run_directory`); RunDirectoryTaken, with nothing written,
    where it holds any of `markers` (anywhere below it if `what` is "sweep")."""

    def taken() -> list[str]:
        deep = what == "sweep"
        found = (directory.rglob(name) if deep else [directory / name] for name in markers)
        return sorted({str(p.relative_to(directory)) for ps in found for p in ps if p.exists()})

    def refuse(names: list[str]) -> RunDirectoryTaken:
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        return RunDirectoryTaken(
            f"{directory} already holds a {what} ({shown}): "
            + (hint if what == "job" else f"nothing was written. {hint}".strip())
        )

    if names := taken():
        raise refuse(names)
    directory.mkdir(parents=True, exist_ok=True)
    lock = lock_run_directory(directory)
    if names := taken():  # finished between the first look and the lock
        _release(lock)
        raise refuse(names)
    return lock


def claim_sweep(config: DictConfig) -> IO[Any] | None:
    """A grid sweep, or a search kept in memory, starts only in an unused sweep directory; a
    persisted study continues in its own, which its workers may share (their jobs are checked)."""
    if OmegaConf.select(config, "hydra.sweeper.storage"):
        return None
    sweep_dir = Path(config.hydra.sweep.dir)
    hint = "Choose another hydra.sweep.dir (by default each sweep gets its own)"
    return claim(sweep_dir, (*JOB_MARKERS, SUMMARY_FILE), "sweep", hint)


def log_to_files(error: BaseException) -> None:
    """The error that ended the job, into the job's log file (stderr gets it from Hydra): a
    user's error as its message alone, a bug with its traceback."""
    if isinstance(error, UserInputError):
        message = str(error)
    else:
        message = "".join(traceback.format_exception(error)).rstrip()
    record = logging.LogRecord(__name__, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


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
