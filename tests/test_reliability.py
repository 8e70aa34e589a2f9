"""Failure modes: killed runs resume exactly, saves are atomic, NaN stops, loads are safe."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from litplate.models import LitModel
from litplate.run.callbacks import NonFiniteLossError
from litplate.run.checkpoint import (
    CheckpointError,
    SafeCheckpointIO,
    load_checkpoint,
    model_from_checkpoint,
)
from litplate.train import train
from tests.helpers.project import ROOT, make_cfg
from tests.helpers.runs import read_metrics

TRAIN = [sys.executable, str(ROOT / "scripts" / "train.py")]


@pytest.fixture(scope="module")
def long_run(tiny_random_overrides: list[str]) -> list[str]:
    """Every source of run-to-run difference at once: random numbers drawn in the model (dropout),
    shuffled mini-batches, worker processes (`++`: the data config may not list them)."""
    return [
        *tiny_random_overrides,
        "++data.batch_size=16",
        "++data.shuffle=true",
        "++data.num_workers=2",
        "trainer.max_epochs=20",
        "callbacks.progress_bar=null",
    ]


def _start(long_run: list[str], run_dir: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [*TRAIN, *long_run, f"hydra.run.dir={run_dir}", *extra],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_epochs(run_dir: Path, proc: subprocess.Popen, epochs: int) -> None:
    """Until last.ckpt holds at least `epochs` finished epochs (the run is still going)."""
    last = run_dir / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if last.exists() and load_checkpoint(last)["epoch"] >= epochs:
            return
        time.sleep(0.2)
    raise AssertionError(f"run never reached {epochs} epochs (exit code {proc.poll()})")


def _same_result(a: Path, b: Path) -> None:
    ma, mb = read_metrics(a), read_metrics(b)
    for key in ("best_checkpoint", "tested_checkpoint"):
        assert Path(ma.pop(key)).name == Path(mb.pop(key)).name
    assert ma == mb  # weight, bias and every metric, bit for bit
    wa = load_checkpoint(a / "checkpoints" / "last.ckpt")["state_dict"]
    wb = load_checkpoint(b / "checkpoints" / "last.ckpt")["state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def _scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Each TensorBoard scalar's (step, value) points, as TensorBoard reads the run's events."""
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory: pytest.TempPathFactory, long_run: list[str]) -> Path:
    """The run never killed, in this process (as `python scripts/train.py` would run it)."""
    run_dir = tmp_path_factory.mktemp("straight")
    train(make_cfg("train", run_dir, long_run))
    return run_dir


def _check_killed(run_dir: Path, proc: subprocess.Popen, sig: int) -> int:
    """What a run killed by `sig` leaves: no metrics.json, usable checkpoints; the epoch that
    last.ckpt holds."""
    code = proc.wait(timeout=120)
    stderr = proc.stderr.read()
    assert not (run_dir / "metrics.json").exists()
    last_path = run_dir / "checkpoints" / "last.ckpt"
    last = load_checkpoint(last_path)
    epoch = last["epoch"]
    assert 5 <= epoch < 19
    if sig == signal.SIGTERM:  # one clear line naming the epoch last.ckpt holds, no traceback
        assert code == 1 and "Traceback" not in stderr, stderr
        (line,) = (line for line in stderr.splitlines() if "SIGTERM" in line)
        assert re.fullmatch(
            rf"SIGTERM received during epoch \d+; {re.escape(str(last_path))} holds the end of "
            rf"epoch {epoch}: resume with ckpt_path={re.escape(str(last_path))}",
            line,
        ), line
    else:
        assert code == -signal.SIGKILL and epoch == 5
    # best.ckpt, kept in memory between writes, is on disk and usable, and at least as good as
    # the best that last.ckpt names (it is written first).
    best_path = run_dir / "checkpoints" / "best.ckpt"
    best = load_checkpoint(best_path)
    model_from_checkpoint(best_path)
    # The ModelCheckpoint that keeps best.ckpt (the other, last.ckpt's, monitors nothing).
    (key,) = (key for key in best["callbacks"] if key.startswith("ModelCheckpoint{'monitor': 'val"))
    best_score = best["callbacks"][key]["best_model_score"]
    assert best_score <= last["callbacks"][key]["best_model_score"]
    assert best["epoch"] <= epoch + 1
    return epoch


@pytest.mark.slow
def test_killed_run_resumes_bit_identically(
    tmp_path: Path, straight_run: Path, long_run: list[str]
):
    # Killed by itself after epoch 6's validation was logged (SIGKILL), resumed, that run stopped
    # with SIGTERM a few epochs later, resumed again: each in a fresh process, as a user resumes,
    # the checkpoint all it shares with the one before. (In this long-lived process TensorBoard's
    # event-file names, which end in a per-process counter, can sort the test phase's file before
    # the resumed fit's, whose purge marker then hides the test's values from a reader.)
    kill = [
        "+callbacks.kill._target_=tests.helpers.kill.KillAfterValidation",
        "+callbacks.kill.epoch=6",
    ]
    killed = _check_killed(tmp_path, _start(long_run, tmp_path, *kill), signal.SIGKILL)
    last_path = tmp_path / "checkpoints" / "last.ckpt"
    resumed = _start(long_run, tmp_path, f"ckpt_path={last_path}")
    _wait_for_epochs(tmp_path, resumed, killed + 3)
    resumed.send_signal(signal.SIGTERM)
    assert _check_killed(tmp_path, resumed, signal.SIGTERM) >= killed + 3
    resumed = _start(long_run, tmp_path, f"ckpt_path={last_path}")
    assert resumed.wait(timeout=240) == 0, resumed.stderr.read()[-3000:]
    _same_result(straight_run, tmp_path)
    # TensorBoard: every curve has one point per step, the same values as the run never killed.
    assert _scalars(tmp_path) == _scalars(straight_run)


