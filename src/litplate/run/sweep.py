"""What a sweep (`-m`) leaves behind, read from its job directories so that any launcher works:
failed jobs recorded, the summary and exit code, stopped orphans (docs/sweeps.md)."""

from __future__ import annotations

import csv
import functools
import json
import logging
import math
import multiprocessing
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Collection, Sequence
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock
from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from litplate.run.files import atomic_write

log = logging.getLogger(__name__)

FAILURE_FILE = "failure.json"
METRICS_FILE = "metrics.json"
SUMMARY_FILE = "summary.csv"


def run_task(task: Callable[[DictConfig], Any], cfg: DictConfig) -> Any:
    """`task(cfg)`; in a multirun, a failed job writes failure.json and returns NaN (a failed trial)
    where Hydra's sweepers would stop, but a job stopped by SIGTERM stops the sweep (exit 1)."""
    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return task(cfg)
    try:
        return task(cfg)
    except Exception as error:
        from litplate.run.resume import RunInterrupted  # here: the sweep's start stays light

        cause: BaseException = error
        while cause.__cause__ is not None:  # Hydra wraps errors raised while instantiating
            cause = cause.__cause__
        failure = {
            "error": " ".join(f"{type(cause).__name__}: {cause}".split()),
            "traceback": traceback.format_exc(),
        }
        path = Path(HydraConfig.get().runtime.output_dir) / FAILURE_FILE
        with atomic_write(path) as file:  # other workers of a shared study may read it now
            file.write(json.dumps(failure, indent=2) + "\n")
        if isinstance(error, RunInterrupted):
            log.error("%s; the sweep stops", error)
            raise SystemExit(1) from None
        log.exception("Job failed; the sweep goes on")
        return math.nan


class StopOrphanedWorkers(Callback):
    """A launcher's worker process (joblib's loky) stops once the sweep's process is gone, after
    the job it runs: left alone, it would start the queued jobs and then idle for minutes."""

    ENV = "LITPLATE_SWEEP_PID"

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        os.environ[self.ENV] = str(os.getpid())

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_pid = int(os.environ.get(self.ENV, os.getpid()))
        # A job in the sweep's own process (basic launcher) has no sweep process to outlive.
        if sweep_pid == os.getpid() or multiprocessing.parent_process() is None:
            return
        _watch(sweep_pid)
        if os.getppid() != sweep_pid:
            _exit_orphan()  # a job queued before the sweep's process died: do not start it
        _running_job.acquire()

    def on_job_end(self, config: DictConfig, **kwargs: Any) -> None:
        if _running_job.locked():
            if os.getppid() != int(os.environ[self.ENV]):
                _exit_orphan()  # now, while this job's train.log is still the log
            _running_job.release()


_running_job = threading.Lock()  # held by a launcher's worker while its job runs


@functools.cache  # one watcher per worker process
def _watch(sweep_pid: int) -> None:
    threading.Thread(target=_exit_when_orphaned, args=(sweep_pid,), daemon=True).start()


def _exit_when_orphaned(sweep_pid: int) -> None:
    while os.getppid() == sweep_pid:  # a dead parent's children get another parent
        time.sleep(1)
    with _running_job:  # the running job ends first
        _exit_orphan()


def _exit_orphan() -> None:
    log.warning("The sweep's process is gone: this worker stops")
    logging.shutdown()
    os._exit(1)


