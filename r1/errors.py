"""The errors a user can fix, and how they are shown: one plain line saying what is wrong and how to fix it.

Every entry point (`recipes/r1_zero.py`, `r1-train`, `python -m eval`) catches `R1Error`, prints `first_line(e)`
and exits 2; anything else is a bug and keeps its traceback. The classes also derive from the builtin their callers
have always caught (ValueError, RuntimeError), so `except ValueError` keeps working.
"""

from __future__ import annotations


class R1Error(Exception):
    """A mistake in the user's input or environment; the message is one line that names the fix."""


class ConfigError(R1Error, ValueError):
    """A wrong config key, value or combination of values."""


class DatasetError(R1Error, ValueError):
    """Training data that cannot be used (missing file or column, empty after filtering, ...)."""


class BenchmarkError(R1Error, ValueError):
    """An evaluation benchmark that cannot be resolved or read."""


class ModelNotFoundError(R1Error, ValueError):
    """A model name that cannot be resolved (missing folder, unknown built-in name, uncached hub id offline)."""


class SettingsMismatchError(R1Error, ValueError):
    """An evaluation output folder holds samples made with other settings."""


class RewardError(R1Error, RuntimeError):
    """Rewards that cannot train anything (e.g. every completion unscorable)."""


class NonFiniteError(R1Error, RuntimeError):
    """Too many consecutive steps with a NaN/inf loss or gradient norm."""


def first_line(error: BaseException) -> str:
    """The first non-empty line of an exception's message, or its class name when it has none."""
    for line in str(error).strip().splitlines():
        if line.strip():
            return line.strip()
    return type(error).__name__
