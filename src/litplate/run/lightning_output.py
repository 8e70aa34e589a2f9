"""What Lightning prints that a litplate run does not need; each entry point calls `quiet()`."""

from __future__ import annotations

import logging
import warnings


def _no_advert(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith("💡 Tip:")  # Lightning 2.6's adverts, on every run


def quiet() -> None:
    """Drop Lightning's known-irrelevant warnings, its duplicate console handler and its adverts."""
    # In-memory tensors: worker processes would only add start-up time.
    warnings.filterwarnings("ignore", message=r".*does not have many workers.*")
    # lightning 2.6.6's _pytree helper builds a LeafSpec, deprecated in torch 2.13, on every fit.
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
    )
    # `import lightning` adds a console handler on top of Hydra's root one: each message twice.
    import lightning  # noqa: F401  (adds that handler first, if nothing imported it yet)

    logging.getLogger("lightning").handlers.clear()
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_no_advert)
