"""The course's line: experiment=linear and its tutorial, its data and model, the line fitted to
a CSV; and what only the examples show: every example experiment's checkpoints evaluate and
predict, the example Optuna search's settings.

`make remove-examples` deletes this file with the examples; the tests of the machinery train the
run that tests/conftest.py's TINY names instead."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from torch import nn

from litplate.data import LinearDataModule
from litplate.data.standardize import Standardization
from litplate.evaluate import evaluate
from litplate.export import export
from litplate.models import LinearRegression
from litplate.predict import predict
from litplate.run.checkpoint import model_from_checkpoint
from litplate.run.validation import ConfigError
from litplate.train import train
from tests.helpers.project import CONFIG_DIR, ROOT, make_cfg
from tests.helpers.runs import QUIET, read_metrics

# --- the course's runs ---


def test_the_line_converges_and_tensorboard_holds_its_weight_and_bias(linear_run: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    metrics = read_metrics(linear_run)
    assert abs(metrics["weight"] - 0.7) < 0.01 and abs(metrics["bias"] - 0.3) < 0.01
    assert metrics["test/r2"] > 0.99
    events = EventAccumulator(str(linear_run / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    for tag in ("weight", "bias"):
        assert len(events.Scalars(tag)) == 300, tag  # one per epoch
    assert events.Scalars("weight")[-1].value == pytest.approx(metrics["weight"], abs=0.01)


def test_tutorial_reproduces_the_course(cfg_factory):
    cfg = cfg_factory(overrides=["experiment=linear_tutorial", "callbacks.progress_bar=null"])
    metrics = train(cfg)
    assert round(metrics["weight"], 4) == 0.5784
    assert round(metrics["bias"], 4) == 0.3513
    assert round(metrics["test/mae"], 4) == 0.0569
    written = read_metrics(Path(cfg.paths.output_dir))
    assert written.pop("tags") == metrics.pop("tags") == []  # approx compares numbers only
    assert written == pytest.approx(metrics)


def test_eval_of_the_line_on_shifted_data(linear_run: Path, cfg_factory):
    overrides = [f"ckpt_path={linear_run}/checkpoints/last.ckpt", "+data.bias=0.5"]
    metrics = evaluate(cfg_factory("eval", overrides, name="eval_shifted"))
    assert metrics["test/mae"] == pytest.approx(0.2, abs=0.01)


# --- LinearDataModule: the course's data ---


def test_defaults_are_the_courses_data():
    dm = LinearDataModule()
    assert dm.X.shape == (50, 1)
    torch.testing.assert_close(dm.X[:, 0], torch.arange(0, 1, 0.02))
    torch.testing.assert_close(dm.y, 0.7 * dm.X + 0.3)


@pytest.mark.parametrize("target", ["line", "sine"])
def test_the_data_is_the_formula_bit_for_bit(target):
    dm = LinearDataModule(
        start=-1, end=2, step=0.003, weight=-1.3, bias=0.4, noise_std=0.1, noise_seed=5,
        target=target,
    )  # fmt: skip
    X = torch.arange(-1, 2, 0.003).unsqueeze(1)
    curve = X if target == "line" else torch.sin(2 * math.pi * X)
    noise = 0.1 * torch.randn(X.shape, generator=torch.Generator().manual_seed(5))
    assert torch.equal(dm.X, X) and torch.equal(dm.y, -1.3 * curve + 0.4 + noise)


def test_noise_has_its_own_seed_and_leaves_the_global_rng_alone():
    torch.manual_seed(0)
    expected_next = torch.rand(1)
    torch.manual_seed(0)
    a = LinearDataModule(noise_std=0.1, noise_seed=3)
    assert torch.equal(torch.rand(1), expected_next)
    b = LinearDataModule(noise_std=0.1, noise_seed=3)
    c = LinearDataModule(noise_std=0.1, noise_seed=4)
    assert torch.equal(a.y, b.y) and not torch.equal(a.y, c.y)
    assert not torch.equal(a.y, 0.7 * a.X + 0.3)


def test_sine_target_bends_the_line():
    dm = LinearDataModule(target="sine", weight=1.0, bias=0.0, end=2.0)
    torch.testing.assert_close(dm.y, torch.sin(2 * torch.pi * dm.X))
    with pytest.raises(ValueError, match=r"^target='cosine': expected line or sine"):
        LinearDataModule(target="cosine")


@pytest.mark.parametrize(
    ("kwargs", "culprit"),
    [({"step": 0}, "step"), ({"step": -0.1}, "step"), ({"start": 1.0, "end": 1.0}, "end"),
     ({"step": 0.3}, "test_fraction"), ({"noise_std": -1}, "noise_std")],
)  # fmt: skip
def test_invalid_arguments_of_the_line_name_the_culprit(kwargs, culprit):
    with pytest.raises(ValueError, match=f"^{culprit}"):
        LinearDataModule(**kwargs)


def test_nan_in_the_data_is_refused_naming_the_argument(cfg_factory):
    # The data module's own check, its message prefixed with the config key.
    with pytest.raises(ConfigError, match="data: bias=nan: expected a finite number"):
        train(cfg_factory(overrides=["experiment=linear", "data.bias=nan"]))


# --- LinearRegression: the course's model ---


def test_random_start_matches_the_course():
    torch.manual_seed(42)
    model = LinearRegression()
    assert isinstance(model.weights, nn.Parameter) and model.weights.requires_grad
    assert isinstance(model.bias, nn.Parameter) and model.bias.requires_grad
    assert round(model.weights.item(), 4) == 0.3367
    assert round(model.bias.item(), 4) == 0.1288
    assert list(model.state_dict()) == ["weights", "bias"]


def test_forward_is_weights_times_x_plus_bias():
    model = LinearRegression()
    x = torch.arange(0, 1, 0.1).unsqueeze(1)
    assert torch.equal(model(x), model.weights * x + model.bias)


# --- the line on a CSV: the example file, and scikit-learn's diabetes data ---


DIABETES = ROOT / "tests" / "data" / "diabetes.csv"
DIABETES_FEATURES = ["age", "sex", "bmi", "bp", "s1", "s2", "s3", "s4", "s5", "s6"]


def test_weights_in_original_units_give_the_same_line():
    stats = Standardization.of([10.0, -2.0], [4.0, 0.5], target_mean=100.0)
    weights, bias = [3.0, -1.0], 7.0
    original, original_bias = stats.linear_in_original_units(weights, bias)
    X = torch.tensor([[11.0, 0.0], [2.0, -3.5]], dtype=torch.float64)
    model = stats.apply(X) @ torch.tensor(weights, dtype=torch.float64) + bias
    standardized = stats.uncenter(model)
    direct = X @ torch.tensor(original, dtype=torch.float64) + original_bias
    assert direct.tolist() == pytest.approx(standardized.tolist())


@pytest.mark.slow  # a full fit, then evaluation and prediction
def test_training_on_the_example_csv_learns_one_weight_per_feature_run_from_any_directory(
    cfg_factory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entry_point
):
    """Both of: the line learns one weight per feature of the example CSV; train.py finds the
    project's data/houses.csv launched from any directory (the path is stored absolute)."""
    from litplate.predict import predict_to_csv

    monkeypatch.chdir(tmp_path)  # neither the project root nor a directory holding data/
    overrides = ["experiment=linear", "data=csv", "callbacks.progress_bar=null"]
    result = entry_point("train.py", *overrides, "hydra.run.dir=run")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "run"
    metrics = read_metrics(run_dir)
    assert "weight/1" in metrics  # one weight per feature column
    # data/houses.csv: price = 0.8 * area + 0.15 * rooms + 0.2 + noise(0.02)
    assert abs(metrics["original_units/weight/0"] - 0.8) < 0.02
    assert abs(metrics["original_units/weight/1"] - 0.15) < 0.02
    assert abs(metrics["original_units/bias"] - 0.2) < 0.05 and metrics["test/r2"] > 0.99
    last = run_dir / "checkpoints" / "last.ckpt"
    for checkpoint in (run_dir / "checkpoints").glob("*.ckpt"):
        loaded = torch.load(checkpoint, weights_only=True)
        data = loaded["run_config"]["data"]
        assert loaded["state_dict"]["weights"].shape == (2,)
        assert loaded["run_config"]["model"]["n_features"] == 2
        assert data["path"] == str(ROOT / "data" / "houses.csv")  # stored absolute
        assert len(data["feature_mean"]) == len(data["feature_std"]) == 2
        assert all(type(v) is float for v in data["feature_mean"] + data["feature_std"])
        weights = loaded["state_dict"]["weights"].tolist()
        if checkpoint == last:  # the model parameters are in standard deviations of each feature
            assert weights[0] == pytest.approx(0.8 * data["feature_std"][0], rel=0.03)

    # Elsewhere: the stored absolute path and statistics rebuild the same test split.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    tested = metrics["tested_checkpoint"]
    evaluated = evaluate(cfg_factory("eval", [f"ckpt_path={tested}"], name="eval"))
    assert evaluated["test/loss"] == pytest.approx(metrics["test/loss"], rel=1e-6)
    assert evaluated["original_units/weight/0"] == metrics["original_units/weight/0"]
    predictions = predict_to_csv(cfg_factory("predict", [f"ckpt_path={tested}"], name="pred"))
    with predictions.open() as file:
        rows = list(csv.DictReader(file))
    with (ROOT / "data" / "houses.csv").open() as file:
        # As float32, the type the data is held in.
        houses = {(float(np.float32(r["area"])), float(r["rooms"])) for r in csv.DictReader(file)}
    assert len(rows) == 20 and list(rows[0]) == ["area", "rooms", "prediction", "target"]
    # The inputs as the file has them, not standardized; predictions close to the target.
    assert all((float(np.float32(r["area"])), float(r["rooms"])) in houses for r in rows)
    assert all(abs(float(r["prediction"]) - float(r["target"])) < 0.1 for r in rows)


