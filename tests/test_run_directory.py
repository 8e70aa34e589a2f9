"""A run's results are never lost or mixed: one run per directory, a finished run resumes as
finished, and only finite weights are ever saved."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback

from litplate.run.callbacks import NonFiniteLossError
from litplate.run.checkpoint import CheckpointError, SafeCheckpointIO, load_checkpoint
from litplate.run.run_directory import lock_run_directory
from litplate.run.validation import ConfigError
from litplate.train import train
from tests.helpers.runs import digests, read_metrics


@pytest.fixture(scope="module")
def quick(tiny_overrides: list[str]) -> list[str]:
    return [*tiny_overrides, "trainer.max_epochs=5", "callbacks.progress_bar=null"]


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory, run_in_process, quick) -> Path:
    """One run, as `python scripts/train.py` leaves it; each test compares it before and after."""
    run_dir = tmp_path_factory.mktemp("finished") / "run"
    assert run_in_process("train.py", *quick, f"hydra.run.dir={run_dir}") == 0
    return run_dir


def test_a_second_fresh_run_into_a_taken_directory_stops_and_changes_nothing(
    finished_run: Path, entry_point, quick
):
    before = digests(finished_run)
    result = entry_point("train.py", *quick, "seed=7", f"hydra.run.dir={finished_run}")
    assert result.returncode == 1
    taken = "(checkpoints, metrics.json, model.safetensors)"
    assert f"{finished_run} already holds a run {taken}" in result.stderr
    assert digests(finished_run) == before


def test_eval_export_and_predict_never_write_into_a_training_run(finished_run: Path, entry_point):
    before = digests(finished_run)
    last = finished_run / "checkpoints" / "last.ckpt"
    for script, *extra in [("eval.py",), ("export.py", "format=safetensors"), ("predict.py",)]:
        result = entry_point(script, f"ckpt_path={last}", *extra, f"hydra.run.dir={finished_run}")
        assert result.returncode == 1, script
        assert result.stderr.strip().splitlines() == [
            f"Error: {finished_run} already holds a run (checkpoints, metrics.json, "
            "model.safetensors): nothing was written. Choose another hydra.run.dir (by default "
            "each run gets its own)"
        ], script
        assert digests(finished_run) == before, script  # .hydra, metrics.json, weights, logs


def test_a_run_stopped_by_a_config_error_does_not_block_the_retry(tmp_path: Path, entry_point):
    run_dir = tmp_path / "run"
    failed = entry_point("train.py", "model.optimizer.lr=-1", f"hydra.run.dir={run_dir}")
    assert failed.returncode == 1 and "model.optimizer.lr=-1" in failed.stderr
    assert (run_dir / ".hydra").is_dir() and not (run_dir / "checkpoints").exists()
    retried = entry_point(
        "train.py", "debug=fdr", "extras.print_config=false", f"hydra.run.dir={run_dir}"
    )
    assert retried.returncode == 0, retried.stderr
    assert (run_dir / "metrics.json").is_file()


def test_a_live_run_holds_its_directory(tmp_path: Path, entry_point, quick):
    run_dir = tmp_path / "live"
    run_dir.mkdir()
    lock = lock_run_directory(run_dir)  # as a run in progress holds it
    try:
        result = entry_point("train.py", *quick, f"hydra.run.dir={run_dir}")
    finally:
        lock.close()
    assert result.returncode == 1
    assert "another run is writing into this directory now" in result.stderr
    assert sorted(p.name for p in run_dir.iterdir()) == [".run.lock"]


def test_resuming_a_finished_run_keeps_its_results(finished_run: Path, entry_point, learned):
    """The README's resume command, with RUN an absolute path."""
    before = read_metrics(finished_run)
    run = str(finished_run.resolve())
    result = entry_point(
        "train.py",
        "-cp", f"{run}/.hydra", "-cn", "config",
        f"hydra.run.dir={run}", f"ckpt_path={run}/checkpoints/last.ckpt",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "was already complete (5 epochs): nothing to train" in result.stdout + result.stderr
    after = read_metrics(finished_run)
    assert sorted(after) == sorted(before)
    for key in (*learned, "val/loss", "train/loss", "test/loss", "epochs"):
        assert after[key] == pytest.approx(before[key], abs=1e-7), key


@pytest.mark.parametrize("lr", ["inf", "nan", "-inf"])
def test_a_non_finite_learning_rate_is_refused_before_training(cfg_factory, lr, quick):
    cfg = cfg_factory(overrides=[*quick, f"model.optimizer.lr={lr}"])
    with pytest.raises(ConfigError, match=f"model.optimizer.lr={float(lr)!r}: expected a finite"):
        train(cfg)
    assert not Path(cfg.paths.output_dir).exists()


class PoisonWeights(Callback):
    """Sets the parameters to NaN after the last step of `epoch`: the loss of that step was finite,
    and no later step of the epoch computes one from them."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.current_epoch == self.epoch and batch_idx == trainer.num_training_batches - 1:
            with torch.no_grad():
                for parameter in pl_module.parameters():
                    parameter.fill_(float("nan"))


def test_weights_that_become_non_finite_are_never_saved(cfg_factory, quick):
    poison = [
        f"+callbacks.poison._target_={__name__}.PoisonWeights",
        "+callbacks.poison.epoch=3",
    ]
    cfg = cfg_factory(overrides=[*quick, *poison])
    with pytest.raises(NonFiniteLossError, match=r"weights became NaN or infinite at epoch 3"):
        train(cfg)
    run_dir = Path(cfg.paths.output_dir)
    assert not (run_dir / "metrics.json").exists()
    for name in ("last.ckpt", "best.ckpt"):
        state = load_checkpoint(run_dir / "checkpoints" / name)["state_dict"]
        assert all(torch.isfinite(value).all() for value in state.values()), name
    assert load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["epoch"] == 2


def test_a_checkpoint_with_non_finite_weights_is_never_written(tmp_path: Path):
    path = tmp_path / "nan.ckpt"
    with pytest.raises(CheckpointError, match=r"nan\.ckpt not written: NaN or infinite .* in b"):
        SafeCheckpointIO().save_checkpoint(
            {"state_dict": {"a": torch.ones(2), "b": torch.tensor([float("nan")])}}, path
        )
    assert not path.exists()


def files_as_they_are(directory: Path) -> tuple[dict[str, str], dict[str, int]]:
    """digests(directory), and the mtime of everything below it: a file rewritten with the same
    bytes, or a folder that got or lost an entry, changes it."""
    paths = (path for path in directory.rglob("*") if path.name != ".run.lock")
    return digests(directory), {str(path): path.stat().st_mtime_ns for path in paths}


def assert_refused(result, error: str, directory: Path, before: tuple, what: object) -> None:
    """Exit 1 with one line, `Error: {error}`, and `directory` exactly as it was `before`."""
    assert result.returncode == 1, what
    assert result.stderr.strip().splitlines() == [f"Error: {error}"], what
    assert files_as_they_are(directory) == before, what


def test_a_second_predict_or_export_into_one_directory_stops_and_keeps_the_first(
    finished_run: Path, entry_point, tmp_path: Path
):
    best = finished_run / "checkpoints" / "best.ckpt"
    for script, *extra, result_file in [
        ("predict.py", "predictions.csv"),
        ("export.py", "format=pt2", "export.json"),
    ]:
        out = tmp_path / script
        first = entry_point(script, f"ckpt_path={best}", *extra, f"hydra.run.dir={out}")
        assert first.returncode == 0, first.stderr[-3000:]
        before = files_as_they_are(out)
        assert result_file in before[0]
        again = entry_point(script, f"ckpt_path={best}", *extra, f"hydra.run.dir={out}")
        error = (
            f"{out} already holds a run ({result_file}): nothing was written. Choose "
            "another hydra.run.dir (by default each run gets its own)"
        )
        assert_refused(again, error, out, before, script)


def test_no_run_or_sweep_starts_inside_a_runs_directory(finished_run: Path, entry_point, quick):
    before = files_as_they_are(finished_run)
    last = finished_run / "checkpoints" / "last.ckpt"
    held = "which holds a run (checkpoints, metrics.json, model.safetensors): nothing was written"
    runs = [
        ("eval.py", f"ckpt_path={last}", "tensorboard"),
        ("export.py", f"ckpt_path={last}", "format=safetensors", "checkpoints"),
        ("predict.py", f"ckpt_path={last}", "new/predictions"),
        # A ckpt_path inside the directory resumes only the run that the directory is.
        ("train.py", *quick, f"ckpt_path={last}", "checkpoints"),
    ]
    for script, *args, inner in runs:
        result = entry_point(script, *args, f"hydra.run.dir={finished_run / inner}")
        error = (
            f"{finished_run / inner} is inside {finished_run.resolve()}, {held}. Choose "
            "another hydra.run.dir (by default each run gets its own)"
        )
        assert_refused(result, error, finished_run, before, script)
    taken = "a run (checkpoints, metrics.json, model.safetensors): nothing was written"
    for args, sweep_dir, where in [
        (["seed=1,2"], finished_run / "sweep", f"is inside {finished_run.resolve()}, which holds"),
        # A persisted Optuna study continues in its own directory, never in a run's.
        (["hydra/sweeper=litplate_optuna", "seed=choice(1,2)"], finished_run, "already holds"),
    ]:
        result = entry_point("train.py", "-m", *quick, *args, f"hydra.sweep.dir={sweep_dir}")
        error = (
            f"{sweep_dir} {where} {taken}. Choose another hydra.sweep.dir (by default "
            "each sweep gets its own)"
        )
        assert_refused(result, error, finished_run, before, args)


def test_paths_output_dir_cannot_point_a_run_at_another_runs_directory(
    finished_run: Path, entry_point, quick, tmp_path: Path
):
    """Every file of a run goes to paths.output_dir: set to another run's directory, it would
    bypass the check of hydra.run.dir (eval's metrics.json over the run's, a second fit's
    checkpoints over its own...)."""
    before = files_as_they_are(finished_run)
    last = finished_run / "checkpoints" / "last.ckpt"
    for script, *args in [
        ("eval.py", f"ckpt_path={last}"),
        ("predict.py", f"ckpt_path={last}"),
        ("train.py", *quick),
        ("train.py", "-m", *quick, "seed=1,2", f"hydra.sweep.dir={tmp_path / 'sweep'}"),
    ]:
        run_dir = [] if "-m" in args else [f"hydra.run.dir={tmp_path / script}"]
        result = entry_point(script, *args, f"paths.output_dir={finished_run}", *run_dir)
        assert result.returncode == 1, script
        assert (
            f"Error: paths.output_dir={finished_run} is not this run's directory" in result.stderr
        )
        assert "Choose the directory with hydra.run.dir" in result.stderr, script
        assert files_as_they_are(finished_run) == before, script
