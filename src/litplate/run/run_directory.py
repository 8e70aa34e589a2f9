"""One run per directory: a fresh run, sweep or sweep job stops before Hydra writes anything into a
directory that holds another's results or a live run's lock, or into one inside a run's; a
training run may resume in its own (configs/hydra/default.yaml; docs/troubleshooting.md)."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import sys
import traceback
from pathlib import Path
from typing import IO, Any, NoReturn

from hydra.core.hydra_config import HydraConfig
from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from litplate.run.errors import UserInputError
from litplate.run.sweep import FAILURE_FILE, SUMMARY_FILE

# What a run leaves in its directory (a `.hydra` alone, left by a config error, does not count).
RUN_MARKERS = ("checkpoints", "metrics.json", "model.safetensors", "predictions.csv", "export.json")
JOB_MARKERS = (*RUN_MARKERS, FAILURE_FILE)  # a sweep's failed job leaves failure.json instead
NOTHING_WRITTEN = (
    "nothing was written. Choose another hydra.{0}.dir (by default each {0} gets its own)"
)

# The locks this process holds, by what for: kept out of the callback, which launchers pickle.
_held: dict[str, IO[Any] | None] = {}


def _refuse(message: str) -> NoReturn:
    # Hydra turns a callback's exception into a warning and goes on: exit instead (code 1).
    print(f"Error: {message}", file=sys.stderr)
    raise SystemExit(1)


def _release(what: str) -> None:
    if (lock := _held.pop(what, None)) is not None:
        Path(lock.name).unlink(missing_ok=True)
        lock.close()


def _rank_zero() -> bool:
    # DDP and SLURM start the other ranks with the same command and the same run directory.
    return all(os.environ.get(name, "0") == "0" for name in ("LOCAL_RANK", "RANK", "SLURM_PROCID"))


class OneRunPerDirectory(Callback):
    def __init__(self, resume: bool = True) -> None:
        self.resume = resume  # whether a run with a ckpt_path inside a taken directory may enter

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not _rank_zero():
            # Rank 0 writes the run's .hydra; another rank writing it first would look like a
            # run already in the directory when rank 0 checks.
            with read_write(config.hydra), open_dict(config.hydra):
                config.hydra.output_subdir = None
            return
        run_dir = Path(config.hydra.run.dir)
        inside = resumes_in(config.get("ckpt_path"), run_dir)
        markers = () if self.resume and inside else RUN_MARKERS  # a resume enters its directory
        hint = NOTHING_WRITTEN.format("run")
        if self.resume:
            hint += f", or resume that run with ckpt_path={run_dir}/checkpoints/last.ckpt"
        claim(run_dir, markers, "run", hint)

    def on_run_end(self, config: DictConfig, **kwargs: Any) -> None:
        _release("run")  # Hydra calls this after the job, failed or not

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # A persisted study continues in its own directory, shared by its workers (so unlocked;
        # each job's directory is claimed): only a grid sweep or an in-memory search needs one.
        sweep_dir = Path(config.hydra.sweep.dir)
        if OmegaConf.select(config, "hydra.sweeper.storage"):
            refuse_inside_a_run(sweep_dir, "sweep", itself=True)
        else:
            claim(sweep_dir, (*JOB_MARKERS, SUMMARY_FILE), "sweep", NOTHING_WRITTEN.format("sweep"))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        _release("sweep")

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        refuse_another_output_dir(config)
        # A job's other ranks (SLURM tasks of a DDP job) share rank 0's directory and claim.
        if HydraConfig.get().mode == RunMode.MULTIRUN and _rank_zero():
            # Hydra has written the job's .hydra by now: the rest of the directory stays as it was.
            hint = "the sweep stopped before this job ran; Hydra had rewritten only its .hydra"
            claim(Path(config.hydra.runtime.output_dir), JOB_MARKERS, "job", hint)

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if job_return.status == JobStatus.FAILED:
            # A failed job's return_value raises its error, and says so on stderr: Hydra says it.
            try:
                with contextlib.redirect_stderr(io.StringIO()):
                    job_return.return_value  # noqa: B018
            except Exception as error:
                log_to_files(error)
        _release("job")


def claim(directory: Path, markers: tuple[str, ...], what: str, hint: str) -> None:
    """Lock `directory` for this `what` (run, sweep, job); exit with nothing written where it holds
    any of `markers` (anywhere below it for a sweep) or is inside a run's directory."""

    def refuse_if_taken() -> None:
        found = (directory.rglob(m) if what == "sweep" else [directory / m] for m in markers)
        names = sorted({str(p.relative_to(directory)) for ps in found for p in ps if p.exists()})
        if names:
            _release(what)
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            _refuse(f"{directory} already holds a {what} ({shown}): {hint}")

    refuse_inside_a_run(directory, what)
    refuse_if_taken()
    directory.mkdir(parents=True, exist_ok=True)
    _held[what] = lock_run_directory(directory)
    refuse_if_taken()  # finished between the first look and the lock


