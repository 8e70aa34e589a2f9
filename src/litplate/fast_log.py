"""Cheaper `self.log`: Lightning re-moves every logged value's state to its device on each call.

`LightningModule.log` ends in `_ResultMetric.to(value.device)`, which walks every attribute of
the stored result (and of a logged torchmetrics object: all its states) even when nothing is to
move: most of the cost of a `self.log` call in a training step (BENCHMARKS.md). This is the one
place litplate reaches into Lightning for speed, so that models can log the textbook way.
`enable()` makes the move a no-op when the result was already moved to that device and its
values are still there; any other call goes to Lightning's own method. Without the private
class it expects (another Lightning version), `enable()` leaves Lightning as it is.
"""

from __future__ import annotations

from typing import Any

import torch

try:
    from lightning.pytorch.trainer.connectors.logger_connector.result import _ResultMetric
except ImportError:  # a Lightning without this class: nothing to speed up
    _ResultMetric = None

_MOVED_TO = "_litplate_moved_to"


def _on(result: Any, device: torch.device) -> bool:
    """Whether the result's values are on `device` (the tensors `to` would move)."""
    if result.__dict__.get(_MOVED_TO) != device or result.value.device != device:
        return False
    return not result.is_tensor or result.cumulated_batch_size.device == device


def enable() -> None:
    """Skip `_ResultMetric.to(device)` when its values are on that device already. Idempotent."""
    if _ResultMetric is None or getattr(_ResultMetric.to, "skips_moves", False):
        return
    move = _ResultMetric.to

    def to(self: Any, *args: Any, **kwargs: Any) -> Any:
        if len(args) != 1 or kwargs or not isinstance(args[0], torch.device):
            return move(self, *args, **kwargs)
        device = args[0]
        if not _on(self, device):
            move(self, device)
            object.__setattr__(self, _MOVED_TO, device)  # as Lightning sets its own attributes
        return self

    to.skips_moves = True
    _ResultMetric.to = to
