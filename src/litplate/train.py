"""The course's workflow in one run: get data ready, build the model, fit, evaluate, save."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from litplate import lightning_output, trackers
from litplate.builders import build_data_and_model, build_trainer
from litplate.callbacks import LossHistory, StoreRunConfig
from litplate.checkpoint import check_resumable, fit_checkpoints, load_checkpoint, load_weights
from litplate.config import outside_hydra, print_config_tree, to_plain
from litplate.export import save_weights, to_float, write_json
from litplate.inference import predict
from litplate.plotting import plot_loss_curves, plot_predictions
from litplate.validation import validate

log = logging.getLogger(__name__)


class RunInterrupted(RuntimeError):
    """The run was stopped (SIGTERM) before it finished; it can be resumed from last.ckpt."""


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit the model, test the best checkpoint, write the run's artefacts; return metrics.json.

    One paragraph per step of the course; Lightning runs the loops that src/litplate/reference.py
    writes out by hand.
    """
    # Set up: a checked config, a run directory and a seed; a checkpoint to resume from is read
    # here, so a missing or unsafe one fails before anything is written.
    lightning_output.quiet()
    cfg = outside_hydra(cfg)  # a hydra.compose() config gets its own run directory
    resumed = _start(cfg)
    output_dir = Path(cfg.paths.output_dir)

    # 1. Get data ready.  2. Build the model; 2.1 its loss function and optimizer come with it.
    datamodule, model = build_data_and_model(cfg)
    if resumed is not None:
        check_resumable(resumed, model, cfg.ckpt_path)

    # 2.2 The training loop, and the testing loop every epoch (as validation): 3. Lightning fits.
    history = LossHistory()
    trainer = build_trainer(cfg, callbacks=[StoreRunConfig(to_plain(cfg)), history])
    fit_metrics, epochs = _fit(cfg, trainer, model, datamodule, history, resumed)

    # 4. Evaluate the chosen checkpoint (none when checkpointing is off), through the safe path.
    checkpoints = fit_checkpoints(trainer)
    tested = checkpoints.get(cfg.get("test_ckpt", "best"))
    if tested is not None:
        load_weights(model, load_checkpoint(tested)["state_dict"], tested)
    test_metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    # The model's own values (the line's weight and bias), also in the data's units if standardized.
    reported = model.reported_values(getattr(datamodule, "standardization", None))
    # A resumed run keeps every key its metrics.json had; this run's values replace theirs.
    previous = output_dir / "metrics.json"
    metrics = {
        **(json.loads(previous.read_text()) if resumed is not None and previous.is_file() else {}),
        **fit_metrics,
        **{key: to_float(value) for key, value in test_metrics.items()},
        **reported,
        "epochs": epochs,
        "seed": cfg.get("seed"),
        "tags": list(cfg.get("tags") or []),
        "best_checkpoint": str(checkpoints["best"]) if "best" in checkpoints else None,
        "tested_checkpoint": str(tested) if tested else None,
    }
    # Under DDP every rank has tested (the metrics are all-reduced); only rank 0 writes files.
    if not trainer.is_global_zero:
        return metrics

    # 3. Make predictions with the tested model; plot them, and the loss curves of the fit.
    # Plotted in the data's own units (a CSV's before standardization), not the model's.
    predictions = datamodule.to_data_units(predict(model, datamodule.split("test")[0]))
    plot_predictions(
        datamodule.raw_inputs("train"),
        datamodule.raw_targets("train"),
        datamodule.raw_inputs("test"),
        datamodule.raw_targets("test"),
        predictions,
        output_dir / "predictions.png",
    )
    trackers.log_figure(trainer, "predictions", output_dir / "predictions.png")
    curves = output_dir / "loss_curves.png"
    plot_loss_curves(history.curve("train/loss"), history.curve("val/loss"), curves)
    trackers.log_figure(trainer, "loss_curves", curves)

    # 6. Save the tested model (its checkpoints reload it: eval.py, predict.py) and the results.
    save_weights(model, output_dir / "model.safetensors")
    trackers.log_run(trainer, cfg, metrics, output_dir)  # TensorBoard, MLflow, W&B
    write_json(metrics, output_dir / "metrics.json")  # last: it marks a finished run
    shown = model.reported_values()  # in the model's own units
    if "test/loss" in metrics:
        shown["test/loss"] = metrics["test/loss"]
    log.info(
        "%s -> %s",
        " ".join(f"{key}={value:.4f}" for key, value in shown.items()),
        output_dir / "metrics.json",
    )
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


def _start(cfg: DictConfig) -> dict[str, Any] | None:
    """Check the config, make the run directory, seed; the checkpoint to resume from, if any."""
    validate(cfg)
    if OmegaConf.select(cfg, "extras.print_config") and rank_zero_only.rank == 0:
        print_config_tree(cfg)
    resumed = load_checkpoint(cfg.ckpt_path) if cfg.get("ckpt_path") else None
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    log.info("Run directory: %s", output_dir.resolve())
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    return resumed


def _fit(
    cfg: DictConfig,
    trainer: L.Trainer,
    model: L.LightningModule,
    datamodule: L.LightningDataModule,
    history: LossHistory,
    resumed: dict[str, Any] | None,
) -> tuple[dict[str, Any], int]:
    """`trainer.fit`; the fit's last metrics and its number of epochs.

    A SIGTERM ends it with RunInterrupted, naming the checkpoint to resume from.
    """
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
    last = fit_checkpoints(trainer).get("last")
    if _fitted_in_spawned_processes(trainer) and last is not None:
        # ddp_spawn hands back only the weights and the metrics logged with self.log: the loss
        # history and the epoch come from the last checkpoint.
        state = load_checkpoint(last)
        history.load_state_dict(state["callbacks"][history.state_key])
        epochs = state["epoch"] + 1
    return fit_metrics, epochs


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
