"""Step 5, experimentation: sweeps and their summary, TensorBoard HParams, the Optuna search."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
import zipfile
from itertools import product
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hydra_plugins.litplate_optuna_sweeper.optuna_sweeper import _finite, search_space
from litplate.run.checkpoint import load_checkpoint
from litplate.run.run_directory import lock_run_directory
from litplate.run.sweep import summarize, sweep_failure, write_summary
from tests.helpers.project import CONFIG_DIR, ROOT
from tests.helpers.runs import digests, one_clear_error, read_metrics, read_summary
from tests.helpers.scripts import run_script

# A job the data module refuses as it is built: every TensorDataModule checks its batch size.
REFUSED = (
    "ConfigError: invalid config: data: "
    "batch_size=0: expected an integer >= 1, or null (full batch)"
)


def numbers(metrics: dict) -> dict[str, float]:
    """The numbers of a metrics.json: what a summary row shows of a completed job."""
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) and k != "seed"}


def table_jobs(stdout: str) -> list[int]:
    """The job numbers of the printed summary's rows, top to bottom."""
    table = stdout[stdout.index("Sweep summary:") :].splitlines()
    cells = (line.split("│")[1].strip() for line in table if line.startswith("│"))
    return [int(cell) for cell in cells if cell]


# --- the summary -------------------------------------------------------------------------------


def _fake_job(sweep_dir: Path, num: int, overrides: list[str], metrics=None, error=None) -> None:
    job_dir = sweep_dir / str(num)
    (job_dir / ".hydra").mkdir(parents=True)
    hydra_cfg = {"hydra": {"job": {"num": num}, "overrides": {"task": overrides}}}
    (job_dir / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra_cfg))
    if metrics is not None:
        (job_dir / "metrics.json").write_text(json.dumps(metrics))
    if error is not None:
        (job_dir / "failure.json").write_text(json.dumps({"error": error}))


def test_summary_rows_are_sorted_best_first_with_failures_last(tmp_path: Path):
    metrics = {"val/mae": 0.7, "score": 0.3, "best_checkpoint": "x.ckpt", "epochs": 5}
    _fake_job(tmp_path, 0, ["lr=0.1"], {**metrics, "val/loss": 0.5})
    _fake_job(tmp_path, 1, ["lr=0"], error="ValueError: lr must be > 0")
    _fake_job(tmp_path, 2, ["lr=0.01"], {**metrics, "val/loss": 0.1})
    _fake_job(tmp_path, 3, ["lr=0.2"])  # killed: neither metrics.json nor failure.json
    (tmp_path / "4" / ".hydra").mkdir(parents=True)
    (tmp_path / "4" / ".hydra" / "hydra.yaml").write_text("")  # killed as Hydra wrote it

    rows = summarize(tmp_path, "val/loss", "min")
    assert [row["job"] for row in rows] == [2, 0, 1, 3, 4]
    assert [row["status"] for row in rows] == [*["completed"] * 2, *["failed"] * 3]
    assert rows[2]["error"] == "ValueError: lr must be > 0"
    assert "did not finish" in rows[3]["error"]
    assert rows[4]["error"] == "killed as it started (.hydra/hydra.yaml is incomplete)"
    shutil.rmtree(tmp_path / "4")
    rows = rows[:4]
    assert "best_checkpoint" not in rows[0]  # numbers only
    assert [row["job"] for row in summarize(tmp_path, "val/loss", "max")] == [0, 2, 1, 3]

    written = write_summary(rows, tmp_path / "summary.csv", "val/loss", ["val/mae", "score"])
    header = written.read_text().splitlines()[0].split(",")
    assert header[:6] == ["job", "status", "overrides", "val/loss", "val/mae", "score"]
    assert header[-2:] == ["error", "dir"]
    assert [row["dir"] for row in read_summary(tmp_path)] == ["2", "0", "1", "3"]


