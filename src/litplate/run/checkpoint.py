"""Step 6 of the workflow, "save and reload": the one safe way this project loads weights.

Every checkpoint or weights file is read here with `weights_only=True` (no pickled code runs), and
each failure is one clear error naming the file.
"""

from __future__ import annotations

import errno
import pickle
import re
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from torch import nn

from litplate.run.errors import UserInputError
from litplate.run.files import atomic_write
from litplate.run.targets import UnsafeConfigError, build, check_model_hparams, check_run_config

RUN_CONFIG_KEY = "run_config"


class CheckpointError(UserInputError):
    """A checkpoint or weights file that cannot be used, with the reason."""


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a Lightning `.ckpt` as plain data; refuse anything that is not.

    Its stored run config and hyper-parameters are checked against the allowlist of
    `litplate.run.targets` here, so no caller ever instantiates a `_target_` that a file chose.
    """
    path = _local_path(path, "checkpoint")
    return _checked(_torch_load(path), path)


def _checked(checkpoint: Any, path: Path) -> dict[str, Any]:
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no 'state_dict' in it)")
    state_dict = checkpoint["state_dict"]
    if not isinstance(state_dict, dict) or not all(
        isinstance(name, str) and isinstance(value, torch.Tensor)
        for name, value in state_dict.items()
    ):
        raise CheckpointError(f"{path}: its 'state_dict' is not a mapping of names to tensors")
    _check_callback_paths(checkpoint, path)
    try:
        if RUN_CONFIG_KEY in checkpoint:
            check_run_config(checkpoint[RUN_CONFIG_KEY], f"{path} [{RUN_CONFIG_KEY}]")
        if "hyper_parameters" in checkpoint:
            check_model_hparams(checkpoint["hyper_parameters"], f"{path} [hyper_parameters]")
    except UnsafeConfigError as err:
        raise CheckpointError(str(err)) from None
    return checkpoint


def _check_callback_paths(checkpoint: dict[str, Any], path: Path) -> None:
    """A resumed ModelCheckpoint deletes its previous files, checked to be under its dirpath by
    their parents, which `..` passes: `DIR/../../x` would be removed, recursively. Lightning
    writes these paths from a real path, so an honest checkpoint never holds a `..`."""
    for name, state in (checkpoint.get("callbacks") or {}).items():
        if not isinstance(state, dict):
            continue
        paths = [state.get(key) for key in ("dirpath", "best_model_path", "last_model_path")]
        paths += [state.get("kth_best_model_path"), *(state.get("best_k_models") or {})]
        for value in paths:
            if isinstance(value, str) and ".." in Path(value).parts:
                raise CheckpointError(
                    f"{path}: refused: the state of {str(name).split('{')[0]} names {value!r}, "
                    "outside its directory (a resumed fit would delete it). Nothing was run."
                )


def _torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(f"{path}: {_unpickling_problem(err)}") from None
    except Exception:  # torch raises many types for a bad file (IndexError, EOFError, ...)
        raise CheckpointError(f"{path}: not a checkpoint (truncated, or not one at all)") from None


def _local_path(path: str | Path, what: str) -> Path:
    if "://" in str(path):  # Path() would turn "s3://b/x" into "s3:/b/x"
        raise CheckpointError(f"{path}: remote {what}s are not loaded; download it first")
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} not found: {path}")
    return path


def _unpickling_problem(err: pickle.UnpicklingError) -> str:
    """What torch's weights-only reader refused, without its advice to load with
    weights_only=False (which would run the file's code)."""
    found = re.search(r"GLOBAL (\S+)", str(err))
    if found:
        return (
            f"refused: it holds pickled code (it would call {found.group(1)}), not only weights "
            "and plain data. Nothing was run."
        )
    found = re.search(r"WeightsUnpickler error:\s*(.+)", str(err))
    detail = f" ({found.group(1).strip()})" if found else ""
    return f"not a checkpoint: torch's weights-only reader cannot read it{detail}"


class SafeLoading:
    """Lightning's `load_from_checkpoint` (of a LightningModule or LightningDataModule subclass)
    for a local file read as plain data: a URL, which Lightning loads with weights_only=False, or
    a file that is not plain data is refused before anything is run."""

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
    """Load weights strictly; a mismatch names every missing, unexpected and mis-shaped key."""
    expected = model.state_dict()
    problems = []
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    if missing:
        problems.append(f"missing: {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected: {', '.join(unexpected)}")
    misshaped = [
        f"{key} {tuple(state_dict[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in sorted(set(expected) & set(state_dict))
        if state_dict[key].shape != expected[key].shape
    ]
    if misshaped:
        problems.append(f"mis-shaped: {'; '.join(misshaped)}")
    retyped = {
        key: (state_dict[key].dtype, expected[key].dtype)
        for key in sorted(set(expected) & set(state_dict))
        if state_dict[key].dtype != expected[key].dtype
    }
    lossy = [
        f"{key} {got} vs model {want}"
        for key, (got, want) in retyped.items()
        if not (got.is_floating_point and want.is_floating_point)
    ]
    if lossy:
        problems.append(f"other dtype: {'; '.join(lossy)}")
    if problems:
        raise CheckpointError(
            f"{source} does not fit {type(model).__name__}: " + " | ".join(problems)
        )
    if retyped:
        converted = ", ".join(f"{key} {got} -> {want}" for key, (got, want) in retyped.items())
        warnings.warn(f"{source}: converted to the model's dtype: {converted}", stacklevel=2)
    model.load_state_dict(state_dict)


def model_from_checkpoint(path: str | Path) -> tuple[L.LightningModule, dict[str, Any]]:
    """Rebuild the trained model from a checkpoint and return it with its run's config.

    The safe way to load a litplate checkpoint from Python: a local file only (a URL is refused),
    read with `weights_only=True`, its model built only from the classes allowed for it.
    """
    checkpoint = load_checkpoint(path)
    run_config = checkpoint.get(RUN_CONFIG_KEY)
    if not run_config:
        raise CheckpointError(
            f"{path}: has no '{RUN_CONFIG_KEY}' (it was not written by litplate's train.py), "
            "so the model and data config are unknown"
        )
    stored_part(run_config, "model", path)
    model = build(run_config["model"], "model", f"{path} [{RUN_CONFIG_KEY}]", _recursive_=False)
    load_weights(model, checkpoint["state_dict"], path)
    return model, run_config


def stored_part(run_config: dict[str, Any], key: str, path: str | Path) -> dict[str, Any]:
    """The `key` part (model, data) of a checkpoint's run config: a mapping with a `_target_`."""
    part = run_config.get(key)
    if not isinstance(part, dict) or not isinstance(part.get("_target_"), str):
        raise CheckpointError(
            f"{path}: its {RUN_CONFIG_KEY} has no {key} config with a _target_ (got {part!r:.80}), "
            f"so the {key} cannot be rebuilt"
        )
    return part


def non_finite_parameters(state_dict: dict[str, Any]) -> list[str]:
    """The names of the floating-point tensors that hold a NaN or an infinity."""
    return [
        name
        for name, value in state_dict.items()
        if isinstance(value, torch.Tensor)
        and value.is_floating_point()
        and not bool(torch.isfinite(value).all())
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
        # With no monitor, a ModelCheckpoint's "best" is simply the newest checkpoint.
        if path:
            found["best" if callback.monitor else "last"] = Path(path)
    return found


class SafeCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint file I/O, made atomic and safe.

    Saving: Lightning stages the file through fsspec in $TMPDIR and then moves it, which is a copy
    when $TMPDIR is another filesystem, so a kill mid-copy left a truncated checkpoint. Here the
    file is written next to its destination, fsynced and renamed over it: a reader sees the old
    file or the new one, never a part. Loading (e.g. resuming a fit) goes through
    `load_checkpoint`, so it is weights_only too.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        if storage_options is not None or "://" in str(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        bad = non_finite_parameters(checkpoint.get("state_dict", {}))
        if bad:  # a checkpoint is what a run resumes or is tested from: only finite weights
            raise CheckpointError(f"{path} not written: NaN or infinite values in {', '.join(bad)}")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with atomic_write(path, "wb") as file:
                torch.save(checkpoint, file)
        except (OSError, RuntimeError) as err:
            # torch reports a full disk as "[enforce fail at inline_container.cc] ... error 28".
            disk_full = (
                err.errno in (errno.ENOSPC, errno.EFBIG)
                if isinstance(err, OSError)
                else "enforce fail" in str(err)
            )
            if not disk_full:
                raise
            raise CheckpointError(
                f"{path} not written: no space left on the device, or the file is too large "
                f"for it ({' '.join(str(err).split())[:200]})"
            ) from None

    def load_checkpoint(
        self, path: str | Path, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        path = _local_path(path, "checkpoint")
        loaded = _torch_load(path)
        if (
            isinstance(loaded, dict)
            and loaded
            and all(isinstance(value, torch.Tensor) for value in loaded.values())
        ):
            # ddp_spawn hands the trained weights back to the main process as a bare state_dict.
            return loaded
        return _checked(loaded, path)