def refuse_another_output_dir(config: DictConfig) -> None:
    """Every file of a run goes to `paths.output_dir`: it must be the directory checked here."""
    output_dir = OmegaConf.select(config, "paths.output_dir", default=None)
    job_dir = Path(config.hydra.runtime.output_dir)
    if output_dir is not None and Path(output_dir).resolve() != job_dir.resolve():
        _refuse(
            f"paths.output_dir={output_dir} is not this run's directory ({job_dir}), the one "
            "checked to hold no other run: nothing was written there. Choose the directory with "
            "hydra.run.dir (hydra.sweep.dir with -m)"
        )


def refuse_inside_a_run(directory: Path, what: str, itself: bool = False) -> None:
    """Exit where a directory above `directory` (or, with `itself`, it) holds a run's .hydra and
    results: a sweep's own directory holds neither, its jobs' are below it."""
    path = directory.resolve()
    for run in [path, *path.parents] if itself else path.parents:
        if not (run / ".hydra").is_dir():  # one look per ancestor, not one per marker
            continue
        if found := results_in(run):
            where = "already holds" if run == path else f"is inside {run}, which holds"
            hint = NOTHING_WRITTEN.format("run" if what == "run" else "sweep")
            _refuse(f"{directory} {where} a run ({', '.join(found)}): {hint}")


def results_in(directory: Path) -> list[str]:
    """The run results (RUN_MARKERS) that `directory` holds."""
    return [marker for marker in RUN_MARKERS if (directory / marker).exists()]


def resumes_in(ckpt_path: str | None, directory: Path) -> bool:
    """Whether a run resumes from a checkpoint inside `directory` (its own run's)."""
    return bool(ckpt_path) and Path(ckpt_path).resolve().is_relative_to(directory.resolve())


def refuse_a_taken_output_dir(directory: Path, resumed_from: str | None) -> None:
    """The Python API's check of a given `paths.output_dir`: no other run's results in it, unless
    this run resumes from a checkpoint inside it."""
    if resumes_in(resumed_from, directory):
        return
    if found := results_in(directory):
        raise UserInputError(
            f"paths.output_dir={directory} already holds a run ({', '.join(found)}): nothing was "
            "written. Leave paths.output_dir unset (each run gets its own directory) or choose "
            f"another; a training run resumes with ckpt_path={directory}/checkpoints/last.ckpt"
        )


def log_to_files(error: BaseException) -> None:
    """The error that ended the job, into its log file: a user's error as its message alone, a
    bug with its traceback (Hydra prints it on stderr)."""
    if isinstance(error, UserInputError):
        message = str(error)
    else:
        message = "".join(traceback.format_exception(error)).rstrip()
    record = logging.LogRecord(__name__, logging.ERROR, __file__, 0, message, None, None)
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def lock_run_directory(run_dir: Path) -> IO[Any] | None:
    """An exclusive lock on the directory until the returned file is closed; None without fcntl."""
    try:
        import fcntl
    except ImportError:
        return None
    lock = (run_dir / ".run.lock").open("a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        _refuse(f"{run_dir}: another run is writing into this directory now; nothing was written")
    return lock
