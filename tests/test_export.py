"""Export for serving: each file, read back by its format's own client, predicts what the trained
Lightning model predicts (scripts/export.py, src/litplate/export.py)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from litplate.data.standardize import Standardization
from litplate.export import ExportError, InDataUnits, export, save_checked
from litplate.inference import predict
from litplate.models.linear import LinearRegression
from litplate.run.checkpoint import model_from_checkpoint
from litplate.train import train
from tests.helpers.project import ROOT, make_cfg
from tests.helpers.runs import QUIET

FILES = {
    "onnx": "model.onnx",
    "torchscript": "model.torchscript.pt",
    "pt2": "model.pt2",
    "safetensors": "model.safetensors",
}


@pytest.fixture(scope="module")
def checkpoints(linear_run: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    mlp_run = tmp_path_factory.mktemp("mlp_run")
    overrides = ["experiment=mlp", "trainer.max_epochs=20", *QUIET, "~logger"]
    train(make_cfg("train", mlp_run, overrides))
    runs = {"linear": linear_run, "mlp": mlp_run}
    return {name: run / "checkpoints" / "best.ckpt" for name, run in runs.items()}


def lightning_predictions(ckpt: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (the run's test split, then one row alone) and the Lightning model's predictions,
    both in the data's own units (a CSV's standardization undone), as predict.py writes them."""
    model, run_config = model_from_checkpoint(ckpt)
    datamodule = instantiate(run_config["data"])
    X, _ = datamodule.split("test")
    X, raw = torch.cat([X, X[:1]]), datamodule.raw_inputs("test")
    return torch.cat([raw, raw[:1]]), datamodule.to_data_units(predict(model, X))


def exported(ckpt: Path, fmt: str, out: Path) -> Path:
    info = export(make_cfg("export", out, [f"ckpt_path={ckpt}", f"format={fmt}"]))
    assert info["file"] == FILES[fmt]
    assert json.loads((out / "export.json").read_text()) == info
    assert info["max_abs_diff"] <= 1e-6
    return out / FILES[fmt]


@pytest.mark.parametrize("name", ["linear", "mlp"])
def test_onnx_file_runs_in_onnxruntime_as_the_model_predicts(checkpoints, name, tmp_path):
    import onnxruntime

    path = exported(checkpoints[name], "onnx", tmp_path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inputs,), (outputs,) = session.get_inputs(), session.get_outputs()
    assert (inputs.name, inputs.shape, outputs.name) == ("x", ["batch", 1], "y")
    X, expected = lightning_predictions(checkpoints[name])
    for rows in (X, X[:1]):  # the batch axis takes any size
        (got,) = session.run(["y"], {"x": rows.numpy()})
        assert got.dtype == np.float32 and got.shape == (len(rows), 1)
        np.testing.assert_allclose(got, expected[: len(rows)].numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["linear", "mlp"])
def test_torchscript_file_loads_in_torch_jit_as_the_model_predicts(checkpoints, name, tmp_path):
    path = exported(checkpoints[name], "torchscript", tmp_path)
    loaded = torch.jit.load(str(path))
    assert isinstance(loaded, torch.jit.ScriptModule)
    X, expected = lightning_predictions(checkpoints[name])
    with torch.inference_mode():
        for rows in (X, X[:1]):
            torch.testing.assert_close(loaded(rows), expected[: len(rows)], rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", ["linear", "mlp"])
def test_pt2_file_loads_in_torch_export_as_the_model_predicts(checkpoints, name, tmp_path):
    path = exported(checkpoints[name], "pt2", tmp_path)
    module = torch.export.load(str(path)).module()
    X, expected = lightning_predictions(checkpoints[name])
    with torch.inference_mode():
        for rows in (X, X[:1]):
            torch.testing.assert_close(module(rows), expected[: len(rows)], rtol=0, atol=1e-6)


def test_safetensors_file_holds_the_weights_and_export_json_the_model(checkpoints, tmp_path):
    from safetensors.torch import load_file

    path = exported(checkpoints["linear"], "safetensors", tmp_path)
    weights = load_file(path)
    assert sorted(weights) == ["bias", "weights"]
    assert abs(weights["weights"].item() - 0.7) < 0.01 and abs(weights["bias"].item() - 0.3) < 0.01
    info = json.loads((tmp_path / "export.json").read_text())
    rebuilt = instantiate(info["model"], _recursive_=False)
    rebuilt.load_state_dict(weights)
    X, expected = lightning_predictions(checkpoints["linear"])
    torch.testing.assert_close(predict(rebuilt, X), expected, rtol=0, atol=0)


def test_script_writes_into_a_run_directory_of_its_own(checkpoints, tmp_path, entry_point):
    result = entry_point(
        "export.py", f"ckpt_path={checkpoints['mlp']}", "format=pt2", f"paths.log_dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "export" / "runs").iterdir()
    info = json.loads((run_dir / "export.json").read_text())
    assert info["checkpoint"] == str(checkpoints["mlp"])
    assert info["input"] == {"name": "x", "shape": ["batch", 1], "dtype": "float32"}
    assert info["model"]["_target_"] == "litplate.models.MLPRegression"
    assert (run_dir / "model.pt2").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "ckpt_path is required, e.g. ckpt_path=logs/train/runs/RUN/checkpoints/best.ckpt"),
        (
            ["ckpt_path=x.ckpt", "format=tflite"],
            "format='tflite': expected one of onnx, torchscript, pt2, safetensors",
        ),
        (["ckpt_path=missing.ckpt", "format=pt2"], "checkpoint not found: missing.ckpt"),
    ],
)
def test_bad_arguments_exit_1_with_one_clear_line(tmp_path, entry_point, args, message):
    result = entry_point("export.py", *args, f"hydra.run.dir={tmp_path}")
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("model.*")) and not (tmp_path / "export.json").exists()


