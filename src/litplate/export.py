"""Step 6 for serving: the tested model as one file that runs without Lightning (docs/export.md);
a file gets its name only once its format's own client has read it back and it predicts right."""

from __future__ import annotations

import importlib.util
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig

from litplate.data.standardize import Standardization
from litplate.run import lightning_output
from litplate.run.checkpoint import (
    load_state_dict,
    load_weights,
    model_from_checkpoint,
    non_finite_parameters,
)
from litplate.run.errors import UserInputError
from litplate.run.files import atomic_path, save_weights, write_json
from litplate.run.targets import build

log = logging.getLogger(__name__)

FORMATS = {
    "onnx": "model.onnx",
    "torchscript": "model.torchscript.pt",
    "pt2": "model.pt2",
    "safetensors": "model.safetensors",
}
INPUT, OUTPUT = "x", "y"  # the names of the ONNX graph's input and output
# Float32 kernels of another runtime may round differently; anything larger is a wrong export.
TOLERANCE = 1e-5


class ExportError(UserInputError):
    """Bad export arguments, a missing extra, or a file that does not reproduce the model."""


def export(cfg: DictConfig) -> dict[str, Any]:
    """Write `cfg.ckpt_path`'s model in `cfg.format` and export.json into `cfg.paths.output_dir`."""
    lightning_output.quiet()
    fmt = cfg.get("format")
    if fmt not in FORMATS:
        raise ExportError(f"format={fmt!r}: expected one of {', '.join(FORMATS)}")
    if not cfg.get("ckpt_path"):
        raise ExportError(
            "ckpt_path is required, e.g. ckpt_path=logs/train/runs/RUN/checkpoints/best.ckpt"
        )
    if fmt == "onnx":
        for extra in ("onnx", "onnxruntime", "onnxscript"):
            if importlib.util.find_spec(extra) is None:
                raise ExportError(
                    f"format=onnx needs the onnx extra ({extra} is missing): "
                    "pip install -e '.[onnx]'"
                )
    model, run_config = model_from_checkpoint(cfg.ckpt_path)
    # Its predictions would be NaN, which no comparison can check.
    if non_finite := non_finite_parameters(model.state_dict()):
        raise ExportError(
            f"{cfg.ckpt_path}: the weights hold NaN or infinite values in {', '.join(non_finite)}"
            "; nothing was written"
        )
    data = run_config.get("data") or {}
    n_features = n_features_of(model)
    stats = standardization_of(data, n_features, cfg.ckpt_path)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / FORMATS[fmt]
    if stats is not None and fmt != "safetensors":  # the file takes and gives the data's units
        model = InDataUnits(model, stats)
    max_abs_diff, n_outputs = save_checked(model, fmt, path, run_config["model"])
    inputs = {"name": INPUT, "shape": ["batch", n_features], "dtype": "float32"}
    # The model's own width: 1 for a regression, one logit per class for a classifier.
    outputs = {"name": OUTPUT, "shape": ["batch", n_outputs], "dtype": "float32"}
    if data.get("features"):  # a CSV's columns, in the order the model takes them
        inputs["features"], outputs["target"] = list(data["features"]), data.get("target")
    if stats is not None:
        inputs["standardization"] = {
            "feature_mean": list(stats.mean),
            "feature_std": list(stats.std),
            "target_mean": stats.target_mean,
            # safetensors holds the bare weights: apply (x - mean) / std and add target_mean.
            "inside_the_file": fmt != "safetensors",
        }
    info = {
        "format": fmt,
        "file": path.name,
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
        "input": inputs,
        "output": outputs,
        "max_abs_diff": max_abs_diff,
        "model": run_config["model"],
        "torch": torch.__version__,
    }
    write_json(info, output_dir / "export.json")
    log.info("%s -> %s (max |difference| from the model: %.3g)", fmt, path, max_abs_diff)
    return info


def standardization_of(
    data: dict[str, Any], n_features: int, ckpt_path: str
) -> Standardization | None:
    """The run's standardization of a CSV's features (docs/data.md), if it had one."""
    if not data.get("standardize") or data.get("feature_mean") is None:
        return None
    mean, std, target_mean = data["feature_mean"], data.get("feature_std"), data.get("target_mean")
    try:
        stats = Standardization.of(mean, std, target_mean)
    except (TypeError, ValueError) as error:
        raise ExportError(
            f"{ckpt_path}: the stored data.feature_mean={mean}, data.feature_std={std}, "
            f"data.target_mean={target_mean}: {error}"
        ) from None
    if len(stats.mean) != n_features:
        raise ExportError(
            f"{ckpt_path}: its stored data.feature_mean={mean} has {len(stats.mean)} values for "
            f"the model's {n_features} features"
        )
    return stats


