"""Fine-tuning: model.init_from starts from an earlier run, model.freeze keeps parameters fixed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from litplate.models import LinearRegression, MLPRegression
from litplate.run.checkpoint import CheckpointError, load_checkpoint, load_state_dict
from litplate.run.files import save_weights
from litplate.train import train
from tests.helpers.runs import QUIET, lightning_epochs, one_clear_error, read_metrics


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


@pytest.mark.parametrize("source", ["model.safetensors", "checkpoints/last.ckpt"])
def test_frozen_parameters_stay_put(cfg_factory, linear_run: Path, source: str):
    pretrained = linear_run / source
    start = load_state_dict(pretrained)
    overrides = finetune_overrides(pretrained, "model.freeze=[weights]", "trainer.max_epochs=10")
    cfg = cfg_factory(overrides=overrides)
    metrics = train(cfg)

    run_dir = Path(cfg.paths.output_dir)
    assert metrics["weight"] == start["weights"].item()  # bit-equal: never updated
    assert torch.equal(load_file(run_dir / "model.safetensors")["weights"], start["weights"])
    last = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert torch.equal(last["state_dict"]["weights"], start["weights"])
    assert abs(metrics["bias"] - start["bias"].item()) > 0.05  # the bias did learn
    assert last["hyper_parameters"]["freeze"] == ["weights"]


def test_unknown_frozen_parameter_is_an_error_naming_it(cfg_factory, linear_run: Path):
    overrides = finetune_overrides(linear_run / "model.safetensors", "model.freeze=[slope]")
    cfg = cfg_factory(overrides=overrides)
    expected = (
        r"freeze: LinearRegression has no parameter 'slope' \(its parameters: weights, bias\)"
    )
    with pytest.raises(ValueError, match=expected):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()


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


def test_misshaped_init_from_names_the_shapes(cfg_factory, tmp_path: Path):
    narrow = save_weights(MLPRegression(hidden_sizes=[4]), tmp_path / "narrow.safetensors")
    overrides = ["experiment=mlp", f"model.init_from={narrow}", "model.hidden_sizes=[8]", *QUIET]
    expected = r"mis-shaped: net\.0\.bias \(4,\) vs model \(8,\); net\.0\.weight \(4, 1\)"
    with pytest.raises(CheckpointError, match=expected):
        train(cfg_factory(overrides=overrides))


def test_missing_init_from_file_is_an_error_before_training(cfg_factory, tmp_path: Path):
    cfg = cfg_factory(overrides=finetune_overrides(tmp_path / "nope.safetensors"))
    with pytest.raises(
        CheckpointError, match=re.escape(f"weights file not found: {tmp_path}/nope")
    ):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()


def test_finetune_experiment_requires_init_from(cfg_factory):
    cfg = cfg_factory(overrides=["experiment=linear_finetune"])
    expected = r"this run needs a value: model\.init_from=logs/train/runs/RUN/model\.safetensors"
    with pytest.raises(Exception, match=expected):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()


def test_eval_of_a_finetuned_checkpoint_does_not_need_the_pretrained_file(cfg_factory, tmp_path):
    from litplate.evaluate import evaluate

    pretrained = save_weights(LinearRegression(), tmp_path / "pretrained.safetensors")
    cfg = cfg_factory(overrides=finetune_overrides(pretrained, "trainer.max_epochs=3"), name="ft")
    train(cfg)
    pretrained.unlink()
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    metrics = evaluate(cfg_factory("eval", [f"ckpt_path={ckpt}"], name="eval"))
    assert metrics["weight"] == load_checkpoint(ckpt)["state_dict"]["weights"].item()
    assert read_metrics(Path(cfg.paths.output_dir))["epochs"] == 3


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
        ("model.optimizer.lr=0.5", "model.optimizer.lr=0.01, this run 0.5"),
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


def test_freezing_an_unknown_parameter_isone_clear_error(tmp_path: Path, entry_point):
    result = entry_point(
        "train.py", "experiment=linear", "model.freeze=[nope]", f"hydra.run.dir={tmp_path}/r"
    )
    one_clear_error(result, "freeze: LinearRegression has no parameter 'nope'")
