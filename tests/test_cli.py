"""The entry scripts as a user runs them: Hydra's run directories, exit codes and messages.

Training runs in fresh processes, as the README's command does; eval, predict and the error paths
run the same scripts in-process (the `entry_point` fixture): same answers, no interpreter start.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hydra.utils import instantiate

from litplate.run.checkpoint import load_checkpoint
from tests.helpers.project import CONFIG_DIR, ROOT


@pytest.mark.slow  # starts fresh interpreters
def test_train_eval_predict_scripts_and_two_runs_started_together_get_their_own_directories(
    tmp_path: Path, entry_point, tiny_overrides, assert_learned
):
    """Both of: train.py in a fresh process, then eval.py and predict.py on its checkpoint; two
    runs started together get their own directories (the default run dir, under the launch
    directory's logs/)."""
    args = [sys.executable, str(ROOT / "scripts" / "train.py"), *tiny_overrides]
    procs = []
    # The second run stops after one batch (fast_dev_run): it only has to start beside the first.
    for number, extra in enumerate([[], ["+trainer.fast_dev_run=true"]]):
        with (tmp_path / f"output{number}.txt").open("w") as output:
            procs.append(
                subprocess.Popen([*args, *extra], cwd=tmp_path, stdout=output, stderr=output)
            )
    outputs = []
    for number, proc in enumerate(procs):
        proc.wait(timeout=300)
        outputs.append((tmp_path / f"output{number}.txt").read_text())
        assert proc.returncode == 0, outputs[-1][-3000:]
    runs = sorted((tmp_path / "logs" / "train" / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:
        assert (run / "metrics.json").is_file()
    (run_dir,) = [run for run in runs if f"Run directory: {run}" in outputs[0]]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert_learned(metrics)
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / ".hydra" / "config.yaml").is_file()

    ckpt = run_dir / "checkpoints" / "last.ckpt"
    result = entry_point("eval.py", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'eval'}")
    assert result.returncode == 0, result.stderr[-3000:]
    evaluated = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    if metrics["tested_checkpoint"] == str(ckpt):  # test_ckpt=last: the same weights tested
        assert evaluated["test/loss"] == pytest.approx(metrics["test/loss"], rel=1e-6)
    assert_learned(evaluated)  # the checkpoint holds what the run learned

    result = entry_point("predict.py", f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path / 'pred'}")
    assert result.returncode == 0, result.stderr[-3000:]
    data = instantiate(load_checkpoint(ckpt)["run_config"]["data"])
    rows = len(data.split(data.predict_split)[0])
    assert len((tmp_path / "pred" / "predictions.csv").read_text().splitlines()) == 1 + rows


@pytest.mark.parametrize("script", ["eval.py", "predict.py"])
def test_missing_checkpoint_exits_non_zero_with_the_path(tmp_path: Path, script: str, entry_point):
    result = entry_point(script, f"ckpt_path={tmp_path}/missing.ckpt", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0
    assert f"checkpoint not found: {tmp_path}/missing.ckpt" in result.stderr
    assert not list(tmp_path.glob("*.json")) and not list(tmp_path.glob("*.csv"))


def test_invalid_data_argument_exits_non_zero_naming_it(tmp_path: Path, entry_point):
    result = entry_point("train.py", "data.batch_size=0", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0
    assert "data: batch_size=0: expected an integer >= 1, or null (full batch)" in result.stderr
    assert not (tmp_path / "metrics.json").exists()


def test_help_lists_every_config_group(entry_point):
    result = entry_point("train.py", "--help")
    assert result.returncode == 0
    listed = dict(re.findall(r"(?m)^([\w/]+): (.+)$", result.stdout))
    for folder in (p for p in CONFIG_DIR.rglob("*") if any(p.glob("*.yaml"))):
        group = folder.relative_to(CONFIG_DIR).as_posix()
        options = sorted(f.stem for f in folder.glob("*.yaml"))
        if group == "hydra":
            continue  # the project's Hydra settings (default.yaml), not a group to choose from
        assert set(options) <= set(listed[group].split(", ")), group
    assert {"basic", "joblib", "slurm", "submitit_local", "submitit_slurm"} <= set(
        listed["hydra/launcher"].split(", ")
    )
    sweepers = listed["hydra/sweeper"].split(", ")  # basic, and this project's Optuna sweeper
    assert sweepers[0] == "basic" and sweepers[1].endswith("_optuna") and len(sweepers) == 2
