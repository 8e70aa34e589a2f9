"""Lightning callbacks of the project's own (the rest come from lightning.pytorch.callbacks)."""

from litplate.callbacks.finite_loss import NonFiniteLossError, StopOnNonFiniteLoss
from litplate.callbacks.last_checkpoint import LastCheckpoint
from litplate.callbacks.progress_bar import ThrottledRichProgressBar
from litplate.callbacks.rng_state import RNGStateCheckpoint

__all__ = [
    "LastCheckpoint",
    "NonFiniteLossError",
    "RNGStateCheckpoint",
    "StopOnNonFiniteLoss",
    "ThrottledRichProgressBar",
]
