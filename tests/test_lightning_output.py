"""Lightning is quieted by one explicit call, `lightning_output.quiet()`, not on import (that
importing the entry modules changes nothing: tests/test_cold_start.py's fresh interpreter)."""

from __future__ import annotations

import logging
import warnings

from litplate.run import lightning_output


def test_quiet_drops_only_the_named_messages_and_is_idempotent():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lightning_output.quiet()
        lightning_output.quiet()
        warnings.warn("The 'val_dataloader' does not have many workers", UserWarning, stacklevel=1)
        warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated", FutureWarning, stacklevel=1)
        warnings.warn("Some other warning", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == ["Some other warning"]
    assert logging.getLogger("lightning").handlers == []

    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    assert len(rank_zero.filters) == 1  # once, however often quiet() runs
    advert = logging.LogRecord("x", logging.INFO, "", 0, "💡 Tip: try litlogger", None, None)
    message = logging.LogRecord("x", logging.INFO, "", 0, "GPU available: False", None, None)
    assert [rank_zero.filter(advert), bool(rank_zero.filter(message))] == [False, True]
