"""A run killed at the moment that matters to its TensorBoard events (used in a fresh process)."""

from __future__ import annotations

import os
import signal

from lightning.pytorch import Callback


class KillAfterValidation(Callback):
    """SIGKILLs the run once epoch `epoch`'s validation metrics are logged, before that epoch's
    checkpoint: its events then hold steps that last.ckpt does not."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch == self.epoch and not trainer.sanity_checking:
            os.kill(os.getpid(), signal.SIGKILL)
