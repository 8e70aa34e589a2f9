"""Errors in what the user gave: the scripts print the message alone and exit 1 (through Hydra's
CompactHydraException; HYDRA_FULL_ERROR=1 shows the traceback)."""

from hydra.errors import CompactHydraException


class UserInputError(CompactHydraException, ValueError):
    """Bad input, with a message that names the culprit (file, line, key, value)."""
