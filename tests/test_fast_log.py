"""fast_log: the device move of a logged result is skipped only when it would move nothing."""

from __future__ import annotations

import torch
from lightning.pytorch.trainer.connectors.logger_connector.result import _Metadata, _ResultMetric

from litplate import fast_log

CPU = torch.device("cpu")


def _result() -> _ResultMetric:
    fast_log.enable()
    result = _ResultMetric(_Metadata(fx="training_step", name="train/loss"), is_tensor=True)
    result.to(CPU)
    return result


def test_a_result_already_on_the_device_is_not_walked_again():
    result = _result()
    # A tensor that Lightning's move would bring to the CPU, which the check does not look at.
    object.__setattr__(result, "_forward_cache", torch.zeros(1, device="meta"))
    assert result.to(CPU) is result
    assert result._forward_cache.device.type == "meta"


def test_a_move_to_another_device_moves_everything_as_lightning_does():
    result = _result()
    object.__setattr__(result, "_forward_cache", torch.zeros(1))
    meta = torch.device("meta")  # a device without data: any tensor can be moved to it
    assert result.to(meta) is result
    assert result.value.device == meta and result._forward_cache.device == meta
    assert result.cumulated_batch_size.device == meta


def test_enable_is_idempotent():
    fast_log.enable()
    patched = _ResultMetric.to
    fast_log.enable()
    assert _ResultMetric.to is patched and patched.skips_moves