def test_missing_onnx_extra_is_named(checkpoints, tmp_path, entry_point, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    result = entry_point(
        "export.py", f"ckpt_path={checkpoints['linear']}", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode == 1
    assert (
        "format=onnx needs the onnx extra (onnxruntime is missing): pip install -e '.[onnx]'"
        in result.stderr
    )
    assert not list(tmp_path.glob("model.*"))


def test_a_file_that_does_not_reproduce_the_model_is_not_kept(checkpoints, tmp_path, monkeypatch):
    import litplate.export

    monkeypatch.setattr(
        litplate.export, "predict_with_file", lambda fmt, path, inputs, config: inputs * 0 + 1e3
    )
    cfg = make_cfg("export", tmp_path, [f"ckpt_path={checkpoints['linear']}", "format=pt2"])
    with pytest.raises(ExportError, match=r"model\.pt2: its predictions differ from the model's"):
        export(cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_csv_model_exports_with_its_feature_columns(tmp_path):
    import onnxruntime

    run = tmp_path / "run"
    csv = ROOT / "data" / "houses.csv"
    overrides = ["data=csv", f"data.path={csv}", "trainer.max_epochs=2", *QUIET, "~logger"]
    train(make_cfg("train", run, overrides))
    ckpt = run / "checkpoints" / "best.ckpt"
    path = exported(ckpt, "onnx", tmp_path / "export")
    info = json.loads((tmp_path / "export" / "export.json").read_text())
    assert info["input"]["features"] == ["area", "rooms"] and info["output"]["target"] == "price"
    assert info["input"]["standardization"]["inside_the_file"] is True
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == ["batch", 2]
    X, expected = lightning_predictions(ckpt)
    (got,) = session.run(["y"], {"x": X.numpy()})
    np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-6)


def read_back(fmt: str, path: Path) -> Callable[[torch.Tensor], Any]:
    """The file's predict function, as its format's own client loads it."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda x: session.run(["y"], {"x": x.numpy()})[0]
    if fmt == "torchscript":
        return torch.jit.load(str(path))
    return torch.export.load(str(path)).module()


REFUSALS = {
    "onnx": "invalid dimensions for input: x",
    "torchscript": "expected an input of shape (batch, {n}), got [{rows}, {width}]",
    "pt2": "Guard failed: x.size()[1] == {n}",
}


@pytest.mark.parametrize("fmt", list(REFUSALS))
@pytest.mark.parametrize(("n", "rows", "width"), [(1, 3, 2), (2, 2, 1)])
def test_each_file_refuses_an_input_of_the_wrong_width(fmt, n, rows, width, tmp_path):
    model = LinearRegression(n_features=n)
    if n == 2:  # standardized: (x - mean) / std would broadcast a column of one to two
        model = InDataUnits(model, Standardization.of([1.0, 2.0], [3.0, 4.0], 5.0))
    path = tmp_path / FILES[fmt]
    save_checked(model, fmt, path, {})
    predict_with = read_back(fmt, path)
    with torch.no_grad():
        assert tuple(predict_with(torch.rand(4, n)).shape) == (4, 1)
    with torch.no_grad(), pytest.raises(Exception) as refused:
        predict_with(torch.rand(rows, width))
    assert REFUSALS[fmt].format(n=n, rows=rows, width=width) in str(refused.value)


def doctored(ckpt: Path, out: Path, data: dict | None = None, **weights: float) -> Path:
    """A copy of `ckpt` with the stored data config updated by `data` and weights replaced."""
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    checkpoint["run_config"]["data"].update(data or {})
    for name, value in weights.items():
        checkpoint["state_dict"][name] = torch.full_like(checkpoint["state_dict"][name], value)
    torch.save(checkpoint, out)
    return out


STANDARDIZED = {"standardize": True, "feature_mean": [0.0], "target_mean": 0.0}


@pytest.mark.parametrize(
    ("data", "weights", "message"),
    [
        (
            {**STANDARDIZED, "feature_mean": [0.0, 0.0], "feature_std": [0, 1]},
            {},
            "bad.ckpt: the stored data.feature_mean=[0.0, 0.0], data.feature_std=[0, 1], "
            "data.target_mean=0.0: feature_std must be > 0, got [0.0, 1.0]",
        ),
        (
            {**STANDARDIZED, "feature_mean": [0.0, 0.0], "feature_std": [1.0, 1.0]},
            {},
            "bad.ckpt: its stored data.feature_mean=[0.0, 0.0] has 2 values for the model's "
            "1 features",
        ),
        (
            None,
            {"weights": float("nan"), "bias": float("inf")},
            "bad.ckpt: the weights hold NaN or infinite values in weights, bias; nothing was "
            "written",
        ),
    ],
    ids=["zero-std", "std-of-other-width", "nan-weights"],
)
def test_a_checkpoint_that_cannot_be_exported_is_one_clear_line(
    linear_run, tmp_path, entry_point, monkeypatch, data, weights, message
):
    monkeypatch.chdir(tmp_path)
    doctored(linear_run / "checkpoints" / "best.ckpt", tmp_path / "bad.ckpt", data, **weights)
    out = tmp_path / "out"
    result = entry_point("export.py", "ckpt_path=bad.ckpt", "format=pt2", f"hydra.run.dir={out}")
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr and "differ" not in result.stderr
    assert not list(out.glob("model.*")) and not (out / "export.json").exists()
