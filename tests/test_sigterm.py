"""SIGTERM while a run tests its model: exit 1 with what to do, never a silent success with no
results (Lightning ends the stage with a SystemExit of code 0)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from litplate.evaluate import evaluate
from litplate.models.base import LitModel
from litplate.run.resume import RunInterrupted
from litplate.train import train


@pytest.fixture
def sigterm_in_test_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first test batch sends this process a SIGTERM, as a scheduler would."""
    test_step = LitModel.test_step

    def stopped(self, batch, batch_idx):
        if batch_idx == 0:
            os.kill(os.getpid(), signal.SIGTERM)
        return test_step(self, batch, batch_idx)

    monkeypatch.setattr(LitModel, "test_step", stopped)


def test_sigterm_while_a_run_tests_writes_nothing_and_says_how_to_go_on(
    cfg_factory, short_overrides, sigterm_in_test_step, monkeypatch
):
    cfg = cfg_factory(overrides=[*short_overrides, "++data.batch_size=2"])
    run_dir = Path(cfg.paths.output_dir)
    with pytest.raises(
        RunInterrupted, match="SIGTERM received while testing; nothing was written"
    ) as err:
        train(cfg)
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "model.safetensors").exists()
    last = run_dir / "checkpoints" / "last.ckpt"
    assert f"resume with ckpt_path={last} to test it" in str(err.value)

    monkeypatch.undo()  # as it says: the resumed run tests the finished fit and writes its files
    resumed = cfg_factory(overrides=[*short_overrides, "++data.batch_size=2", f"ckpt_path={last}"])
    metrics = train(resumed)
    assert json.loads((run_dir / "metrics.json").read_text())["test/loss"] == metrics["test/loss"]


def test_sigterm_while_eval_tests_writes_no_metrics(
    cfg_factory, short_run: Path, sigterm_in_test_step
):
    ckpt = short_run / "checkpoints" / "last.ckpt"
    cfg = cfg_factory("eval", [f"ckpt_path={ckpt}", "+data.batch_size=2"], name="eval")
    with pytest.raises(RunInterrupted, match="SIGTERM received while testing; nothing was written"):
        evaluate(cfg)
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()


def test_sigterm_in_a_multirun_stops_the_sweep_not_only_its_job(
    short_overrides, sigterm_in_test_step, entry_point, tmp_path: Path
):
    sweep = tmp_path / "sweep"
    result = entry_point(
        "train.py", "-m", *short_overrides, "++data.batch_size=2", "seed=1,2",
        f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "SIGTERM received while testing" in output and "the sweep stops" in output
    failure = json.loads((sweep / "0" / "failure.json").read_text())
    assert "SIGTERM received while testing" in failure["error"]
    assert not (sweep / "1").exists()  # the next job never started
