"""DDP on the CPU: data split across ranks, one run directory, the same metrics as one process."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from hydra.utils import instantiate

from litplate.run.checkpoint import model_from_checkpoint
from tests.helpers.data import Ramp
from tests.helpers.runs import job_statuses, read_metrics
from tests.helpers.scripts import run_script


def same_metrics(got: dict, expected: dict, keys) -> None:
    """The losses to 1e-6; other metrics (R², sums of squares that nearly cancel, in float32)
    to a relative 1e-4: the order in which the ranks' sums are added shows in the 5th digit."""
    for key in keys:
        tolerance = {"abs": 1e-6} if key.endswith("/loss") else {"rel": 1e-4, "abs": 1e-6}
        assert got[key] == pytest.approx(expected[key], **tolerance), key


# --- DDP: data split across ranks ----------------------------------------------------------------


def test_ddp_evaluation_splits_points_across_ranks_without_repeats():
    # 15 test points over 2 ranks: 8 + 7. A padding DistributedSampler would evaluate 16.
    datamodule = Ramp(train_fraction=0.7, test_fraction=0.3)
    seen = []
    for rank in range(2):
        datamodule.trainer = SimpleNamespace(world_size=2, global_rank=rank, overfit_batches=0)
        seen += [x for X, _ in datamodule.test_dataloader() for x in X.squeeze(-1).tolist()]
    assert sorted(seen) == datamodule.split("test")[0].squeeze(-1).tolist()
    datamodule.trainer = None
    ((X, _),) = list(datamodule.test_dataloader())  # one process: the whole split, one batch
    assert len(X) == 15


def test_tensor_data_rows_are_split_across_ranks():
    from litplate.data.tensors import BatchIndexSampler

    def shards(pad: bool, epoch: int) -> list[list[int]]:
        out = []
        for rank in range(2):
            sampler = BatchIndexSampler(15, 4, True, seed=3, num_replicas=2, rank=rank, pad=pad)
            sampler.set_epoch(epoch)
            batches = list(sampler)
            assert len(batches) == len(sampler) and all(len(b) <= 4 for b in batches)
            out.append(torch.cat(batches).tolist())
        return out

    evaluation = shards(pad=False, epoch=0)
    assert sorted(evaluation[0] + evaluation[1]) == list(range(15))  # each row once
    assert [len(rows) for rows in evaluation] == [8, 7]
    training = shards(pad=True, epoch=0)
    assert [len(rows) for rows in training] == [8, 8]  # equal steps: one row repeated
    assert set(training[0] + training[1]) == set(range(15))
    assert shards(pad=True, epoch=1) != training  # reshuffled every epoch, the same on all ranks


