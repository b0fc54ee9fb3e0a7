"""Exceptions that map onto the CLI's exit codes (2 = usage/config error)."""
from __future__ import annotations


class VisionZooError(Exception):
    """Base class; its message is shown to users as is."""

    exit_code = 2


class UsageError(VisionZooError):
    """Bad arguments, missing inputs, unknown model: exit status 2."""


class ModelNotFoundError(UsageError):
    """No model of that name (with the closest names in the message)."""


class WeightsUnavailableError(UsageError):
    """The model exists but its weights cannot be had here (offline, no cache)."""