class InDataUnits(torch.nn.Module):
    """The model inside its run's standardization: raw features in, the target's values out."""

    def __init__(self, model: torch.nn.Module, stats: Standardization) -> None:
        super().__init__()
        self.model, self.hparams = model, model.hparams
        self.register_buffer("mean", torch.tensor(stats.mean))
        self.register_buffer("std", torch.tensor(stats.std))
        self.register_buffer("target_mean", torch.tensor(stats.target_mean))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std) + self.target_mean


def n_features_of(model: torch.nn.Module) -> int:
    n_features = getattr(model, "hparams", {}).get("n_features")
    if not isinstance(n_features, int):
        raise ExportError(f"{type(model).__name__} has no integer hparams.n_features to export")
    return n_features


def save_checked(
    model: torch.nn.Module, fmt: str, path: Path, model_config: dict[str, Any]
) -> tuple[float, int]:
    """Write `model` to `path` and read it back: (its largest difference from the model's
    predictions, their width). A file that differs by more than TOLERANCE is not kept."""
    model.eval()
    n_features = n_features_of(model)
    inputs = torch.rand(7, n_features, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        expected = model(inputs)
    with atomic_path(path, keep_suffix=True) as tmp:  # the suffix its reader expects
        save(model, fmt, n_features, tmp)
        got = predict_with_file(fmt, tmp, inputs, model_config)
        if got.shape != expected.shape:
            raise ExportError(
                f"{path.name}: its predictions have shape {list(got.shape)}, the model's "
                f"{list(expected.shape)}; nothing was written"
            )
        max_abs_diff = (got - expected).abs().max().item()
        if not max_abs_diff <= TOLERANCE:
            raise ExportError(
                f"{path.name}: its predictions differ from the model's by up to {max_abs_diff:.3g}"
                f" (more than {TOLERANCE:g}); nothing was written"
            )
    return max_abs_diff, expected.shape[-1]


def save(model: torch.nn.Module, fmt: str, n_features: int, path: Path) -> None:
    """Write `model` to `path` in `fmt`: its weights, or its graph with a batch axis of any size."""
    if fmt == "safetensors":
        save_weights(model, path)
        return
    # Two rows: an example batch of one would make torch.export fix the batch axis at 1.
    example, axes = (torch.zeros(2, n_features),), ({0: torch.export.Dim("batch")},)
    if fmt == "onnx":
        # The exporter's optimisation passes log each step at INFO; their warnings stay visible.
        for name in ("onnx_ir", "onnxscript"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # torch's export-based ONNX exporter (the TorchScript-based one is deprecated).
        torch.onnx.export(
            model,
            example,
            path,
            dynamic_shapes=axes,
            input_names=[INPUT],
            output_names=[OUTPUT],
            dynamo=True,
            external_data=False,  # one self-contained file
        )
        return
    program = torch.export.export(model, example, dynamic_shapes=axes)
    if fmt == "pt2":
        torch.export.save(program, path)
        return
    log.warning(
        "TorchScript (torch.jit) is deprecated by PyTorch; format=pt2 (torch.export) or "
        "format=onnx are its successors"
    )
    # Traced from the exported graph: tracing the LightningModule itself touches its trainer.
    with warnings.catch_warnings():
        # The graph's input-shape guard is traced as a constant: the traced ops check shapes.
        warnings.filterwarnings("ignore", message="Converting a tensor to a Python boolean")
        traced = torch.jit.trace(program.module(), example)
    torch.jit.save(torch.jit.script(ShapeChecked(traced, n_features)), str(path))


class ShapeChecked(torch.nn.Module):
    """A traced graph that refuses inputs not of shape (batch, n_features): a trace checks no
    shapes, and broadcasting would turn a wrong width into plausible numbers."""

    def __init__(self, traced: torch.nn.Module, n_features: int) -> None:
        super().__init__()
        self.traced, self.n_features = traced, n_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.n_features:
            raise ValueError(
                f"expected an input of shape (batch, {self.n_features}), got {list(x.shape)}"
            )
        return self.traced(x)


def predict_with_file(
    fmt: str, path: Path, inputs: torch.Tensor, model_config: dict[str, Any]
) -> torch.Tensor:
    """Predict `inputs` with the file, read by its format's client (safetensors: into the model
    that `model_config` builds)."""
    if fmt == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run([OUTPUT], {INPUT: inputs.numpy()})[0])
    with torch.inference_mode():
        if fmt == "torchscript":
            return torch.jit.load(str(path))(inputs)
        if fmt == "pt2":
            return torch.export.load(str(path)).module()(inputs)
        rebuilt = build(model_config, "model", "export.json [model]", _recursive_=False)
        load_weights(rebuilt, load_state_dict(path), path)
        return rebuilt.eval()(inputs)
