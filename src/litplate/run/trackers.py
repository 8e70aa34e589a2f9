"""What a run hands its experiment trackers (docs/trackers.md): TensorBoard images of its figures,
and at the end its flat hyper-parameters, final metrics and, for MLflow and W&B, its files."""

from __future__ import annotations

import importlib
import json
import os
from pathlib import Path
from types import ModuleType
from typing import Any

import lightning as L
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.loggers import MLFlowLogger as _MLFlowLogger
from lightning.pytorch.loggers import WandbLogger as _WandbLogger
from omegaconf import DictConfig

from litplate.run.config import flat_hparams
from litplate.run.errors import UserInputError

# What a run leaves in its directory that the trackers store with it (when the file exists).
RUN_FILES = ("model.safetensors", "predictions.png", "loss_curves.png")
METRICS_FILE = "metrics.json"


class MissingExtraError(ModuleNotFoundError):
    """A tracker's library is not installed; the message names the extra that installs it."""


def require(name: str) -> ModuleType:
    """`logger=NAME` needs the module NAME, installed by the package's extra of the same name."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise MissingExtraError(
            f"logger={name} needs {name}, which is not installed: pip install -e '.[{name}]'"
        ) from None


class MLFlowLogger(_MLFlowLogger):
    """Lightning's MLFlowLogger for a local store: a `sqlite:///` store's directory is made, a
    relative `artifact_location` made absolute, a list of `tags` made tags, telemetry off."""

    def __init__(
        self,
        tracking_uri: str | None = None,
        artifact_location: str | None = None,
        tags: list[str] | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # Before mlflow's import, which starts its telemetry client: nothing leaves unasked.
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        require("mlflow")
        if tracking_uri and tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        if artifact_location and "://" not in artifact_location:
            artifact_location = Path(artifact_location).resolve().as_uri()  # for `mlflow ui`
        if tags is not None and not isinstance(tags, dict):
            tags = dict.fromkeys(tags, "")
        super().__init__(
            tracking_uri=tracking_uri, artifact_location=artifact_location, tags=tags, **kwargs
        )


class WandbLogger(_WandbLogger):
    """Lightning's WandbLogger, offline unless told otherwise (`wandb sync` uploads it later), its
    files under `save_dir`; online, it needs an API key, said now rather than in wandb.init."""

    def __init__(self, save_dir: str = ".", offline: bool = True, **kwargs: Any) -> None:
        wandb = require("wandb")
        modes = {kwargs.get("mode"), os.environ.get("WANDB_MODE")}  # W&B's own offline settings
        online = not offline and not modes & {"offline", "dryrun", "disabled"}
        # A key: the variable, or wandb's other sources (.netrc, its settings files), no prompt.
        key = os.environ.get("WANDB_API_KEY") or (
            online and wandb.login(verify=False, prompt=False)
        )
        if online and not key:
            raise UserInputError(
                "logger.wandb.offline=false needs a W&B API key: run `wandb login` or set "
                "WANDB_API_KEY; or keep logger.wandb.offline=true"
            )
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        super().__init__(save_dir=save_dir, offline=offline, **kwargs)


def log_figure(trainer: L.Trainer, name: str, pixels: Any) -> None:
    """Show a figure's pixels (RGB, from `save_figure`) in TensorBoard's Images tab."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_image(name, pixels, trainer.global_step, dataformats="HWC")


def keep_csv_rows(trainer: L.Trainer) -> None:
    """A resumed fit's CSV logger goes on after the rows its run logged before (as TensorBoard
    does): Lightning's CSVLogger deletes a metrics.csv it finds when it starts."""
    if not trainer.is_global_zero:
        return
    for logger in trainer.loggers:
        path = Path(logger.log_dir) / "metrics.csv" if isinstance(logger, CSVLogger) else None
        if path is None or not path.is_file():
            continue
        before = path.read_text(encoding="utf-8")
        writer = logger.experiment  # started here: it deletes metrics.csv
        path.write_text(before, encoding="utf-8")
        # Its header's keys, so the writer appends (or rewrites the file with a wider header).
        writer.metrics_keys = [key for key in before.partition("\n")[0].strip().split(",") if key]


def log_run(trainer: L.Trainer, cfg: DictConfig, metrics: dict[str, Any], output_dir: Path) -> None:
    """The run's hyper-parameters and final metrics into every tracker, its files into MLflow and
    W&B; before metrics.json is written (last, when all else succeeded), so they get their own."""
    params = flat_hparams(cfg)
    numbers = {name: value for name, value in metrics.items() if isinstance(value, int | float)}
    files = [output_dir / name for name in RUN_FILES if (output_dir / name).is_file()]
    run_dir = str(output_dir.resolve())
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):  # the final metrics in its HParams tab
            logger.log_hyperparams(
                params, {f"hp/{k}": v for k, v in numbers.items() if k != "seed"}
            )
            logger.finalize("success")  # fit and test have closed the event file: flush the rest
        elif isinstance(logger, _MLFlowLogger):
            logger.log_hyperparams(params)
            client, run_id = logger.experiment, logger.run_id
            client.set_tag(run_id, "run_dir", run_dir)
            for path in files:
                client.log_artifact(run_id, str(path))
            client.log_dict(run_id, metrics, METRICS_FILE)
        elif isinstance(logger, _WandbLogger):
            run = logger.experiment
            run.config.update({**params, "run_dir": run_dir}, allow_val_change=True)
            # metrics.json's values: the tested checkpoint's, not the last epoch's.
            run.summary.update(numbers)
            for path in files:
                run.save(str(path), base_path=str(output_dir), policy="now")
            (Path(run.dir) / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
            run.save(str(Path(run.dir) / METRICS_FILE), base_path=run.dir, policy="now")
            run.finish()
