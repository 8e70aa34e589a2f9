"""Fine-tuning: model.init_from starts a fit from an earlier run's weights, model.freeze keeps
parameters fixed; every mismatch is one error naming the keys."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from litplate.evaluate import evaluate
from litplate.run.checkpoint import CheckpointError, load_checkpoint, load_state_dict
from litplate.run.files import save_weights
from litplate.run.validation import ConfigError
from litplate.train import train
from tests.helpers.runs import one_clear_error, read_metrics


@pytest.fixture(scope="module")
def tune(short_overrides: list[str]):
    """The short run started from `init_from` (`++`: a model config may not list the key)."""

    def overrides(init_from: Path | str, *more: str) -> list[str]:
        return [*short_overrides, f"++model.init_from={init_from}", *more]

    return overrides


@pytest.mark.parametrize("source", ["model.safetensors", "checkpoints/last.ckpt"])
def test_frozen_parameters_stay_put(cfg_factory, trained_run: Path, tune, tiny_parts, source):
    pretrained = trained_run / source
    start = load_state_dict(pretrained)
    _, model = tiny_parts()
    frozen, *others = (name for name, _ in model.named_parameters())
    cfg = cfg_factory(overrides=tune(pretrained, f"++model.freeze=[{frozen}]"))
    train(cfg)

    run_dir = Path(cfg.paths.output_dir)
    last = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    # Bit-equal: never updated, in the tested weights and in the last checkpoint.
    assert torch.equal(load_file(run_dir / "model.safetensors")[frozen], start[frozen])
    assert torch.equal(last["state_dict"][frozen], start[frozen])
    assert others and any(
        not torch.equal(last["state_dict"][name], start[name]) for name in others
    )  # the others did learn
    assert last["hyper_parameters"]["freeze"] == [frozen]
    assert last["hyper_parameters"]["init_from"] == str(pretrained)


def test_unknown_frozen_parameter_is_an_error_naming_it(cfg_factory, trained_run, tune, tiny_parts):
    _, model = tiny_parts()
    cfg = cfg_factory(overrides=tune(trained_run / "model.safetensors", "++model.freeze=[slope]"))
    names = ", ".join(name for name, _ in model.named_parameters())
    expected = f"freeze: {type(model).__name__} has no parameter 'slope' (its parameters: {names})"
    with pytest.raises(ConfigError, match=re.escape(expected)):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "metrics.json").exists()


def test_weights_of_another_model_name_the_keys(cfg_factory, tmp_path: Path, tune, tiny_parts):
    _, model = tiny_parts()
    other = tmp_path / "other.safetensors"
    save_file({"net.0.weight": torch.zeros(4, 1), "net.0.bias": torch.zeros(4)}, other)
    cfg = cfg_factory(overrides=tune(other))
    with pytest.raises(CheckpointError) as error:
        train(cfg)
    message = str(error.value)
    assert f"{other} does not fit {type(model).__name__}" in message
    assert f"missing: {', '.join(sorted(model.state_dict()))}" in message
    assert "unexpected: net.0.bias, net.0.weight" in message
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()  # no epoch ran


def test_misshaped_init_from_names_the_shapes(cfg_factory, tmp_path: Path, tune, tiny_parts):
    _, model = tiny_parts()
    weights = {key: value.clone() for key, value in model.state_dict().items()}
    first = next(iter(weights))
    shape = tuple(weights[first].shape)
    weights[first] = torch.zeros(3, *shape)
    save_file(weights, tmp_path / "misshaped.safetensors")
    expected = f"mis-shaped: {first} {(3, *shape)} vs model {shape}"
    with pytest.raises(CheckpointError, match=re.escape(expected)):
        train(cfg_factory(overrides=tune(tmp_path / "misshaped.safetensors")))


def test_missing_init_from_file_is_an_error_before_training(cfg_factory, tmp_path: Path, tune):
    cfg = cfg_factory(overrides=tune(tmp_path / "nope.safetensors"))
    with pytest.raises(
        CheckpointError, match=re.escape(f"weights file not found: {tmp_path}/nope")
    ):
        train(cfg)
    assert not (Path(cfg.paths.output_dir) / "checkpoints").exists()


def test_eval_of_a_tuned_checkpoint_does_not_need_the_pretrained_file(
    cfg_factory, tmp_path, tune, tiny_parts
):
    _, model = tiny_parts()
    pretrained = save_weights(model, tmp_path / "pretrained.safetensors")
    cfg = cfg_factory(overrides=tune(pretrained), name="tuned")
    trained = train(cfg)
    pretrained.unlink()
    ckpt = trained["tested_checkpoint"]
    metrics = evaluate(cfg_factory("eval", [f"ckpt_path={ckpt}"], name="eval"))
    assert metrics["test/loss"] == pytest.approx(trained["test/loss"])
    assert read_metrics(Path(cfg.paths.output_dir))["epochs"] == 3


def test_resuming_with_another_learning_rate_says_how(
    short_run: Path, tmp_path: Path, entry_point, short_overrides
):
    ckpt = short_run / "checkpoints" / "last.ckpt"
    lr = load_checkpoint(ckpt)["hyper_parameters"]["optimizer"]["lr"]
    result = entry_point(
        "train.py", *short_overrides, f"model.optimizer.lr={lr * 2}", f"ckpt_path={ckpt}",
        f"hydra.run.dir={tmp_path}/r",
    )  # fmt: skip
    one_clear_error(result, f"model.optimizer.lr={lr!r}, this run {lr * 2!r}")
    one_clear_error(result, f"model.init_from={ckpt}")  # the way to use its weights instead


def test_resuming_a_run_on_other_data_is_refused_and_its_results_stay(
    short_run: Path, tmp_path: Path, entry_point, short_overrides
):
    run = tmp_path / "run"
    shutil.copytree(short_run, run)
    ckpt, results = run / "checkpoints" / "last.ckpt", run / "metrics.json"
    before = results.read_bytes()
    result = entry_point(
        "train.py", *short_overrides, "++data.split_seed=7", "++data.batch_size=4",
        f"ckpt_path={ckpt}", f"hydra.run.dir={run}",
    )  # fmt: skip
    # Another split is other data; another batch size only another way to load it.
    # (A standardized CSV's statistics, taken from the training split, change with it too.)
    one_clear_error(result, "its fit used data.", "data.split_seed=None", "a resumed fit goes on")
    one_clear_error(result, f"model.init_from={ckpt}")
    assert results.read_bytes() == before
    assert load_checkpoint(ckpt)["epoch"] == read_metrics(short_run)["epochs"] - 1


def test_freezing_an_unknown_parameter_is_one_clear_error(
    tmp_path: Path, entry_point, tiny_overrides
):
    result = entry_point(
        "train.py", *tiny_overrides, "++model.freeze=[nope]", f"hydra.run.dir={tmp_path}/r"
    )
    one_clear_error(result, "has no parameter 'nope'")
