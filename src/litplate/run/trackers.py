"""What a run hands its experiment trackers: TensorBoard, MLflow (`logger=mlflow`), W&B.

Per epoch they get what every Lightning logger gets (losses, val metrics, the model's own values);
`log_figure` shows a saved figure in TensorBoard's Images tab, and at the end of a run `log_run`
adds the run's flat hyper-parameters and its final metrics (TensorBoard's HParams) and, for MLflow
and W&B, its files (model.safetensors, predictions.png, loss_curves.png, metrics.json). MLflow and
W&B are optional extras of the package: the loggers here say which one to install when missing.
"""

from __future__ import annotations

import importlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from lightning.pytorch.loggers import MLFlowLogger as _MLFlowLogger
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.loggers import WandbLogger as _WandbLogger

from litplate.run.config import flat_hparams
from litplate.run.errors import UserInputError

if TYPE_CHECKING:
    import lightning as L
    from omegaconf import DictConfig

# What a run leaves in its directory that the trackers store with it (when the file exists).
RUN_FILES = ("model.safetensors", "predictions.png", "loss_curves.png")
METRICS_FILE = "metrics.json"


class MissingExtraError(ModuleNotFoundError):
    """A tracker's library is not installed; the message names the extra that installs it."""


def require(name: str) -> None:
    """`logger=NAME` needs the module NAME, installed by the package's extra of the same name."""
    try:
        importlib.import_module(name)
    except ImportError:
        raise MissingExtraError(
            f"logger={name} needs {name}, which is not installed: pip install -e '.[{name}]'"
        ) from None


class MLFlowLogger(_MLFlowLogger):
    """Lightning's MLFlowLogger for a local store that needs no server.

    `tracking_uri` `sqlite:///DIR/mlflow.db` gets its directory made; a relative
    `artifact_location` becomes absolute, so `mlflow ui` finds the files from any directory.
    `tags` may be a list of names (the run's `tags`): each becomes an MLflow run tag.
    MLflow's usage telemetry is off unless MLFLOW_DISABLE_TELEMETRY is set (docs/trackers.md).
    """

    def __init__(
        self,
        tracking_uri: str | None = None,
        artifact_location: str | None = None,
        tags: Sequence[str] | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        # Before mlflow's import, which starts its telemetry client: nothing leaves unasked.
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        require("mlflow")
        if tracking_uri and tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        if artifact_location and "://" not in artifact_location:
            artifact_location = Path(artifact_location).resolve().as_uri()
        if tags is not None and not isinstance(tags, dict):
            tags = {name: "" for name in tags}
        super().__init__(
            tracking_uri=tracking_uri, artifact_location=artifact_location, tags=tags, **kwargs
        )


class WandbLogger(_WandbLogger):
    """Lightning's WandbLogger, offline unless told otherwise, its files under `save_dir`.

    An offline run is written to `save_dir/wandb/offline-run-*`; `wandb sync` uploads it later.
    """

    def __init__(self, save_dir: str = ".", offline: bool = True, **kwargs: Any) -> None:
        require("wandb")
        if not offline:
            require_wandb_key(kwargs.get("mode"))
        Path(save_dir).mkdir(parents=True, exist_ok=True)
        if "tags" in kwargs and kwargs["tags"] is not None:
            kwargs["tags"] = list(kwargs["tags"])
        super().__init__(save_dir=save_dir, offline=offline, **kwargs)


def require_wandb_key(mode: str | None) -> None:
    """An online W&B run needs an API key: say so now, not in a traceback from wandb.init."""
    import wandb

    if {mode, os.environ.get("WANDB_MODE")} & {"offline", "dryrun", "disabled"}:
        return  # W&B's own setting keeps the run off the network
    # The variable, or wandb's other sources (.netrc, its settings files), without a prompt.
    if os.environ.get("WANDB_API_KEY") or wandb.login(verify=False, prompt=False):
        return
    raise UserInputError(
        "logger.wandb.offline=false needs a W&B API key: run `wandb login` or set "
        "WANDB_API_KEY; or keep logger.wandb.offline=true"
    )


def log_run(trainer: L.Trainer, cfg: DictConfig, metrics: dict[str, Any], output_dir: Path) -> None:
    """The run's hyper-parameters and final metrics into every tracker, its files into every
    MLflow and W&B logger.

    Called before metrics.json is written (the file appears last, when all else succeeded), so
    `metrics` goes to the trackers as a metrics.json of their own.
    """
    files = [output_dir / name for name in RUN_FILES if (output_dir / name).is_file()]
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            _log_tensorboard(logger, cfg, metrics)
    for logger in trainer.loggers:
        if isinstance(logger, _MLFlowLogger):
            _log_mlflow(logger, cfg, metrics, files, output_dir)
        elif isinstance(logger, _WandbLogger):
            _log_wandb(logger, cfg, metrics, files, output_dir)


def log_figure(trainer: L.Trainer, name: str, figure: Any) -> None:
    """Show a matplotlib figure in TensorBoard's Images tab (when a TensorBoard logger is on)."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(name, figure, trainer.global_step, close=False)


def _log_tensorboard(logger: TensorBoardLogger, cfg: DictConfig, metrics: dict[str, Any]) -> None:
    """The hyper-parameters with the final metrics (`hp/<metric>`) for TensorBoard's HParams."""
    final = {
        f"hp/{name}": value
        for name, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and name != "seed"
    }
    logger.log_hyperparams(flat_hparams(cfg), final)
    # fit and test have closed the event file: flush what was written since.
    logger.finalize("success")


def _log_mlflow(
    logger: _MLFlowLogger,
    cfg: DictConfig,
    metrics: dict[str, Any],
    files: list[Path],
    output_dir: Path,
) -> None:
    logger.log_hyperparams(flat_hparams(cfg))
    client, run_id = logger.experiment, logger.run_id
    client.set_tag(run_id, "run_dir", str(output_dir.resolve()))
    for path in files:
        client.log_artifact(run_id, str(path))
    client.log_dict(run_id, metrics, METRICS_FILE)
    logger.finalize("success")


def _log_wandb(
    logger: _WandbLogger,
    cfg: DictConfig,
    metrics: dict[str, Any],
    files: list[Path],
    output_dir: Path,
) -> None:
    run = logger.experiment
    run.config.update(
        {**flat_hparams(cfg), "run_dir": str(output_dir.resolve())}, allow_val_change=True
    )
    # The summary shows metrics.json's values: those of the tested checkpoint, not the last epoch.
    run.summary.update(
        {
            name: value
            for name, value in metrics.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
    )
    for path in files:
        run.save(str(path), base_path=str(output_dir), policy="now")
    (Path(run.dir) / METRICS_FILE).write_text(json.dumps(metrics, indent=2) + "\n")
    run.save(str(Path(run.dir) / METRICS_FILE), base_path=run.dir, policy="now")
    run.finish()
