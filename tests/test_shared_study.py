"""Many workers, one Optuna study on a real PostgreSQL server (docs/sweeps.md, "Many workers, one
study"), and optuna-dashboard serving it.

The workers run the command docs/sweeps.md shows (each with the study's storage and name, a shared
sweep directory), on the tiny run, with a few overrides that make the trials short.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from litplate.run.sweep import read_job
from tests.helpers.postgres import create_database, free_port, postgres_bin, postgres_server
from tests.helpers.project import ROOT
from tests.helpers.runs import read_metrics, read_summary
from tests.helpers.scripts import run_script

STUDY = "shared"
# Short trials; heartbeats every second, a trial without one for 4 s is stale.
HEARTBEAT, GRACE = 1, 4
FAST = [
    "trainer.max_epochs=3", f"hydra.sweeper.heartbeat_interval={HEARTBEAT}",
    f"hydra.sweeper.grace_period={GRACE}",
]  # fmt: skip
# Workers beside the one that is killed, and the trials each asks for: with the killed worker's
# one, TOTAL trials in the study.
WORKERS, TRIALS = 2, 2
TOTAL = WORKERS * TRIALS + 1


def worker(url: str, tiny_overrides: list[str], optuna_search: list[str]) -> list[str]:
    """The command each worker runs: the study's storage and name, TRIALS trials, one sweep dir."""
    return [
        "python", "scripts/train.py", "-m", *tiny_overrides, *optuna_search,
        f"hydra.sweeper.storage={url}", f"hydra.sweeper.study_name={STUDY}",
        f"hydra.sweeper.n_trials={TRIALS}", f"hydra.sweep.dir=logs/train/optuna/{STUDY}", *FAST,
    ]  # fmt: skip


def replaced(args: list[str], *overrides: str) -> list[str]:
    """`args` with each `KEY=VALUE` of `overrides` in place of the argument for that key."""
    new = {override.split("=")[0]: override for override in overrides}
    assert new.keys() <= {arg.split("=")[0] for arg in args}
    return [new.get(arg.split("=")[0], arg) for arg in args]


def no_better(value: float, best: float, mode: str) -> bool:
    return value <= best if mode == "max" else value >= best


def test_each_job_is_numbered_by_its_trial_when_other_workers_trials_come_between():
    from hydra_plugins.litplate_optuna_sweeper.optuna_sweeper import LitplateOptunaSweeper

    sweeper = LitplateOptunaSweeper(
        direction="minimize", study_name="s", storage=None, n_trials=3, n_jobs=3, seed=None,
        sampler=None, params={},
    )  # fmt: skip
    calls = []

    def launch(overrides: list, initial_job_idx: int) -> list[str]:
        calls.append((initial_job_idx, overrides))
        return [f"job {initial_job_idx + i}" for i in range(len(overrides))]

    sweeper.launcher = SimpleNamespace(launch=launch)
    # This worker asked for trials 3, 4 and 7; another worker's 5 and 6 came between.
    trials = [SimpleNamespace(number=number) for number in (3, 4, 7)]
    returns = sweeper._launch(trials, [["a=3"], ["a=4"], ["a=7"]])
    assert calls == [(3, [["a=3"], ["a=4"]]), (7, [["a=7"]])]
    assert returns == ["job 3", "job 4", "job 7"]


# A storage's errors stop the sweep before any job starts.


