"""Devices: the trainer presets, precision, and one clear error for devices that are not there."""

from __future__ import annotations

import csv
import math
import os
import time
from pathlib import Path

import pytest
import torch

from litplate.predict import predict_to_csv
from litplate.run.devices import DeviceUnavailableError, check_devices
from litplate.train import train
from tests.helpers.runs import read_metrics
from tests.helpers.scripts import run_script

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")


# --- presets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("preset", "accelerator", "devices", "strategy"),
    [
        ("cpu", "cpu", 1, "auto"),
        ("gpu", "gpu", 1, "auto"),
        ("mps", "mps", 1, "auto"),
        ("auto", "auto", "auto", "auto"),
        ("ddp", "gpu", 2, "ddp"),
        ("ddp_cpu", "cpu", 2, "ddp"),
    ],
)
def test_trainer_presets_compose(cfg_factory, preset, accelerator, devices, strategy):
    trainer = cfg_factory(overrides=[f"trainer={preset}"]).trainer
    assert trainer.accelerator == accelerator
    assert (trainer.devices, trainer.strategy) == (devices, strategy)
    assert trainer.num_nodes == 1 and trainer.precision == "32-true"


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed", "16-mixed"])
def test_precision_is_a_trainer_option(cfg_factory, precision):
    overrides = ["trainer=ddp", "trainer.devices=4", f"trainer.precision={precision}"]
    cfg = cfg_factory(overrides=overrides)
    assert cfg.trainer.precision == precision and cfg.trainer.devices == 4


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Precision bf16-mixed is not supported by the model summary")
def test_bf16_mixed_trains_on_the_cpu(cfg_factory, tiny_overrides, assert_learned):
    overrides = [*tiny_overrides, "trainer.precision=bf16-mixed", "callbacks.progress_bar=null"]
    cfg = cfg_factory(overrides=overrides)
    metrics = train(cfg)
    assert_learned(metrics)


# --- asking for devices that are not there --------------------------------------------------------


def _no_cuda(monkeypatch, count: int = 0) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: count > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_gpu_without_a_gpu_is_one_clear_error(monkeypatch):
    _no_cuda(monkeypatch)
    with pytest.raises(DeviceUnavailableError) as error:
        check_devices({"accelerator": "gpu", "devices": 1})
    assert str(error.value) == (
        "trainer.accelerator=gpu, trainer.devices=1 asks for 1 CUDA device but torch sees none "
        "(torch.cuda.is_available() is False) — use trainer=cpu or trainer=auto"
    )


def test_more_gpus_than_there_are_names_the_count(monkeypatch):
    _no_cuda(monkeypatch, count=1)
    check_devices({"accelerator": "gpu", "devices": 1})
    check_devices({"accelerator": "cuda", "devices": "auto"})
    with pytest.raises(
        DeviceUnavailableError,
        match=r"asks for 2 CUDA devices but torch sees 1 — "
        r"use trainer.devices=1",
    ):
        check_devices({"accelerator": "gpu", "devices": 2})
    with pytest.raises(DeviceUnavailableError, match=r"device indices \[1\] of CUDA devices"):
        check_devices({"accelerator": "gpu", "devices": [1]})


def test_cpu_auto_and_others_pass_what_there_is(monkeypatch):
    _no_cuda(monkeypatch)
    for accelerator in ("cpu", "auto", "hpu"):
        check_devices({"accelerator": accelerator, "devices": 1})
    cores = len(os.sched_getaffinity(0))
    check_devices({"accelerator": "auto", "devices": cores})
    # Without a GPU, auto is the CPU: Lightning starts one process per device asked for.
    with pytest.raises(DeviceUnavailableError, match=f"this machine has {cores} CPU cores"):
        check_devices({"accelerator": "auto", "devices": cores + 1})
    with pytest.raises(DeviceUnavailableError, match=r"torch\.backends\.mps\.is_available"):
        check_devices({"accelerator": "mps", "devices": 1})


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_trainer_gpu_without_a_gpu_exits_non_zero_with_one_message(
    tmp_path: Path, entry_point, tiny_overrides
):
    result = entry_point("train.py", *tiny_overrides, "trainer=gpu", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0
    assert (
        "trainer=gpu (accelerator=gpu, devices=1) asks for 1 CUDA device but torch sees none "
        "(torch.cuda.is_available() is False) — use trainer=cpu or trainer=auto"
    ) in result.stderr
    assert "Traceback" not in result.stderr and "CUDA error" not in result.stderr
    assert not (tmp_path / "metrics.json").exists()
    assert not (tmp_path / "checkpoints").exists()  # stopped before any training


# --- on a GPU (skipped where there is none) -------------------------------------------------------


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_trains_on_a_gpu(tmp_path: Path, precision: str, tiny_overrides, assert_learned):
    result = run_script(
        "train.py", *tiny_overrides, "trainer=gpu", f"trainer.precision={precision}",
        f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(tmp_path)
    assert_learned(metrics)


@needs_cuda
@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_trains_with_ddp_on_two_gpus(tmp_path: Path, tiny_overrides, assert_learned):
    result = run_script("train.py", *tiny_overrides, "trainer=ddp", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    metrics = read_metrics(run)
    assert_learned(metrics)


def test_more_cpu_processes_than_cores_are_refused_at_once(tmp_path: Path, entry_point):
    cores = len(os.sched_getaffinity(0))
    started = time.monotonic()
    result = entry_point("train.py", "trainer.devices=99", f"hydra.run.dir={tmp_path / 'run'}")
    assert time.monotonic() - started < 10
    assert result.returncode == 1
    assert f"asks for 99 CPU processes but this machine has {cores} CPU cores" in result.stderr
    assert "Traceback" not in result.stderr
    assert (
        not list((tmp_path / "run").glob("*.ckpt"))
        and not (tmp_path / "run" / "checkpoints").exists()
    )


def test_a_tpu_without_torch_xla_says_what_to_install():
    with pytest.raises(DeviceUnavailableError, match=r"needs torch_xla .*: pip install torch_xla"):
        check_devices({"accelerator": "tpu", "devices": 1})


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Precision bf16-mixed is not supported by the model summary")
def test_predict_in_bf16_mixed_writes_float32_values(cfg_factory, tiny_random_overrides):
    quick = [*tiny_random_overrides, "trainer.max_epochs=2", "callbacks.progress_bar=null"]
    ckpt = train(cfg_factory(overrides=quick))["tested_checkpoint"]
    overrides = [f"ckpt_path={ckpt}", "trainer.precision=bf16-mixed"]
    path = predict_to_csv(cfg_factory("predict", overrides, name="predict"))
    with path.open() as file:
        rows = list(csv.DictReader(file))
    assert rows and all(math.isfinite(float(value)) for row in rows for value in row.values())
