"""Data modules: step 1 of the workflow, "get data ready"."""

from litplate.data.linear import LinearDataModule

__all__ = ["LinearDataModule"]