def r2(y: np.ndarray, prediction: np.ndarray) -> float:
    return float(1 - ((y - prediction) ** 2).sum() / ((y - y.mean()) ** 2).sum())


@pytest.mark.slow
def test_raw_unscaled_csv_trains_as_well_as_least_squares_with_the_defaults(cfg_factory):
    """scikit-learn's diabetes data as published: ages in years, serum levels in the hundreds.

    Without standardization the defaults reach a test R² of 0.03 on it.
    """
    from hydra.utils import instantiate

    from litplate.train import train

    overrides = [
        "experiment=linear",
        "data=csv",
        f"data.path={DIABETES}",
        f"data.features=[{','.join(DIABETES_FEATURES)}]",
        "data.target=progression",
        "callbacks.progress_bar=null",
        "~logger",
    ]
    cfg = cfg_factory(overrides=overrides)
    metrics = train(cfg)
    dm = instantiate(cfg.data, _convert_="all")  # the run's split, and its stored statistics
    X = {s: np.c_[dm.raw_inputs(s).double().numpy(), np.ones(len(dm.raw_inputs(s)))] for s in
         ("train", "test")}  # fmt: skip
    y = {s: dm.raw_targets(s)[:, 0].double().numpy() for s in ("train", "test")}
    # Closed-form least squares on the file's values of the same training rows.
    least_squares = np.linalg.lstsq(X["train"], y["train"], rcond=None)[0]
    # The model as the line in original units it reports: the same test R² as Lightning measured.
    line = np.array([*(metrics[f"original_units/weight/{i}"] for i in range(10)),
                     metrics["original_units/bias"]])  # fmt: skip
    assert r2(y["test"], X["test"] @ line) == pytest.approx(metrics["test/r2"], abs=1e-4)
    # The goal: as good as least squares on the test rows (the L1 loss may do a little better),
    # and on the training rows, where least squares is the best any line can do, close to it.
    assert metrics["test/r2"] >= r2(y["test"], X["test"] @ least_squares) - 0.02
    train_r2 = r2(y["train"], X["train"] @ least_squares)
    assert train_r2 - 0.02 <= r2(y["train"], X["train"] @ line) <= train_r2


