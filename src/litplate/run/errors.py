"""Errors in what the user gave (a config value, a file, a device): theirs to fix, not a bug.

The entry scripts print such an error as its message alone and exit with code 1, through Hydra's
own handling of a `CompactHydraException`; `HYDRA_FULL_ERROR=1` shows the traceback. Any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

from hydra.errors import CompactHydraException


class UserInputError(CompactHydraException, ValueError):
    """Bad input, with a message that names the culprit (file, line, key, value)."""
