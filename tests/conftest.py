"""Shared fixtures: configs composed in-process, and one trained run reused by many tests."""

from __future__ import annotations

import logging
import os
import runpy
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

import litplate.run.config  # noqa: F401  (registers the config resolvers)
from tests.helpers.project import ROOT, make_cfg

# The trackers (logger=mlflow, logger=wandb) stay on this machine and quiet in every test, and so
# do the runs that tests start in fresh processes, which inherit these.
os.environ.update(
    WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DISABLE_GIT="true",
    MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true",
)  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first: under `-n` (pytest-xdist) they start at once and the quick ones fill
    in around them, instead of a long one starting last and running alone."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture
def cfg_factory(tmp_path: Path) -> Callable[..., DictConfig]:
    def factory(config_name: str = "train", overrides: list[str] = (), name: str = "run"):
        return make_cfg(config_name, tmp_path / name, list(overrides))

    return factory


# --- The example the infrastructure tests train ------------------------------------------------
# The infrastructure tests (those the Makefile's EXAMPLE_TESTS does not list) know the example only
# through the fixtures below, made of these three lines, so they outlive it: replacing the example,
# change these three lines (docs/make-it-yours.md, step 5).
TINY = ["experiment=linear"]  # a small run that learns its data in seconds
TINY_RANDOM = ["experiment=mlp", "model.dropout=0.1"]  # one that draws random numbers each step
LEARNED = {"weight": 0.7, "bias": 0.3}  # values in a finished TINY run's metrics.json (+-0.01)


@pytest.fixture(scope="session")
def tiny_overrides() -> list[str]:
    return list(TINY)


@pytest.fixture(scope="session")
def tiny_random_overrides() -> list[str]:
    return list(TINY_RANDOM)


@pytest.fixture(scope="session")
def learned() -> dict[str, float]:
    return dict(LEARNED)


@pytest.fixture(scope="session")
def assert_learned(learned: dict[str, float]) -> Callable[[dict], None]:
    """Checks that a run's metrics.json reached the values the example learns (to within 0.01)."""

    def check(metrics: dict) -> None:
        off = {key: metrics.get(key) for key, value in learned.items()
               if key not in metrics or abs(metrics[key] - value) >= 0.01}  # fmt: skip
        assert not off, f"not learned: {off} (expected {learned})"

    return check


def trained_once(factory: pytest.TempPathFactory, name: str, overrides: list[str]) -> Path:
    """A run of `overrides` trained in-process into a new session directory `name`."""
    from litplate.train import train

    run_dir = factory.mktemp(name)
    train(make_cfg("train", run_dir, overrides))
    return run_dir


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory: pytest.TempPathFactory, tiny_overrides: list[str]) -> Path:
    """The tiny example trained once, in-process; tests read what it left behind."""
    return trained_once(
        tmp_path_factory, "trained_run", [*tiny_overrides, "callbacks.progress_bar=null"]
    )


@pytest.fixture(scope="session")
def linear_run(trained_run: Path) -> Path:
    """`train.py experiment=linear` once: the example's tests read the same run as the others."""
    return trained_run


@pytest.fixture(scope="session")
def short_overrides(tiny_overrides: list[str]) -> list[str]:
    """The tiny run cut to 3 epochs, quiet: for what needs a run, not what it learns."""
    return [*tiny_overrides, "trainer.max_epochs=3", "callbacks.progress_bar=null"]


@pytest.fixture(scope="session")
def short_run(tmp_path_factory: pytest.TempPathFactory, short_overrides: list[str]) -> Path:
    """The short run trained once, in-process."""
    return trained_once(tmp_path_factory, "short_run", short_overrides)


@pytest.fixture(scope="session")
def full_batch(tiny_overrides: list[str]) -> list[str]:
    """Distributed runs are short, of full batches: each rank's half of the rows, the gradients
    averaged, is one process's step, so they must equal one process, epoch for epoch."""
    return [
        *tiny_overrides, "data.batch_size=null", "trainer.max_epochs=10",
        "callbacks.progress_bar=null",
    ]  # fmt: skip


@pytest.fixture(scope="session")
def one_process(tmp_path_factory: pytest.TempPathFactory, full_batch: list[str]) -> Path:
    """The full-batch run in one process, in-process: what the distributed runs must reproduce."""
    return trained_once(tmp_path_factory, "one_process", full_batch)


@pytest.fixture(scope="session")
def optimized(tiny_overrides: list[str]) -> tuple[str, str]:
    """The tiny run's optimized_metric and optimized_mode (min or max): what a sweep ranks by."""
    cfg = make_cfg("train", Path("unused"), tiny_overrides)
    return cfg.optimized_metric, cfg.optimized_mode


@pytest.fixture(scope="session")
def optuna_search(optimized: tuple[str, str]) -> list[str]:
    """An Optuna search over what every model has (its optimizer and learning rate), for the tiny
    run's optimized metric in its direction."""
    return [
        "hydra/sweeper=litplate_optuna",
        f"hydra.sweeper.direction={optimized[1]}imize",
        "model/optimizer=choice(sgd, adam)",
        "model.optimizer.lr=tag(log, interval(1e-4, 1e-1))",
        "callbacks.progress_bar=null",
    ]


@pytest.fixture
def tiny_parts(tmp_path: Path, tiny_overrides: list[str]):
    """The tiny run's data module and a new model, built as train.py builds them; `overrides`
    change the config first (e.g. `++data.batch_size=8`)."""
    from litplate.run.builders import build_data_and_model

    def build(*overrides: str):
        cfg = make_cfg("train", tmp_path / "parts", [*tiny_overrides, *overrides])
        return build_data_and_model(cfg)

    return build


@pytest.fixture(scope="session")
def run_in_process() -> Callable[..., int]:
    """Run `scripts/<script>` in this process, as `python scripts/<script> ARGS` would; returns
    its exit code. For fixtures of a wider scope than a test's (`entry_point` captures output)."""
    root = logging.getLogger()

    def run(script: str, *args: str) -> int:
        path = ROOT / "scripts" / script
        handlers, level = root.handlers[:], root.level
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(sys, "argv", [str(path), *args])
            try:
                runpy.run_path(str(path), run_name="__main__")
                return 0
            except SystemExit as exit:
                return exit.code if isinstance(exit.code, int) else int(exit.code is not None)
            finally:
                # No Hydra left initialised for the next run (`--help` exits with its config set).
                GlobalHydra.instance().clear()
                HydraConfig.instance().cfg = None
                # Hydra configured logging for the job (a file in its run directory): undo that.
                for handler in root.handlers:
                    if handler not in handlers:
                        handler.close()
                root.handlers[:] = handlers
                root.setLevel(level)

    return run


@pytest.fixture
def entry_point(capfd: pytest.CaptureFixture, run_in_process: Callable[..., int]):
    """Run `scripts/<script>` in this process, as `python scripts/<script> ARGS` would.

    The script's `@hydra.main` parses the arguments, reports errors and exits as it does in a
    fresh process, without the seconds a new interpreter spends importing torch and Lightning.
    Returns a CompletedProcess with the exit code and the captured stdout and stderr.
    """

    def run(script: str, *args: str) -> subprocess.CompletedProcess:
        capfd.readouterr()
        code = run_in_process(script, *args)
        out, err = capfd.readouterr()
        return subprocess.CompletedProcess([str(ROOT / "scripts" / script), *args], code, out, err)

    return run
