"""Expected errors print one clear message naming the culprit, exit 1, and no traceback."""

from __future__ import annotations

import resource
import signal
from pathlib import Path

import pytest
import torch

from litplate.run.checkpoint import CheckpointError, SafeCheckpointIO, load_checkpoint
from litplate.run.files import DiskFull


def _one_clear_error(result, *expected: str) -> None:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr


def test_eval_validates_its_data_overrides(trained_run: Path, tmp_path: Path, entry_point):
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    result = entry_point(
        "eval.py", f"ckpt_path={ckpt}", "+data.batch_size=-4", f"hydra.run.dir={tmp_path}/e"
    )
    _one_clear_error(result, "invalid config: data: batch_size=-4: expected an integer >= 1")
    assert not (tmp_path / "e" / "metrics.json").exists()
    # The run's log holds the error too, once, without a traceback.
    log = (tmp_path / "e" / "eval.log").read_text()
    assert log.count("invalid config: data: batch_size=-4: expected") == 1, log
    assert "[ERROR]" in log and "Traceback" not in log


def test_resuming_with_another_optimizer_says_how(
    trained_run: Path, tmp_path: Path, entry_point, tiny_overrides
):
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    used = load_checkpoint(ckpt)["hyper_parameters"]["optimizer"]["_target_"]
    other, target = (
        ("sgd", "torch.optim.SGD") if used.endswith("Adam") else ("adam", "torch.optim.Adam")
    )
    result = entry_point(
        "train.py", *tiny_overrides, f"model/optimizer={other}", f"ckpt_path={ckpt}",
        f"hydra.run.dir={tmp_path}/r",
    )  # fmt: skip
    _one_clear_error(
        result, f"its fit used model.optimizer {used}, this run {target}", f"model.init_from={ckpt}"
    )
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_hydra_full_error_raises_it_whole(tmp_path: Path, entry_point, monkeypatch):
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")  # Hydra re-raises: the interpreter prints all
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        entry_point("eval.py", f"ckpt_path={tmp_path}/none.ckpt", f"hydra.run.dir={tmp_path}/e")


def test_a_full_disk_names_the_file(tmp_path: Path):
    path = tmp_path / "last.ckpt"
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead of a kill
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (4096, hard))
    try:
        with pytest.raises(DiskFull) as info:
            SafeCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(10_000)}}, path)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)
    assert f"{path} not written: no space left on the device, or the file is too large" in str(
        info.value
    )
    assert not list(tmp_path.iterdir())  # neither a partial file nor its temporary


def test_eval_without_a_checkpoint_is_one_clear_error(tmp_path: Path, entry_point):
    result = entry_point("eval.py", f"hydra.run.dir={tmp_path}/e")
    _one_clear_error(result, "ckpt_path is required")


def test_predict_with_several_processes_is_one_clear_error(
    trained_run: Path, tmp_path: Path, entry_point
):
    ckpt = trained_run / "checkpoints" / "last.ckpt"
    result = entry_point(
        "predict.py", f"ckpt_path={ckpt}", "trainer=ddp_cpu", f"hydra.run.dir={tmp_path}/p"
    )
    _one_clear_error(result, "predict.py writes one CSV from one process")
