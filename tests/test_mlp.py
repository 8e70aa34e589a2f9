"""The MLP example: a model beyond the straight line, on data a straight line cannot fit."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest
import torch
from torch import nn

from litplate.evaluate import evaluate
from litplate.export import export
from litplate.models import LinearRegression, LitModel, MLPRegression
from litplate.predict import predict_to_csv
from litplate.train import train
from tests.helpers.project import make_cfg
from tests.helpers.runs import QUIET, one_clear_error, read_metrics


def test_architecture_comes_from_config():
    model = MLPRegression(
        hidden_sizes=[8, 4], activation={"_target_": "torch.nn.ReLU"}, dropout=0.1
    )
    assert isinstance(model, LitModel)
    kinds = [type(layer) for layer in model.net]
    assert kinds == [nn.Linear, nn.ReLU, nn.Dropout, nn.Linear, nn.ReLU, nn.Dropout, nn.Linear]
    assert [model.net[0].out_features, model.net[3].out_features, model.net[6].out_features] == [
        8,
        4,
        1,
    ]
    assert model(torch.zeros(5, 1)).shape == (5, 1)
    assert model.hparams.hidden_sizes == [8, 4] and model.hparams.dropout == 0.1
    assert not any(isinstance(layer, nn.Dropout) for layer in MLPRegression(dropout=0.0).net)


@pytest.mark.parametrize(
    ("kwargs", "culprit"),
    [
        ({"hidden_sizes": []}, "hidden_sizes"),
        ({"hidden_sizes": [0]}, "hidden_sizes"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_invalid_architecture_names_the_argument(kwargs, culprit):
    with pytest.raises(ValueError, match=f"^{culprit} must be"):
        MLPRegression(**kwargs)


@pytest.mark.parametrize("model", [LinearRegression, MLPRegression])
def test_unknown_model_argument_is_an_error(model):
    with pytest.raises(TypeError, match="unexpected keyword argument 'lossfn'"):
        model(lossfn={"_target_": "torch.nn.MSELoss"})


def test_only_the_linear_model_reports_weight_and_bias():
    torch.manual_seed(42)
    line = LinearRegression()
    assert line.reported_values() == {"weight": line.weights.item(), "bias": line.bias.item()}
    assert MLPRegression().reported_values() == {}


@pytest.mark.slow
def test_mlp_fits_the_sine_that_the_linear_model_cannot(cfg_factory):
    mlp_cfg = cfg_factory(overrides=["experiment=mlp", *QUIET], name="mlp")
    mlp = train(mlp_cfg)
    linear = train(cfg_factory(overrides=["experiment=mlp", "model=linear", *QUIET], name="line"))

    assert mlp["test/r2"] > 0.95
    assert linear["test/r2"] < 0.5
    assert "weight" not in mlp and "weight" in linear
    run_dir = Path(mlp_cfg.paths.output_dir)
    for picture in ("predictions.png", "loss_curves.png"):
        assert (run_dir / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # eval and predict rebuild the MLP from its checkpoint alone.
    ckpt = read_metrics(run_dir)["tested_checkpoint"]
    evaluated = evaluate(cfg_factory("eval", [f"ckpt_path={ckpt}"], name="eval"))
    assert evaluated["test/r2"] == pytest.approx(mlp["test/r2"])
    assert "weight" not in evaluated
    path = predict_to_csv(cfg_factory("predict", [f"ckpt_path={ckpt}"], name="predict"))
    rows = list(csv.DictReader(path.open()))
    assert len(rows) == 40  # the test fifth of 200 points
    errors = [abs(float(r["prediction"]) - math.sin(2 * math.pi * float(r["input"]))) for r in rows]
    assert sum(errors) / len(errors) < 0.1
    assert (path.parent / "predictions.png").is_file()


def test_resuming_another_model_names_the_weights(linear_run: Path, tmp_path: Path, entry_point):
    ckpt = linear_run / "checkpoints" / "last.ckpt"
    result = entry_point(
        "train.py", "experiment=linear", "model=mlp", f"ckpt_path={ckpt}",
        f"hydra.run.dir={tmp_path}/r",
    )  # fmt: skip
    one_clear_error(result, f"{ckpt} does not fit MLPRegression", "missing: ")
    assert not (tmp_path / "r" / "checkpoints").exists()


@pytest.mark.parametrize("fmt", ["onnx", "torchscript", "pt2"])
def test_the_mlp_exports_and_its_file_predicts_as_it_does(mlp_run: Path, fmt: str, tmp_path):
    """Layers, activations and dropout (off in eval): export reads each file back with its own
    client and compares its predictions with the model's."""
    ckpt = mlp_run / "checkpoints" / "best.ckpt"
    info = export(make_cfg("export", tmp_path, [f"ckpt_path={ckpt}", f"format={fmt}"]))
    assert info["max_abs_diff"] <= 1e-6 and (tmp_path / info["file"]).is_file()
    assert info["input"]["shape"] == info["output"]["shape"] == ["batch", 1]
    assert info["model"]["_target_"] == "litplate.models.MLPRegression"


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("mlp_run")
    overrides = ["experiment=mlp", "trainer.max_epochs=20", "model.dropout=0.1", *QUIET, "~logger"]
    train(make_cfg("train", run_dir, overrides))
    return run_dir
