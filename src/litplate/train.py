"""Steps 2-6 of the workflow in one run: fit, evaluate the best model, save it and show it."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import TensorBoardLogger
from omegaconf import DictConfig

from litplate.checkpoint import StoreRunConfig, load_checkpoint, load_weights
from litplate.config import instantiate_group, to_plain
from litplate.export import save_weights, to_float, weight_and_bias, write_json
from litplate.history import LossHistory
from litplate.plotting import plot_loss_curves, plot_predictions

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

# In-memory tensors: worker processes would only add start-up time, so this advice does not apply.
warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
# lightning 2.6.6's _pytree helper builds a LeafSpec, deprecated in torch 2.13, on every fit.
warnings.filterwarnings(
    "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
)
# `import lightning` adds its own console handler on top of the root one Hydra configures, which
# printed every Lightning message twice; Hydra's handlers already show and file them.
logging.getLogger("lightning").handlers.clear()


class _DropAdverts(logging.Filter):
    """Lightning 2.6 advertises its cloud services ("💡 Tip: ... litlogger/litmodels") on every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropAdverts())


def build_trainer(cfg: DictConfig, callbacks: list[L.Callback] | None = None) -> L.Trainer:
    """The Trainer of `cfg.trainer`, with the callbacks and loggers of `cfg`."""
    callbacks = instantiate_group(cfg.get("callbacks")) + (callbacks or [])
    loggers = instantiate_group(cfg.get("logger"))
    return instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)


def predict(model: torch.nn.Module, X: torch.Tensor) -> torch.Tensor:
    """Predictions as the course makes them: eval mode, no gradient tracking."""
    model.eval()
    with torch.inference_mode():
        return model(X)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit the model, test the best checkpoint, write the run's artefacts; return metrics.json."""
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    log.info("Run directory: %s", output_dir.resolve())
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    # 1. Get data ready.  2. Build the model (loss and optimizer come from its config).
    datamodule: L.LightningDataModule = instantiate(cfg.data)
    model: L.LightningModule = instantiate(cfg.model, _recursive_=False)
    history = LossHistory()
    trainer = build_trainer(cfg, callbacks=[StoreRunConfig(to_plain(cfg)), history])

    # 3. Fit: Lightning runs the training loop (and the test loop every epoch as validation).
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    fit_metrics = {key: to_float(value) for key, value in trainer.callback_metrics.items()}

    # 4. Evaluate the chosen checkpoint, loaded through the safe path.
    tested = _checkpoint_to_test(trainer, cfg.get("test_ckpt", "best"))
    if tested is not None:
        load_weights(model, load_checkpoint(tested)["state_dict"], tested)
    test_metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]

    # 6. Save the model that was tested, and show its predictions and loss curves.
    save_weights(model, output_dir / "model.safetensors")
    _plot(model, datamodule, trainer, output_dir / "predictions.png")
    curves = plot_loss_curves(
        history.curve("train/loss"), history.curve("val/loss"), output_dir / "loss_curves.png"
    )
    _log_figure(trainer, "loss_curves", curves)

    checkpoint_callback = trainer.checkpoint_callback
    metrics = {
        **fit_metrics,
        **{key: to_float(value) for key, value in test_metrics.items()},
        **weight_and_bias(model),  # the linear model's; none for e.g. the MLP
        "epochs": trainer.current_epoch,
        "seed": cfg.get("seed"),
        "best_checkpoint": (checkpoint_callback.best_model_path or None)
        if checkpoint_callback
        else None,
        "tested_checkpoint": str(tested) if tested else None,
    }
    write_json(metrics, output_dir / "metrics.json")
    shown = " ".join(
        f"{key}={metrics[key]:.4f}" for key in ("weight", "bias", "test/loss") if key in metrics
    )
    log.info("%s -> %s", shown, output_dir / "metrics.json")
    return metrics


def train_and_score(cfg: DictConfig) -> float | None:
    """Train, then return the metric a Hydra sweeper optimises (`cfg.optimized_metric`)."""
    metrics = train(cfg)
    name = cfg.get("optimized_metric")
    if not name:
        return None
    if name not in metrics:
        raise KeyError(f"optimized_metric={name!r} is not among the run's metrics: {sorted(metrics)}")
    return metrics[name]


def _checkpoint_to_test(trainer: L.Trainer, which: str) -> Path | None:
    """The best or last checkpoint written by this fit, or None when checkpointing was off."""
    if which not in ("best", "last"):
        raise ValueError(f"test_ckpt must be 'best' or 'last', got {which!r}")
    callback = trainer.checkpoint_callback
    if callback is None:
        return None
    path = callback.best_model_path if which == "best" else callback.last_model_path
    return Path(path) if path else None


def _plot(
    model: L.LightningModule, datamodule: L.LightningDataModule, trainer: L.Trainer, path: Path
) -> None:
    train_X, train_y = datamodule.split("train")
    test_X, test_y = datamodule.split("test")
    figure = plot_predictions(train_X, train_y, test_X, test_y, predict(model, test_X), path)
    _log_figure(trainer, "predictions", figure)


def _log_figure(trainer: L.Trainer, name: str, figure: Figure) -> None:
    """Show the figure in TensorBoard's Images tab (when a TensorBoard logger is on)."""
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.experiment.add_figure(name, figure, global_step=trainer.global_step)
