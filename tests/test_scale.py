"""Scaling up: trainer presets, device checks, DDP on the CPU, and Hydra's launchers."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from litplate.data import LinearDataModule, TensorDataModule
from litplate.devices import DeviceUnavailableError, check_devices
from litplate.train import train
from tests.conftest import ROOT, read_metrics

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no CUDA GPU")


def run_train(*args: str, cwd: Path = ROOT, timeout: int = 300) -> subprocess.CompletedProcess:
    """scripts/train.py in a fresh process, as a user runs it (DDP re-launches this command)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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
def test_bf16_mixed_trains_on_the_cpu(cfg_factory):
    overrides = ["experiment=linear", "trainer.precision=bf16-mixed", "callbacks.progress_bar=null"]
    cfg = cfg_factory(overrides=overrides)
    metrics = train(cfg)
    assert abs(metrics["weight"] - 0.7) < 0.01 and abs(metrics["bias"] - 0.3) < 0.01


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


def test_cpu_auto_and_others_are_not_checked(monkeypatch):
    _no_cuda(monkeypatch)
    for accelerator in ("cpu", "auto", "tpu"):
        check_devices({"accelerator": accelerator, "devices": 8})
    with pytest.raises(DeviceUnavailableError, match=r"torch\.backends\.mps\.is_available"):
        check_devices({"accelerator": "mps", "devices": 1})


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_trainer_gpu_without_a_gpu_exits_non_zero_with_one_message(tmp_path: Path, entry_point):
    result = entry_point(
        "train.py", "experiment=linear", "trainer=gpu", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode != 0
    assert (
        "trainer=gpu (accelerator=gpu, devices=1) asks for 1 CUDA device but torch sees none "
        "(torch.cuda.is_available() is False) — use trainer=cpu or trainer=auto"
    ) in result.stderr
    assert "Traceback" not in result.stderr and "CUDA error" not in result.stderr
    assert not (tmp_path / "metrics.json").exists()
    assert not (tmp_path / "checkpoints").exists()  # stopped before any training


# --- DDP: data split across ranks ----------------------------------------------------------------


def test_ddp_evaluation_splits_points_across_ranks_without_repeats():
    # 15 test points over 2 ranks: 8 + 7. A padding DistributedSampler would evaluate 16.
    datamodule = LinearDataModule(train_fraction=0.7, test_fraction=0.3)
    seen = []
    for rank in range(2):
        datamodule.trainer = SimpleNamespace(world_size=2, global_rank=rank)
        seen += [x for X, _ in datamodule.test_dataloader() for x in X.squeeze(-1).tolist()]
    assert sorted(seen) == datamodule.split("test")[0].squeeze(-1).tolist()
    datamodule.trainer = None
    ((X, _),) = list(datamodule.test_dataloader())  # one process: the whole split, one batch
    assert len(X) == 15


def test_tensor_data_rows_are_split_across_ranks():
    from litplate.data.tensors import BatchIndexSampler, DistributedBatchIndexSampler

    def shards(pad: bool, epoch: int) -> list[list[int]]:
        out = []
        for rank in range(2):
            rows = BatchIndexSampler(15, 4, shuffle=True, seed=3)
            sampler = DistributedBatchIndexSampler(rows, num_replicas=2, rank=rank, pad=pad)
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


class _LineTensors(TensorDataModule):
    """The course's line as a TensorDataModule (the base of data=csv)."""

    def __init__(self, **split_and_batch) -> None:
        super().__init__(**split_and_batch)
        X = torch.arange(0, 1, 0.02).unsqueeze(1)
        self.set_data(X, 0.7 * X + 0.3)


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
def test_tensor_data_test_metrics_under_ddp_equal_a_single_process():
    """TensorDataModule's own sampler under DDP (ddp_spawn, in this process): 15 rows, 3 ranks.

    Lightning's own sampler would deal out the 4 batches of 4 rows to 3 ranks padded to 6, i.e.
    evaluate 2 batches twice: the metrics would differ.
    """
    import lightning as L

    from litplate.models import LinearRegression

    model = LinearRegression()
    with torch.no_grad():
        model.weights.fill_(0.4)
        model.bias.fill_(0.33)
    results = {}
    for name, strategy, devices in (("single", "auto", 1), ("ddp", "ddp_spawn", 3)):
        trainer = L.Trainer(
            accelerator="cpu", devices=devices, strategy=strategy, logger=False,
            enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
        )  # fmt: skip
        datamodule = _LineTensors(train_fraction=0.7, test_fraction=0.3, batch_size=4)
        (results[name],) = trainer.test(model, datamodule=datamodule, verbose=False)
    single, ddp = results["single"], results["ddp"]
    assert single["test/mae"] > 0.01
    for key in ("test/loss", "test/mae", "test/mse"):
        assert ddp[key] == pytest.approx(single[key], rel=1e-5), key
    assert ddp["test/r2"] == pytest.approx(single["test/r2"], rel=1e-4)


def test_predict_refuses_several_processes(linear_run: Path, cfg_factory):
    from litplate.predict import predict_to_csv

    ckpt = linear_run / "checkpoints" / "last.ckpt"
    cfg = cfg_factory("predict", overrides=[f"ckpt_path={ckpt}", "trainer=ddp_cpu"], name="pred")
    with pytest.raises(ValueError, match=r"predict\.py writes one CSV from one process"):
        predict_to_csv(cfg)


@pytest.mark.slow
def test_ddp_cpu_trains_linear_in_one_run_directory(tmp_path: Path, linear_run: Path):
    # The default run directory (logs/train/runs/<time>_<pid>), to check that the re-launched
    # rank 1 joins rank 0's directory instead of making its own.
    result = run_train("experiment=linear", "trainer=ddp_cpu", cwd=tmp_path)
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
    assert output.count("[litplate.train][INFO] - weight=") == 1  # rank 1 wrote nothing

    metrics = read_metrics(run)
    assert abs(metrics["weight"] - 0.7) < 0.01 and abs(metrics["bias"] - 0.3) < 0.01
    for name in ("model.safetensors", "predictions.png", "checkpoints/last.ckpt"):
        assert (run / name).is_file()
    # Each rank trained on half of the 40 points; with the gradients all-reduced that is the
    # single-process full-batch step, so the run matches the single-process one.
    single = read_metrics(linear_run)
    for key in ("weight", "bias"):
        assert metrics[key] == pytest.approx(single[key], abs=1e-5)
    for key in ("test/loss", "test/mae", "test/mse", "val/loss", "train/loss"):
        assert metrics[key] == pytest.approx(single[key], abs=1e-6)
    assert metrics["epochs"] == single["epochs"] == 300


@pytest.mark.slow
def test_ddp_spawn_trains_linear_like_ddp(tmp_path: Path, linear_run: Path):
    """ddp_spawn fits in spawned processes; the main process writes the run's files once, with
    the same metrics, loss curves and epoch count as a single process."""
    result = run_train(
        "experiment=linear", "trainer=ddp_cpu", "trainer.strategy=ddp_spawn",
        "callbacks.progress_bar=null", cwd=tmp_path,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert "MEMBER: 2/2" in output
    (run,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    assert [p.relative_to(tmp_path) for p in tmp_path.rglob("metrics.json")] == [
        (run / "metrics.json").relative_to(tmp_path)
    ]
    assert not list(run.rglob(".temp.ckpt"))
    metrics, single = read_metrics(run), read_metrics(linear_run)
    assert sorted(metrics) == sorted(single)  # spawned processes hand back all they logged
    for key in ("weight", "bias"):
        assert metrics[key] == pytest.approx(single[key], abs=1e-5)
    for key in ("test/loss", "test/mae", "val/loss", "val/mae", "train/loss"):
        assert metrics[key] == pytest.approx(single[key], abs=1e-6)
    assert metrics["epochs"] == single["epochs"] == 300
    assert (run / "loss_curves.png").stat().st_size > 10_000  # 300 epochs drawn, not empty axes


@pytest.mark.slow
def test_ddp_spawn_in_a_multirun(tmp_path: Path):
    sweep = tmp_path / "sweep"
    result = run_train(
        "-m", "experiment=linear", "trainer=ddp_cpu", "trainer.strategy=ddp_spawn",
        "trainer.max_epochs=5", "callbacks.progress_bar=null", "seed=1,2",
        f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert _summary(sweep) == {"0": "completed", "1": "completed"}
    first, second = (read_metrics(sweep / job) for job in ("0", "1"))
    assert first["epochs"] == second["epochs"] == 5
    assert first["seed"] == 1 and second["seed"] == 2 and first["weight"] != second["weight"]
    assert sorted(p.parent.name for p in sweep.rglob("metrics.json")) == ["0", "1"]


@pytest.mark.slow
def test_ddp_test_metrics_equal_a_single_process(tmp_path: Path, cfg_factory):
    """One checkpoint tested by one process and by two: the same metrics.json.

    15 test points split 8 + 7; the loss and the torchmetrics are reduced over both ranks.
    """
    cfg = cfg_factory(
        overrides=[
            "experiment=linear_tutorial",
            "data.train_fraction=0.7",
            "data.test_fraction=0.3",
            "trainer.max_epochs=20",  # a model that is still off: metrics far from zero
            "callbacks.progress_bar=null",
        ]
    )
    train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    results = {}
    for trainer in ("cpu", "ddp_cpu"):
        out = tmp_path / f"eval_{trainer}"
        result = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "eval.py"), f"ckpt_path={ckpt}",
             f"trainer={trainer}", f"hydra.run.dir={out}"],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        results[trainer] = json.loads((out / "metrics.json").read_text())
    single, ddp = results["cpu"], results["ddp_cpu"]
    assert single["test/mae"] > 0.01  # a real error to compare, not zeros
    for key in ("test/loss", "test/mae", "test/mse"):
        assert ddp[key] == pytest.approx(single[key], rel=1e-5), key
    # R² = 1 - SSE/SST, with SST from float32 sums of y and y² that nearly cancel: the order in
    # which the ranks' sums are added shows in the 5th digit.
    assert ddp["test/r2"] == pytest.approx(single["test/r2"], rel=1e-4)


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


# --- Hydra launchers -----------------------------------------------------------------------------


def _sweep(tmp_path: Path, *launcher: str) -> list[dict]:
    sweep = tmp_path / "sweep"
    result = run_train(
        "-m",
        *launcher,
        "experiment=linear",
        "trainer.max_epochs=20",
        "callbacks.progress_bar=null",
        "model.optimizer.lr=0.01,0.02",
        f"hydra.sweep.dir={sweep}",
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [p.name for p in jobs] == ["0", "1"]
    metrics = [read_metrics(job) for job in jobs]
    assert [m["epochs"] for m in metrics] == [20, 20]
    assert _summary(sweep) == {"0": "completed", "1": "completed"}
    return metrics


def _summary(sweep: Path) -> dict[str, str]:
    """The sweep summary's status per job (summary.csv, written by the SweepSummary callback)."""
    with (sweep / "summary.csv").open() as file:
        return {row["job"]: row["status"] for row in csv.DictReader(file)}


@pytest.mark.slow
def test_multirun_through_submitit_local(tmp_path: Path):
    metrics = _sweep(tmp_path, "hydra/launcher=submitit_local")
    assert metrics[0]["test/loss"] != metrics[1]["test/loss"]  # two configurations, two results
    assert list((tmp_path / "sweep" / ".submitit").glob("*/*_result.pkl"))  # ran through submitit


@pytest.mark.slow
def test_multirun_through_joblib(tmp_path: Path):
    metrics = _sweep(tmp_path, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2")
    assert metrics[0]["test/loss"] != metrics[1]["test/loss"]


def _with_path(bin_dir: Path) -> dict[str, str]:
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}


def test_slurm_launcher_asks_slurm_for_one_task_per_device(tmp_path: Path):
    """hydra/launcher=slurm as far as sbatch: a stand-in sbatch keeps the script and refuses."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "srun").write_text("#!/bin/sh\nexit 1\n")  # submitit looks for srun first
    (bin_dir / "sbatch").write_text(
        f'#!/bin/sh\ncp "$1" {tmp_path}/job.sh\necho "sbatch: stand-in" >&2; exit 1\n'
    )
    for command in bin_dir.iterdir():
        command.chmod(0o755)
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "-m", "hydra/launcher=slurm",
         "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=120", "trainer=ddp",
         "trainer.devices=4", "trainer.num_nodes=2", "seed=1,2", f"hydra.sweep.dir={tmp_path}/s"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, env=_with_path(bin_dir),
    )  # fmt: skip
    assert result.returncode != 0 and "sbatch: stand-in" in result.stderr
    lines = (tmp_path / "job.sh").read_text().splitlines()
    for line in (
        "#SBATCH --partition=gpu",
        "#SBATCH --time=120",
        "#SBATCH --nodes=2",
        "#SBATCH --ntasks-per-node=4",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --array=0-1%2",  # the sweep's two jobs as one job array
    ):
        assert line in lines, lines


@pytest.mark.slow
def test_a_sweep_of_two_node_ddp_runs_on_slurm(tmp_path: Path):
    """hydra/launcher=slurm end to end, on a stand-in SLURM (tests/fake_slurm.py) on this machine.

    Two jobs (a job array), each a DDP run over 2 "nodes" x 1 CPU device: SLURM starts the 2
    tasks, Lightning's SLURMEnvironment joins them, rank 0 writes the job's files.
    """
    from tests import fake_slurm

    fake_slurm.install(tmp_path / "bin")
    sweep = tmp_path / "sweep"
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train.py"), "-m", "hydra/launcher=slurm",
         "hydra.launcher.gpus_per_node=null", "trainer=ddp_cpu", "trainer.devices=1",
         "trainer.num_nodes=2", "experiment=linear", "callbacks.progress_bar=null", "seed=42,7",
         f"hydra.sweep.dir={sweep}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
        env={**_with_path(tmp_path / "bin"), "FAKE_SLURM_DIR": str(tmp_path / "slurm")},
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    (script,) = sweep.glob(".submitit/*/*_submission.sh")
    lines = script.read_text().splitlines()
    assert "#SBATCH --nodes=2" in lines and "#SBATCH --ntasks-per-node=1" in lines
    logs = "".join(path.read_text() for path in sweep.glob(".submitit/*/*_log.*"))
    assert logs.count("MEMBER: 2/2") == 2  # each job's second task joined as global rank 1
    assert sorted(p.name for p in sweep.iterdir() if not p.name.startswith(".")) == [
        "0", "1", "multirun.yaml", "summary.csv"
    ]  # fmt: skip
    assert _summary(sweep) == {"0": "completed", "1": "completed"}
    for job in ("0", "1"):
        metrics = read_metrics(sweep / job)
        assert abs(metrics["weight"] - 0.7) < 0.01 and abs(metrics["bias"] - 0.3) < 0.01
    assert len(list(sweep.rglob("metrics.json"))) == 2


@pytest.mark.slow
def test_srun_of_a_single_run_shares_its_run_directory(tmp_path: Path):
    """The README's own-sbatch recipe: `srun python scripts/train.py ... hydra.run.dir=...`.

    SLURM (here tests/fake_slurm.py's srun) starts both ranks; Lightning launches none.
    """
    run_dir = tmp_path / "run"
    env = {
        **{k: v for k, v in os.environ.items() if k not in ("MASTER_ADDR", "MASTER_PORT")},
        "SLURM_JOB_ID": f"9{os.getpid() % 10000:04d}",  # the rendezvous port comes from it
        "SLURM_JOB_NAME": "train",
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_NNODES": "1",
        "SLURM_JOB_NUM_NODES": "1",
        "SLURM_JOB_NODELIST": "localhost",
        "SLURM_NODELIST": "localhost",
    }
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "fake_slurm.py"), "srun",
         sys.executable, str(ROOT / "scripts" / "train.py"), "experiment=linear",
         "trainer=ddp_cpu", "callbacks.progress_bar=null", f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert output.count("MEMBER: 2/2") == 1 and output.count("MEMBER: 1/2") == 1
    assert not (run_dir / "train_ddp_process_1.log").exists()  # Lightning started no process
    assert list(tmp_path.iterdir()) == [run_dir]
    metrics = read_metrics(run_dir)
    assert abs(metrics["weight"] - 0.7) < 0.01 and abs(metrics["bias"] - 0.3) < 0.01


# --- on a GPU (skipped where there is none) -------------------------------------------------------


@needs_cuda
@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_linear_trains_on_a_gpu(tmp_path: Path, precision: str):
    result = run_train(
        "experiment=linear", "trainer=gpu", f"trainer.precision={precision}",
        f"hydra.run.dir={tmp_path}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = read_metrics(tmp_path)
    assert abs(metrics["weight"] - 0.7) < 0.01 and abs(metrics["bias"] - 0.3) < 0.01


@needs_cuda
@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 CUDA GPUs")
def test_linear_trains_with_ddp_on_two_gpus(tmp_path: Path):
    result = run_train("experiment=linear", "trainer=ddp", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (tmp_path / "logs" / "train" / "runs").iterdir()
    metrics = read_metrics(run)
    assert abs(metrics["weight"] - 0.7) < 0.01 and abs(metrics["bias"] - 0.3) < 0.01
