"""Stop at the first NaN or infinite training loss instead of finishing with NaN weights."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from litplate.run.checkpoint import fit_checkpoints, non_finite_parameters


class NonFiniteLossError(RuntimeError):
    """Training produced a loss that is NaN or infinite."""


class StopOnNonFiniteLoss(L.Callback):
    """Raise at the first non-finite training loss, naming the epoch and step.

    Raised before the epoch's checkpoints are written, so the last good `last.ckpt` stays, and
    train() never reaches metrics.json. On the CPU every step is checked as it ends. On a GPU
    that check would make the host wait for the device at every step, so by default the first
    bad step is noted on the device and looked at before validation and at the end of the
    epoch's training: still before any checkpoint of that epoch (`every_step` chooses).
    """

    def __init__(self, every_step: bool | None = None) -> None:
        self.every_step = every_step
        # The unchecked steps: (epoch, step, batch) and the loss, still on the device.
        self._unchecked: list[tuple[tuple[int, int, int], torch.Tensor]] = []
        self._weights_checked_at = -1

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        loss = loss.detach().flatten()[0]
        where = (trainer.current_epoch, trainer.global_step, batch_idx)
        every_step = loss.device.type == "cpu" if self.every_step is None else self.every_step
        if every_step:
            if not torch.isfinite(loss):
                self._raise(trainer, *where, loss.item())
        else:
            self._unchecked.append((where, loss))

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._check(trainer)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Before the checkpoint callbacks' own on_validation_end (Lightning runs them last).
        if not trainer.sanity_checking:
            self._check_weights(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Lightning calls this before the checkpoint callbacks' own on_train_epoch_end.
        self._check(trainer)
        self._check_weights(trainer, pl_module)

    def _check_weights(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """A finite loss can still leave non-finite weights after the step; never save those."""
        if trainer.global_step == self._weights_checked_at:  # validation already looked
            return
        self._weights_checked_at = trainer.global_step
        bad = non_finite_parameters(
            {**dict(pl_module.named_parameters()), **dict(pl_module.named_buffers())}
        )
        if bad:
            raise NonFiniteLossError(
                f"the weights became NaN or infinite at epoch {trainer.current_epoch}, step "
                f"{trainer.global_step} ({', '.join(bad)}). Likely cause: a learning rate too "
                "high (try model.optimizer.lr 10x smaller). The last good checkpoint is "
                f"{fit_checkpoints(trainer).get('last') or '(none yet: no epoch finished)'}"
            )

    def _check(self, trainer: L.Trainer) -> None:
        if not self._unchecked:
            return
        where, losses = zip(*self._unchecked, strict=True)
        self._unchecked = []
        bad = (~torch.isfinite(torch.stack(losses))).nonzero()  # the one wait for the device
        if len(bad):
            first = int(bad[0])
            self._raise(trainer, *where[first], losses[first].item())

    def _raise(
        self, trainer: L.Trainer, epoch: int, step: int, batch_idx: int, loss: float
    ) -> None:
        raise NonFiniteLossError(
            f"the training loss became {loss} at epoch {epoch}, step {step} (batch {batch_idx}). "
            "Likely causes: a learning rate too high for this loss (try model.optimizer.lr 10x "
            "smaller), or NaN/inf values in the data. The last good checkpoint is "
            f"{fit_checkpoints(trainer).get('last') or '(none yet: no epoch finished)'}"
        )