def test_a_postgresql_storage_without_its_driver_is_one_clear_error(tmp_path: Path, optuna_search):
    # A psycopg that cannot be imported, first on the path of a fresh process, stands for one not
    # installed.
    (tmp_path / "shadow" / "psycopg").mkdir(parents=True)
    (tmp_path / "shadow" / "psycopg" / "__init__.py").write_text(
        "raise ImportError(\"No module named 'psycopg'\")\n"
    )
    path = os.pathsep.join([str(tmp_path / "shadow"), os.environ.get("PYTHONPATH", "")])
    result = run_script(
        "train.py", "-m", *optuna_search,
        "hydra.sweeper.storage=postgresql+psycopg://optuna:secret@127.0.0.1:1/optuna",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        env={**os.environ, "PYTHONPATH": path}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines()[0] == (
        "hydra.sweeper.storage=postgresql+psycopg://optuna:***@127.0.0.1:1/optuna: its database "
        "driver psycopg is not installed: pip install -e '.[postgres]' (psycopg 3, for "
        "postgresql+psycopg:// URLs)"
    )
    assert not (tmp_path / "sweep").exists()


def test_an_unreachable_storage_is_one_clear_error(tmp_path: Path, entry_point, optuna_search):
    url = f"postgresql+psycopg://optuna@127.0.0.1:{free_port()}/optuna"  # nothing listens there
    result = entry_point(
        "train.py", "-m", *optuna_search, f"hydra.sweeper.storage={url}",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
    )  # fmt: skip
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    first = result.stderr.strip().splitlines()[0]
    assert first.startswith(f"hydra.sweeper.storage={url}: ") and "refused" in first, first


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server for the session: its URL without a database."""
    pytest.importorskip("psycopg", reason="the postgres extra: pip install -e '.[postgres]'")
    bin_dir = postgres_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl): .ci/run installs them")
    with postgres_server(bin_dir) as url:
        yield url


def start_worker(command: list[str], cwd: Path, name: str) -> subprocess.Popen:
    """`python scripts/train.py ...` in its own process, its output in `cwd/<name>.log`."""
    assert command[:2] == ["python", "scripts/train.py"]
    script = str(ROOT / "scripts" / "train.py")
    with (cwd / f"{name}.log").open("w") as log:
        return subprocess.Popen(
            [sys.executable, script, *command[2:]], cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        )


def finish(workers: dict[str, subprocess.Popen], cwd: Path, timeout: float = 240) -> dict:
    """Each worker's output, once all ended; each must exit 0."""
    deadline = time.monotonic() + timeout
    logs = {}
    for name, worker in workers.items():
        worker.wait(timeout=max(1, deadline - time.monotonic()))
        logs[name] = (cwd / f"{name}.log").read_text()
        assert worker.returncode == 0, (name, logs[name][-3000:])
    return logs


def launched(log: str) -> list[int]:
    """The job numbers a worker launched (Hydra's launcher logs `#N : overrides`)."""
    return [int(number) for number in re.findall(r"\t#(\d+) : ", log)]


def check_jobs(study, sweep_dir: Path, metric: str) -> None:
    """Job N is trial N: its directory holds that trial's parameters and, when it completed, the
    value Optuna was told; two jobs in one directory would fail this."""
    from hydra.core.override_parser.types import Transformer

    for trial in study.trials:
        job_dir = sweep_dir / str(trial.number)
        number, overrides, metrics, _ = read_job(job_dir)
        assert number == trial.number
        params = {f"{name}={Transformer.str(value)}" for name, value in trial.params.items()}
        assert params <= set(overrides), (trial.number, params, overrides)
        if trial.state.name == "COMPLETE":
            assert trial.value == metrics[metric] == read_metrics(job_dir)[metric]


@pytest.mark.slow
def test_workers_share_one_study_and_a_killed_workers_trial_fails(
    postgres: str, tmp_path: Path, tiny_overrides, optuna_search, optimized
):
    # One test, not three on a module fixture: pytest-xdist's worksteal could run such a fixture
    # once per process.
    url = create_database(postgres, "shared_study")
    shared_study = run_workers(worker(url, tiny_overrides, optuna_search), url, tmp_path)
    check_the_workers(shared_study, *optimized)
    check_the_killed_worker(shared_study)
    check_optuna_dashboard(shared_study)


def run_workers(command: list[str], url: str, cwd: Path) -> dict:
    """WORKERS + 1 workers started at once on one new database, `command` each; one of them,
    running a long trial, is killed with SIGKILL once every worker is running a trial."""
    sweep_dir = cwd / "logs" / "train" / "optuna" / STUDY
    long = replaced(command, "hydra.sweeper.n_trials=1", "trainer.max_epochs=100000")
    doomed = start_worker(long, cwd, "doomed")
    workers = {f"worker{i}": start_worker(command, cwd, f"worker{i}") for i in range(WORKERS)}

    def all_running() -> bool:
        logs = [(cwd / f"{name}.log").read_text() for name in ("doomed", *workers)]
        if not all(launched(log) for log in logs):
            return False
        train_log = sweep_dir / str(launched(logs[0])[0]) / "train.log"
        return train_log.exists() and "Run directory:" in train_log.read_text()

    try:
        wait_for(all_running, doomed)
        assert all(worker.poll() is None for worker in workers.values())  # they go on after it
        killed_at = datetime.now()
        doomed.kill()
        doomed.wait()
        logs = finish(workers, cwd)
    finally:  # a failed test leaves no worker behind
        for process in [doomed, *workers.values()]:
            if process.poll() is None:
                process.kill()
                process.wait()
    logs["doomed"] = (cwd / "doomed.log").read_text()
    return {
        "url": url, "sweep_dir": sweep_dir, "logs": logs, "killed_at": killed_at,
    }  # fmt: skip


def check_the_workers(shared_study: dict, metric: str, mode: str) -> None:
    import optuna

    url, sweep_dir, logs = shared_study["url"], shared_study["sweep_dir"], shared_study["logs"]
    study = optuna.load_study(study_name=STUDY, storage=url)
    trials = study.trials
    (killed,) = launched(logs["doomed"])
    # WORKERS x TRIALS, and the killed worker's one: TOTAL trials, each number once.
    assert sorted(trial.number for trial in trials) == list(range(TOTAL))
    jobs = {name: launched(log) for name, log in logs.items() if name != "doomed"}
    assert all(len(numbers) == TRIALS for numbers in jobs.values()), jobs
    ran = sorted(number for numbers in jobs.values() for number in numbers)
    assert sorted([*ran, killed]) == list(range(TOTAL))
    # The trials of the workers that were not killed completed; none is RUNNING.
    states = {trial.number: trial.state.name for trial in trials}
    assert states == {**dict.fromkeys(ran, "COMPLETE"), killed: "FAIL"}
    # Seeded by trial number: workers started together drew different values.
    assert len({tuple(sorted(trial.params.items())) for trial in trials}) == TOTAL

    numbered = sorted(int(d.name) for d in sweep_dir.iterdir() if d.name.isdigit())
    assert numbered == list(range(TOTAL))
    check_jobs(study, sweep_dir, metric)

    # The file the last worker wrote holds the study's best; each worker printed the study's best
    # trial when it ended: one of the trials, with its value, no better than the final best.
    best = yaml.safe_load((sweep_dir / "best_params.yaml").read_text())
    assert best["best_trial"] == study.best_trial.number and best["best_value"] == study.best_value
    assert best["best_params"] == study.best_params
    assert (best["trials"], best["completed"], best["failed"]) == (TOTAL, TOTAL - 1, 1)
    assert best["storage"] == url  # it has no password to hide
    for name in jobs:
        number, value = re.search(r"Best of \d+ trials: #(\d+), value (\S+),", logs[name]).groups()
        assert float(value) == trials[int(number)].value
        assert no_better(float(value), study.best_value, mode)
    rows = {int(row["job"]): row["status"] for row in read_summary(sweep_dir)}  # the last worker's
    assert rows == {**dict.fromkeys(ran, "completed"), killed: "failed"}


def check_the_killed_worker(shared_study: dict) -> None:
    import optuna

    study = optuna.load_study(study_name=STUDY, storage=shared_study["url"])
    (killed,) = launched(shared_study["logs"]["doomed"])
    failed = study.trials[killed]
    assert failed.state.name == "FAIL"
    # By Optuna's heartbeat mechanism: once its last heartbeat, about HEARTBEAT s before the kill
    # at the earliest, was GRACE s old; the others' trials, beating meanwhile, were never failed.
    stale = shared_study["killed_at"] + timedelta(seconds=GRACE - HEARTBEAT - 0.5)
    assert failed.datetime_complete >= stale
    message = f"Trial {killed} of another run: no heartbeat and no result, FAIL"
    assert any(message in log for log in shared_study["logs"].values())
    assert (shared_study["sweep_dir"] / str(killed) / "train.log").is_file()
    assert not (shared_study["sweep_dir"] / str(killed) / "metrics.json").exists()


def check_optuna_dashboard(shared_study: dict) -> None:
    import optuna

    url = shared_study["url"]
    # This interpreter's own, else the first on PATH (a venv may share another's packages).
    executable = shutil.which(
        "optuna-dashboard", path=str(Path(sys.executable).parent)
    ) or shutil.which("optuna-dashboard")
    assert executable, "optuna-dashboard: pip install -e '.[dashboard]'"
    port = free_port()
    server = subprocess.Popen(
        [executable, url, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        studies = get_json(f"http://127.0.0.1:{port}/api/studies", server)
        (summary,) = studies["study_summaries"]
        assert summary["study_name"] == STUDY
        detail = get_json(f"http://127.0.0.1:{port}/api/studies/{summary['study_id']}", server)
    finally:
        server.terminate()
        server.wait(timeout=30)
    study = optuna.load_study(study_name=STUDY, storage=url)
    served = {trial["number"]: trial for trial in detail["trials"]}
    assert sorted(served) == [trial.number for trial in study.trials]
    for trial in study.trials:
        assert served[trial.number]["state"] == trial.state.name.capitalize()
        assert served[trial.number].get("values") == (
            None if trial.value is None else [trial.value]
        )
        assert {p["name"] for p in served[trial.number]["params"]} == set(trial.params)
    assert [trial["number"] for trial in detail["best_trials"]] == [study.best_trial.number]


def get_json(url: str, server: subprocess.Popen, timeout: float = 60) -> dict:
    """GET `url` as JSON, retrying while the server starts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.loads(response.read())
        except OSError:
            assert server.poll() is None, server.stderr.read()[-3000:]
            assert time.monotonic() < deadline, f"{url}: no answer after {timeout} s"
            time.sleep(0.2)


def wait_for(condition, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, "the worker ended first"
        assert time.monotonic() < deadline, f"not after {timeout} s"
        time.sleep(0.1)
