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
from litplate.export import ExportError, InDataUnits, export, n_features_of, save_checked
from litplate.predict import predict
from litplate.run.checkpoint import load_checkpoint, model_from_checkpoint
from tests.helpers.project import make_cfg

FILES = {
    "onnx": "model.onnx",
    "torchscript": "model.torchscript.pt",
    "pt2": "model.pt2",
    "safetensors": "model.safetensors",
}


@pytest.fixture(scope="module")
def ckpt(trained_run: Path) -> Path:
    return trained_run / "checkpoints" / "best.ckpt"


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


def test_onnx_file_runs_in_onnxruntime_as_the_model_predicts(ckpt, tmp_path):
    import onnxruntime

    path = exported(ckpt, "onnx", tmp_path)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inputs,), (outputs,) = session.get_inputs(), session.get_outputs()
    X, expected = lightning_predictions(ckpt)
    assert (inputs.name, inputs.shape, outputs.name) == ("x", ["batch", X.shape[1]], "y")
    for rows in (X, X[:1]):  # the batch axis takes any size
        (got,) = session.run(["y"], {"x": rows.numpy()})
        assert got.dtype == np.float32 and got.shape == (len(rows), expected.shape[1])
        np.testing.assert_allclose(got, expected[: len(rows)].numpy(), rtol=0, atol=1e-6)


def test_torchscript_file_loads_in_torch_jit_as_the_model_predicts(ckpt, tmp_path):
    path = exported(ckpt, "torchscript", tmp_path)
    loaded = torch.jit.load(str(path))
    assert isinstance(loaded, torch.jit.ScriptModule)
    X, expected = lightning_predictions(ckpt)
    with torch.inference_mode():
        for rows in (X, X[:1]):
            torch.testing.assert_close(loaded(rows), expected[: len(rows)], rtol=0, atol=1e-6)


def test_pt2_file_loads_in_torch_export_as_the_model_predicts(ckpt, tmp_path):
    path = exported(ckpt, "pt2", tmp_path)
    module = torch.export.load(str(path)).module()
    X, expected = lightning_predictions(ckpt)
    with torch.inference_mode():
        for rows in (X, X[:1]):
            torch.testing.assert_close(module(rows), expected[: len(rows)], rtol=0, atol=1e-6)


def test_safetensors_file_holds_the_weights_and_export_json_the_model(ckpt, tmp_path):
    from safetensors.torch import load_file

    path = exported(ckpt, "safetensors", tmp_path)
    weights = load_file(path)
    trained = load_checkpoint(ckpt)["state_dict"]
    assert weights.keys() == trained.keys()
    assert all(torch.equal(weights[key], trained[key]) for key in trained)
    info = json.loads((tmp_path / "export.json").read_text())
    rebuilt = instantiate(info["model"], _recursive_=False)
    rebuilt.load_state_dict(weights)
    X, expected = lightning_predictions(ckpt)
    stats = info["input"].get("standardization")
    if stats:  # the bare weights: export.json says how to standardize and what to add
        assert stats["inside_the_file"] is False
        X = (X - torch.tensor(stats["feature_mean"])) / torch.tensor(stats["feature_std"])
    got = predict(rebuilt, X) + (stats["target_mean"] if stats else 0)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6 if stats else 0)


def test_script_writes_into_a_run_directory_of_its_own(ckpt, tmp_path, entry_point):
    result = entry_point(
        "export.py", f"ckpt_path={ckpt}", "format=pt2", f"paths.log_dir={tmp_path}"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run_dir,) = (tmp_path / "export" / "runs").iterdir()
    info = json.loads((run_dir / "export.json").read_text())
    assert info["checkpoint"] == str(ckpt)
    X, expected = lightning_predictions(ckpt)
    assert {key: info["input"][key] for key in ("name", "shape", "dtype")} == {
        "name": "x", "shape": ["batch", X.shape[1]], "dtype": "float32"
    }  # fmt: skip
    assert info["output"]["shape"] == ["batch", expected.shape[1]]
    assert info["model"] == load_checkpoint(ckpt)["run_config"]["model"]
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


