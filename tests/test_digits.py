"""The classification example: `experiment=digits` (an MLP on data/digits.csv), and eval,
predict, export and a sweep on it (tests/test_csv.py tests its data module)."""

from __future__ import annotations

import csv
from pathlib import Path

import onnxruntime
import pytest
import torch

from litplate.evaluate import evaluate
from litplate.export import export
from litplate.predict import predict_to_csv
from litplate.train import train
from tests.helpers.runs import read_metrics, read_summary

QUIET = ["callbacks.progress_bar=null", "extras.print_config=false"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.helpers.project import make_cfg

    run_dir = tmp_path_factory.mktemp("digits")
    train(make_cfg("train", run_dir, ["experiment=digits", *QUIET]))
    return run_dir


@pytest.mark.slow
def test_digits_reaches_the_goal_and_eval_predict_export_work(digits_run: Path, cfg_factory):
    metrics = read_metrics(digits_run)
    assert metrics["test/acc"] >= 0.95 and metrics["test/f1"] >= 0.95, metrics
    assert {"val/acc", "val/f1", "test/loss"} <= metrics.keys()
    assert (digits_run / "predictions.png").stat().st_size > 10_000  # the confusion matrix
    ckpt = metrics["tested_checkpoint"]

    evaluated = evaluate(cfg_factory("eval", [f"ckpt_path={ckpt}"], name="eval"))
    assert evaluated["test/acc"] == pytest.approx(metrics["test/acc"])

    predictions = predict_to_csv(cfg_factory("predict", [f"ckpt_path={ckpt}"], name="predict"))
    with predictions.open() as file:
        rows = list(csv.DictReader(file))
    probabilities = [f"prob_{i}" for i in range(10)]
    assert list(rows[0])[-12:] == ["label", *probabilities, "target"]
    assert len(rows) == 179
    for row in rows:
        assert sum(float(row[name]) for name in probabilities) == pytest.approx(1, abs=1e-5)
        assert int(row["label"]) == max(range(10), key=lambda i: float(row[f"prob_{i}"]))
    assert all(row["target"].isdigit() for row in rows)  # class labels, written as integers
    right = sum(row["label"] == row["target"] for row in rows)
    assert right / len(rows) == pytest.approx(metrics["test/acc"])

    export_cfg = cfg_factory("export", [f"ckpt_path={ckpt}", "format=onnx"], name="export")
    info = export(export_cfg)
    assert info["input"]["shape"] == ["batch", 64] and info["output"]["shape"] == ["batch", 10]
    session = onnxruntime.InferenceSession(
        str(Path(export_cfg.paths.output_dir) / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    pixels = torch.tensor([[float(row[f"p{i}"]) for i in range(64)] for row in rows])
    (logits,) = session.run(None, {"x": pixels.numpy()})  # the file's raw pixels in
    assert list(logits.shape) == [len(rows), info["output"]["shape"][1]]
    assert logits.argmax(1).tolist() == [int(row["label"]) for row in rows]


@pytest.mark.slow
def test_a_digits_sweep_is_sorted_by_validation_accuracy(tmp_path: Path, entry_point):
    sweep_dir = tmp_path / "sweep"
    result = entry_point(
        "train.py", "-m", "experiment=digits", "trainer.max_epochs=2", *QUIET,
        "model.optimizer.lr=0.0001,0.005", f"hydra.sweep.dir={sweep_dir}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_summary(sweep_dir)
    assert list(rows[0])[3:6] == ["val/acc", "val/f1", "test/acc"]  # the experiment's columns
    accuracies = [float(row["val/acc"]) for row in rows]
    assert accuracies == sorted(accuracies, reverse=True) and accuracies[0] > accuracies[1]
    assert [row["job"] for row in rows] == ["1", "0"]  # the higher learning rate learns faster
    for row in rows:
        assert float(row["val/acc"]) == read_metrics(sweep_dir / row["job"])["val/acc"]


def test_an_optuna_search_maximizes_the_accuracy_and_the_summary_shows_it_first():
    from hydra import compose, initialize_config_dir

    from tests.helpers.project import CONFIG_DIR

    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        overrides = ["experiment=digits", "hparams_search=linear_optuna"]
        cfg = compose("train", overrides, return_hydra_config=True)
    summary = cfg.hydra.callbacks.sweep_summary
    assert cfg.hydra.sweeper.direction == "maximize"
    assert (summary.sort_by, summary.mode, list(summary.columns)) == (
        "val/acc", "max", ["val/f1", "test/acc"]
    )  # fmt: skip
