"""Accuracy reward: 1.0 when the completion's final answer equals the reference mathematically."""

from __future__ import annotations

import logging
from typing import Any

from rewards._columns import per_sample
from rewards.extract import ANSWER_POLICIES, DEFAULT_POLICY, completion_text, extract_answer
from rewards.verify import verify_batch

logger = logging.getLogger(__name__)


def accuracy_reward(
    completions: list[Any], answer: Any = None, answer_policy: str = DEFAULT_POLICY, **kwargs: Any
) -> list[float | None]:
    """1.0 / 0.0 per completion; None where the reference `answer` is missing or unusable (TRL skips those).

    The final answer is `extract_answer(completion, policy=answer_policy)`: "strict" (the R1-Zero preset) counts only
    an `<answer>…</answer>` block after `</think>`; "lenient" (the default) also takes a final box, an explicit
    "the answer is …" statement or a bare short answer (see `rewards.extract`). Under both, nothing inside a
    `<think>` that is never closed counts. A reference that is a whole solution is graded as the value it states.
    Equality is `verify_batch` (math-verify in worker processes with a hard timeout). Other keyword arguments
    (prompts, completion_ids, trainer_state, dataset columns) are ignored. An unknown `answer_policy` raises
    ValueError.
    """
    if answer_policy not in ANSWER_POLICIES:
        raise ValueError(
            f"unknown answer_policy {answer_policy!r}; known policies: {', '.join(ANSWER_POLICIES)}"
        )
    n = len(completions)
    if answer is None:
        logger.error("accuracy_reward needs the dataset's `answer` column; scoring %d completions None", n)
        return [None] * n
    try:
        golds = per_sample(answer, n, "answer")
        if golds is None:
            return [None] * n
        preds = [extract_answer(completion_text(c), policy=answer_policy) for c in completions]
        verdicts = verify_batch(preds, golds)
        return [None if v is None else float(v) for v in verdicts]
    except Exception:  # never take a training run down; None is skipped by TRL and counted by our trainer
        logger.exception("accuracy_reward failed on a batch of %d; scoring it None", n)
        return [None] * n