@pytest.fixture
def own_environ():
    """Restore os.environ afterwards: ddp_spawn sets MASTER_PORT & co. in this process, and every
    later subprocess would inherit them (two SLURM test jobs then met on one port)."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


@pytest.mark.slow
@pytest.mark.usefixtures("own_environ")
def test_tensor_data_test_metrics_under_ddp_equal_a_single_process(short_run: Path):
    """TensorDataModule's own sampler under DDP: 4 test batches, 3 ranks, forked from this
    process (the sampler's question, not the start method's: ddp_spawn's own test is the
    multirun below).

    Lightning's own sampler would deal out the 4 batches to 3 ranks padded to 6, i.e. evaluate
    2 batches twice: the metrics would differ.
    """
    import lightning as L

    ckpt = short_run / "checkpoints" / "last.ckpt"  # 3 epochs: a model that is still off
    _, run_config = model_from_checkpoint(ckpt)
    rows = len(instantiate(run_config["data"]).split("test")[0])
    batches = {**run_config["data"], "batch_size": math.ceil(rows / 4)}
    assert math.ceil(rows / batches["batch_size"]) == 4
    results = {}
    for name, strategy, devices in (("single", "auto", 1), ("ddp", "ddp_fork", 3)):
        # A model of its own: forked ranks would inherit the first test's inference tensors.
        model, _ = model_from_checkpoint(ckpt)
        trainer = L.Trainer(
            accelerator="cpu", devices=devices, strategy=strategy, logger=False,
            enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        )  # fmt: skip
        (results[name],) = trainer.test(model, datamodule=instantiate(batches), verbose=False)
    single, ddp = results["single"], results["ddp"]
    assert single["test/loss"] > 0.01 and ddp.keys() == single.keys()
    same_metrics(ddp, single, single)


def test_predict_refuses_several_processes(short_run: Path, cfg_factory):
    from litplate.predict import predict_to_csv

    ckpt = short_run / "checkpoints" / "last.ckpt"
    cfg = cfg_factory("predict", overrides=[f"ckpt_path={ckpt}", "trainer=ddp_cpu"], name="pred")
    with pytest.raises(ValueError, match=r"predict\.py writes one CSV from one process"):
        predict_to_csv(cfg)


@pytest.mark.slow
def test_ddp_cpu_trains_in_one_run_directory(tmp_path: Path, one_process: Path, full_batch):
    # The default run directory (logs/train/runs/<time>_<pid>), to check that the re-launched
    # rank 1 joins rank 0's directory instead of making its own.
    result = run_script("train.py", *full_batch, "trainer=ddp_cpu", cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "distributed_backend=gloo" in output and "MEMBER: 2/2" in output
    assert "sync_dist=True` when logging on epoch level" not in output  # every value is reduced
    runs = list((tmp_path / "logs" / "train" / "runs").iterdir())
    assert len(runs) == 1, runs
    run = runs[0]
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("metrics.json")] == [
        (run / "metrics.json").relative_to(tmp_path)
    ]
    assert (run / "train_ddp_process_1.log").is_file()  # rank 1 ran, and logged here
    assert output.count(f"-> {run.resolve()}/metrics.json") == 1  # rank 1 wrote nothing

    metrics = read_metrics(run)
    for name in ("model.safetensors", "predictions.png", "checkpoints/last.ckpt"):
        assert (run / name).is_file()
    single = read_metrics(one_process)
    same_metrics(metrics, single, [k for k in single if k.startswith(("train/", "val/", "test/"))])
    assert metrics["epochs"] == single["epochs"] == 10


@pytest.mark.slow
@pytest.mark.usefixtures("own_environ")
def test_ddp_spawn_runs_in_a_multirun_like_one_process(
    tmp_path: Path, one_process: Path, entry_point, full_batch
):
    """ddp_spawn fits (and tests) in spawned processes; the main process writes the job's files
    once, with the same metrics, loss curves and epoch count as a single process. The test's
    processes are spawned from the process the fit's used (its port and environment left behind);
    the sweep runs in this process, as `python scripts/train.py -m` would. One job: a second
    would only spawn the same two pairs again."""
    sweep = tmp_path / "sweep"
    result = entry_point("train.py",
        "-m", *full_batch, "trainer=ddp_cpu", "trainer.strategy=ddp_spawn", "seed=42",
        f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert output.count("MEMBER: 2/2") == 2  # rank 1 of the fit, then of the test
    assert job_statuses(sweep) == {"0": "completed"}
    assert [p.parent.name for p in sweep.rglob("metrics.json")] == ["0"]
    assert not list(sweep.rglob(".temp.ckpt"))
    metrics, single = read_metrics(sweep / "0"), read_metrics(one_process)  # both seed 42
    assert sorted(metrics) == sorted(single)  # spawned processes hand back all they logged
    same_metrics(metrics, single, [k for k in single if k.startswith(("train/", "val/", "test/"))])
    assert metrics["epochs"] == single["epochs"] == 10
    assert (sweep / "0" / "loss_curves.png").stat().st_size > 10_000  # drawn, not empty axes


@pytest.mark.slow
def test_ddp_test_metrics_equal_a_single_process(tmp_path: Path, short_run: Path, entry_point):
    """One checkpoint tested by one process and by two: the same metrics.json.

    The test rows split between the ranks; the loss and the torchmetrics are reduced over both.
    """
    ckpt = short_run / "checkpoints" / "last.ckpt"  # 3 epochs: metrics far from perfect
    results = {}
    for trainer in ("cpu", "ddp_cpu"):
        out = tmp_path / f"eval_{trainer}"
        run = entry_point if trainer == "cpu" else run_script  # DDP re-launches the script
        result = run("eval.py", f"ckpt_path={ckpt}", f"trainer={trainer}", f"hydra.run.dir={out}")
        assert result.returncode == 0, result.stderr[-3000:]
        results[trainer] = json.loads((out / "metrics.json").read_text())
    single, ddp = results["cpu"], results["ddp_cpu"]
    assert single["test/loss"] > 0.01  # a real error to compare, not zeros
    tested = [key for key in single if key.startswith("test/")]
    assert len(tested) > 1 and ddp.keys() == single.keys()
    same_metrics(ddp, single, tested)


def test_ddp_in_a_multirun_is_refused_with_the_way_out(tmp_path: Path, entry_point):
    # In a multirun a failed job is recorded (failure.json, summary.csv) and the sweep goes on.
    result = entry_point(
        "train.py",
        "-m",
        "trainer=ddp_cpu",
        "seed=1,2",
        "trainer.max_epochs=1",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert result.returncode == 1, result.stderr[-3000:]  # after summary.csv, naming the jobs
    assert "Sweep failed: 2 of 2 jobs failed: #0 (seed=1)" in result.stderr
    for job in ("0", "1"):
        error = json.loads((tmp_path / job / "failure.json").read_text())["error"]
        assert error.startswith("DistributedLaunchError: strategy=ddp with 2 devices")
        assert "in a multirun (-m) is the whole sweep" in error and "ddp_spawn" in error
    assert not list(tmp_path.rglob("metrics.json"))
    assert not list(tmp_path.rglob("train_ddp_process_1.log"))  # no rank was started
