"""Steps 2-6 of the workflow in one run: fit, evaluate the best model, save it and show it."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf, open_dict

from litplate import fast_log, trackers
from litplate.checkpoint import (
    StoreRunConfig,
    check_resumable,
    fit_checkpoints,
    load_checkpoint,
    load_weights,
)
from litplate.config import (
    flat_hparams,
    instantiate_group,
    outside_hydra,
    print_config_tree,
    to_plain,
)
from litplate.devices import check_devices, check_launch
from litplate.export import save_weights, to_float, weight_and_bias, write_json
from litplate.history import LossHistory
from litplate.plotting import plot_loss_curves, plot_predictions
from litplate.validation import validate

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


class RunInterrupted(RuntimeError):
    """The run was stopped (SIGTERM) before it finished; it can be resumed from last.ckpt."""


class _DropAdverts(logging.Filter):
    """Lightning 2.6 advertises its cloud services ("💡 Tip: ... litlogger") on every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DropAdverts())


def build_trainer(cfg: DictConfig, callbacks: list[L.Callback] | None = None) -> L.Trainer:
    """The Trainer of `cfg.trainer`, with the callbacks and loggers of `cfg`.

    Devices that are not there (`trainer=gpu` without a GPU) stop here, with one clear message.
    """
    check_devices(cfg.trainer)
    fast_log.enable()
    callbacks = instantiate_group(cfg.get("callbacks")) + (callbacks or [])
    loggers = instantiate_group(cfg.get("logger"))
    trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    check_launch(trainer)
    return trainer


def build_data_and_model(cfg: DictConfig) -> tuple[L.LightningDataModule, L.LightningModule]:
    """1. Get data ready.  2. Build the model (loss and optimizer come from its config).

    `model.n_features: null` takes the data's number of input features; the value is written into
    `cfg`, so the config saved with the run's checkpoints rebuilds the same model.
    """
    datamodule = instantiate(cfg.data, _convert_="all")  # plain lists, for weights_only checkpoints
    # What the data settled while loading (a CSV's absolute path and training-split statistics)
    # goes into the config that checkpoints store, so eval and predict rebuild the same inputs.
    settled = getattr(datamodule, "settled_config", None)
    if settled is not None:
        with open_dict(cfg.data):
            for key, value in settled().items():
                cfg.data[key] = value
    if "n_features" in cfg.model and cfg.model.n_features is None:
        cfg.model.n_features = datamodule.n_features
    return datamodule, instantiate(cfg.model, _recursive_=False)


def predict(model: torch.nn.Module, X: torch.Tensor) -> torch.Tensor:
    """Predictions as the course makes them: eval mode, no gradient tracking."""
    model.eval()
    with torch.inference_mode():
        return model(X)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit the model, test the best checkpoint, write the run's artefacts; return metrics.json."""
    cfg = outside_hydra(cfg)  # a hydra.compose() config gets its own run directory
    validate(cfg)
    if OmegaConf.select(cfg, "extras.print_config") and rank_zero_only.rank == 0:
        print_config_tree(cfg)
    # A missing or unsafe checkpoint to resume from fails here, before anything is written.
    resumed = load_checkpoint(cfg.ckpt_path) if cfg.get("ckpt_path") else None
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    log.info("Run directory: %s", output_dir.resolve())
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    datamodule, model = build_data_and_model(cfg)
    if resumed is not None:
        check_resumable(resumed, model, cfg.ckpt_path)
    history = LossHistory()
    trainer = build_trainer(cfg, callbacks=[StoreRunConfig(to_plain(cfg)), history])

    # 3. Fit: Lightning runs the training loop (and the test loop every epoch as validation).
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    except SIGTERMException:
        # Lightning stops after the current batch and would exit with code 0. Mid-epoch
        # checkpoints are not written (they could not be resumed exactly): last.ckpt holds the
        # end of the last finished epoch.
        last = fit_checkpoints(trainer).get("last")
        raise RunInterrupted(
            f"SIGTERM received during epoch {trainer.current_epoch}; "
            + (
                f"resume from the end of the last finished epoch with ckpt_path={last}"
                if last
                else "no epoch had finished, so there is no checkpoint to resume from"
            )
        ) from None
    fit_metrics = {key: to_float(value) for key, value in trainer.callback_metrics.items()}
    if resumed is not None and trainer.global_step == resumed.get("global_step"):
        log.info(
            "The fit of %s was already complete (%d epochs): nothing to train, testing it again",
            cfg.ckpt_path,
            trainer.current_epoch,
        )
        fit_metrics.update(_finished_fit_metrics(trainer, model, datamodule, history))
    epochs = trainer.current_epoch
    checkpoints = fit_checkpoints(trainer)
    if _fitted_in_spawned_processes(trainer) and "last" in checkpoints:
        # ddp_spawn hands back only the weights and the metrics logged with self.log: the loss
        # history and the epoch come from the last checkpoint.
        state = load_checkpoint(checkpoints["last"])
        history.load_state_dict(state["callbacks"][history.state_key])
        epochs = state["epoch"] + 1

    # 4. Evaluate the chosen checkpoint (none when checkpointing is off), through the safe path.
    tested = checkpoints.get(cfg.get("test_ckpt", "best"))
    if tested is not None:
        load_weights(model, load_checkpoint(tested)["state_dict"], tested)
    test_metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]

    # A resumed run keeps every key its metrics.json had; this run's values replace theirs.
    previous = output_dir / "metrics.json"
    metrics = {
        **(json.loads(previous.read_text()) if resumed is not None and previous.is_file() else {}),
        **fit_metrics,
        **{key: to_float(value) for key, value in test_metrics.items()},
        # The linear model's (none for e.g. the MLP), also in the data's units if standardized.
        **weight_and_bias(model, getattr(datamodule, "standardization", None)),
        "epochs": epochs,
        "seed": cfg.get("seed"),
        "tags": list(cfg.get("tags") or []),
        "best_checkpoint": str(checkpoints["best"]) if "best" in checkpoints else None,
        "tested_checkpoint": str(tested) if tested else None,
    }
    # Under DDP every rank has tested (the metrics are all-reduced); only rank 0 writes files.
    if not trainer.is_global_zero:
        return metrics

    # 6. Save the model that was tested, and show its predictions and loss curves.
    save_weights(model, output_dir / "model.safetensors")
    _plot(model, datamodule, trainer, output_dir / "predictions.png")
    curves = output_dir / "loss_curves.png"
    plot_loss_curves(history.curve("train/loss"), history.curve("val/loss"), curves)
    _log_figure(trainer, "loss_curves", curves)

    _log_hparams(trainer, cfg, metrics)
    trackers.log_run(trainer, cfg, metrics, output_dir)  # MLflow, W&B: params, metrics, files
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
        raise KeyError(
            f"optimized_metric={name!r} is not among the run's metrics: {sorted(metrics)}"
        )
    return metrics[name]