class SweepSummary(Callback):
    """After a multirun: summary.csv in the sweep dir, printed as a table best first by `sort_by`
    (a metrics.json key, `mode` min or max) with `columns` next to it, then the exit code."""

    def __init__(
        self, sort_by: str | None = None, mode: str = "min", columns: Sequence[str] = ()
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.sort_by = sort_by
        self.mode = mode
        self.columns = list(columns)
        self.earlier_jobs: set[str] = set()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # A continued study adds jobs beside the earlier invocations' ones: remember those.
        self.earlier_jobs = {row["dir"] for row in summarize(Path(config.hydra.sweep.dir))}

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        with sweep_lock(sweep_dir):
            rows = summarize(sweep_dir, self.sort_by, self.mode)
            if not rows:
                log.warning("No job directories under %s: no %s written", sweep_dir, SUMMARY_FILE)
                return
            path = write_summary(rows, sweep_dir / SUMMARY_FILE, self.sort_by, self.columns)
        print_summary(rows, self.sort_by, title=f"Sweep summary: {path}", columns=self.columns)
        # Hydra's own grid sweeper is the option `basic` of its hydra/sweeper group.
        grid = OmegaConf.select(config, "hydra.runtime.choices.hydra/sweeper") == "basic"
        failure = sweep_failure(rows, grid, self.earlier_jobs)
        if failure:
            # Hydra turns an exception raised by a callback into a warning and exits 0.
            print(f"{failure} (summary: {path})", file=sys.stderr)
            sys.exit(1)


def sweep_failure(rows: list[dict], grid: bool, earlier_jobs: Collection[str] = ()) -> str | None:
    """Why the sweep fails, naming the failed jobs, or None: a grid fails if any job failed, a
    search if none of its jobs but `earlier_jobs` (a continued study's) completed."""
    if not grid:
        rows = [row for row in rows if row["dir"] not in earlier_jobs]
        if not rows or any(row["status"] == "completed" for row in rows):
            return None
    failed = [row for row in rows if row["status"] == "failed"]
    if not failed:
        return None
    shared = _shared_overrides(rows)
    named = "; ".join(
        f"#{row['job']} ({' '.join(_varying(row, shared)) or row['overrides']}) {row['error']}"
        for row in failed
    )
    if grid:
        return f"Sweep failed: {len(failed)} of {len(rows)} jobs failed: {named}"
    return f"Search failed: none of the {len(rows)} trials of this run completed: {named}"


def sweep_lock(sweep_dir: Path) -> FileLock:
    """Held while reading the jobs and writing a result file: workers sharing a sweep dir take
    turns, so the file written last was read last."""
    return FileLock(sweep_dir / ".sweep.lock")


def summarize(sweep_dir: Path, sort_by: str | None = None, mode: str = "min") -> list[dict]:
    """One row per job directory under `sweep_dir`, best first by `sort_by`, failed jobs last."""
    rows = []
    for hydra_yaml in sweep_dir.rglob(".hydra/hydra.yaml"):
        job_dir = hydra_yaml.parent.parent
        num, overrides, metrics, error = read_job(job_dir)
        failed = metrics is None
        numbers = {
            name: value
            for name, value in (metrics or {}).items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        rows.append(
            {
                "job": num,
                "overrides": " ".join(overrides),
                "status": "failed" if failed else "completed",
                "error": (error or f"no {METRICS_FILE}: the job did not finish") if failed else "",
                "dir": str(job_dir.relative_to(sweep_dir)),
                **numbers,
            }
        )
    sign = 1 if mode == "min" else -1

    def key(row: dict) -> tuple:
        value = row.get(sort_by)
        missing = not isinstance(value, (int, float)) or math.isnan(value)
        return (row["status"] != "completed", missing, 0 if missing else sign * value, row["job"])

    return sorted(rows, key=key)


def read_job(job_dir: Path) -> tuple[int, list[str], dict[str, Any] | None, str | None]:
    """A job directory's number, overrides, metrics.json and failure.json's error (None: absent)."""
    metrics_file, failure_file = job_dir / METRICS_FILE, job_dir / FAILURE_FILE
    metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else None
    error = json.loads(failure_file.read_text())["error"] if failure_file.is_file() else None
    try:
        hydra_cfg = yaml.safe_load((job_dir / ".hydra" / "hydra.yaml").read_text())["hydra"]
        return hydra_cfg["job"]["num"], list(hydra_cfg["overrides"]["task"]), metrics, error
    except (OSError, yaml.YAMLError, TypeError, KeyError):
        # Hydra writes hydra.yaml as the job starts: a job killed then leaves it incomplete.
        num = int(job_dir.name) if job_dir.name.isdigit() else -1
        return num, [], metrics, error or "killed as it started (.hydra/hydra.yaml is incomplete)"


def write_summary(
    rows: list[dict], path: Path, sort_by: str | None = None, columns: Sequence[str] = ()
) -> Path:
    """The rows as CSV, in their order, one column per metric: `sort_by` and `columns` first."""
    first, last = ["job", "status", "overrides"], ["error", "dir"]
    metrics = sorted({name for row in rows for name in row} - {*first, *last})
    leading = list(dict.fromkeys(name for name in (sort_by, *columns) if name in metrics))
    fields = first + leading + [name for name in metrics if name not in leading] + last
    with atomic_write(path, newline="") as file:
        writer = csv.DictWriter(file, fieldnames=fields, restval="")
        writer.writeheader()
        writer.writerows(rows)
    log.info("Sweep summary of %d jobs: %s", len(rows), path)
    return path


def print_summary(
    rows: list[dict], sort_by: str | None, title: str, columns: Sequence[str] = ()
) -> None:
    """A rich table: the job, its overrides, `sort_by` and `columns`; overrides shared by every
    job go into the caption."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    shared = _shared_overrides(rows)
    named = dict.fromkeys(name for name in (sort_by, *columns) if name)
    metrics = [name for name in named if any(name in row for row in rows)]
    caption = f"every job: {' '.join(shared)}" if shared else None
    table = Table(title=title, caption=caption)
    for name in ["job", "status", "overrides", *metrics]:
        right = name == "job" or name in metrics
        table.add_column(name, justify="right" if right else "left", overflow="fold")
    for row in rows:
        varying = escape(" ".join(_varying(row, shared)))
        if row["error"]:
            varying = f"{varying}\n[red]{escape(row['error'])}[/red]"
        table.add_row(
            str(row["job"]), row["status"], varying, *(_format(row.get(name)) for name in metrics)
        )
    Console().print(table)


def _shared_overrides(rows: list[dict]) -> list[str]:
    """The overrides every job has (none when there is one job)."""
    if len(rows) < 2:
        return []
    overrides = [row["overrides"].split() for row in rows]
    return [item for item in overrides[0] if all(item in other for other in overrides[1:])]


def _varying(row: dict, shared: list[str]) -> list[str]:
    return [item for item in row["overrides"].split() if item not in shared]


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