def test_the_line_on_the_example_csv_exports_with_its_feature_columns(tmp_path: Path):
    run = tmp_path / "run"
    csv = ROOT / "data" / "houses.csv"
    overrides = ["data=csv", f"data.path={csv}", "trainer.max_epochs=2", *QUIET, "~logger"]
    train(make_cfg("train", run, overrides))
    ckpt = run / "checkpoints" / "best.ckpt"
    info = export(make_cfg("export", tmp_path / "export", [f"ckpt_path={ckpt}", "format=onnx"]))
    assert info["input"]["features"] == ["area", "rooms"] and info["output"]["target"] == "price"
    assert info["input"]["standardization"]["inside_the_file"] is True
    session = onnxruntime.InferenceSession(
        str(tmp_path / "export" / "model.onnx"), providers=["CPUExecutionProvider"]
    )
    assert session.get_inputs()[0].shape == ["batch", 2]
    # The file takes the CSV's own values and gives prices, as predict.py writes them.
    model, run_config = model_from_checkpoint(ckpt)
    datamodule = instantiate(run_config["data"])
    expected = datamodule.to_data_units(predict(model, datamodule.split("test")[0]))
    (got,) = session.run(["y"], {"x": datamodule.raw_inputs("test").numpy()})
    np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-6)


# --- every example, and the example Optuna search ---


