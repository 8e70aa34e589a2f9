"""Stop at the first NaN or infinite training loss instead of finishing with NaN weights."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from litplate.checkpoint import fit_checkpoints


class NonFiniteLossError(RuntimeError):
    """Training produced a loss that is NaN or infinite."""


class StopOnNonFiniteLoss(L.Callback):
    """Raise at the first non-finite training loss, naming the epoch and step.

    Raised before the epoch's checkpoints are written, so the last good `last.ckpt` stays, and
    train() never reaches metrics.json. Checking costs one device sync per step (free on a CPU).
    """

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None or bool(torch.isfinite(loss).all()):
            return
        raise NonFiniteLossError(
            f"the training loss became {loss.detach().flatten()[0].item()} at epoch "
            f"{trainer.current_epoch}, step {trainer.global_step} (batch {batch_idx}). Likely "
            "causes: a learning rate too high for this loss (try model.optimizer.lr 10x smaller), "
            "or NaN/inf values in the data. The last good checkpoint is "
            f"{fit_checkpoints(trainer).get('last') or '(none yet: no epoch finished)'}"
        )