def test_a_failing_job_is_summarised_as_failed_and_the_others_run(
    tmp_path: Path, entry_point, short_overrides
):
    sweep_dir = tmp_path / "sweep"
    args = (
        "train.py", "-m", *short_overrides, "data.batch_size=0,8", f"hydra.sweep.dir={sweep_dir}",
    )  # fmt: skip
    result = entry_point(*args)
    # A grid sweep with a failed job exits 1 once all jobs ran, naming the job in one line.
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"Sweep failed: 1 of 2 jobs failed: #0 (data.batch_size=0) {REFUSED} "
        f"(summary: {sweep_dir / 'summary.csv'})"
    )
    rows = {row["job"]: row for row in read_summary(sweep_dir)}
    assert rows.keys() == {"0", "1"}

    failed, completed = rows["0"], rows["1"]
    assert failed["status"] == "failed"
    assert failed["overrides"] == " ".join([*short_overrides, "data.batch_size=0"])
    assert failed["error"] == REFUSED
    assert failed["val/loss"] == ""
    assert "Traceback" in json.loads((sweep_dir / "0" / "failure.json").read_text())["traceback"]
    assert not (sweep_dir / "0" / "metrics.json").exists()

    metrics = read_metrics(sweep_dir / "1")
    assert completed["status"] == "completed" and completed["error"] == ""
    assert {"val/loss", "test/loss", "epochs"} <= numbers(metrics).keys()
    for name, value in numbers(metrics).items():
        assert float(completed[name]) == value, name
    assert table_jobs(result.stdout) == [1, 0]

    # The same sweep again into its directory: refused up front, every file as it was.
    before = digests(sweep_dir)
    again = entry_point(*args)
    assert again.returncode == 1
    assert again.stderr.strip().splitlines() == [
        f"Error: {sweep_dir} already holds a sweep (0/failure.json, 1/checkpoints, "
        "1/metrics.json, 1/model.safetensors, summary.csv): nothing was written. Choose another "
        "hydra.sweep.dir (by default each sweep gets its own)"
    ]
    assert digests(sweep_dir) == before


@pytest.mark.slow
def test_a_grid_sweep_with_a_failed_job_exits_non_zero_after_every_job(
    tmp_path: Path, short_overrides
):
    # A real `python scripts/train.py -m`: job 1 fails at run time (no config rule checks
    # data.batch_size; the data module refuses 0), jobs 0 and 2 complete.
    sweep_dir = tmp_path / "sweep"
    result = run_script(
        "train.py", "-m", *short_overrides, "data.batch_size=8,0,16",
        f"hydra.sweep.dir={sweep_dir}", timeout=600,
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.strip() == (
        f"Sweep failed: 1 of 3 jobs failed: #1 (data.batch_size=0) {REFUSED} "
        f"(summary: {sweep_dir / 'summary.csv'})"
    )
    rows = {row["job"]: row for row in read_summary(sweep_dir)}
    assert {job: row["status"] for job, row in rows.items()} == {
        "0": "completed", "1": "failed", "2": "completed",
    }  # fmt: skip
    for job in ("0", "2"):
        assert float(rows[job]["val/loss"]) == read_metrics(sweep_dir / job)["val/loss"]


def test_a_live_sweep_holds_its_directory(tmp_path: Path, entry_point, short_overrides):
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    lock = lock_run_directory(sweep_dir)  # as a sweep in progress holds it
    try:
        result = entry_point(
            "train.py", "-m", *short_overrides, "seed=1,2", f"hydra.sweep.dir={sweep_dir}"
        )
    finally:
        lock.close()
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {sweep_dir}: another run is writing into this directory now; nothing was written"
    ]
    assert sorted(p.name for p in sweep_dir.iterdir()) == [".run.lock"]