@pytest.mark.slow
@pytest.mark.parametrize(
    "experiment",
    [["experiment=linear"], ["experiment=linear_tutorial"], ["experiment=mlp"],
     ["experiment=linear", "data=csv"], ["experiment=linear_finetune", "model.init_from=FROM"]],
    ids=["linear", "tutorial", "mlp", "csv", "finetune"],
)  # fmt: skip
def test_honest_checkpoints_of_every_experiment_evaluate_and_predict(
    experiment, linear_run: Path, tmp_path: Path, entry_point
):
    overrides = [o.replace("FROM", str(linear_run / "model.safetensors")) for o in experiment]
    run = tmp_path / "run"
    result = entry_point(
        "train.py", *overrides, "trainer.max_epochs=3", "callbacks.progress_bar=null",
        f"hydra.run.dir={run}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    trained = json.loads((run / "metrics.json").read_text())
    ckpt = trained["tested_checkpoint"]
    for script, output in (("eval.py", "metrics.json"), ("predict.py", "predictions.csv")):
        out = tmp_path / script
        result = entry_point(script, f"ckpt_path={ckpt}", f"hydra.run.dir={out}")
        assert result.returncode == 0, result.stderr[-3000:]
        assert (out / output).is_file()
    evaluated = json.loads((tmp_path / "eval.py" / "metrics.json").read_text())
    assert evaluated["test/loss"] == pytest.approx(trained["test/loss"], rel=1e-5)


def test_hparams_search_selects_the_plugin_and_a_stable_sweep_dir():
    from hydra.core.plugins import Plugins
    from hydra.plugins.sweeper import Sweeper

    names = {plugin.__name__ for plugin in Plugins.instance().discover(Sweeper)}
    assert "LitplateOptunaSweeper" in names
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("train", ["hparams_search=linear_optuna"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("LitplateOptunaSweeper")
    assert sweeper.study_name == "linear_optuna" and sweeper.direction == "minimize"
    assert cfg.hydra.sweep.dir == "logs/train/optuna/linear_optuna"
    assert sweeper.storage == "sqlite:///logs/train/optuna/linear_optuna/optuna.db"
    assert cfg.hydra.callbacks.sweep_summary.sort_by == cfg.optimized_metric == "val/loss"
