"""train(cfg) and evaluate(cfg) on configs from hydra.compose(), outside any Hydra run."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from litplate.run.checkpoint import load_checkpoint
from litplate.run.config import new_run_dir, outside_hydra
from tests.helpers.project import CONFIG_DIR
from tests.helpers.runs import digests, read_metrics

RUN_NAME = re.compile(r"\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d_\d+(_\d+)?")


@pytest.fixture(autouse=True)
def no_hydra_run():
    """A plain Python process: no Hydra initialised, no HydraConfig (and none left behind)."""
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None
    yield
    GlobalHydra.instance().clear()
    HydraConfig.instance().cfg = None


def composed(config_name: str, overrides: list[str], **kwargs) -> DictConfig:
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name, overrides=overrides, **kwargs)


def run_dir_of(metrics: dict) -> Path:
    return Path(metrics["tested_checkpoint"]).parent.parent


def test_train_from_compose_runs_in_a_new_run_dir(tmp_path: Path, short_overrides):
    from litplate.evaluate import evaluate
    from litplate.train import train

    quiet = "callbacks.progress_bar=null"
    cfg = composed("train", [*short_overrides, f"paths.log_dir={tmp_path}"])
    metrics = train(cfg)

    run_dir = run_dir_of(metrics)
    assert run_dir.parent == tmp_path / "train" / "runs" and RUN_NAME.fullmatch(run_dir.name)
    written = read_metrics(run_dir)
    assert written == metrics and written["epochs"] == 3
    # The checkpoint holds the config as run, with the directory in it, for eval and predict.
    stored = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["run_config"]
    assert stored["paths"]["output_dir"] == str(run_dir) and "hydra" not in stored
    # The caller's cfg is unchanged.
    assert OmegaConf.to_container(cfg.paths)["output_dir"] == "${hydra:runtime.output_dir}"

    # evaluate(cfg) the same way: its own directory under eval/runs, the training's test loss.
    overrides = [f"ckpt_path={metrics['tested_checkpoint']}", quiet, f"paths.log_dir={tmp_path}"]
    eval_cfg = composed("eval", overrides)
    evaluated = evaluate(eval_cfg)
    (eval_dir,) = (tmp_path / "eval" / "runs").iterdir()
    assert RUN_NAME.fullmatch(eval_dir.name)
    assert read_metrics(eval_dir) == evaluated
    tested = [key for key in metrics if key.startswith("test/")]
    assert tested and evaluated.keys() >= set(tested)
    for key in tested:
        assert evaluated[key] == pytest.approx(metrics[key], abs=1e-7), key


@pytest.mark.parametrize("set_hydra_config", [False, True], ids=["composed", "HydraConfig-set"])
def test_a_return_hydra_config_config_trains(
    tmp_path: Path, set_hydra_config: bool, short_overrides
):
    from litplate.train import train

    quick = [*short_overrides, "trainer.max_epochs=2", f"paths.log_dir={tmp_path}"]
    cfg = composed("train", quick, return_hydra_config=True)
    if set_hydra_config:  # what lightning-hydra-template's test fixtures do before train(cfg)
        HydraConfig().set_config(cfg)
    metrics = train(cfg)

    run_dir = run_dir_of(metrics)
    assert run_dir.parent == tmp_path / "train" / "runs" and RUN_NAME.fullmatch(run_dir.name)
    assert read_metrics(run_dir)["epochs"] == 2
    stored = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")["run_config"]
    assert "hydra" not in stored and stored["paths"]["output_dir"] == str(run_dir)


def test_a_given_output_dir_is_used_as_it_is(tmp_path: Path):
    cfg = composed("train", [f"paths.output_dir={tmp_path / 'mine'}"], return_hydra_config=True)
    run_cfg = outside_hydra(cfg)
    assert run_cfg.paths.output_dir == str(tmp_path / "mine") and "hydra" not in run_cfg
    assert "hydra" in cfg  # a copy was changed, not the caller's config

    plain = composed("train", [f"paths.output_dir={tmp_path / 'mine'}"])
    assert outside_hydra(plain) is plain  # nothing to fill in: a Hydra job's config is like this


def test_a_given_output_dir_holding_a_run_is_refused_but_its_resume_goes_on(
    short_run: Path, tmp_path: Path, short_overrides
):
    """No Hydra callback checks a composed config's paths.output_dir: train, evaluate and predict
    refuse another run's directory before writing anything; a training run may resume in it."""
    from litplate.evaluate import evaluate
    from litplate.predict import predict_to_csv
    from litplate.run.errors import UserInputError
    from litplate.train import train

    run_dir = tmp_path / "run"
    shutil.copytree(short_run, run_dir)
    before = digests(run_dir)
    last = run_dir / "checkpoints" / "last.ckpt"
    at_run_dir = f"paths.output_dir={run_dir}"
    for function, config, overrides in [
        (train, "train", short_overrides),
        (evaluate, "eval", [f"ckpt_path={last}"]),
        (predict_to_csv, "predict", [f"ckpt_path={last}"]),
    ]:
        with pytest.raises(UserInputError, match=re.escape(f"{at_run_dir} already holds a run")):
            function(composed(config, [*overrides, at_run_dir]))
        assert digests(run_dir) == before, function.__name__

    resumed = train(composed("train", [*short_overrides, at_run_dir, f"ckpt_path={last}"]))
    assert resumed["epochs"] == 3 and read_metrics(run_dir) == resumed


def test_run_dirs_made_in_the_same_second_are_distinct(tmp_path: Path):
    dirs = [new_run_dir(tmp_path / "train") for _ in range(3)]
    assert len(set(dirs)) == 3 and all(path.is_dir() for path in dirs)
    assert all(RUN_NAME.fullmatch(path.name) for path in dirs)
    assert {path.parent for path in dirs} == {tmp_path / "train" / "runs"}


def test_the_run_dir_name_is_the_command_lines(tmp_path: Path):
    # configs/hydra/default.yaml names a command-line run; new_run_dir must name it the same way.
    cfg = composed("train", [f"paths.log_dir={tmp_path}"], return_hydra_config=True)
    cli_dir = Path(cfg.hydra.run.dir)
    assert cli_dir.parent == tmp_path / "train" / "runs" and RUN_NAME.fullmatch(cli_dir.name)
