"""The course's line (experiment=linear and its tutorial), and what only the examples show: every
example experiment's checkpoints evaluate and predict, the example Optuna search's settings.

The tests of the machinery train the run that tests/conftest.py's TINY names instead."""

from __future__ import annotations

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
from litplate.export import export
from litplate.inference import predict
from litplate.models import LinearRegression
from litplate.run.checkpoint import model_from_checkpoint
from litplate.run.validation import ConfigError
from litplate.train import train
from tests.helpers.project import CONFIG_DIR, ROOT, make_cfg
from tests.helpers.runs import QUIET, read_metrics


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


def test_the_line_learns_the_example_csv_run_from_any_directory(
    tmp_path: Path, entry_point, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(tmp_path)  # data=csv's path, data/houses.csv, is the project's
    result = entry_point("train.py", "data=csv", "trainer.max_epochs=2", "hydra.run.dir=run")
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "run"
    assert "weight/1" in read_metrics(run_dir)  # one weight per feature column
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["run_config"]["data"]["path"] == str(ROOT / "data" / "houses.csv")


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
    with pytest.raises(ValueError, match=r"^target must be one of"):
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
    with pytest.raises(ConfigError, match="data: bias must be a finite number, got bias=nan"):
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
