"""What Lightning prints that a litplate run does not need: each filter names one message.

`quiet()` is called by every entry point (train, evaluate, predict) before Lightning runs; it is
idempotent, and changes nothing on import.
"""

from __future__ import annotations

import logging
import warnings


class _DropAdverts(logging.Filter):
    """Lightning 2.6 advertises its cloud services ("💡 Tip: ... litlogger") on every run."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip:")


_DROP_ADVERTS = _DropAdverts()


def quiet() -> None:
    """Drop Lightning's known-irrelevant warnings, its duplicate console handler and its adverts."""
    # In-memory tensors: worker processes would only add start-up time, so this advice does not
    # apply.
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    # lightning 2.6.6's _pytree helper builds a LeafSpec, deprecated in torch 2.13, on every fit.
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
    )
    # `import lightning` adds its own console handler on top of the root one Hydra configures,
    # which printed every Lightning message twice; Hydra's handlers already show and file them.
    import lightning  # noqa: F401  (adds that handler first, if nothing imported it yet)

    logging.getLogger("lightning").handlers.clear()
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_DROP_ADVERTS)