def _save_until_killed(path: Path, after: float) -> None:
    """Fork a process that saves checkpoints of 4M floats over `path` in a loop, and SIGKILL it
    `after` seconds past its first finished save."""
    saved, tell = os.pipe()
    child = os.fork()
    if child == 0:  # forked from this process: torch is imported already
        try:
            os.close(saved)
            torch.set_num_threads(1)  # no thread pool inherited from before the fork
            for i in range(10_000):
                w = torch.full((4_000_000,), float(i))
                SafeCheckpointIO().save_checkpoint({"state_dict": {"w": w}, "i": i}, path)
                os.write(tell, b".")
        finally:
            os._exit(1)  # never reached in time: the parent kills it long before
    os.close(tell)
    try:
        assert os.read(saved, 1) == b".", "the saver process failed"
        time.sleep(after)
        os.kill(child, signal.SIGKILL)
        _, status = os.waitpid(child, 0)
        assert os.waitstatus_to_exitcode(status) == -signal.SIGKILL
    finally:
        os.close(saved)


@pytest.mark.slow
def test_a_kill_during_save_never_leaves_a_corrupt_checkpoint(tmp_path: Path):
    path = tmp_path / "last.ckpt"
    for trial in range(10):
        _save_until_killed(path, after=0.01 + 0.023 * trial)  # a moment that varies per trial
        checkpoint = load_checkpoint(path)  # raises CheckpointError on a truncated file
        i = checkpoint["i"]
        assert torch.equal(checkpoint["state_dict"]["w"], torch.full((4_000_000,), float(i)))
    assert not [p for p in tmp_path.iterdir() if p.name == "last.ckpt" and p.stat().st_size == 0]


# every_step=false: the losses checked together after validation and at the epoch's end (a GPU's
# default), here on the CPU.
@pytest.mark.parametrize("every_step", ["true", "false"])
def test_non_finite_loss_stops_with_epoch_and_step(
    cfg_factory, tiny_overrides, monkeypatch, every_step
):
    # A loss that turns infinite from the third epoch on, whatever the task, model and loss.
    step = LitModel.training_step
    monkeypatch.setattr(
        LitModel,
        "training_step",
        lambda self, *batch: step(self, *batch) * (math.inf if self.current_epoch >= 2 else 1),
    )
    overrides = ["callbacks.progress_bar=null", f"+callbacks.finite_loss.every_step={every_step}"]
    cfg = cfg_factory(overrides=[*tiny_overrides, *overrides])
    with pytest.raises(NonFiniteLossError, match=r"at epoch 2, step \d+ .*learning rate") as info:
        train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    assert not (run_dir / "metrics.json").exists()
    last = run_dir / "checkpoints" / "last.ckpt"
    assert str(last) in str(info.value)
    weights = load_checkpoint(last)["state_dict"]
    assert all(torch.isfinite(w).all() for w in weights.values())


class _Payload:
    """Pickles into a call that creates a file: proof of code execution if it ever runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture
def malicious_checkpoint(trained_run: Path, tmp_path: Path) -> tuple[Path, Path]:
    checkpoint = load_checkpoint(trained_run / "checkpoints" / "last.ckpt")
    marker = tmp_path / "payload_ran"
    checkpoint["evil"] = _Payload(marker)
    path = tmp_path / "malicious.ckpt"
    torch.save(checkpoint, path)
    assert not marker.exists()
    return path, marker


def test_malicious_checkpoint_is_refused_and_never_runs(
    malicious_checkpoint, cfg_factory, entry_point, tiny_overrides
):
    path, marker = malicious_checkpoint
    with pytest.raises(CheckpointError, match="refused") as info:
        load_checkpoint(path)
    assert "weights_only=False" not in str(info.value)
    with pytest.raises(CheckpointError, match="refused"):
        model_from_checkpoint(path)
    with pytest.raises(CheckpointError, match="refused"):
        train(cfg_factory(overrides=[*tiny_overrides, f"ckpt_path={path}"]))
    result = entry_point("eval.py", f"ckpt_path={path}", f"hydra.run.dir={path.parent}/e")
    assert result.returncode != 0 and "refused" in result.stderr
    assert not marker.exists()


@pytest.mark.parametrize("url", ["https://example.com/model.ckpt", "s3://bucket/model.ckpt"])
def test_remote_checkpoints_are_refused(url):
    with pytest.raises(CheckpointError, match="remote checkpoints are not loaded"):
        load_checkpoint(url)


def test_truncated_checkpoint_is_a_clear_error(trained_run: Path, tmp_path: Path):
    data = (trained_run / "checkpoints" / "last.ckpt").read_bytes()
    path = tmp_path / "truncated.ckpt"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a checkpoint \\(truncated") as info:
        load_checkpoint(path)
    assert "weights_only=False" not in str(info.value)


def test_resuming_from_a_missing_checkpoint_fails_before_training(cfg_factory, tmp_path):
    cfg = cfg_factory(overrides=[f"ckpt_path={tmp_path}/checkpoints/last.ckpt"])
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        train(cfg)
    assert not Path(cfg.paths.output_dir).exists()


def test_invalid_config_on_the_command_line_exits_non_zero(tmp_path: Path, entry_point):
    result = entry_point("train.py", "trainer.max_epochs=abc", f"hydra.run.dir={tmp_path}/run")
    assert result.returncode != 0
    assert "trainer.max_epochs='abc': expected an integer >= 1" in result.stderr
    assert not (tmp_path / "run" / "metrics.json").exists()
