"""experiment=linear_finetune: the line learns another line sooner from a trained one's weights
(tests/test_init_from.py tests model.init_from and model.freeze on any run)."""

from __future__ import annotations

from pathlib import Path

import pytest

from litplate.models import MLPRegression
from litplate.run.checkpoint import CheckpointError
from litplate.run.files import save_weights
from litplate.train import train
from tests.helpers.runs import QUIET, lightning_epochs, one_clear_error


def finetune_overrides(init_from: Path | str, *more: str) -> list[str]:
    return ["experiment=linear_finetune", f"model.init_from={init_from}", *QUIET, *more]


def first_epoch_below(losses: list[float], threshold: float) -> int:
    return next(epoch for epoch, loss in enumerate(losses) if loss < threshold)


def test_finetuning_reaches_the_loss_sooner_than_training_from_scratch(cfg_factory, linear_run):
    pretrained = linear_run / "model.safetensors"  # learned y = 0.7x + 0.3
    runs = {}
    for name, init_from in (("finetuned", pretrained), ("scratch", "null")):
        cfg = cfg_factory(overrides=finetune_overrides(init_from, "logger=csv"), name=name)
        metrics = train(cfg)
        runs[name] = (metrics, lightning_epochs(Path(cfg.paths.output_dir))["val/loss"])

    finetuned, scratch = (first_epoch_below(runs[n][1], 0.05) for n in ("finetuned", "scratch"))
    assert finetuned < scratch, (finetuned, scratch)
    # The very first epoch already shows the head start.
    assert runs["finetuned"][1][0] < runs["scratch"][1][0] / 2
    metrics = runs["finetuned"][0]
    assert abs(metrics["weight"] - 0.3) < 0.01 and abs(metrics["bias"] - 0.9) < 0.01


def test_mlp_weights_into_the_linear_model_name_the_keys(cfg_factory, tmp_path: Path):
    mlp_weights = save_weights(MLPRegression(hidden_sizes=[4]), tmp_path / "mlp.safetensors")
    cfg = cfg_factory(overrides=finetune_overrides(mlp_weights))
    with pytest.raises(CheckpointError) as error:
        train(cfg)
    message = str(error.value)
    assert f"{mlp_weights} does not fit LinearRegression" in message
    assert "missing: bias, weights" in message
    assert "unexpected: net.0.bias, net.0.weight, net.2.bias, net.2.weight" in message
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()  # no epoch ran


def test_finetune_experiment_requires_init_from(cfg_factory):
    cfg = cfg_factory(overrides=["experiment=linear_finetune"])
    expected = r"this run needs a value: model\.init_from=logs/train/runs/RUN/model\.safetensors"
    with pytest.raises(Exception, match=expected):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()


@pytest.mark.slow
def test_finetune_without_init_from_exits_saying_what_to_pass(tmp_path: Path, entry_point):
    result = entry_point("train.py", "experiment=linear_finetune", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0
    assert "this run needs a value: model.init_from=logs/train/runs/RUN/model.safetensors" in (
        result.stderr
    )
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "metrics.json").exists()


@pytest.mark.parametrize(
    ("override", "named"),
    [
        # cosine's T_max is ${trainer.max_epochs}: the restored schedule would keep the old one
        ("trainer.max_epochs=30", "model.scheduler.T_max=20, this run 30"),
    ],
)
def test_resuming_with_other_optimizer_settings_says_how(
    finished_linear_run: Path, override: str, named: str, tmp_path: Path, entry_point
):
    ckpt = finished_linear_run / "checkpoints" / "last.ckpt"
    result = entry_point(
        "train.py", "experiment=linear", "trainer.max_epochs=20", override,
        f"ckpt_path={ckpt}", f"hydra.run.dir={tmp_path}/r",
    )  # fmt: skip
    one_clear_error(result, named, f"model.init_from={ckpt}")


@pytest.fixture
def finished_linear_run(tmp_path: Path, entry_point) -> Path:
    run = tmp_path / "first"
    result = entry_point(
        "train.py", "experiment=linear", "trainer.max_epochs=20", f"hydra.run.dir={run}"
    )
    assert result.returncode == 0, result.stderr
    return run
