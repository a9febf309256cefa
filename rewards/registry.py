"""Reward functions by name, so recipes can list them in YAML (`reward_funcs: [accuracy, format]`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from rewards.accuracy import accuracy_reward
from rewards.countdown import countdown_reward
from rewards.formatting import format_reward, tag_count_reward

REWARD_FUNCS: dict[str, Callable[..., list]] = {
    "accuracy": accuracy_reward,
    "format": format_reward,
    "tag_count": tag_count_reward,
    "countdown": countdown_reward,
}


def _normalise(name: str) -> str:
    key = name.strip().lower().replace("-", "_")
    return key[: -len("_reward")] if key.endswith("_reward") else key


def get_reward_funcs(names: str | Iterable[str]) -> list[Callable[..., list]]:
    """The reward functions for `names`: a list of names, or one string ("accuracy" or "accuracy,format").

    Names are case-insensitive and may carry a `_reward` suffix. An unknown name raises ValueError listing the
    known ones.
    """
    if isinstance(names, str):
        names = [part for part in names.split(",")]
    funcs = []
    for name in names:
        if not isinstance(name, str) or _normalise(name) not in REWARD_FUNCS:
            known = ", ".join(REWARD_FUNCS)
            raise ValueError(f"unknown reward {name!r}; known rewards: {known}")
        funcs.append(REWARD_FUNCS[_normalise(name)])
    if not funcs:
        raise ValueError(f"no reward names given; known rewards: {', '.join(REWARD_FUNCS)}")
    return funcs
