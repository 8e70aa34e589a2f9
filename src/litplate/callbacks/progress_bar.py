"""Lightning's rich progress bar, redrawn at most every `min_interval_s` during a fit."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import RichProgressBar

from litplate.callbacks.last_checkpoint import final_epoch


class ThrottledRichProgressBar(RichProgressBar):
    """RichProgressBar that passes the fit's hooks on only when the bar is due for a redraw.

    Lightning 2.6.6's RichProgressBar updates the bar and re-reads every logged metric after each
    training batch whatever its `refresh_rate`, and at every epoch start and end; each validation
    adds a new bar to rich's table (never removed) and updates it. With small epochs that costs
    more than the epoch. Here an epoch is drawn when `min_interval_s` has passed since the last
    redraw: from that moment on, its hooks (training batches, validation, epoch end) go through,
    so a drawn epoch ends complete; an epoch that is not drawn does no rich work at all and the
    bar keeps showing the last one drawn. Within a drawn epoch, training batches are passed on at
    most every `min_interval_s`, except its last. The fit's final epoch is always drawn, with its
    final metrics. Sanity checking, validate, test and predict are not throttled.
    """

    def __init__(self, *args: Any, min_interval_s: float = 0.1, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.min_interval_s = min_interval_s
        self._last_update = -float("inf")
        self._drawn_epoch: int | None = None  # the epoch the bar shows
        self._epoch = 0  # the epoch being trained

    def _due(self) -> bool:
        return time.monotonic() - self._last_update >= self.min_interval_s

    def _drawn(self, trainer: L.Trainer) -> bool:
        return self._drawn_epoch == trainer.current_epoch

    def _throttled(self, trainer: L.Trainer) -> bool:
        return trainer.state.fn == "fit" and not trainer.sanity_checking

    def _draw_epoch(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Show the current epoch from now on (its batches so far done)."""
        self._last_update = time.monotonic()
        self._drawn_epoch = trainer.current_epoch
        super().on_train_epoch_start(trainer, pl_module)
        done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
        if done and self.train_progress_bar_id is not None:
            self._update(self.train_progress_bar_id, done)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch = trainer.current_epoch
        if self.train_progress_bar_id is None or self._due():
            self._draw_epoch(trainer, pl_module)

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        last = trainer.is_last_batch
        if not (self._due() or (last and self._drawn(trainer)) or (last and final_epoch(trainer))):
            return
        if not self._drawn(trainer):
            self._draw_epoch(trainer, pl_module)
        self._last_update = time.monotonic()
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._drawn(trainer):
            super().on_train_epoch_end(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # A fit stopped early (early stopping) may end on an epoch that was not drawn.
        if self.progress is None or self.train_progress_bar_id is None:
            return
        if self._drawn_epoch != self._epoch:
            total = self.total_train_batches
            self.progress.reset(
                self.train_progress_bar_id,
                total=total,
                completed=total,
                description=self._get_train_description(self._epoch),
                visible=True,
            )
            self._drawn_epoch = self._epoch
        self._update_metrics(trainer, pl_module)
        self.refresh()

    def on_validation_batch_start(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if self._throttled(trainer) and not self._drawn(trainer):
            if not self._due():
                return
            self._draw_epoch(trainer, pl_module)
        super().on_validation_batch_start(trainer, pl_module, batch, batch_idx, dataloader_idx)

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if not self._throttled(trainer) or self._drawn(trainer):
            super().on_validation_batch_end(
                trainer, pl_module, outputs, batch, batch_idx, dataloader_idx
            )

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._throttled(trainer) or self._drawn(trainer):
            super().on_validation_epoch_end(trainer, pl_module)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._throttled(trainer) or self._drawn(trainer):
            super().on_validation_end(trainer, pl_module)
        else:
            self.reset_dataloader_idx_tracker()
