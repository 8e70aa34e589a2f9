"""Experiment trackers: runs of logger=mlflow and logger=wandb read back with each one's own client.

Both stay on this machine: MLflow writes a SQLite store under the log dir, W&B runs offline
(tests/conftest.py sets WANDB_MODE=offline and turns telemetry off).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from litplate.train import train
from tests.helpers.runs import read_metrics

RUN_FILES = {"model.safetensors", "predictions.png", "loss_curves.png", "metrics.json"}


@pytest.fixture(scope="module")
def short(tiny_overrides: list[str]) -> list[str]:
    """The tiny run, 4 epochs, tagged. test_ckpt=last: the last epoch's weights are the ones
    tested and written to metrics.json."""
    return [
        *tiny_overrides, "trainer.max_epochs=4", "model.optimizer.lr=0.1", "test_ckpt=last",
        "tags=[course,first]", "callbacks.progress_bar=null",
    ]  # fmt: skip


def per_epoch(metrics: dict) -> list[str]:
    """The values logged once an epoch: the losses and the validation metrics."""
    return ["train/loss", *(key for key in metrics if key.startswith("val/"))]


def numbers(metrics: dict) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if isinstance(v, int | float) and k != "seed"}


@pytest.mark.slow
def test_mlflow_run_is_read_back_by_mlflow_client(cfg_factory, tmp_path: Path, short):
    from mlflow import MlflowClient

    log_dir = tmp_path / "logs"
    cfg = cfg_factory(overrides=[*short, "logger=mlflow", f"paths.log_dir={log_dir}"])
    metrics = train(cfg)
    run_dir = Path(cfg.paths.output_dir)

    client = MlflowClient(f"sqlite:///{log_dir}/mlflow/mlflow.db")
    (run,) = client.search_runs([client.get_experiment_by_name("litplate").experiment_id])
    run_id = run.info.run_id
    assert run.info.status == "FINISHED"
    assert {"train/loss", "val/loss"} <= set(per_epoch(metrics))
    for key in per_epoch(metrics):
        assert len(client.get_metric_history(run_id, key)) == 4 == metrics["epochs"], key
    losses = [m.value for m in client.get_metric_history(run_id, "val/loss")]
    assert losses[-1] == metrics["val/loss"]
    assert run.data.metrics["test/loss"] == metrics["test/loss"]

    params = run.data.params
    assert params["model/optimizer/lr"] == "0.1" and params["trainer/max_epochs"] == "4"
    optimizer = cfg.model.optimizer._target_.rsplit(".", 1)[1]
    assert params["model/optimizer"] == optimizer
    assert params["tags"] == "course,first"
    assert {"course", "first"} <= set(run.data.tags)
    assert run.data.tags["run_dir"] == str(run_dir.resolve())

    assert {a.path for a in client.list_artifacts(run_id)} == RUN_FILES
    artifacts = Path(run.info.artifact_uri.removeprefix("file://"))
    assert artifacts.is_relative_to(log_dir / "mlflow" / "artifacts")
    assert json.loads((artifacts / "metrics.json").read_text()) == read_metrics(run_dir)
    assert (artifacts / "model.safetensors").read_bytes() == (
        run_dir / "model.safetensors"
    ).read_bytes()


def _wandb_inspect(path: Path, *options: str) -> str:
    """`wandb leet inspect`: W&B's own reader of a run's .wandb file."""
    result = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", *options, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return result.stdout


@pytest.mark.slow
def test_wandb_offline_run_is_read_back_from_its_files(
    cfg_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, short
):
    for name in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    cfg = cfg_factory(overrides=[*short, "logger=wandb"])
    metrics = train(cfg)
    run_dir = Path(cfg.paths.output_dir)

    (offline_run,) = run_dir.glob("wandb/offline-run-*")
    (wandb_file,) = offline_run.glob("run-*.wandb")
    records = [json.loads(line) for line in _wandb_inspect(wandb_file).splitlines()]
    history = [r["history"]["item"] for r in records if r["type"] == "history"]
    for key in per_epoch(metrics):
        assert len([row for row in history if key in row]) == 4 == metrics["epochs"], key
    assert [row["val/loss"] for row in history if "val/loss" in row][-1] == metrics["val/loss"]
    saved = {file["path"] for r in records if r["type"] == "files" for file in r["files"]["files"]}
    assert saved >= RUN_FILES

    run = json.loads(_wandb_inspect(wandb_file, "--summary"))
    assert run["state"] == "finished" and run["project"] == "litplate"
    assert run["tags"] == ["course", "first"]
    assert {"test/loss", "val/loss", "epochs"} <= numbers(metrics).keys()
    for key, value in numbers(metrics).items():
        assert run["summary"][key] == value, key
    assert run["config"]["model/optimizer/lr"] == 0.1
    assert run["config"]["tags"] == "course,first"
    assert run["config"]["run_dir"] == str(run_dir.resolve())
    files = offline_run / "files"
    assert json.loads((files / "metrics.json").read_text()) == read_metrics(run_dir)
    assert (files / "model.safetensors").read_bytes() == (
        run_dir / "model.safetensors"
    ).read_bytes()


@pytest.mark.parametrize(("user_set", "expected"), [(None, "true"), ("false", "false")])
def test_mlflow_telemetry_is_off_unless_the_user_set_it(
    user_set: str | None, expected: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from litplate.run.trackers import MissingExtraError, MLFlowLogger

    if user_set is None:
        monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY")
    else:
        monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", user_set)
    # mlflow's import starts its telemetry: the variable must be there before it (and is quick).
    monkeypatch.setitem(sys.modules, "mlflow", None)
    with pytest.raises(MissingExtraError):
        MLFlowLogger(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db")
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == expected


def test_wandb_online_without_an_api_key_is_one_clear_line(
    tmp_path: Path, entry_point, monkeypatch: pytest.MonkeyPatch
):
    for name in ("WANDB_API_KEY", "WANDB_MODE", "NETRC", "WANDB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc, no wandb settings
    args = ["logger=wandb", "logger.wandb.offline=false", "extras.print_config=false"]
    result = entry_point("train.py", *args, f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 1
    assert (
        "logger.wandb.offline=false needs a W&B API key: run `wandb login` or set WANDB_API_KEY;"
        " or keep logger.wandb.offline=true" in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()

    import wandb

    from litplate.run.trackers import WandbLogger

    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)  # a key: the logger is made (wandb.init waits)
    try:
        assert WandbLogger(save_dir=str(tmp_path / "w"), offline=False) is not None
    finally:
        wandb.teardown()  # wandb keeps this process's settings (online) until torn down


@pytest.mark.parametrize("tracker", ["mlflow", "wandb"])
def test_a_missing_tracker_names_its_extra(
    tracker: str, tmp_path: Path, entry_point, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setitem(sys.modules, tracker, None)  # import fails as if it were not installed
    result = entry_point(
        "train.py", f"logger={tracker}", "extras.print_config=false", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode == 1
    message = (
        f"logger={tracker} needs {tracker}, which is not installed: pip install -e '.[{tracker}]'"
    )
    assert message in result.stderr
    assert not (tmp_path / "metrics.json").exists() and not (tmp_path / "checkpoints").exists()


def test_logger_many_needs_no_extra_and_loggers_compose(cfg_factory):
    assert set(cfg_factory(overrides=["logger=many"]).logger) == {"tensorboard", "csv"}
    cfg = cfg_factory(overrides=["logger=[tensorboard,mlflow,wandb]", "tags=[a]"])
    assert set(cfg.logger) == {"tensorboard", "mlflow", "wandb"}
    assert cfg.logger.mlflow.tags == ["a"] and cfg.logger.wandb.tags == ["a"]
    assert cfg.logger.wandb.offline is True
    assert cfg.logger.mlflow.tracking_uri == f"sqlite:///{cfg.paths.log_dir}/mlflow/mlflow.db"
