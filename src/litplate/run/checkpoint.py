"""Step 6 of the workflow, "save and reload": the one safe way this project reads checkpoints and
weights (`weights_only=True`, allowed classes only), each failure one error naming the file."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from fsspec.utils import get_protocol
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn

from litplate.run.errors import UserInputError
from litplate.run.files import atomic_write, disk_full
from litplate.run.targets import UnsafeConfigError, build, check_run_config, check_stored

RUN_CONFIG_KEY = "run_config"
CALLBACK_PATHS = ("dirpath", "best_model_path", "last_model_path", "kth_best_model_path")


class CheckpointError(UserInputError):
    """A checkpoint or weights file that cannot be used, with the reason."""


def _local_path(path: str | Path, what: str) -> Path:
    if "://" in str(path):  # Path() would turn "s3://b/x" into "s3:/b/x"
        raise CheckpointError(f"{path}: remote {what}s are not loaded; download it first")
    if not Path(path).is_file():
        raise CheckpointError(f"{what} not found: {path}")
    return Path(path)


def _read(path: str | Path) -> tuple[Any, Path]:
    """torch.load with weights_only; no error ever advises weights_only=False."""
    path = _local_path(path, "checkpoint")
    try:
        return torch.load(path, map_location="cpu", weights_only=True), path
    except Exception as err:  # torch raises many types for a bad file (IndexError, EOFError, ...)
        if code := re.search(r"GLOBAL (\S+)", str(err)):  # what weights_only's unpickler refused
            raise CheckpointError(
                f"{path}: refused: it holds pickled code (it would call {code.group(1)}), not "
                "only weights and plain data. Nothing was run."
            ) from None
        raise CheckpointError(f"{path}: not a checkpoint (truncated, or not one at all)") from None


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """A Lightning `.ckpt` as plain data, its stored configs checked against the allowlist."""
    return _checked(*_read(path))


def _checked(checkpoint: Any, path: Path) -> dict[str, Any]:
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no 'state_dict' in it)")
    state_dict = checkpoint["state_dict"]
    if not isinstance(state_dict, dict) or not all(
        isinstance(name, str) and isinstance(value, torch.Tensor)
        for name, value in state_dict.items()
    ):
        raise CheckpointError(f"{path}: its 'state_dict' is not a mapping of names to tensors")
    # A resumed ModelCheckpoint deletes the files its state names, checking a local one's parents
    # (`..` passes) and no other protocol's (`local://`, `x::`): an honest state names neither.
    for name, state in (checkpoint.get("callbacks") or {}).items():
        state = state if isinstance(state, dict) else {}
        for value in [*map(state.get, CALLBACK_PATHS), *(state.get("best_k_models") or {})]:
            if isinstance(value, str) and (
                ".." in Path(value).parts or get_protocol(value) != "file"
            ):
                raise CheckpointError(
                    f"{path}: refused: the state of {str(name).split('{')[0]} names {value!r}, "
                    "not a plain path inside its directory (a resumed fit would delete it). "
                    "Nothing was run."
                )
    try:
        check_run_config(checkpoint.get(RUN_CONFIG_KEY, {}), f"{path} [{RUN_CONFIG_KEY}]")
        check_stored(checkpoint.get("hyper_parameters", {}), "model", f"{path} [hyper_parameters]")
    except UnsafeConfigError as err:
        raise CheckpointError(str(err)) from None
    return checkpoint


class SafeLoading:
    """`load_from_checkpoint` of a LightningModule or LightningDataModule for a local file read as
    plain data: a URL (which Lightning loads with weights_only=False) or unsafe file is refused."""

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, *args: Any, **kwargs: Any) -> Any:
        load_checkpoint(checkpoint_path)  # local path, weights_only, allowed classes
        return super().load_from_checkpoint(  # type: ignore[misc]
            checkpoint_path, *args, **{**kwargs, "weights_only": True}
        )


def load_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """The weights of a `.ckpt` or a `.safetensors` file."""
    if Path(str(path)).suffix != ".safetensors":
        return load_checkpoint(path)["state_dict"]
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = _local_path(path, "weights file")
    try:
        return load_file(path)
    except SafetensorError as err:
        raise CheckpointError(f"{path}: not a readable safetensors file: {err}") from None


def load_weights(model: nn.Module, state_dict: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load weights strictly; a mismatch names every missing, unexpected, mis-shaped and
    other-dtype key (float to float is converted, with a warning)."""
    expected = model.state_dict()
    both = sorted(set(expected) & set(state_dict))
    shapes = {k: (tuple(state_dict[k].shape), tuple(expected[k].shape)) for k in both}
    dtypes = {k: (state_dict[k].dtype, expected[k].dtype) for k in both}
    retyped = {k: (got, want) for k, (got, want) in dtypes.items() if got != want}
    problems = {
        "missing": ", ".join(sorted(set(expected) - set(state_dict))),
        "unexpected": ", ".join(sorted(set(state_dict) - set(expected))),
        "mis-shaped": "; ".join(f"{k} {a} vs model {b}" for k, (a, b) in shapes.items() if a != b),
        "other dtype": "; ".join(
            f"{k} {got} vs model {want}"
            for k, (got, want) in retyped.items()
            if not (got.is_floating_point and want.is_floating_point)
        ),
    }
    if any(problems.values()):
        found = " | ".join(f"{name}: {keys}" for name, keys in problems.items() if keys)
        raise CheckpointError(f"{source} does not fit {type(model).__name__}: {found}")
    if retyped:
        converted = ", ".join(f"{key} {got} -> {want}" for key, (got, want) in retyped.items())
        warnings.warn(f"{source}: converted to the model's dtype: {converted}", stacklevel=2)
    model.load_state_dict(state_dict)


