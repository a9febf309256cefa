"""Lookup by name: the reward registry, and the one name lookup (with "did you mean") every registry uses.

Recipes list rewards in YAML (`reward_funcs: [accuracy, format]`); templates, tasks, benchmarks and built-in models
are chosen by name too. They all resolve names through `lookup`, so every place accepts the same spellings and
fails with the same one-line message.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable

from rewards.accuracy import accuracy_reward
from rewards.code import code_reward
from rewards.countdown import countdown_reward
from rewards.formatting import format_reward, tag_count_reward

REWARD_FUNCS: dict[str, Callable[..., list]] = {
    "accuracy": accuracy_reward,
    "format": format_reward,
    "tag_count": tag_count_reward,
    "countdown": countdown_reward,
    "code": code_reward,
}


class UnknownNameError(ValueError):
    """A name not in its registry; the message is one line with the closest valid name and the valid ones."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when none is close."""
    match = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" (did you mean {match[0]!r}?)" if match else ""


def lookup(kind: str, name: str, choices: Iterable[str], *, suffix: str = "") -> str:
    """The entry of `choices` that `name` means, or UnknownNameError.

    Names match exactly, or case-insensitively with `-` read as `_`; with `suffix` (e.g. "_reward") a name may
    also carry it (`accuracy_reward` means `accuracy`).
    """
    choices = list(choices)
    if isinstance(name, str):
        if name in choices:
            return name
        key = name.strip().lower().replace("-", "_")
        if suffix and key.endswith(suffix):
            key = key[: -len(suffix)]
        for choice in choices:
            if choice.lower().replace("-", "_") == key:
                return choice
    raise UnknownNameError(f"unknown {kind} {name!r}{did_you_mean(str(name), choices)}; choose one of: {', '.join(choices)}")


def reward_name(name: str, extra: Iterable[str] = ()) -> str:
    """The registry name `name` means (`accuracy_reward` -> `accuracy`); `extra` adds names built elsewhere."""
    return lookup("reward", name, [*REWARD_FUNCS, *extra], suffix="_reward")


def get_reward_funcs(names: str | Iterable[str]) -> list[Callable[..., list]]:
    """The reward functions for `names`: a list of names, or one string ("accuracy" or "accuracy,format")."""
    if isinstance(names, str):
        names = names.split(",")
    funcs = [REWARD_FUNCS[reward_name(name)] for name in names]
    if not funcs:
        raise UnknownNameError(f"no reward names given; choose from: {', '.join(REWARD_FUNCS)}")
    return funcs