def _fitted_in_spawned_processes(trainer: L.Trainer) -> bool:
    # Lightning's DDP strategies name how they start their processes: "popen" re-runs the script.
    return getattr(trainer.strategy, "_start_method", "popen") != "popen"


def _finished_fit_metrics(
    trainer: L.Trainer,
    model: L.LightningModule,
    datamodule: L.LightningDataModule,
    history: LossHistory,
) -> dict[str, Any]:
    """What the last epoch of a fit that ended before this run logged: its losses (kept in the
    checkpoint's loss history) and the validation metrics, measured again."""
    metrics = {key: values[-1] for key in history.KEYS if (values := history.curve(key)[1])}
    validated = trainer.validate(model, datamodule=datamodule, verbose=False)[0]
    return {**metrics, **{key: to_float(value) for key, value in validated.items()}}


def _log_hparams(trainer: L.Trainer, cfg: DictConfig, metrics: dict[str, Any]) -> None:
    """The hyper-parameters with the final metrics (`hp/<metric>`) for TensorBoard's HParams."""
    final = {
        f"hp/{name}": value
        for name, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and name != "seed"
    }
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            logger.log_hyperparams(flat_hparams(cfg), final)
            # fit and test have closed the event file: flush what was written since.
            logger.finalize("success")


def _plot(
    model: L.LightningModule, datamodule: L.LightningDataModule, trainer: L.Trainer, path: Path
) -> None:
    # Plotted in the data's own units (a CSV's before standardization), not the model's.
    predictions = datamodule.to_data_units(predict(model, datamodule.split("test")[0]))
    train_X, train_y = datamodule.raw_inputs("train"), datamodule.raw_targets("train")
    test_X, test_y = datamodule.raw_inputs("test"), datamodule.raw_targets("test")
    plot_predictions(train_X, train_y, test_X, test_y, predictions, path)
    _log_figure(trainer, "predictions", path)


def _log_figure(trainer: L.Trainer, name: str, png: Path) -> None:
    """Show the saved figure in TensorBoard's Images tab (when a TensorBoard logger is on).

    The PNG's pixels, not the figure: matplotlib would draw it a second time.
    """
    loggers = [logger for logger in trainer.loggers if isinstance(logger, TensorBoardLogger)]
    if not loggers:
        return
    from PIL import Image  # matplotlib's own dependency

    with Image.open(png) as image:
        pixels = np.asarray(image.convert("RGB"))
    for logger in loggers:
        logger.experiment.add_image(name, pixels, trainer.global_step, dataformats="HWC")