def model_from_checkpoint(path: str | Path) -> tuple[L.LightningModule, dict[str, Any]]:
    """The trained model of a checkpoint, and its run's config: the safe way to load one."""
    checkpoint = load_checkpoint(path)
    run_config = checkpoint.get(RUN_CONFIG_KEY) or {}
    model_config = stored_part(run_config, "model", path)
    model = build(model_config, "model", f"{path} [{RUN_CONFIG_KEY}]", _recursive_=False)
    load_weights(model, checkpoint["state_dict"], path)
    return model, run_config


def stored_part(run_config: dict[str, Any], key: str, path: str | Path) -> dict[str, Any]:
    """The `key` part (model, data) of a checkpoint's run config: a mapping with a `_target_`."""
    part = run_config.get(key)
    if not isinstance(part, dict) or not isinstance(part.get("_target_"), str):
        raise CheckpointError(
            f"{path}: its {RUN_CONFIG_KEY} (which litplate's train.py writes) has no {key} config "
            f"with a _target_ (got {part!r:.80}), so the {key} cannot be rebuilt"
        )
    return part


def non_finite_parameters(state_dict: dict[str, Any]) -> list[str]:
    """The names of the floating-point tensors that hold a NaN or an infinity."""
    return [
        name
        for name, value in state_dict.items()
        if torch.is_tensor(value) and value.is_floating_point() and not value.isfinite().all()
    ]


def fit_checkpoints(trainer: L.Trainer) -> dict[str, Path]:
    """The paths a fit wrote: "best" (by its monitored metric) and "last" (the latest epoch)."""
    found = {}
    for callback in trainer.checkpoint_callbacks:
        path = getattr(callback, "best_model_path", "")
        if not path and not getattr(callback, "monitor", None) and callback.dirpath:
            # After a ddp_spawn fit, this process's callback did not save: look where it writes.
            newest = Path(callback.format_checkpoint_name({}))
            path = str(newest) if newest.is_file() else ""
        if path:  # with no monitor, a ModelCheckpoint's "best" is simply the newest checkpoint
            found["best" if callback.monitor else "last"] = Path(path)
    return found


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint I/O, made atomic (written beside the file, fsynced and renamed over
    it, not staged in $TMPDIR), finite-only, and read through `load_checkpoint`'s checks."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        if bad := non_finite_parameters(checkpoint.get("state_dict", {})):
            raise CheckpointError(f"{path} not written: NaN or infinite values in {', '.join(bad)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_write(path, "wb") as file:
                torch.save(checkpoint, file)
        except (OSError, RuntimeError) as err:
            if full := disk_full(err, path):
                raise full from None
            raise

    def load_checkpoint(
        self, path: str | Path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        loaded, path = _read(path)
        if isinstance(loaded, dict) and loaded and all(map(torch.is_tensor, loaded.values())):
            return loaded  # ddp_spawn hands the trained weights back as a bare state_dict
        return _checked(loaded, path)
