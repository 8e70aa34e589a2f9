"""Lightning is quieted by one explicit call, `lightning_output.quiet()`, not on import."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import warnings

import pytest

from litplate.run import lightning_output


@pytest.mark.slow  # starts fresh interpreters
def test_importing_the_entry_modules_changes_nothing_in_lightnings_output():
    code = (
        "import json, logging, warnings\n"
        "import lightning\n"
        "state = lambda: [len(logging.getLogger('lightning').handlers), len(warnings.filters)]\n"
        "before = state()\n"
        "import litplate.train, litplate.evaluate, litplate.predict, litplate.run.builders\n"
        "print(json.dumps([before, state()]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    before, after = json.loads(result.stdout)
    assert after == before, result.stderr[-2000:]
    assert before[0] == 1  # lightning's own console handler, there until quiet() removes it


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
