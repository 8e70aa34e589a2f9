"""Lightning callbacks of the project's own (the rest come from lightning.pytorch.callbacks)."""

from litplate.callbacks.finite_loss import NonFiniteLossError, StopOnNonFiniteLoss

__all__ = ["NonFiniteLossError", "StopOnNonFiniteLoss"]
