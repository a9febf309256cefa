"""Accuracy reward: 1.0 when the completion's final answer equals the reference mathematically."""

from __future__ import annotations

import logging
from typing import Any

from rewards._columns import per_sample
from rewards.extract import completion_text, extract_answer
from rewards.verify import verify_batch

logger = logging.getLogger(__name__)


def accuracy_reward(completions: list[Any], answer: Any = None, **kwargs: Any) -> list[float | None]:
    """1.0 / 0.0 per completion; None where the reference `answer` is missing or unusable (TRL skips those).

    The final answer is `extract_answer(completion)`; equality is `verify_batch` (math-verify in worker processes
    with a hard timeout). Other keyword arguments (prompts, completion_ids, trainer_state, dataset columns) are
    ignored.
    """
    n = len(completions)
    if answer is None:
        logger.error("accuracy_reward needs the dataset's `answer` column; scoring %d completions None", n)
        return [None] * n
    try:
        golds = per_sample(answer, n, "answer")
        if golds is None:
            return [None] * n
        preds = [extract_answer(completion_text(c)) for c in completions]
        verdicts = verify_batch(preds, golds)
        return [None if v is None else float(v) for v in verdicts]
    except Exception:  # never take a training run down; None is skipped by TRL and counted by our trainer
        logger.exception("accuracy_reward failed on a batch of %d; scoring it None", n)
        return [None] * n
