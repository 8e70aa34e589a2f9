"""Lightning callbacks of the project's own (the rest come from lightning.pytorch.callbacks)."""

from litplate.run.callbacks.finite_loss import NonFiniteLossError, StopOnNonFiniteLoss
from litplate.run.callbacks.run_record import RunRecord

__all__ = ["NonFiniteLossError", "RunRecord", "StopOnNonFiniteLoss"]
