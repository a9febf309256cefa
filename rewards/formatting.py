"""Format rewards: the R1-Zero layout `<think>…</think><answer>…</answer>`.

Whitespace (newlines included) is free inside and between the tags: the strict-newline regexes some recipes copy
leave the format reward stuck at 0 for models that write `<think>` and `</think>` on one line.
"""

from __future__ import annotations

from typing import Any

from rewards.extract import completion_text

TAGS = ("<think>", "</think>", "<answer>", "</answer>")


def is_well_formatted(text: str) -> bool:
    """Exactly one non-empty think block followed by exactly one non-empty answer block, and nothing else."""
    if any(text.count(tag) != 1 for tag in TAGS):
        return False  # a second block, a missing tag, or nesting of the same tag
    t_open, t_close = text.index("<think>"), text.index("</think>")
    a_open, a_close = text.index("<answer>"), text.index("</answer>")
    if not t_open < t_close < a_open < a_close:
        return False  # wrong order, or one block inside the other
    think = text[t_open + len("<think>") : t_close]
    answer = text[a_open + len("<answer>") : a_close]
    outside = text[:t_open] + text[t_close + len("</think>") : a_open] + text[a_close + len("</answer>") :]
    return bool(think.strip()) and bool(answer.strip()) and not outside.strip()


def format_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """1.0 if the completion is exactly `<think>…</think><answer>…</answer>` (whitespace around is fine), else 0.0."""
    return [float(_safe(is_well_formatted, completion_text(c))) for c in completions]


def tag_count_reward(completions: list[Any], **kwargs: Any) -> list[float]:
    """0.25 for each of the four tags used exactly once: a dense signal while a weak base model learns the format."""
    return [
        _safe(lambda t: sum(0.25 for tag in TAGS if t.count(tag) == 1), completion_text(c))
        for c in completions
    ]


def _safe(fn, text: str) -> float:
    try:
        return float(fn(text))
    except Exception:
        return 0.0
