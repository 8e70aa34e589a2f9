"""Scaling up: check, before anything trains, that the run can get the devices it asks for.

Lightning's own errors for a missing GPU ("No supported gpu backend found!") or a DDP launch it
cannot do come late or name no way out; these checks say in one line what was asked, what torch
sees and what to use instead.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from hydra.errors import CompactHydraException


class DeviceUnavailableError(CompactHydraException, RuntimeError):
    """The trainer config asks for devices this machine does not have.

    A CompactHydraException, so `scripts/*.py` print the message alone, without a traceback.
    """


class DistributedLaunchError(CompactHydraException, RuntimeError):
    """A distributed strategy that cannot start its processes the way this run was launched."""


def _setting(trainer_cfg: Mapping[str, Any]) -> str:
    """How the user asked: `trainer=gpu` when Hydra knows the preset, plus the keys that matter."""
    keys = f"accelerator={trainer_cfg.get('accelerator')}, devices={trainer_cfg.get('devices')}"
    try:
        from hydra.core.hydra_config import HydraConfig

        if HydraConfig.initialized():
            preset = HydraConfig.get().runtime.choices.get("trainer")
            if preset:
                return f"trainer={preset} ({keys})"
    except Exception:  # no Hydra run (a test, a notebook): the keys say enough
        pass
    return f"trainer.{keys.replace(', ', ', trainer.')}"


def _needed(devices: Any) -> tuple[int, str]:
    """How many devices must exist for `devices`, and how the request reads in a message."""
    if devices is None or devices in ("auto", -1, "-1"):
        return 1, "at least 1"
    if isinstance(devices, str):
        devices = devices.strip()
        if not devices.replace(",", "").replace(" ", "").isdigit():
            return 0, devices  # not a count or a list of indices: Lightning's to judge
        if "," not in devices:
            return _needed(int(devices))
        devices = [int(index) for index in devices.split(",") if index.strip()]
    if isinstance(devices, int):
        return devices, str(devices)
    if isinstance(devices, Sequence) or hasattr(devices, "__iter__"):
        indices = [int(index) for index in devices]
        return (max(indices) + 1 if indices else 0), f"device indices {indices} of"
    return 0, str(devices)


def _plural(count: int | str, noun: str) -> str:
    return f"{noun}s" if str(count) not in ("1", "at least 1") else noun


def check_devices(trainer_cfg: Mapping[str, Any]) -> None:
    """Raise DeviceUnavailableError if `trainer_cfg` asks for a GPU (or more GPUs) than torch sees.

    `accelerator: cpu` (and `auto` without a GPU, which is the CPU) may not ask for more processes
    than there are CPU cores; other accelerators (HPU, custom) are left to Lightning.
    """
    accelerator = str(trainer_cfg.get("accelerator", "auto")).lower()
    if accelerator == "auto" and not torch.cuda.is_available() and not _mps_available():
        # Lightning's auto is then the CPU, with as many processes as `devices` asks for.
        accelerator = "cpu"
    if accelerator == "cpu":
        need, asked = _needed(trainer_cfg.get("devices", "auto"))
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        if need > (cores or 1):
            raise DeviceUnavailableError(
                f"{_setting(trainer_cfg)} asks for {asked} CPU processes but this machine has "
                f"{cores} CPU cores — use trainer.devices={cores} or fewer"
            )
        return
    if accelerator in ("tpu", "xla"):
        try:
            import torch_xla  # noqa: F401
        except ImportError:
            raise DeviceUnavailableError(
                f"{_setting(trainer_cfg)} asks for a TPU, which needs torch_xla (not installed): "
                "pip install torch_xla, or use trainer=cpu or trainer=auto"
            ) from None
        return
    if accelerator in ("gpu", "cuda"):
        cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if accelerator == "gpu" and not cuda and _mps_available():
            have, kind, none = 1, "MPS", ""  # Lightning's "gpu" is Apple's MPS on a Mac
        else:
            have, kind, none = cuda, "CUDA", "none (torch.cuda.is_available() is False)"
    elif accelerator == "mps":
        have = 1 if _mps_available() else 0
        kind, none = "MPS", "none (torch.backends.mps.is_available() is False)"
    else:
        return
    need, asked = _needed(trainer_cfg.get("devices", "auto"))
    if need <= have:
        return
    way_out = "use trainer=cpu or trainer=auto" if not have else f"use trainer.devices={have}"
    raise DeviceUnavailableError(
        f"{_setting(trainer_cfg)} asks for {asked} {kind} {_plural(asked, 'device')} but torch "
        f"sees {have or none} — {way_out}"
    )


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def start_method(strategy: Any) -> str:
    """How a strategy (a registered name such as `ddp_spawn`, or a `_target_` config) starts its
    processes: "popen" re-runs the command line, "spawn"/"fork" start them from this one."""
    from lightning.pytorch.strategies import StrategyRegistry

    if isinstance(strategy, str):
        # The registry's entry, not StrategyRegistry.get(), which builds the strategy.
        entry = StrategyRegistry[strategy] if strategy in StrategyRegistry else {}  # noqa: SIM401
        return entry.get("init_params", {}).get("start_method", "popen")
    if isinstance(strategy, Mapping):
        return str(strategy.get("start_method") or "popen")
    return "popen"  # a strategy object: Lightning's default


def check_launch(trainer: Any, strategy: Any) -> None:
    """Refuse a Lightning DDP launch that would re-run a Hydra multirun in every child process.

    `strategy=ddp` starts ranks 1..N-1 by re-running the command line (for Hydra Lightning adds
    `hydra.run.dir=` so they share the parent's run directory). In a multirun (`-m`) that command
    line is the whole sweep, so every child would start the sweep again. Where the processes are
    started by the cluster (SLURM tasks, torchrun) nothing is re-run and DDP is fine in a sweep.
    """
    processes = trainer.num_devices * trainer.num_nodes
    if processes < 2 or start_method(strategy) != "popen":
        return
    if trainer.strategy.cluster_environment.creates_processes_externally:
        return
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise DistributedLaunchError(
            f"strategy=ddp with {processes} devices starts its extra processes by "
            "re-running the command line, which in a multirun (-m) is the whole sweep. Sweep DDP "
            "runs on SLURM (hydra/launcher=slurm: SLURM starts one task per device), use "
            "trainer.strategy=ddp_spawn, or start each configuration as a single run."
        )
