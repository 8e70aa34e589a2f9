"""Every config composes, and bad command lines fail with Hydra's own message."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from litplate.run.builders import build_data_and_model
from litplate.run.validation import ConfigError
from litplate.train import train
from tests.helpers.project import CONFIG_DIR

EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
DEBUGS = sorted(p.stem for p in (CONFIG_DIR / "debug").glob("*.yaml"))


def required(experiment: str) -> list[str]:
    """What an experiment needs from the command line (`KEY: ${required:'KEY=...'}` in its yaml),
    set to null."""
    text = (CONFIG_DIR / "experiment" / f"{experiment}.yaml").read_text()
    return [f"{key}=null" for key in re.findall(r"\$\{required:'([\w.]+)=", text)]


@pytest.mark.parametrize("experiment", EXPERIMENTS)
def test_every_experiment_composes_and_instantiates(cfg_factory, experiment):
    cfg = cfg_factory(overrides=[f"experiment={experiment}", *required(experiment)])
    assert cfg.task_name == "train"
    datamodule, model = build_data_and_model(cfg)
    assert len(datamodule.split("train")[0]) > 0
    assert model.configure_optimizers() is not None


@pytest.mark.parametrize("debug", DEBUGS)
def test_every_debug_preset_composes(cfg_factory, debug):
    cfg = cfg_factory(overrides=[f"debug={debug}"])
    assert cfg.paths.log_dir == "logs/debug"


@pytest.mark.parametrize("trainer", ["cpu", "gpu", "auto"])
def test_trainer_presets(cfg_factory, trainer):
    cfg = cfg_factory(overrides=[f"trainer={trainer}"])
    assert cfg.trainer.accelerator == trainer


@pytest.mark.parametrize("config_name", ["eval", "predict"])
def test_eval_and_predict_configs_compose(cfg_factory, config_name):
    cfg = cfg_factory(config_name, overrides=["ckpt_path=x.ckpt"])
    assert cfg.task_name == config_name and cfg.ckpt_path == "x.ckpt"


def test_seed_zero_is_kept(cfg_factory):
    assert cfg_factory(overrides=["seed=0"]).seed == 0


def test_early_stopping_is_off_by_default_and_available(cfg_factory):
    assert cfg_factory().callbacks.early_stopping is None
    cfg = cfg_factory(overrides=["callbacks=early_stopping"])
    assert cfg.callbacks.early_stopping.monitor == "val/loss"
    assert cfg.callbacks.last_checkpoint.filename == "last"


def test_unknown_experiment_is_hydras_error(entry_point):
    result = entry_point("train.py", "experiment=does_not_exist", "--cfg", "job")
    assert result.returncode != 0
    assert "Could not find 'experiment/does_not_exist'" in result.stderr


def test_unknown_key_is_hydras_error(entry_point):
    result = entry_point("train.py", "no_such_key=1", "--cfg", "job")
    assert result.returncode != 0
    assert "Could not override 'no_such_key'" in result.stderr


def test_cfg_job_prints_the_experiment(cfg_factory, tiny_overrides, entry_point):
    result = entry_point("train.py", *tiny_overrides, "--cfg", "job")
    assert result.returncode == 0, result.stderr
    cfg = cfg_factory(overrides=tiny_overrides)
    for target in (cfg.data._target_, cfg.model._target_, cfg.model.optimizer._target_):
        assert f"_target_: {target}\n" in result.stdout


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.max_epochs=abc", "trainer.max_epochs='abc': expected an integer >= 1"),
        ("model.optimizer.lr=-0.1", "model.optimizer.lr=-0.1: expected a number > 0"),
        (
            "data.train_fraction=0.8 data.val_fraction=0.0 data.test_fraction=0.3",
            "data: train_fraction + val_fraction + test_fraction = 0.8 + 0.0 + 0.3 = 1.1: "
            "expected at most 1",
        ),
        ("seed=abc", "seed='abc': expected an integer"),
        ("test_ckpt=first", "test_ckpt='first': expected 'best' or 'last'"),
        (
            "+trainer.accumulate_grad_batches=0",
            "trainer.accumulate_grad_batches=0: expected an integer >= 1",
        ),
        ("+trainer.gradient_clip_val=-1", "trainer.gradient_clip_val=-1: expected a number >= 0"),
        ("+trainer.limit_train_batches=0", "trainer.limit_train_batches=0: expected a fraction"),
        (
            "model/scheduler=cosine model.scheduler.T_max=0",
            "model.scheduler.T_max=0: expected an integer >= 1",
        ),
    ],
)
def test_invalid_config_values_fail_before_training(cfg_factory, override, message):
    cfg = cfg_factory(overrides=override.split())
    with pytest.raises(ConfigError, match=message.replace("+", r"\+").replace("(", r"\(")):
        train(cfg)
    assert not Path(cfg.paths.output_dir).exists()
