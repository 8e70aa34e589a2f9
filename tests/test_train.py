"""A training run's output contract, save & reload, eval and predict."""

from __future__ import annotations

import csv
import logging
import resource
import signal
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from safetensors.torch import load_file

from litplate.evaluate import evaluate
from litplate.predict import predict, predict_to_csv
from litplate.run.checkpoint import CheckpointError, load_checkpoint, model_from_checkpoint
from litplate.train import train, train_and_score
from tests.helpers.runs import one_clear_error, read_metrics


def test_the_run_learns_and_writes_its_artefacts(trained_run: Path, assert_learned):
    metrics = read_metrics(trained_run)
    assert_learned(metrics)
    assert {"val/loss", "test/loss"} <= metrics.keys()
    assert all(isinstance(v, float) for k, v in metrics.items() if k.startswith("test/"))
    best = Path(metrics["best_checkpoint"])
    assert best.is_file() and best.parent == trained_run / "checkpoints"
    assert (trained_run / "checkpoints" / "last.ckpt").is_file()
    assert (trained_run / "model.safetensors").is_file()
    assert (trained_run / "predictions.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_tensorboard_holds_the_losses_every_epoch_and_the_figure(trained_run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    metrics = read_metrics(trained_run)
    events = EventAccumulator(str(trained_run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    per_epoch = ["train/loss", *(key for key in metrics if key.startswith("val/"))]
    for tag in per_epoch:
        assert len(events.Scalars(tag)) == metrics["epochs"], tag  # one per epoch
    assert [e.value for e in events.Scalars("test/loss")] == [metrics["test/loss"]]
    from PIL import Image

    (image,) = events.Images("predictions")  # the saved PNG itself, as TensorBoard shows it
    with Image.open(trained_run / "predictions.png") as png:
        assert (image.width, image.height) == png.size


def test_every_checkpoint_loads_with_weights_only(trained_run: Path, tiny_parts):
    _, model = tiny_parts()
    checkpoints = sorted((trained_run / "checkpoints").glob("*.ckpt"))
    assert [path.name for path in checkpoints] == ["best.ckpt", "last.ckpt"]
    for path in checkpoints:
        checkpoint = torch.load(path, weights_only=True)
        assert checkpoint["state_dict"].keys() == model.state_dict().keys()
        hparams, stored = checkpoint["hyper_parameters"], checkpoint["run_config"]["model"]
        assert hparams["optimizer"] == stored["optimizer"] and hparams["loss"] == stored["loss"]


def test_reloaded_model_predicts_bit_identically(trained_run: Path):
    best = read_metrics(trained_run)["best_checkpoint"]
    from_checkpoint, run_config = model_from_checkpoint(best)
    X = instantiate(run_config["data"]).split("test")[0]
    # The class built from the checkpoint's hyper-parameters, as Lightning's loading does.
    from_safetensors = type(from_checkpoint)(**from_checkpoint.hparams)
    from_safetensors.load_state_dict(load_file(trained_run / "model.safetensors"))
    assert torch.equal(predict(from_safetensors, X), predict(from_checkpoint, X))


def test_eval_on_a_trained_checkpoint(trained_run: Path, cfg_factory, assert_learned):
    cfg = cfg_factory("eval", [f"ckpt_path={trained_run}/checkpoints/last.ckpt"], name="eval")
    metrics = evaluate(cfg)
    written = read_metrics(Path(cfg.paths.output_dir))
    assert written == metrics and "test/loss" in metrics
    assert_learned(metrics)


def test_eval_from_another_directory_tests_the_same_rows(
    trained_run: Path, cfg_factory, tmp_path: Path, monkeypatch
):
    # The stored data config (a file's absolute path, its statistics) rebuilds the test split.
    trained = read_metrics(trained_run)
    monkeypatch.chdir(tmp_path)
    cfg = cfg_factory("eval", [f"ckpt_path={trained['tested_checkpoint']}"], name="eval")
    evaluated = evaluate(cfg)
    tested = [key for key in trained if key.startswith("test/")]
    assert tested and all(evaluated[key] == pytest.approx(trained[key]) for key in tested)


def test_eval_data_can_be_changed(trained_run: Path, cfg_factory):
    ckpt = f"ckpt_path={trained_run}/checkpoints/last.ckpt"
    same = evaluate(cfg_factory("eval", [ckpt], name="same"))
    drawn = evaluate(cfg_factory("eval", [ckpt, "++data.split_seed=1"], name="drawn"))
    assert drawn["test/loss"] != same["test/loss"]  # other rows tested


def test_predict_writes_csv_and_plot(trained_run: Path, cfg_factory):
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    path = predict_to_csv(cfg_factory("predict", [f"ckpt_path={ckpt}"], name="pred"))
    with path.open() as file:
        rows = list(csv.DictReader(file))
    # The split's rows as the data has them, the model's columns, the target.
    model, run_config = model_from_checkpoint(ckpt)
    data = instantiate(run_config["data"])
    split = data.predict_split
    outputs = data.to_data_units(predict(model, data.split(split)[0]))
    columns = {k: v.tolist() for k, v in model.prediction_columns(outputs).items()}
    assert list(rows[0]) == [*data.feature_names, *columns, "target"]
    assert len(rows) == len(outputs)
    for name, values in [*columns.items(), ("target", data.raw_targets(split)[:, 0].tolist())]:
        assert [float(row[name]) for row in rows] == pytest.approx(values, abs=1e-6), name
    for i, name in enumerate(data.feature_names):
        got = [float(row[name]) for row in rows]
        assert got == pytest.approx(data.raw_inputs(split)[:, i].tolist(), abs=1e-6), name
        # Written as the data's float32 values read: their shortest text, no float64 noise.
        shortest = [str(value) for value in data.raw_inputs(split)[:, i].numpy()]
        assert [row[name] for row in rows] == shortest, name
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


def test_checkpoint_of_another_model_names_the_keys(short_run: Path, tmp_path: Path):
    checkpoint = load_checkpoint(short_run / "checkpoints" / "last.ckpt")
    first, *others = checkpoint["state_dict"]
    shape = tuple(checkpoint["state_dict"][first].shape)
    checkpoint["state_dict"] = {first: torch.zeros(3, *shape), "layer.weight": torch.zeros(1)}
    path = tmp_path / "other.ckpt"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError) as info:
        model_from_checkpoint(path)
    message = str(info.value)
    assert f"missing: {', '.join(sorted(others))}" in message
    assert "unexpected: layer.weight" in message
    assert f"mis-shaped: {first} {(3, *shape)} vs model {shape}" in message


def test_a_single_run_without_validation_ends_without_its_optimized_metric(
    cfg_factory, caplog, tiny_overrides
):
    # No val/loss to return: the run has written its files, and no sweeper waits for a value.
    overrides = [*tiny_overrides, "trainer.max_epochs=2", "+trainer.limit_val_batches=0"]
    cfg = cfg_factory(overrides=[*overrides, "callbacks.progress_bar=null"])
    with caplog.at_level(logging.WARNING, logger="litplate.train"):
        assert train_and_score(cfg) is None
    assert "val/loss" not in read_metrics(Path(cfg.paths.output_dir))
    # No validation, so no best.ckpt: the final weights are tested, and the log says so.
    assert "test_ckpt=best: the fit wrote no best checkpoint" in caplog.text


def test_a_plateau_schedule_steps_in_the_epochs_that_validate(cfg_factory, tiny_overrides):
    overrides = [*tiny_overrides, "model/scheduler=plateau", "trainer.max_epochs=4"]
    cfg = cfg_factory(overrides=[*overrides, "trainer.check_val_every_n_epoch=2"])
    cfg.callbacks.progress_bar = None
    metrics = train(cfg)
    assert metrics["epochs"] == 4 and "val/loss" in metrics


def test_last_checkpoint_holds_the_last_epoch_when_validating_every_other_epoch(
    cfg_factory, tiny_overrides
):
    overrides = [*tiny_overrides, "trainer.max_epochs=3", "trainer.check_val_every_n_epoch=2"]
    cfg = cfg_factory(overrides=[*overrides, "callbacks.progress_bar=null"])
    train(cfg)
    last = load_checkpoint(Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 2  # epoch 2 does not validate; it is the fit's last
    assert [epoch for epoch, _ in last["loss_history"]["train/loss"]] == [0, 1, 2]
    assert [epoch for epoch, _ in last["loss_history"]["val/loss"]] == [1]


def test_a_full_disk_while_tensorboard_writes_names_its_events_file(
    tmp_path: Path, entry_point, trained_run: Path, tiny_overrides
):
    run_dir = tmp_path / "run"
    # Over a checkpoint's size, under what the events of a fit of 300 epochs reach.
    limit = max(p.stat().st_size for p in (trained_run / "checkpoints").glob("*.ckpt")) + 10_000
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        result = entry_point(
            "train.py", *tiny_overrides, "trainer.max_epochs=300", "extras.print_config=false",
            "callbacks.progress_bar=null", "callbacks.model_summary=null",
            f"hydra.run.dir={run_dir}",
        )  # fmt: skip
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    (events,) = (run_dir / "tensorboard").glob("events.out.tfevents.*")
    assert events.stat().st_size <= limit
    one_clear_error(
        result, f"{events} not written: no space left on the device, or the file is too large"
    )
    assert "Exception in thread" not in result.stderr and ".ckpt" not in result.stderr


def test_resuming_from_the_weights_of_another_model_names_them(
    short_run: Path, tmp_path: Path, entry_point, short_overrides
):
    checkpoint = load_checkpoint(short_run / "checkpoints" / "last.ckpt")
    checkpoint["state_dict"] = {f"other.{k}": v for k, v in checkpoint["state_dict"].items()}
    path = tmp_path / "other.ckpt"
    torch.save(checkpoint, path)
    model = checkpoint["run_config"]["model"]["_target_"].rsplit(".", 1)[1]
    result = entry_point(
        "train.py", *short_overrides, f"ckpt_path={path}", f"hydra.run.dir={tmp_path}/r"
    )
    one_clear_error(result, f"{path} does not fit {model}", "missing: ", "unexpected: other.")
    assert not (tmp_path / "r" / "checkpoints").exists()
