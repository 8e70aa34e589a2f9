"""The course's workflow in one run: get data ready, build the model, fit, evaluate, save."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from litplate.plotting import plot_loss_curves
from litplate.predict import predict
from litplate.run import lightning_output, trackers
from litplate.run.builders import build_data_and_model, build_trainer
from litplate.run.callbacks import RunRecord
from litplate.run.checkpoint import fit_checkpoints, load_checkpoint, load_weights
from litplate.run.config import outside_hydra, print_config_tree, to_plain
from litplate.run.files import full_disk_named, save_figure, save_weights, to_float, write_json
from litplate.run.resume import check_resumable, fit, sigterm_is_an_error
from litplate.run.validation import validate

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit the model, test the chosen checkpoint, write the run's files; return metrics.json.
    One paragraph per step of the course: Lightning runs the loops that reference.py writes out."""
    # Set up: a checked config and a seed; a checkpoint to resume from is read first, so a
    # missing or unsafe one fails before anything is written.
    lightning_output.quiet()
    cfg = outside_hydra(cfg, resume=True)  # a hydra.compose() config gets its own run directory
    validate(cfg)
    if OmegaConf.select(cfg, "extras.print_config") and rank_zero_only.rank == 0:
        print_config_tree(cfg)
    resumed = load_checkpoint(cfg.ckpt_path) if cfg.get("ckpt_path") else None
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)

    # 1. Get data ready.  2. Build the model; 2.1 its loss function and optimizer come with it.
    datamodule, model = build_data_and_model(cfg)
    if resumed is not None:
        check_resumable(resumed, model, to_plain(cfg.data), cfg.ckpt_path)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    log.info("Run directory: %s", output_dir.resolve())

    # 2.2 The training loop, and the testing loop every epoch (as validation): 3. Lightning fits.
    resumed_step = resumed["global_step"] if resumed is not None else None
    trainer = build_trainer(cfg, callbacks=[RunRecord(to_plain(cfg))], resumed_step=resumed_step)
    fit_metrics, epochs = fit(cfg, trainer, model, datamodule, resumed)

    # 4. Evaluate the chosen checkpoint (none when checkpointing is off), through the safe path.
    test_ckpt = cfg.get("test_ckpt", "best")
    checkpoints = fit_checkpoints(trainer)
    if (tested := checkpoints.get(test_ckpt)) is not None:
        load_weights(model, load_checkpoint(tested)["state_dict"], tested)
    elif checkpoints:  # e.g. no validation, so no best
        log.warning(
            "test_ckpt=%s: the fit wrote no %s checkpoint (only %s); testing its final weights",
            test_ckpt,
            test_ckpt,
            ", ".join(map(str, checkpoints.values())),
        )
    with sigterm_is_an_error(trainer, "testing"):
        test_metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    # A resumed run keeps every key its metrics.json had; this run's values replace theirs.
    previous = output_dir / "metrics.json"
    metrics = {
        **(json.loads(previous.read_text()) if resumed is not None and previous.is_file() else {}),
        **fit_metrics,
        **{key: to_float(value) for key, value in test_metrics.items()},
        # The model's own values (the line's weight and bias), also in the data's units.
        **model.reported_values(getattr(datamodule, "standardization", None)),
        "epochs": epochs,
        "seed": cfg.get("seed"),
        "tags": list(cfg.get("tags") or []),
        "best_checkpoint": str(checkpoints["best"]) if "best" in checkpoints else None,
        "tested_checkpoint": str(tested) if tested else None,
    }
    # Under DDP every rank has tested (the metrics are all-reduced); only rank 0 writes files.
    if not trainer.is_global_zero:
        return metrics

    # 3. Make predictions with the tested model (in the data's own units, a CSV's before
    # standardization); plot them, and the loss curves of the fit.
    outputs = datamodule.to_data_units(predict(model, datamodule.split("test")[0]))
    curves = model.loss_curve("train/loss"), model.loss_curve("val/loss")
    figures = {
        "predictions": model.plot_predictions(datamodule, "test", outputs),
        "loss_curves": plot_loss_curves(*curves),
    }
    for name, figure in figures.items():
        trackers.log_figure(trainer, name, save_figure(figure, output_dir / f"{name}.png"))

    # 6. Save the tested model (its checkpoints reload it: eval.py, predict.py) and the results.
    save_weights(model, output_dir / "model.safetensors")
    trackers.log_run(trainer, cfg, metrics, output_dir)  # TensorBoard, MLflow, W&B
    write_json(metrics, output_dir / "metrics.json")  # last: it marks a finished run
    shown = " ".join(
        f"{k}={to_float(v):.4f}" for k, v in {**model.reported_values(), **test_metrics}.items()
    )
    log.info("%s -> %s", shown, output_dir / "metrics.json")
    return metrics


def train_and_score(cfg: DictConfig) -> float | None:
    """Train, then return the metric a Hydra sweeper optimises (`cfg.optimized_metric`)."""
    with full_disk_named(cfg.paths.output_dir):
        metrics = train(cfg)
    name = cfg.get("optimized_metric")
    if name and name not in metrics:
        problem = f"optimized_metric={name!r} is not among the run's metrics: {sorted(metrics)}"
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            raise KeyError(problem)
        # A single run (e.g. with no validation, so no val/loss) has written its files: no
        # sweeper waits for the value.
        log.warning("%s; nothing to return to a sweeper", problem)
    return metrics.get(name) if name else None
