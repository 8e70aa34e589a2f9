"""Hydra's launchers: submitit (local and SLURM, on a stand-in SLURM), joblib, and srun."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.project import ROOT
from tests.helpers.runs import job_statuses, read_metrics
from tests.helpers.scripts import run_script, with_path

# --- Hydra launchers -----------------------------------------------------------------------------


def _sweep(tmp_path: Path, entry_point, short: list[str], *launcher: str) -> list[dict]:
    """A 2-job sweep; the sweep's own process is this one, its jobs run where the launcher runs
    them (submitit and joblib start processes of their own)."""
    sweep = tmp_path / "sweep"
    result = entry_point(
        "train.py", "-m", *launcher, *short, "model.optimizer.lr=0.01,0.02",
        f"hydra.sweep.dir={sweep}",
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir() and not p.name.startswith("."))
    assert [p.name for p in jobs] == ["0", "1"]
    metrics = [read_metrics(job) for job in jobs]
    assert [m["epochs"] for m in metrics] == [3, 3]
    assert job_statuses(sweep) == {"0": "completed", "1": "completed"}
    return metrics


@pytest.mark.slow
def test_multirun_through_submitit_local(tmp_path: Path, entry_point, short_overrides):
    metrics = _sweep(tmp_path, entry_point, short_overrides, "hydra/launcher=submitit_local")
    assert metrics[0]["test/loss"] != metrics[1]["test/loss"]  # two configurations, two results
    assert list((tmp_path / "sweep" / ".submitit").glob("*/*_result.pkl"))  # ran through submitit


@pytest.mark.slow
def test_multirun_through_joblib(tmp_path: Path, entry_point, short_overrides):
    launcher = ["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"]
    metrics = _sweep(tmp_path, entry_point, short_overrides, *launcher)
    assert metrics[0]["test/loss"] != metrics[1]["test/loss"]


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
    result = run_script(
        "train.py", "-m", "hydra/launcher=slurm", "hydra.launcher.partition=gpu",
        "hydra.launcher.timeout_min=120", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2",
        "seed=1,2", f"hydra.sweep.dir={tmp_path}/s", timeout=120, env=with_path(bin_dir),
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
def test_a_sweep_of_two_node_ddp_runs_on_slurm(
    tmp_path: Path, entry_point, monkeypatch, tiny_overrides
):
    """hydra/launcher=slurm end to end, on a stand-in SLURM (tests/helpers/fake_slurm.py) here.

    Two jobs (a job array), each a DDP run over 2 "nodes" x 1 CPU device: SLURM starts the 2
    tasks, Lightning's SLURMEnvironment joins them, rank 0 writes the job's files.
    """
    from tests.helpers import fake_slurm

    fake_slurm.install(tmp_path / "bin")
    sweep = tmp_path / "sweep"
    monkeypatch.setenv("PATH", with_path(tmp_path / "bin")["PATH"])
    monkeypatch.setenv("FAKE_SLURM_DIR", str(tmp_path / "slurm"))
    result = entry_point(  # the sweep in this process; the stand-in SLURM starts the tasks
        "train.py", "-m", "hydra/launcher=slurm", "hydra.launcher.gpus_per_node=null",
        "trainer=ddp_cpu", "trainer.devices=1", "trainer.num_nodes=2", *tiny_overrides,
        "trainer.max_epochs=5", "callbacks.progress_bar=null", "seed=42,7",
        f"hydra.sweep.dir={sweep}",
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
    assert job_statuses(sweep) == {"0": "completed", "1": "completed"}
    first, second = (read_metrics(sweep / job) for job in ("0", "1"))
    assert first["epochs"] == second["epochs"] == 5
    assert (first["seed"], second["seed"]) == (42, 7)
    assert first["train/loss"] != second["train/loss"]  # two seeds, two results
    assert len(list(sweep.rglob("metrics.json"))) == 2


@pytest.mark.slow
def test_srun_of_a_single_run_shares_its_run_directory(
    tmp_path: Path, full_batch: list[str], one_process: Path
):
    """The README's own-sbatch recipe: `srun python scripts/train.py ... hydra.run.dir=...`.

    SLURM (here tests/helpers/fake_slurm.py's srun) starts both ranks; Lightning launches none.
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
        [sys.executable, str(ROOT / "tests" / "helpers" / "fake_slurm.py"), "srun",
         sys.executable, str(ROOT / "scripts" / "train.py"), *full_batch,
         "trainer=ddp_cpu",
         f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert output.count("MEMBER: 2/2") == 1 and output.count("MEMBER: 1/2") == 1
    assert not (run_dir / "train_ddp_process_1.log").exists()  # Lightning started no process
    assert list(tmp_path.iterdir()) == [run_dir]
    metrics, expected = read_metrics(run_dir), read_metrics(one_process)
    assert metrics["epochs"] == expected["epochs"] == 10
    for key in ("train/loss", "val/loss", "test/loss"):
        assert metrics[key] == pytest.approx(expected[key], abs=1e-5), key