def test_missing_onnx_extra_is_named(ckpt, tmp_path, entry_point, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if it were not installed
    result = entry_point("export.py", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path}")
    assert result.returncode == 1
    assert (
        "format=onnx needs the onnx extra (onnxruntime is missing): pip install -e '.[onnx]'"
        in result.stderr
    )
    assert not list(tmp_path.glob("model.*"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda out: out + 1e3, r"model\.pt2: its predictions differ from the model's by up to"),
        (lambda out: torch.cat([out, out], 1), r"model\.pt2: its predictions have shape \[7, "),
    ],
    ids=["other-values", "other-shape"],
)
def test_a_file_that_does_not_reproduce_the_model_is_not_kept(
    ckpt, tmp_path, monkeypatch, change, message
):
    import litplate.export

    read = litplate.export.predict_with_file
    monkeypatch.setattr(litplate.export, "predict_with_file", lambda *args: change(read(*args)))
    cfg = make_cfg("export", tmp_path, [f"ckpt_path={ckpt}", "format=pt2"])
    with pytest.raises(ExportError, match=message):
        export(cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_export_json_names_the_datas_columns_and_standardization(ckpt, tmp_path):
    """A CSV's feature and target columns, and its standardization, applied inside the file."""
    exported(ckpt, "onnx", tmp_path)
    info = json.loads((tmp_path / "export.json").read_text())
    data = load_checkpoint(ckpt)["run_config"]["data"]
    if data.get("features"):
        assert info["input"]["features"] == list(data["features"])
        assert info["output"]["target"] == data["target"]
    else:
        assert "features" not in info["input"] and "target" not in info["output"]
    if data.get("standardize"):
        stats = info["input"]["standardization"]
        assert stats["feature_mean"] == data["feature_mean"] and stats["inside_the_file"] is True
    else:
        assert "standardization" not in info["input"]


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
@pytest.mark.parametrize("standardized", [False, True])
def test_each_file_refuses_an_input_of_the_wrong_width(ckpt, fmt, standardized, tmp_path):
    model, _ = model_from_checkpoint(ckpt)
    n, rows, width = n_features_of(model), 3, n_features_of(model) + 1
    if standardized:  # (x - mean) / std would broadcast a column of one to n columns
        model = InDataUnits(model, Standardization.of([1.0] * n, [3.0] * n, 5.0))
        rows, width = 2, 1 if n > 1 else 2
    path = tmp_path / FILES[fmt]
    _, n_outputs = save_checked(model, fmt, path, {})
    predict_with = read_back(fmt, path)
    with torch.no_grad():
        assert tuple(predict_with(torch.rand(4, n)).shape) == (4, n_outputs)
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


def unexportable(case: str, n: int, names: list[str]) -> tuple[dict | None, dict, str]:
    """A change to a checkpoint of a model with `n` features and parameters `names`, and the
    line that export.py prints for it."""
    zeros = [0.0] * n
    if case == "zero-std":
        std = [0] + [1] * (n - 1)
        return (
            {"standardize": True, "feature_mean": zeros, "feature_std": std, "target_mean": 0.0},
            {},
            f"bad.ckpt: the stored data.feature_mean={zeros}, data.feature_std={std}, "
            f"data.target_mean=0.0: feature_std must be > 0, got {[float(v) for v in std]}",
        )
    if case == "std-of-other-width":
        wider = [0.0] * (n + 1)
        return (
            {"standardize": True, "feature_mean": wider, "feature_std": [1.0] * (n + 1),
             "target_mean": 0.0},
            {},
            f"bad.ckpt: its stored data.feature_mean={wider} has {n + 1} values for the model's "
            f"{n} features",
        )  # fmt: skip
    first, second = names[:2]
    return (
        None,
        {first: float("nan"), second: float("inf")},
        f"bad.ckpt: the weights hold NaN or infinite values in {first}, {second}; nothing was "
        "written",
    )


@pytest.mark.parametrize("case", ["zero-std", "std-of-other-width", "nan-weights"])
def test_a_checkpoint_that_cannot_be_exported_is_one_clear_line(
    ckpt, tmp_path, entry_point, monkeypatch, case
):
    model, _ = model_from_checkpoint(ckpt)
    data, weights, message = unexportable(case, n_features_of(model), list(model.state_dict()))
    monkeypatch.chdir(tmp_path)
    doctored(ckpt, tmp_path / "bad.ckpt", data, **weights)
    out = tmp_path / "out"
    result = entry_point("export.py", "ckpt_path=bad.ckpt", "format=pt2", f"hydra.run.dir={out}")
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr and "differ" not in result.stderr
    assert not list(out.glob("model.*")) and not (out / "export.json").exists()