def test_a_continued_study_never_runs_a_job_in_a_directory_holding_a_run(
    tmp_path: Path, entry_point, short_overrides
):
    import optuna

    # A new study (another storage) in a directory whose job 0 holds an earlier study's run: the
    # new study numbers its first trial 0 too.
    sweep_dir, storage = tmp_path / "sweep", f"sqlite:///{tmp_path}/other.db"
    _fake_job(sweep_dir, 0, ["lr=0.1"], {"val/loss": 0.5})
    before = (sweep_dir / "0" / "metrics.json").read_bytes()
    result = entry_point(
        "train.py", "-m", *short_overrides, "hydra/sweeper=litplate_optuna",
        "hydra.sweeper.n_trials=1", "data.batch_size=choice(8, 16)",
        f"hydra.sweeper.storage={storage}", f"hydra.sweep.dir={sweep_dir}",
    )  # fmt: skip
    assert result.returncode == 1
    # The sweeper claims each trial's directory before it launches the job.
    assert (
        f"{sweep_dir / '0'} already holds a job, not one of study 'litplate' in {storage}: "
        "choose another hydra.sweeper.study_name or hydra.sweep.dir"
    ) in result.stderr.splitlines()
    assert "Traceback" not in result.stderr
    assert (sweep_dir / "0" / "metrics.json").read_bytes() == before
    assert sorted(p.name for p in (sweep_dir / "0").iterdir()) == [".hydra", "metrics.json"]
    trials = optuna.load_study(study_name="litplate", storage=storage).trials
    assert [(trial.number, trial.state.name) for trial in trials] == [(0, "FAIL")]


def test_a_sweep_fails_by_its_sweepers_rule():
    def row(job: int, status: str, size: str) -> dict:
        error = REFUSED if status == "failed" else ""
        overrides = f"seed=1 data.batch_size={size}"
        return {
            "job": job,
            "status": status,
            "overrides": overrides,
            "error": error,
            "dir": str(job),
        }

    ok, bad = row(0, "completed", "8"), row(1, "failed", "0")
    assert sweep_failure([ok], grid=True) is None
    assert sweep_failure([ok, bad], grid=True) == (
        f"Sweep failed: 1 of 2 jobs failed: #1 (data.batch_size=0) {REFUSED}"
    )
    # A search: a failed trial is a result; it fails only when none of this run's completed.
    assert sweep_failure([ok, bad], grid=False) is None
    assert sweep_failure([bad], grid=False) == (
        "Search failed: none of the 1 trials of this run completed: "
        f"#1 (seed=1 data.batch_size=0) {REFUSED}"
    )
    # A continued study: job 0 completed in an earlier invocation, this one's only trial failed.
    assert sweep_failure([ok, bad], grid=False, earlier_jobs={"0"}).startswith(
        "Search failed: none of the 1 trials of this run completed: #1"
    )
    assert sweep_failure([ok], grid=False, earlier_jobs={"0"}) is None  # nothing ran: no failure


