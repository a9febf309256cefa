"""Glue between the reward functions in `rewards/` and the trainer.

TRL calls each reward function once per generation round with the decoded completions. Three things must hold
before those numbers become advantages, and they live here:

- **Prefill re-attached.** A template that pre-fills `<think>` puts it in the prompt, so the model never generates
  it; the rewards must see `prefill + completion`, or the format reward is stuck at 0.
- **One bad sample cannot kill a run.** If a reward function raises, it is re-run sample by sample; the samples that
  still raise (or return NaN/inf) score `None` (TRL turns it into NaN and leaves it out of the group baseline), and
  are counted (`rewards/<name>/errors`). Never a crash, never a silent 0.
- **A batch nobody could score stops the run.** If every reward of every completion is `None`, something is broken
  (wrong answer column, a reward that always raises); `check_scored` raises `RewardError` with one clear line.
"""

from __future__ import annotations

import functools
import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from trl.rewards import get_soft_overlong_punishment

from r1.errors import ConfigError, RewardError
from r1.templates import with_prefill
from rewards.extract import DEFAULT_POLICY
from rewards.registry import REWARD_FUNCS, UnknownNameError, reward_name

logger = logging.getLogger(__name__)

EXTRA_REWARDS = ("soft_overlong",)


class SafeReward:
    """A reward function wrapped for training: prefill re-attached, per-sample failures isolated and counted."""

    def __init__(self, func: Callable[..., Sequence[float | None]], name: str, prefill: str = ""):
        self.func = func
        self.__name__ = name  # TRL names the metric `rewards/<__name__>/mean`
        self.prefill = prefill
        self.batch_errors = 0  # samples that failed in the last call
        self.total_errors = 0
        self._warned = 0

    def __repr__(self) -> str:
        return f"SafeReward({self.__name__})"

    def __call__(self, prompts: list[Any] | None = None, completions: list[Any] | None = None, **kwargs: Any) -> list[float | None]:
        completions = with_prefill(list(completions or []), self.prefill)
        n = len(completions)
        self.batch_errors = 0
        try:
            out = self._score(prompts, completions, kwargs)
            if len(out) != n:
                raise ValueError(f"returned {len(out)} rewards for {n} completions")
        except Exception as e:  # isolate the sample(s) that fail
            self._warn(f"raised on a batch of {n} ({type(e).__name__}: {e}); rescoring sample by sample")
            out = [self._score_one(prompts, completions, kwargs, i) for i in range(n)]
        clean: list[float | None] = []
        for i, r in enumerate(out):
            if r is None:
                clean.append(None)
                continue
            try:
                value = float(r)
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value):
                self._count(f"returned a non-number ({r!r}) for sample {i}")
                clean.append(None)
            else:
                clean.append(value)
        return clean

    def _score(self, prompts: Any, completions: list[Any], kwargs: dict[str, Any]) -> list[Any]:
        return list(self.func(prompts=prompts, completions=completions, **kwargs))

    def _score_one(self, prompts: Any, completions: list[Any], kwargs: dict[str, Any], i: int) -> Any:
        n = len(completions)
        one = {k: (v[i : i + 1] if isinstance(v, (list, tuple)) and len(v) == n else v) for k, v in kwargs.items()}
        one_prompts = prompts[i : i + 1] if isinstance(prompts, (list, tuple)) and len(prompts) == n else prompts
        try:
            out = self._score(one_prompts, completions[i : i + 1], one)
            if len(out) != 1:
                raise ValueError(f"returned {len(out)} rewards for 1 completion")
            return out[0]
        except Exception as e:
            self._count(f"raised on sample {i} ({type(e).__name__}: {e})")
            return None

    def _count(self, what: str) -> None:
        self.batch_errors += 1
        self.total_errors += 1
        self._warn(what)

    def _warn(self, what: str) -> None:
        # The first few failures are logged in full; after that only the counter metric shows them.
        if self._warned < 5:
            self._warned += 1
            logger.warning("reward %s %s; the sample scores None%s", self.__name__, what,
                           " (further failures are only counted)" if self._warned == 5 else "")


def known_reward_names() -> list[str]:
    return [*REWARD_FUNCS, *EXTRA_REWARDS]


def check_reward_names(names: Sequence[str]) -> list[str]:
    """The registry names `names` mean (`accuracy_reward` -> `accuracy`); ConfigError (one line, closest valid
    name) for a reward that does not exist."""
    try:
        return [reward_name(name, EXTRA_REWARDS) for name in names]
    except UnknownNameError as e:
        raise ConfigError(str(e)) from None


def build_reward_funcs(
    names: Sequence[str],
    *,
    prefill: str = "",
    max_completion_length: int | None = None,
    overlong_buffer_len: int = 0,
    answer_policy: str = DEFAULT_POLICY,
) -> list[SafeReward]:
    """Reward functions by registry name, wrapped in `SafeReward`. `soft_overlong` is DAPO's soft overlong
    punishment (TRL's implementation), which needs the length budget, so it is built here from the config; the
    accuracy reward gets the run's `answer_policy` (rewards.extract: strict = only an answer block after </think>)."""
    funcs: list[SafeReward] = []
    for name in check_reward_names(names):
        if name == "soft_overlong":
            if not max_completion_length or overlong_buffer_len <= 0:
                raise ValueError("reward soft_overlong needs max_completion_length and overlong_buffer_len > 0")
            inner = get_soft_overlong_punishment(max_completion_length, overlong_buffer_len)
            funcs.append(SafeReward(_IdsOnly(inner), name))  # works on token ids: no prefill needed
        elif name == "accuracy":
            funcs.append(SafeReward(functools.partial(REWARD_FUNCS[name], answer_policy=answer_policy), name, prefill))
        else:
            funcs.append(SafeReward(REWARD_FUNCS[name], name, prefill))
    return funcs


class _IdsOnly:
    """Call a token-id reward without the text kwargs (a class, not a closure, so it pickles)."""

    def __init__(self, func: Callable[..., list[float]]):
        self.func = func

    def __call__(self, completion_ids: list[list[int]], **_: Any) -> list[float]:
        return self.func(completion_ids=completion_ids)


def check_scored(rewards_per_func: Any, names: Sequence[str], step: int) -> None:
    """Stop with a clear error when no completion of the batch got any reward (all NaN); warn when one reward
    function scored nothing. `rewards_per_func` is the gathered (num_completions, num_funcs) tensor."""
    nan = torch.isnan(rewards_per_func)
    if nan.numel() and bool(nan.all()):
        raise RewardError(
            f"step {step}: every reward function returned None for all {rewards_per_func.shape[0]} completions "
            f"({', '.join(names)}); check that the reward names fit the task and that the answer column holds "
            "usable references"
        )
    for j, name in enumerate(names):
        if nan.shape[0] and bool(nan[:, j].all()):
            logger.warning("step %d: reward %s returned None for every completion of this batch", step, name)
