"""A training run's output contract, the course's numbers, save & reload, eval and predict."""

from __future__ import annotations

import csv
import logging
import resource
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from litplate.data import LinearDataModule
from litplate.evaluate import evaluate
from litplate.inference import predict
from litplate.models import LinearRegression
from litplate.predict import predict_to_csv
from litplate.run.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from litplate.train import train, train_and_score
from tests.helpers.runs import one_clear_error, read_metrics


def test_linear_run_converges_and_writes_its_artefacts(linear_run: Path):
    metrics = read_metrics(linear_run)
    assert abs(metrics["weight"] - 0.7) < 0.01
    assert abs(metrics["bias"] - 0.3) < 0.01
    for key in ("test/loss", "test/mae", "test/mse", "test/r2"):
        assert isinstance(metrics[key], float)
    assert metrics["test/r2"] > 0.99
    best = Path(metrics["best_checkpoint"])
    assert best.is_file() and best.parent == linear_run / "checkpoints"
    assert (linear_run / "checkpoints" / "last.ckpt").is_file()
    assert (linear_run / "model.safetensors").is_file()
    assert (linear_run / "predictions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tensorboard_holds_weight_bias_losses_and_the_figure(linear_run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(linear_run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    for tag in ("weight", "bias", "train/loss", "val/loss", "val/mae", "val/mse", "val/r2"):
        assert len(events.Scalars(tag)) == 300, tag  # one per epoch
    assert [e.value for e in events.Scalars("test/loss")] == [read_metrics(linear_run)["test/loss"]]
    weights = [e.value for e in events.Scalars("weight")]
    assert abs(weights[-1] - 0.7) < 0.01
    from PIL import Image

    (image,) = events.Images("predictions")  # the saved PNG itself, as TensorBoard shows it
    with Image.open(linear_run / "predictions.png") as png:
        assert (image.width, image.height) == png.size == (1000, 700)


def test_every_checkpoint_loads_with_weights_only(linear_run: Path):
    checkpoints = sorted((linear_run / "checkpoints").glob("*.ckpt"))
    assert len(checkpoints) == 2
    for path in checkpoints:
        checkpoint = torch.load(path, weights_only=True)
        assert set(checkpoint["state_dict"]) == {"weights", "bias"}
        assert checkpoint["run_config"]["model"]["optimizer"]["momentum"] == 0.9


def test_reloaded_model_predicts_bit_identically(linear_run: Path):
    X = LinearDataModule().split("test")[0]
    trained = LinearRegression()
    trained.load_state_dict(load_file(linear_run / "model.safetensors"))
    y_preds = predict(trained, X)
    assert abs(trained.weights.item() - read_metrics(linear_run)["weight"]) == 0

    from_safetensors = LinearRegression()
    from_safetensors.load_state_dict(load_file(linear_run / "model.safetensors"))
    best = read_metrics(linear_run)["best_checkpoint"]
    from_checkpoint = LinearRegression()
    from_checkpoint.load_state_dict(load_checkpoint(best)["state_dict"])
    for loaded_model in (from_safetensors, from_checkpoint):
        loaded_model_preds = predict(loaded_model, X)
        assert torch.equal(y_preds, loaded_model_preds)


def test_tutorial_reproduces_the_course(cfg_factory):
    cfg = cfg_factory(overrides=["experiment=linear_tutorial", "callbacks.progress_bar=null"])
    metrics = train(cfg)
    assert round(metrics["weight"], 4) == 0.5784
    assert round(metrics["bias"], 4) == 0.3513
    assert round(metrics["test/mae"], 4) == 0.0569
    written = read_metrics(Path(cfg.paths.output_dir))
    assert written.pop("tags") == metrics.pop("tags") == []  # approx compares numbers only
    assert written == pytest.approx(metrics)


def test_eval_on_a_trained_checkpoint(linear_run: Path, cfg_factory):
    cfg = cfg_factory("eval", [f"ckpt_path={linear_run}/checkpoints/last.ckpt"], name="eval")
    metrics = evaluate(cfg)
    written = read_metrics(Path(cfg.paths.output_dir))
    assert written == metrics
    last = load_checkpoint(linear_run / "checkpoints" / "last.ckpt")["state_dict"]
    assert metrics["weight"] == last["weights"].item()
    assert metrics["test/r2"] > 0.99 and metrics["test/loss"] < 0.01


def test_eval_data_can_be_changed(linear_run: Path, cfg_factory):
    overrides = [f"ckpt_path={linear_run}/checkpoints/last.ckpt", "+data.bias=0.5"]
    metrics = evaluate(cfg_factory("eval", overrides, name="eval_shifted"))
    assert metrics["test/mae"] == pytest.approx(0.2, abs=0.01)


def test_predict_writes_csv_and_plot(linear_run: Path, cfg_factory):
    cfg = cfg_factory("predict", [f"ckpt_path={linear_run}/checkpoints/last.ckpt"], name="pred")
    path = predict_to_csv(cfg)
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 10
    assert float(rows[0]["input"]) == pytest.approx(0.8)
    for row in rows:
        assert float(row["prediction"]) == pytest.approx(0.7 * float(row["input"]) + 0.3, abs=0.01)
    assert (path.parent / "predictions.png").is_file()


@pytest.mark.parametrize("config_name", ["eval", "predict"])
def test_missing_checkpoint_is_a_clear_error(cfg_factory, config_name, tmp_path):
    cfg = cfg_factory(config_name, [f"ckpt_path={tmp_path}/nope.ckpt"])
    run = evaluate if config_name == "eval" else predict_to_csv
    with pytest.raises(CheckpointError, match=r"checkpoint not found: .*nope\.ckpt"):
        run(cfg)
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()


def test_garbage_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "garbage.ckpt"
    path.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match=r"garbage\.ckpt: not a checkpoint") as info:
        load_checkpoint(path)
    assert "weights_only=False" not in str(info.value)


