"""Run conveniences: the config tree, tags, debug presets, configs/local, paths, coloured logs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from litplate.run.validation import ConfigError, validate
from litplate.train import train
from tests.helpers.project import CONFIG_DIR, ROOT
from tests.helpers.runs import read_metrics


def test_print_config_shows_the_tree_and_tags_are_recorded(
    tmp_path: Path, entry_point, tiny_overrides
):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    run_dir = tmp_path / "run"
    result = entry_point(
        "train.py",
        *tiny_overrides,
        "trainer.max_epochs=3",
        "extras.print_config=true",
        "tags=[course,first]",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    tree = result.stdout[: result.stdout.index("Run directory")]
    for branch in ("config", "├── data", "├── model", "├── trainer", "├── logger", "├── paths"):
        assert branch in tree
    assert "max_epochs: 3" in tree and f"output_dir: {run_dir}" in tree  # resolved
    assert "├── tags\n│   └── - course\n│       - first\n" in tree
    assert read_metrics(run_dir)["tags"] == ["course", "first"]

    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    data = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(data).session_start_info.hparams
    assert hparams["tags"].string_value == "course,first"


def test_print_config_is_on_for_the_cli_and_off_in_the_tests_compose(cfg_factory):
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        assert compose("train").extras.print_config is True
    assert cfg_factory().extras.print_config is False


@pytest.mark.parametrize(
    ("tags", "shown"), [("tags=course", "'course'"), ("tags=[course,1]", "['course', 1]")]
)
def test_tags_must_be_a_list_of_names(cfg_factory, tags: str, shown: str):
    with pytest.raises(ConfigError, match=re.escape(f"tags={shown}: expected a list of names")):
        validate(cfg_factory(overrides=[tags]))


def test_debug_profiler_writes_the_report_into_the_run_directory(cfg_factory, tiny_overrides):
    cfg = cfg_factory(overrides=[*tiny_overrides, "debug=profiler", "callbacks.progress_bar=null"])
    metrics = train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    assert metrics["epochs"] == 1
    fit = (run_dir / "fit-profile.txt").read_text()
    assert fit.startswith("FIT Profiler Report")
    for action in ("run_training_epoch", "run_training_batch", "Strategy.training_step"):
        assert action in fit
    assert (run_dir / "test-profile.txt").read_text().startswith("TEST Profiler Report")


def test_debug_overfit_trains_on_one_batch(cfg_factory, tiny_overrides):
    # Batches of 8 rows; overfit keeps only the first, unshuffled: one step an epoch.
    overrides = [*tiny_overrides, "debug=overfit", "trainer.max_epochs=3", "data.batch_size=8"]
    cfg = cfg_factory(overrides=[*overrides, "callbacks.progress_bar=null"])
    assert cfg.trainer.limit_train_batches == 1 and cfg.data.shuffle is False
    metrics = train(cfg)
    last = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert metrics["epochs"] == 3 and last["global_step"] == 3


def test_trainer_overfit_batches_keeps_whole_batches_in_order(
    cfg_factory, monkeypatch, tiny_overrides, tiny_parts
):
    # Lightning swaps any sampler but a SequentialSampler for a per-sample one, which litplate's
    # whole-batch loaders cannot use; theirs is kept, unshuffled: the first 8 rows every epoch.
    from litplate.data.tensors import BatchIndexSampler

    fetched = []
    batches = BatchIndexSampler.__iter__

    def spy(self):
        for batch in batches(self):
            fetched.append((self.size, batch.tolist()))
            yield batch

    monkeypatch.setattr(BatchIndexSampler, "__iter__", spy)
    overrides = [
        *tiny_overrides, "+trainer.overfit_batches=1", "trainer.max_epochs=3", "data.batch_size=8",
    ]  # fmt: skip
    cfg = cfg_factory(overrides=[*overrides, "data.shuffle=true", "callbacks.progress_bar=null"])
    metrics = train(cfg)
    assert metrics["epochs"] == 3
    last = torch.load(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3  # one whole batch a step
    training_rows = len(tiny_parts()[0].split("train")[0])
    assert training_rows > 8
    train_batches = [rows for size, rows in fetched if size == training_rows]
    assert train_batches == [list(range(8))] * 3


def test_debug_default_is_one_cpu_epoch_with_anomaly_detection(cfg_factory):
    cfg = cfg_factory(overrides=["trainer=gpu", "debug=default"])
    assert cfg.trainer.max_epochs == 1 and cfg.trainer.detect_anomaly is True
    assert cfg.trainer.accelerator == "cpu" and cfg.trainer.devices == 1
    assert cfg.paths.log_dir == "logs/debug"


def test_configs_local_default_applies_after_the_experiment_and_is_git_ignored(
    tmp_path: Path, tiny_overrides
):
    configs = shutil.copytree(CONFIG_DIR, tmp_path / "configs")
    (configs / "local" / "default.yaml").write_text(
        "# @package _global_\ntrainer:\n  max_epochs: 7\npaths:\n  data_dir: /mnt/data\n"
    )
    with initialize_config_dir(str(configs), version_base="1.3"):
        cfg = compose("train", overrides=tiny_overrides)
        assert cfg.trainer.max_epochs == 7 and cfg.paths.data_dir == "/mnt/data"
        # debug comes after local
        assert compose("train", overrides=["debug=limit"]).trainer.max_epochs == 3

    # The project's .gitignore in a repository of its own (a generated project may have none yet).
    repo = tmp_path / "repo"
    repo.mkdir()
    shutil.copy(ROOT / ".gitignore", repo / ".gitignore")
    subprocess.run(["git", "init", "-q", str(repo)], check=True)

    def ignored(path: str) -> bool:
        return subprocess.run(["git", "check-ignore", "-q", path], cwd=repo).returncode == 0

    assert ignored("configs/local/default.yaml") and ignored("configs/local/gpu_box.yaml")
    assert not ignored("configs/local/README.md")


def test_runs_find_their_data_from_any_directory_and_log_plain_text(
    tmp_path: Path, entry_point, monkeypatch: pytest.MonkeyPatch, short_overrides
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    result = entry_point("train.py", *short_overrides, "hydra.run.dir=run")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "run"  # hydra.run.dir and logs stay relative to the launch directory
    assert read_metrics(run_dir)["epochs"] == 3
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["run_config"]["paths"]["root_dir"] == str(ROOT)
    data_file = last["run_config"]["data"].get("path")
    if data_file is not None:  # a file's path is stored absolute: eval runs from anywhere
        assert Path(data_file).is_absolute() and Path(data_file).is_file()
    # hydra-colorlog: the log file is in the run directory, and nothing is coloured off a terminal
    log = (run_dir / "train.log").read_text()
    assert "[litplate.train][INFO] - Run directory:" in log
    # No colour codes (the progress bar may still move the cursor, as tqdm does in a pipe).
    assert not re.search(r"\x1b\[[0-9;]*m", log + result.stdout)
    assert not (tmp_path / "train.log").exists()


def test_console_logs_are_coloured_when_colour_is_on(
    tmp_path: Path, entry_point, monkeypatch, tiny_overrides
):
    monkeypatch.setenv("FORCE_COLOR", "1")  # colorlog's switch, as a terminal would turn it on
    result = entry_point(
        "train.py", *tiny_overrides, "debug=fdr", "extras.print_config=false",
        f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert "[\x1b[32mINFO\x1b[0m] - Run directory:" in result.stdout
    assert "├── data" not in result.stdout  # extras.print_config=false: no tree
    assert "\x1b[" not in (tmp_path / "train.log").read_text()


def test_paths_root_and_data_dir(cfg_factory):
    cfg = cfg_factory()
    assert cfg.paths.root_dir == str(ROOT) and cfg.paths.data_dir == str(ROOT / "data")
    cfg = cfg_factory(overrides=["data=csv", "paths.data_dir=/elsewhere"])
    assert cfg.data.path == "/elsewhere/houses.csv"


@pytest.mark.parametrize(
    ("option", "named"),
    [
        ("callbacks=early_stopping", "callbacks.early_stopping (monitor=val/loss) needs it"),
        ("model/scheduler=plateau", "ReduceLROnPlateau, which steps on val/loss) needs it"),
    ],
)
def test_what_watches_val_loss_in_a_run_without_validation_is_named(
    cfg_factory, option, named, tiny_overrides
):
    cfg = cfg_factory(overrides=[*tiny_overrides, option, "+trainer.limit_val_batches=0"])
    with pytest.raises(ConfigError, match=re.escape(named)):
        validate(cfg)
    validate(cfg_factory(overrides=[*tiny_overrides, option]))


def test_the_progress_bar_is_the_configured_one_or_none(cfg_factory, tiny_overrides):
    from lightning.pytorch.callbacks import TQDMProgressBar

    from litplate.run.builders import build_trainer

    cfg = cfg_factory(overrides=tiny_overrides)
    bar = build_trainer(cfg).progress_bar_callback
    assert isinstance(bar, TQDMProgressBar)
    assert bar.refresh_rate == cfg.callbacks.progress_bar.refresh_rate
    # null: no bar at all, not the default one Lightning adds when it finds none.
    off = cfg_factory(overrides=[*tiny_overrides, "callbacks.progress_bar=null"], name="off")
    assert build_trainer(off).progress_bar_callback is None
