"""Check, before anything trains, that the run can get the devices it asks for: one line saying
what was asked, what torch sees and what to use instead (Lightning's errors come late)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.strategies import StrategyRegistry

from litplate.run.errors import UserInputError


class DeviceUnavailableError(UserInputError):
    """The trainer config asks for devices this machine does not have."""


class DistributedLaunchError(UserInputError):
    """A distributed strategy that cannot start its processes the way this run was launched."""


def _setting(trainer_cfg: Mapping[str, Any]) -> str:
    """How the user asked: `trainer=gpu` when Hydra knows the preset, plus the keys that matter."""
    keys = f"accelerator={trainer_cfg.get('accelerator')}, devices={trainer_cfg.get('devices')}"
    preset = HydraConfig.get().runtime.choices.get("trainer") if HydraConfig.initialized() else None
    return f"trainer={preset} ({keys})" if preset else f"trainer.{keys.replace(', ', ', trainer.')}"


def _needed(devices: Any) -> tuple[int, str]:
    """How many devices must exist for `devices`, and how the request reads in a message (0:
    not a count or a list of indices, Lightning's to judge)."""
    if devices is None or devices in ("auto", -1, "-1"):
        return 1, "at least 1"
    if isinstance(devices, str):
        parts = [part.strip() for part in devices.split(",") if part.strip()]
        if not parts or not all(part.isdigit() for part in parts):
            return 0, devices
        devices = [int(part) for part in parts] if "," in devices else int(parts[0])
    if isinstance(devices, int):
        return devices, str(devices)
    if not hasattr(devices, "__iter__"):
        return 0, str(devices)
    indices = [int(index) for index in devices]
    return (max(indices) + 1 if indices else 0), f"device indices {indices} of"


def check_devices(trainer_cfg: Mapping[str, Any]) -> None:
    """Raise DeviceUnavailableError if `trainer_cfg` asks for more GPUs than torch sees, or more
    CPU processes than there are cores; other accelerators (HPU, custom) are Lightning's."""
    accelerator = str(trainer_cfg.get("accelerator", "auto")).lower()
    cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    mps = torch.backends.mps.is_available()
    if accelerator == "auto" and not cuda and not mps:
        accelerator = "cpu"  # Lightning's auto is then the CPU, one process per device asked for
    need, asked = _needed(trainer_cfg.get("devices", "auto"))
    if accelerator == "cpu":
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        if need > (cores or 1):
            raise DeviceUnavailableError(
                f"{_setting(trainer_cfg)} asks for {asked} CPU processes but this machine has "
                f"{cores} CPU cores — use trainer.devices={cores} or fewer"
            )
        return
    if accelerator in ("tpu", "xla") and importlib.util.find_spec("torch_xla") is None:
        raise DeviceUnavailableError(
            f"{_setting(trainer_cfg)} asks for a TPU, which needs torch_xla (not installed): "
            "pip install torch_xla, or use trainer=cpu or trainer=auto"
        )
    if accelerator == "mps" or (accelerator == "gpu" and not cuda and mps):  # a Mac's "gpu"
        have, kind, none = int(mps), "MPS", "none (torch.backends.mps.is_available() is False)"
    elif accelerator in ("gpu", "cuda"):
        have, kind, none = cuda, "CUDA", "none (torch.cuda.is_available() is False)"
    else:
        return
    if need > have:
        way_out = f"use trainer.devices={have}" if have else "use trainer=cpu or trainer=auto"
        noun = "device" if asked in ("1", "at least 1") else "devices"
        raise DeviceUnavailableError(
            f"{_setting(trainer_cfg)} asks for {asked} {kind} {noun} but torch sees "
            f"{have or none} — {way_out}"
        )


def check_launch(trainer: Any, strategy: Any) -> None:
    """Refuse a DDP launch that re-runs the command line (`strategy=ddp`, started by Lightning,
    not by SLURM or torchrun) in a multirun: every child process would run the whole sweep."""
    processes = trainer.num_devices * trainer.num_nodes
    if isinstance(strategy, str):  # the registry's entry: StrategyRegistry.get() builds one
        entry = StrategyRegistry[strategy] if strategy in StrategyRegistry else {}  # noqa: SIM401
        start_method = entry.get("init_params", {}).get("start_method", "popen")
    else:  # a `_target_` config, or Lightning's default
        start_method = strategy.get("start_method") if isinstance(strategy, Mapping) else None
    if (
        processes > 1
        and (start_method or "popen") == "popen"
        and not trainer.strategy.cluster_environment.creates_processes_externally
        and HydraConfig.initialized()
        and HydraConfig.get().mode == RunMode.MULTIRUN
    ):
        raise DistributedLaunchError(
            f"strategy=ddp with {processes} devices starts its extra processes by "
            "re-running the command line, which in a multirun (-m) is the whole sweep. Sweep DDP "
            "runs on SLURM (hydra/launcher=slurm: SLURM starts one task per device), use "
            "trainer.strategy=ddp_spawn, or start each configuration as a single run."
        )
