"""Lightning callbacks of the project's own (the rest come from lightning.pytorch.callbacks)."""

from litplate.callbacks.best_checkpoint import BestCheckpoint
from litplate.callbacks.finite_loss import NonFiniteLossError, StopOnNonFiniteLoss
from litplate.callbacks.last_checkpoint import LastCheckpoint
from litplate.callbacks.loss_history import LossHistory
from litplate.callbacks.progress_bar import ThrottledRichProgressBar
from litplate.callbacks.rng_state import RNGStateCheckpoint
from litplate.callbacks.run_config import StoreRunConfig

__all__ = [
    "BestCheckpoint",
    "LastCheckpoint",
    "LossHistory",
    "NonFiniteLossError",
    "RNGStateCheckpoint",
    "StopOnNonFiniteLoss",
    "StoreRunConfig",
    "ThrottledRichProgressBar",
]