def test_checkpoint_of_another_model_names_the_keys(linear_run: Path, tmp_path: Path):
    checkpoint = load_checkpoint(linear_run / "checkpoints" / "last.ckpt")
    checkpoint["state_dict"] = {"weights": torch.zeros(3), "layer.weight": torch.zeros(1)}
    path = tmp_path / "other.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError) as info:
        model_from_checkpoint(path)
    message = str(info.value)
    assert "missing: bias" in message
    assert "unexpected: layer.weight" in message
    assert "mis-shaped: weights (3,) vs model (1,)" in message


def test_a_single_run_without_validation_ends_without_its_optimized_metric(cfg_factory, caplog):
    # No val/loss to return: the run has written its files, and no sweeper waits for a value.
    overrides = ["experiment=linear", "trainer.max_epochs=2", "+trainer.limit_val_batches=0"]
    cfg = cfg_factory(overrides=[*overrides, "callbacks.progress_bar=null"])
    with caplog.at_level(logging.WARNING, logger="litplate.train"):
        assert train_and_score(cfg) is None
    assert "val/loss" not in read_metrics(Path(cfg.paths.output_dir))
    # No validation, so no best.ckpt: the final weights are tested, and the log says so.
    assert "test_ckpt=best: the fit wrote no best checkpoint" in caplog.text


def test_a_plateau_schedule_steps_in_the_epochs_that_validate(cfg_factory):
    overrides = ["experiment=linear", "model/scheduler=plateau", "trainer.max_epochs=4"]
    cfg = cfg_factory(overrides=[*overrides, "trainer.check_val_every_n_epoch=2"])
    cfg.callbacks.progress_bar = None
    metrics = train(cfg)
    assert metrics["epochs"] == 4 and "val/loss" in metrics


def test_last_checkpoint_holds_the_last_epoch_when_validating_every_other_epoch(cfg_factory):
    overrides = ["experiment=linear", "trainer.max_epochs=3", "trainer.check_val_every_n_epoch=2"]
    cfg = cfg_factory(overrides=[*overrides, "callbacks.progress_bar=null"])
    train(cfg)
    last = load_checkpoint(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 2  # epoch 2 does not validate; it is the fit's last
    assert [epoch for epoch, _ in last["loss_history"]["train/loss"]] == [0, 1, 2]
    assert [epoch for epoch, _ in last["loss_history"]["val/loss"]] == [1]


def test_a_full_disk_while_tensorboard_writes_names_its_events_file(tmp_path: Path, entry_point):
    run_dir = tmp_path / "run"
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    # Over a checkpoint's size (about 29 kB), under what the fit's events reach.
    resource.setrlimit(resource.RLIMIT_FSIZE, (40_000, hard))
    try:
        result = entry_point(
            "train.py", "experiment=linear", "trainer.max_epochs=300", "extras.print_config=false",
            "callbacks.progress_bar=null", "callbacks.model_summary=null",
            f"hydra.run.dir={run_dir}",
        )  # fmt: skip
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    (events,) = (run_dir / "tensorboard").glob("events.out.tfevents.*")
    assert events.stat().st_size <= 40_000
    one_clear_error(
        result, f"{events} not written: no space left on the device, or the file is too large"
    )
    assert "Exception in thread" not in result.stderr and ".ckpt" not in result.stderr
