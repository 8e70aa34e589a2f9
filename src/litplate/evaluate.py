"""Step 4 of the workflow, "evaluate": test a saved checkpoint on its run's test split."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from litplate.run import lightning_output
from litplate.run.builders import build_from_checkpoint, build_trainer
from litplate.run.config import outside_hydra
from litplate.run.files import to_float, write_json
from litplate.run.resume import sigterm_is_an_error

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Test the checkpoint and write metrics.json into this run's directory."""
    lightning_output.quiet()
    cfg = outside_hydra(cfg)  # a hydra.compose() config gets its own run directory
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    model, datamodule, _ = build_from_checkpoint(cfg)
    trainer = build_trainer(cfg)
    with sigterm_is_an_error(trainer, "testing"):
        test_metrics = trainer.test(model, datamodule=datamodule, verbose=False)[0]
    metrics = {
        **{key: to_float(value) for key, value in test_metrics.items()},
        **model.reported_values(getattr(datamodule, "standardization", None)),
        "checkpoint": str(Path(cfg.ckpt_path).resolve()),
    }
    if trainer.is_global_zero:  # under DDP every rank tests; rank 0 writes the file
        write_json(metrics, output_dir / "metrics.json")
        shown = " ".join(f"{key}={to_float(value):.4f}" for key, value in test_metrics.items())
        log.info("%s -> %s", shown, output_dir / "metrics.json")
    return metrics
