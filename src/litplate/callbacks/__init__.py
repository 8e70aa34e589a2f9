"""Lightning callbacks of the project's own (the rest come from lightning.pytorch.callbacks)."""

from litplate.callbacks.finite_loss import NonFiniteLossError, StopOnNonFiniteLoss
from litplate.callbacks.run_record import RunRecord

__all__ = ["NonFiniteLossError", "RunRecord", "StopOnNonFiniteLoss"]
