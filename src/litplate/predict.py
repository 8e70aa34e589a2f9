"""Step 3 of the workflow, "make predictions": with a model in hand, as the course makes them, or
with a saved checkpoint into predictions.csv."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import torch
from omegaconf import DictConfig

from litplate.run import lightning_output
from litplate.run.builders import build_from_checkpoint, build_trainer
from litplate.run.config import outside_hydra
from litplate.run.files import atomic_write, save_figure
from litplate.run.validation import ConfigError

log = logging.getLogger(__name__)


def predict(model: torch.nn.Module, X: torch.Tensor) -> torch.Tensor:
    """The model's predictions for `X`: eval mode, no gradient tracking."""
    model.eval()
    with torch.inference_mode():
        return model(X)


def predict_to_csv(cfg: DictConfig) -> Path:
    """Predict the data module's predict split; write predictions.csv and predictions.png."""
    lightning_output.quiet()
    cfg = outside_hydra(cfg)  # a hydra.compose() config gets its own run directory
    model, datamodule, _ = build_from_checkpoint(cfg)
    trainer = build_trainer(cfg)
    if trainer.world_size > 1:  # each rank would predict only its share of the rows
        raise ConfigError(
            f"predict.py writes one CSV from one process, but the trainer has {trainer.world_size}"
            " processes: use trainer=cpu, trainer=gpu or trainer=mps"
        )
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    outputs = torch.cat(trainer.predict(model, datamodule=datamodule))
    # In the data's own units (a CSV's before standardization), not as the model sees them.
    outputs = datamodule.to_data_units(outputs.float())  # float32, also from a bf16 model
    split = datamodule.predict_split
    inputs, targets = datamodule.raw_inputs(split), datamodule.raw_targets(split)
    columns = model.prediction_columns(outputs)  # the task's: a value, or a label and probabilities

    path = output_dir / "predictions.csv"
    with atomic_write(path, newline="") as file:
        writer = csv.writer(file)
        writer.writerow([*datamodule.feature_names, *columns, "target"])
        # As numpy scalars: a float32 is written as its shortest text (3.78, not 3.7799999713...).
        values = zip(*(column.cpu().numpy() for column in columns.values()), strict=True)
        targets = targets.reshape(len(targets)).cpu().numpy()
        for row, predicted, target in zip(inputs.cpu().numpy(), values, targets, strict=True):
            writer.writerow([*row, *predicted, target])
    save_figure(model.plot_predictions(datamodule, split, outputs), output_dir / "predictions.png")
    log.info("%d predictions -> %s", len(outputs), path)
    return path
