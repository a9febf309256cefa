"""The format reward never completes a completion the model did not finish.

A completion cut at `max_completion_length` often ends inside the answer block (`<think>a</think><answer>4`). If the
format reward closed the missing `</answer>` for it, truncated completions would earn the full format reward and
the policy would learn that stopping mid-answer is fine. These cases go through the reward function itself, the
training wrapper (prefill re-attached, as the trainer calls it) and the trainer's format-rate metric.
"""

from __future__ import annotations

import pytest

from rewards.formatting import format_reward, is_well_formatted

TRUNCATED = [
    "<think>a</think><answer>4",  # cut before </answer>
    "<think>a</think><answer>4</answer",  # cut inside the closing tag
    "<think>a</think><answer>",  # cut right after the opening tag
    "<think>a</think>",  # cut before the answer block
    "<think>a",  # cut inside the reasoning
]


@pytest.mark.parametrize("text", TRUNCATED)
def test_truncated_completion_scores_zero(text):
    assert format_reward([text]) == [0.0]
    assert is_well_formatted(text) is False


def test_the_complete_completion_scores_one():
    """The control: the same text with its closing tag is well formatted, so the zeros above are about truncation."""
    assert format_reward(["<think>a</think><answer>4</answer>"]) == [1.0]


def test_truncated_completion_scores_zero_through_the_training_wrapper():
    """As the trainer calls it: the template pre-fills `<think>`, the model generated the rest and was cut."""
    from r1.rewarding import build_reward_funcs

    (reward,) = build_reward_funcs(["format"], prefill="<think>")
    completions = ["a</think><answer>4", "a</think><answer>4</answer>"]
    assert reward(prompts=["p", "p"], completions=completions) == [0.0, 1.0]
    chat = [[{"role": "assistant", "content": c}] for c in completions]
    assert reward(prompts=["p", "p"], completions=chat) == [0.0, 1.0]