def test_an_optuna_search_with_no_completed_trial_exits_non_zero(
    tmp_path: Path, entry_point, short_overrides
):
    import optuna

    sweep_dir = tmp_path / "sweep"
    result = entry_point(
        "train.py", "-m", *short_overrides, "hydra/sweeper=litplate_optuna",
        "data.batch_size=choice(0, -1)", "hydra.sweeper.n_trials=2",
        f"hydra.sweep.dir={sweep_dir}",
    )  # fmt: skip
    assert result.returncode == 1, result.stderr[-3000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith("Search failed: none of the 2 trials of this run completed: #")
    assert message.count(": expected an integer >= 1, or null (full batch)") == 2
    rows = read_summary(sweep_dir)
    assert [row["status"] for row in rows] == ["failed", "failed"]
    # The failed jobs are failed trials.
    study = optuna.load_study(study_name="litplate", storage=f"sqlite:///{sweep_dir}/optuna.db")
    assert [trial.state for trial in study.trials] == [optuna.trial.TrialState.FAIL] * 2


@pytest.mark.slow
def test_a_grid_sweep_leaves_a_sorted_summary(
    tmp_path: Path, entry_point, tiny_overrides, optimized
):
    # The README's sweep (learning rates x epoch counts), smaller; test/loss shown second.
    sweep_dir = tmp_path / "sweep"
    result = entry_point(
        "train.py", "-m", *tiny_overrides, "model.optimizer.lr=0.001,0.1",
        "trainer.max_epochs=2,3", "callbacks.progress_bar=null", "summary_columns=[test/loss]",
        f"hydra.sweep.dir={sweep_dir}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_summary(sweep_dir)
    assert len(rows) == 4
    assert sorted(int(row["job"]) for row in rows) == list(range(4))
    assert {row["overrides"] for row in rows} == {
        " ".join([*tiny_overrides, f"model.optimizer.lr={lr}", f"trainer.max_epochs={epochs}",
                  "callbacks.progress_bar=null", "summary_columns=[test/loss]"])
        for lr, epochs in product(["0.001", "0.1"], ["2", "3"])
    }  # fmt: skip
    assert all(row["status"] == "completed" for row in rows)
    metric, mode = optimized
    assert list(rows[0])[3:5] == [metric, "test/loss"]  # the optimized metric, then the columns
    values = [float(row[metric]) for row in rows]
    assert values == sorted(values, reverse=mode == "max")
    for row in rows:
        metrics = read_metrics(sweep_dir / row["dir"])
        for name, value in numbers(metrics).items():
            assert float(row[name]) == value, name
    assert table_jobs(result.stdout) == [int(row["job"]) for row in rows]


# --- TensorBoard HParams -----------------------------------------------------------------------


def test_tensorboard_holds_the_hparams_and_final_metrics(trained_run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    events = EventAccumulator(str(trained_run / "tensorboard"))
    events.Reload()
    content = {
        tag: plugin_data_pb2.HParamsPluginData.FromString(data)
        for tag, data in events.PluginTagToContent("hparams").items()
    }
    hparams = content["_hparams_/session_start_info"].session_start_info.hparams
    run = load_checkpoint(trained_run / "checkpoints" / "last.ckpt")["run_config"]
    optimizer = run["model"]["optimizer"]
    # A class is shown by its name, each of its settings by its own key.
    assert hparams["model/optimizer"].string_value == optimizer["_target_"].rsplit(".", 1)[1]
    assert hparams["model/optimizer/lr"].number_value == optimizer["lr"]
    assert hparams["trainer/max_epochs"].number_value == run["trainer"]["max_epochs"]
    assert hparams["seed"].number_value == run["seed"]
    assert hparams["data"].string_value == run["data"]["_target_"].rsplit(".", 1)[1]
    scheduler, batch_size = run["model"].get("scheduler"), run["data"].get("batch_size")
    if scheduler:
        assert hparams["model/scheduler"].string_value == scheduler["_target_"].rsplit(".", 1)[1]
    if "batch_size" in run["data"]:
        shown = hparams["data/batch_size"]
        if batch_size is None:  # full batch: null, shown as text
            assert shown.string_value == "None"
        else:
            assert shown.number_value == batch_size

    experiment = content["_hparams_/experiment"].experiment
    metric_tags = {info.name.tag for info in experiment.metric_infos}
    metrics = numbers(read_metrics(trained_run))
    assert {"val/loss", "test/loss"} <= metrics.keys()
    assert {f"hp/{name}" for name in metrics} <= metric_tags
    for name, value in metrics.items():
        (event,) = events.Scalars(f"hp/{name}")
        assert event.value == pytest.approx(value, rel=1e-6), name


# --- the Optuna sweeper ------------------------------------------------------------------------


def test_the_search_space_parses_hydra_sweep_syntax():
    params = {
        "model.optimizer.lr": "tag(log, interval(1e-4, 1e-1))",
        "model/optimizer": "choice(sgd, adam)",
        "trainer.max_epochs": "range(50, 350, step=50)",
        "seed": 7,
    }
    space, fixed = search_space(OverridesParser.create(), params, ["tags=[a]"])
    assert space == {
        "model.optimizer.lr": FloatDistribution(1e-4, 1e-1, log=True),
        "model/optimizer": CategoricalDistribution(["sgd", "adam"]),
        "trainer.max_epochs": IntDistribution(50, 300, step=50),  # range excludes its stop
    }
    assert fixed == ["seed=7", "tags=[a]"]

    # The command line replaces an entry: fixed, or searched over other values.
    space, fixed = search_space(
        OverridesParser.create(), params, ["trainer.max_epochs=5", "seed=choice(1, 2)"]
    )
    assert "trainer.max_epochs" not in space and space["seed"] == CategoricalDistribution([1, 2])
    assert fixed == ["trainer.max_epochs=5"]


def test_non_finite_values_are_failed_trials():
    # A failed job is a failed trial: test_an_optuna_search_with_no_completed_trial_exits_non_zero
    assert _finite(0.25) == 0.25
    for value in (math.nan, math.inf, None, "x"):
        assert _finite(value) is None


def test_the_sweeper_plugin_is_found_and_chosen_by_its_name():
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    names = {plugin.__name__ for plugin in Plugins.instance().discover(Sweeper)}
    assert "LitplateOptunaSweeper" in names
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", ["hydra/sweeper=litplate_optuna"], return_hydra_config=True)
    assert cfg.hydra.sweeper._target_.endswith("LitplateOptunaSweeper")
    assert cfg.hydra.sweeper.study_name == "litplate"


def best_of(values: list[float], mode: str) -> float:
    return max(values) if mode == "max" else min(values)


@pytest.mark.slow
def test_an_optuna_study_is_continued_from_its_storage(
    tmp_path: Path, entry_point, monkeypatch, tiny_overrides, optuna_search, optimized
):
    import optuna

    monkeypatch.chdir(tmp_path)  # the storage is relative: sweep/optuna.db
    args = [
        *tiny_overrides,
        *optuna_search,
        "trainer.max_epochs=choice(3, 5)",
        "hydra.sweep.dir=sweep",
    ]
    first = entry_point("train.py", "-m", *args, "hydra.sweeper.n_trials=3")
    assert first.returncode == 0, first.stderr[-3000:]
    second = entry_point("train.py", "-m", *args, "hydra.sweeper.n_trials=2")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "3 earlier trials, 2 more" in second.stdout + second.stderr

    # The default storage: sqlite in the sweep dir, the study named litplate.
    sweep_dir = tmp_path / "sweep"
    study = optuna.load_study(study_name="litplate", storage="sqlite:///sweep/optuna.db")
    trials, (metric, mode) = study.trials, optimized
    assert [trial.number for trial in trials] == [0, 1, 2, 3, 4]
    assert all(trial.state == optuna.trial.TrialState.COMPLETE for trial in trials)
    assert trials[3].params != trials[0].params  # the resumed sampler did not start over
    for trial in trials:  # job N is trial N
        assert trial.value == read_metrics(sweep_dir / str(trial.number))[metric]
        assert trial.params["model/optimizer"] in ("sgd", "adam")
        assert 1e-4 <= trial.params["model.optimizer.lr"] <= 1e-1
        assert trial.params["trainer.max_epochs"] in (3, 5)

    best = yaml.safe_load((sweep_dir / "best_params.yaml").read_text())
    assert best["trials"] == 5 and best["best_trial"] == study.best_trial.number
    assert best["best_value"] == best_of([trial.value for trial in trials], mode)
    assert best["best_params"] == study.best_params
    assert "Best of 5 trials" in second.stdout + second.stderr
    summary = read_summary(sweep_dir)
    assert len(summary) == 5 and float(summary[0][metric]) == best["best_value"]


@pytest.mark.slow
def test_a_built_wheel_ships_the_plugin_in_the_hydra_plugins_namespace(tmp_path: Path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("litplate-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "hydra_plugins/litplate_optuna_sweeper/optuna_sweeper.py" in names
    assert "hydra_plugins/__init__.py" not in names  # a namespace shared with other plugins


@pytest.mark.slow
def test_a_failing_job_is_a_failed_trial(tmp_path: Path, entry_point, short_overrides):
    import optuna

    sweep_dir = tmp_path / "sweep"
    result = entry_point(
        "train.py", "-m", *short_overrides,
        "hydra/sweeper=litplate_optuna", "data.batch_size=choice(0, 16)",
        "hydra.sweeper.n_trials=4", "hydra.sweeper.seed=0", f"hydra.sweep.dir={sweep_dir}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    study = optuna.load_study(study_name="litplate", storage=f"sqlite:///{sweep_dir}/optuna.db")
    states = {trial.params["data.batch_size"]: set() for trial in study.trials}
    for trial in study.trials:
        states[trial.params["data.batch_size"]].add(trial.state)
    assert states == {0: {optuna.trial.TrialState.FAIL}, 16: {optuna.trial.TrialState.COMPLETE}}
    best = yaml.safe_load((sweep_dir / "best_params.yaml").read_text())
    assert best["best_params"] == {"data.batch_size": 16} and best["failed"] >= 1
    for row in read_summary(sweep_dir):
        failed = row["overrides"].endswith("data.batch_size=0")  # the trial's params come last
        assert row["status"] == ("failed" if failed else "completed")


# --- killed sweeps -----------------------------------------------------------------------------


def _wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert process.poll() is None, f"the sweep ended before {what}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.05)


def _kill(process: subprocess.Popen) -> list[int]:
    """SIGKILL `process`, as a lost SSH session would; returns the pids of its children."""
    children = subprocess.run(
        ["pgrep", "-P", str(process.pid)], capture_output=True, text=True
    ).stdout.split()
    process.kill()
    process.wait()
    return [int(pid) for pid in children]


@pytest.mark.slow
def test_a_killed_optuna_study_is_reconciled_when_continued(
    tmp_path: Path, entry_point, monkeypatch, tiny_overrides, optuna_search, optimized
):
    import optuna

    # Two trials per round: job 0 finishes and writes metrics.json while trial 0 waits for job 1
    # to be told, so a kill during job 1 leaves both RUNNING.
    command = [
        sys.executable, str(ROOT / "scripts" / "train.py"), "-m", *tiny_overrides, *optuna_search,
        "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=2", "trainer.max_epochs=100",
        "hydra.sweeper.heartbeat_interval=1", "hydra.sweeper.grace_period=2",
        "hydra.sweep.dir=sweep", "hydra.sweeper.study_name=killed",
    ]  # fmt: skip
    sweep_dir = tmp_path / "sweep"
    storage = f"sqlite:///{sweep_dir / 'optuna.db'}"
    log = (tmp_path / "first.log").open("w")
    first = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    _wait_for(
        lambda: (
            (sweep_dir / "0" / "metrics.json").exists()
            and (sweep_dir / "1" / ".hydra" / "overrides.yaml").exists()
        ),
        first,
        "job 1 running after job 0 finished",
    )
    _kill(first)
    study = optuna.load_study(study_name="killed", storage=storage)
    assert [trial.state.name for trial in study.trials] == ["RUNNING", "RUNNING"]

    # The same study continues, in this process (its new jobs need not be long).
    shorter = [arg.replace("max_epochs=100", "max_epochs=5") for arg in command[2:]]
    monkeypatch.chdir(tmp_path)
    second = entry_point("train.py", *shorter)
    assert second.returncode == 0, second.stderr[-3000:]
    trials = optuna.load_study(study_name="killed", storage=storage).trials
    states = {trial.number: trial.state.name for trial in trials}
    assert states == {0: "COMPLETE", 1: "FAIL", 2: "COMPLETE", 3: "COMPLETE"}
    metric, mode = optimized
    assert trials[0].value == read_metrics(sweep_dir / "0")[metric]  # counted with its value
    assert "Trial 0 of another run: its job finished" in second.stdout

    # best_params.yaml and summary.csv agree with the study.
    best = yaml.safe_load((sweep_dir / "best_params.yaml").read_text())
    assert (best["trials"], best["completed"], best["failed"]) == (4, 3, 1)
    assert best["best_value"] == best_of([t.value for t in trials if t.value is not None], mode)
    rows = {row["job"]: row for row in read_summary(sweep_dir)}
    assert {job: row["status"] for job, row in rows.items()} == {
        "0": "completed", "1": "failed", "2": "completed", "3": "completed",
    }  # fmt: skip
    assert float(rows["0"][metric]) == trials[0].value


@pytest.mark.slow
def test_joblib_workers_stop_after_their_job_when_the_sweep_is_killed(
    tmp_path: Path, tiny_overrides
):
    sweep_dir = tmp_path / "sweep"
    command = [
        sys.executable, str(ROOT / "scripts" / "train.py"), "-m", "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2", *tiny_overrides, "trainer.max_epochs=50",
        "callbacks.progress_bar=null", "seed=1,2,3,4,5,6", f"hydra.sweep.dir={sweep_dir}",
    ]  # fmt: skip
    log = (tmp_path / "sweep.log").open("w")
    sweep = subprocess.Popen(command, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)

    def training(job: str) -> bool:
        train_log = sweep_dir / job / "train.log"
        return train_log.exists() and "Run directory:" in train_log.read_text()

    _wait_for(lambda: training("0") and training("1"), sweep, "two jobs training")
    workers = _kill(sweep)
    assert len(workers) >= 2  # the loky workers (and resource trackers)

    deadline = time.monotonic() + 300
    while any(Path(f"/proc/{pid}").exists() for pid in workers):
        assert time.monotonic() < deadline, "joblib workers outlived the sweep by 300 s"
        time.sleep(0.5)
    # Each worker finished the job it was running, and started no other.
    assert all((sweep_dir / job / "metrics.json").is_file() for job in ("0", "1"))
    assert not any((sweep_dir / job / "metrics.json").exists() for job in "2345")
    for job in ("0", "1"):
        assert "The sweep's process is gone: this worker stops" in (
            (sweep_dir / job / "train.log").read_text()
        )


def _jobs_in_the_sweeps_own_process() -> None:
    from litplate.run.sweep import StopOrphanedWorkers

    guard = StopOrphanedWorkers()
    guard.on_multirun_start(config=None)
    for _ in range(2):  # the basic launcher: each job in the sweep's process
        guard.on_job_start(config=None)
        guard.on_job_end(config=None)


def test_a_sweep_run_in_a_multiprocessing_child_is_not_taken_for_an_orphan():
    import multiprocessing

    # The sweep's process was started by multiprocessing, whose parent is alive and not the sweep
    # (forked: a spawned child would spend seconds importing what this process has imported).
    child = multiprocessing.get_context("fork").Process(target=_jobs_in_the_sweeps_own_process)
    child.start()
    child.join(timeout=120)
    assert child.exitcode == 0


def test_an_optuna_study_continues_only_with_its_metric_and_direction(
    tmp_path: Path, entry_point, short_overrides, optuna_search, optimized
):
    import optuna

    metric, mode = optimized
    sweep_dir = tmp_path / "sweep"
    sweep_dir.mkdir()
    storage = f"sqlite:///{sweep_dir}/optuna.db"
    # A study from before the metric was recorded adopts the one its next run optimizes.
    optuna.create_study(storage=storage, study_name="litplate", direction=f"{mode}imize")
    args = ["-m", *short_overrides, *optuna_search, "trainer.max_epochs=choice(2, 3)"]
    args += ["hydra.sweeper.n_trials=1", f"hydra.sweep.dir={sweep_dir}"]
    first = entry_point("train.py", *args)
    assert first.returncode == 0, first.stderr[-3000:]
    assert optuna.load_study(study_name="litplate", storage=storage).user_attrs == {
        "optimized_metric": metric
    }
    before = digests(sweep_dir)
    other_mode = {"min": "max", "max": "min"}[mode]
    for change, error in [
        (
            "optimized_metric=train/loss",
            f"optimizes optimized_metric={metric}, not train/loss: continue it with "
            f"optimized_metric={metric}, or start another with hydra.sweeper.study_name",
        ),
        (
            f"hydra.sweeper.direction={other_mode}imize",
            f"was created to {mode}imize, not to {other_mode}imize",
        ),
    ]:
        result = entry_point("train.py", *args, change)
        one_clear_error(result, f"study 'litplate' in {storage} {error}")
        assert digests(sweep_dir) == before, change  # no trial ran: the database is unchanged


def test_another_workers_trial_is_left_running_before_its_job_has_started(tmp_path: Path):
    import optuna

    from hydra_plugins.litplate_optuna_sweeper.optuna_sweeper import LitplateOptunaSweeper

    sweeper = LitplateOptunaSweeper(
        direction="minimize", study_name="s", storage=None, n_trials=1, n_jobs=1, seed=None,
        sampler=None, params={}, heartbeat_interval=1, grace_period=1,
    )  # fmt: skip
    sweeper.config = {"optimized_metric": "val/loss"}
    study = optuna.create_study()
    # Another worker has just asked for it: no parameter suggested yet, no job directory, or one
    # its claim created before Hydra wrote the job's .hydra.
    asked, claimed = study.ask(), study.ask()
    (tmp_path / str(claimed.number)).mkdir()
    sweeper._reconcile(study, tmp_path)
    assert [trial.state.name for trial in study.trials] == ["RUNNING", "RUNNING"]
    asked.suggest_float("x", 0, 1)  # still its worker's to run and tell
