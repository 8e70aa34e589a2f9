"""A TensorBoard logger that keeps logged scalars in memory and writes them in batches."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities import rank_zero_only
from torch import Tensor


class BufferedTensorBoardLogger(TensorBoardLogger):
    """Lightning's TensorBoardLogger, writing the scalars it is given at most every
    `min_interval_s`, when the run ends (`finalize`, also after an exception or SIGTERM) and when
    asked to `flush`.

    Lightning logs the epoch's values twice an epoch, and its TensorBoardLogger writes an event
    per value (each a protobuf built through torch's `add_scalar`) and then checks its
    directory and flushes the file: more than a small epoch costs. Here each logged step becomes
    one event holding all its values, with the time it was logged, and the directory is checked
    only when the batch is written. A killed run (SIGKILL) loses at most the last
    `min_interval_s` of values; TensorBoard shows them as the plain logger's events.
    `min_interval_s=0` writes at every call.
    """

    def __init__(self, *args: Any, min_interval_s: float = 2.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if min_interval_s < 0:
            raise ValueError(f"min_interval_s must be >= 0, got min_interval_s={min_interval_s}")
        self.min_interval_s = min_interval_s
        self._pending: list[tuple[float, int | None, list[Any], dict[str, dict[str, Any]]]] = []
        self._written_at = -float("inf")  # time.monotonic() of the last write

    def _due(self) -> bool:
        return time.monotonic() - self._written_at >= self.min_interval_s

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        if self._prefix:
            metrics = {f"{self._prefix}{self.LOGGER_JOIN_CHAR}{k}": v for k, v in metrics.items()}
        # Read now, as TensorBoardLogger does: a tensor or dict may change before the write.
        self._pending.append((time.time(), step, *_summary_values(metrics)))
        if self._due():
            self.flush()

    @rank_zero_only
    def save(self) -> None:
        # Lightning calls this after every log_metrics: only a batch's write saves.
        if self._due():
            self.flush()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        self.flush()
        super().finalize(status)

    @rank_zero_only
    def flush(self) -> None:
        """Write the values kept in memory (one event per logged step), flush the event file and
        save what TensorBoardLogger saves (hparams.yaml)."""
        from tensorboard.compat.proto.summary_pb2 import Summary

        self._written_at = time.monotonic()
        pending, self._pending = self._pending, []
        experiment = self.experiment
        for walltime, step, values, groups in pending:
            for key, value in groups.items():
                experiment.add_scalars(key, value, step, walltime)
            if values:
                experiment._get_file_writer().add_summary(Summary(value=values), step, walltime)
        super().save()  # flushes the event file; writes hparams.yaml once


def _summary_values(metrics: Mapping[str, Any]) -> tuple[list[Any], dict[str, dict[str, Any]]]:
    """The scalars' protobuf values, and the dicts for `add_scalars` (copied, tensors read)."""
    from torch.utils.tensorboard.summary import scalar

    values, groups = [], {}
    for key, value in metrics.items():
        if isinstance(value, Tensor):
            value = value.item()
        if isinstance(value, dict):
            groups[key] = {k: v.item() if isinstance(v, Tensor) else v for k, v in value.items()}
            continue
        try:
            values.extend(scalar(key, value).value)
        except Exception as err:
            raise ValueError(
                f"{key}={value!r}: TensorBoard takes numbers, one-element tensors or dicts of them"
            ) from err
    return values, groups
