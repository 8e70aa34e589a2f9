"""Step 3 of the workflow, "make predictions", with a saved checkpoint."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig

from litplate import lightning_output
from litplate.atomic_write import atomic_write
from litplate.builders import build_from_checkpoint, build_trainer
from litplate.config import outside_hydra
from litplate.plotting import plot_predictions

log = logging.getLogger(__name__)


def predict_to_csv(cfg: DictConfig) -> Path:
    """Predict the data module's predict split; write predictions.csv and predictions.png."""
    lightning_output.quiet()
    cfg = outside_hydra(cfg)  # a hydra.compose() config gets its own run directory
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model, datamodule, _ = build_from_checkpoint(cfg)
    trainer = build_trainer(cfg)
    if trainer.world_size > 1:  # each rank would predict only its share of the rows
        raise ValueError(
            f"predict.py writes one CSV from one process, but the trainer has {trainer.world_size}"
            " processes: use trainer=cpu, trainer=gpu or trainer=mps"
        )
    predictions = torch.cat(trainer.predict(model, datamodule=datamodule))
    # In the data's own units (a CSV's before standardization), not as the model sees them.
    predictions = datamodule.to_data_units(predictions)
    X, y = (
        datamodule.raw_inputs(datamodule.predict_split),
        datamodule.raw_targets(datamodule.predict_split),
    )

    path = output_dir / "predictions.csv"
    with atomic_write(path, newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*datamodule.feature_names, "prediction", "target"])
        for inputs, prediction, target in zip(
            X.tolist(), predictions[:, 0].tolist(), y[:, 0].tolist(), strict=True
        ):
            writer.writerow([*inputs, prediction, target])
    train_X, train_y = datamodule.raw_inputs("train"), datamodule.raw_targets("train")
    plot_predictions(train_X, train_y, X, y, predictions, output_dir / "predictions.png")
    log.info("%d predictions -> %s", len(predictions), path)
    return path
