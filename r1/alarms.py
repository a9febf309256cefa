"""Alarms when learning stalls: each one warns once, with a suggested fix, and is recorded in metrics.jsonl.

R1-Zero runs fail quietly: the loss keeps moving while nothing is learned. `StallAlarms` reads each logged step
(the metrics.jsonl record, before it is written) and fires, once per run, when

- `truncated`: the share of completions cut at `max_completion_length` (`clipped_ratio`) stays above
  `alarm_clipped_ratio` for `alarm_window` steps in a row;
- `no_signal`: every group had zero reward variance (`frac_reward_zero_std` = 1) for `alarm_window` steps in a row:
  all advantages are 0, so no gradient;
- `entropy_collapse`: the mean token entropy stayed below `alarm_entropy_fraction` of its first logged value for
  `alarm_window` steps in a row (one low step is noise: per-step entropy of a few prompts swings by 10x);
- `unscored`: more than `alarm_unscored_frac` of one reward's values were None or errors in a step;
- `format_without_accuracy`: accuracy stayed 0 for `alarm_window` steps while the format rate rose over them.

The fired alarm goes into that step's record as `alarm/<name>` (its message), and a WARNING is logged. Thresholds
live in `R1GRPOConfig` (`alarm_*`); `alarm_window: 0` turns the alarms off. On resume the records already in
metrics.jsonl are replayed, so an alarm that fired before the kill does not fire again.
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

logger = logging.getLogger(__name__)

FIXES = {
    "truncated": "completions keep hitting max_completion_length: raise it, keep stop_at_answer on, or add the "
    "soft_overlong reward",
    "no_signal": "every group's rewards are equal, so every advantage is 0: use problems of the model's level "
    "(min_level/max_level, another dataset), more num_generations, or dynamic_sampling",
    "entropy_collapse": "the policy became near-deterministic: lower learning_rate, raise temperature, or add a KL "
    "anchor (beta > 0)",
    "unscored": "rewards return None or fail: check the answer column and the reward names for this task, and the "
    "samples in train_samples.jsonl",
    "format_without_accuracy": "the model learns the tags but no answer is right: check the grader on a few samples "
    "(python -m eval), the answer_column, and whether the problems are too hard",
}


class StallAlarms:
    """Watches the per-step records; `check(record)` returns the alarms that fire at this step ({name: message})."""

    def __init__(self, args: Any):
        self.window = int(args.alarm_window)
        self.clipped_ratio = float(args.alarm_clipped_ratio)
        self.entropy_fraction = float(args.alarm_entropy_fraction)
        self.unscored_frac = float(args.alarm_unscored_frac)
        self.fired: set[str] = set()
        self.first_entropy: float | None = None
        self.recent: deque[dict[str, Any]] = deque(maxlen=max(self.window, 1))

    def replay(self, records: list[dict[str, Any]]) -> None:
        """Rebuild the state from a resumed run's records (alarms they hold count as fired)."""
        for record in records:
            self.fired.update(k.split("/", 1)[1] for k in record if k.startswith("alarm/"))
            self._observe(record)

    def check(self, record: dict[str, Any]) -> dict[str, str]:
        if self.window <= 0:
            return {}
        self._observe(record)
        fired = {}
        for name, firing in self._conditions(record).items():
            if firing and name not in self.fired:
                self.fired.add(name)
                fired[name] = f"{self._what(name, record)}; suggested fix: {FIXES[name]}"
                logger.warning("alarm %s at step %s: %s", name, record.get("step"), fired[name])
        return fired

    def _observe(self, record: dict[str, Any]) -> None:
        entropy = _number(record.get("entropy"))
        if self.first_entropy is None and entropy is not None:
            self.first_entropy = entropy
        self.recent.append(record)

    def _full_window(self, key: str, test: Any) -> bool:
        values = [_number(r.get(key)) for r in self.recent]
        return len(values) == self.window and all(v is not None and test(v) for v in values)

    def _conditions(self, record: dict[str, Any]) -> dict[str, bool]:
        formats = [_number(r.get("format_rate")) for r in self.recent]
        unscored = [_number(v) for k, v in record.items() if k.startswith("rewards/") and k.endswith("/none_frac")]
        return {
            "truncated": self._full_window("clipped_ratio", lambda v: v > self.clipped_ratio),
            "no_signal": self._full_window("frac_reward_zero_std", lambda v: v >= 1.0),
            "entropy_collapse": bool(self.first_entropy) and self._full_window(
                "entropy", lambda v: v < self.entropy_fraction * self.first_entropy),
            "unscored": any(v is not None and v > self.unscored_frac for v in unscored),
            "format_without_accuracy": self._full_window("accuracy", lambda v: v == 0.0)
            and None not in formats and formats[-1] > formats[0],
        }

    def _what(self, name: str, record: dict[str, Any]) -> str:
        n = self.window
        if name == "entropy_collapse":
            return (f"entropy below {self.entropy_fraction} x its first value {self.first_entropy:.4g} for {n} steps in a "
                    f"row (now {record['entropy']:.4g})")
        return {
            "truncated": f"clipped_ratio above {self.clipped_ratio} for {n} steps in a row",
            "no_signal": f"every group had zero reward variance for {n} steps in a row",
            "unscored": f"more than {self.unscored_frac:.0%} of a reward's values were None or errors",
            "format_without_accuracy": f"accuracy 0 for {n} steps while the format rate rose",
        }[name]


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
