"""Step 4 of the workflow, "evaluate": test a saved checkpoint on its run's test split."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from litplate import lightning_output
from litplate.builders import build_trainer
from litplate.checkpoint import model_from_checkpoint
from litplate.config import outside_hydra, to_plain
from litplate.export import to_float, write_json
from litplate.validation import validate

log = logging.getLogger(__name__)


def rebuild(cfg: DictConfig) -> tuple[L.LightningModule, L.LightningDataModule, dict[str, Any]]:
    """The trained model of `cfg.ckpt_path` and the data module of the run that trained it.

    `cfg.data` (empty by default) is merged over the run's data config, e.g. `+data.noise_std=0.1`.
    """
    if not cfg.get("ckpt_path"):
        raise ValueError(
            "ckpt_path is required, e.g. ckpt_path=logs/train/runs/RUN/checkpoints/last.ckpt"
        )
    model, run_config = model_from_checkpoint(cfg.ckpt_path)
    data_config = {**run_config["data"], **(to_plain(cfg.get("data")) or {})}
    validate(OmegaConf.create({"data": data_config}))  # the +data.KEY=VALUE overrides
    return model, instantiate(data_config), run_config


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test the checkpoint and write metrics.json into this run's directory."""
    lightning_output.quiet()
    cfg = outside_hydra(cfg)  # a hydra.compose() config gets its own run directory
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model, datamodule, _ = rebuild(cfg)
    trainer = build_trainer(cfg)
    test_metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    metrics = {
        **{key: to_float(value) for key, value in test_metrics.items()},
        **model.reported_values(getattr(datamodule, "standardization", None)),
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
    }
    if not trainer.is_global_zero:  # under DDP every rank tests; rank 0 writes the file
        return metrics
    write_json(metrics, output_dir / "metrics.json")
    log.info("test/loss=%.4f -> %s", metrics["test/loss"], output_dir / "metrics.json")
    return metrics
