"""Rewards cannot kill training: hostile completions go through the trainer's whole reward path (SafeReward-wrapped
registry rewards, R1-Zero metrics, sample capture) in bounded time; a raising reward is logged and counted.

(Per-sample isolation, the counter metric and the all-None stop are tested in tests/test_train_rewards.py; the
all-None stop as a one-line exit of a real run in tests/test_reliability_runs.py.)
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
from test_rewards_verify import HOSTILE  # the rewards issue's list (power towers, 1 MB, 10k braces, ...)

TINY = str(Path(__file__).resolve().parent / "configs" / "tiny_qwen2.yaml")
# A liveness bound, not a speed target: the list holds inputs that hang sympy's printer forever, take minutes with
# a quadratic scan, or exhaust memory when evaluated. Measured on a shared 2-core machine: about 1-3 s.
BOUND_S = 30.0


def test_hostile_completions_keep_the_reward_step_bounded(tmp_path):
    from datasets import Dataset

    from r1.config import parse_args
    from r1.models import load_model, load_tokenizer, resolve_model
    from r1.rewarding import build_reward_funcs
    from r1.templates import get_template
    from r1.trainer import R1ZeroTrainer
    from rewards import verify_batch

    run = parse_args(["--config", TINY, "--output_dir", str(tmp_path), "--sample_log_steps", "1",
                      "--sample_log_count", "16", "--reward_funcs", "accuracy", "format", "tag_count",
                      "--reward_weights", "1", "1", "1"])
    template = get_template("r1_zero")
    torch.set_num_threads(1)
    path = resolve_model("tiny:qwen2")
    trainer = R1ZeroTrainer(
        model=load_model(path, dtype="float32"),
        reward_funcs=build_reward_funcs(["accuracy", "format", "tag_count"], prefill=template.prefill),
        args=run.training,
        train_dataset=Dataset.from_dict({"prompt": ["p"] * 4, "answer": ["5"] * 4}),
        processing_class=load_tokenizer(path),
        template=template,
        artifacts=False,
    )
    trainer.model.train()
    good = " 2 + 3 = 5 </think> <answer>5</answer>"
    completions = [*HOSTILE, good, good]  # 16 = 4 groups of 4
    inputs = [{"prompt": "What is 2 + 3?", "answer": "5"} for _ in completions]
    prompts = [row["prompt"] for row in inputs]
    completion_ids = [[1] * 8 for _ in completions]

    verify_batch(["1/1"], ["1"])  # worker start-up is not what this measures
    start = time.monotonic()
    rewards = trainer._calculate_rewards(inputs, prompts, completions, completion_ids)
    elapsed = time.monotonic() - start

    assert elapsed < BOUND_S, f"reward path took {elapsed:.1f} s on hostile completions"
    assert rewards.shape == (16, 3)
    accuracy = rewards[:, 0].tolist()
    assert accuracy[:-2] == [0.0] * len(HOSTILE)  # graded (wrong), not None and not a crash
    assert accuracy[-2:] == [1.0, 1.0]  # the pool survived: ordinary answers are still graded right
    assert all(math.isfinite(v) for v in rewards.flatten().tolist())
    assert trainer.reward_errors_total == 0
    assert len(trainer.pending_samples) == 16  # captured for train_samples.jsonl like any other
    print(f"hostile reward path: {elapsed:.2f} s for {len(completions)} completions")


def test_a_raising_reward_is_logged_and_counted(caplog):
    from r1.rewarding import SafeReward

    def picky(completions, **kw):
        if any("boom" in c for c in completions):
            raise ZeroDivisionError("division by zero")
        return [1.0] * len(completions)

    reward = SafeReward(picky, "picky")
    with caplog.at_level(logging.WARNING, logger="r1.rewarding"):
        assert reward(completions=["ok", "boom", "ok"]) == [1.0, None, 1.0]
    assert "reward picky raised on sample 1 (ZeroDivisionError: division by zero)" in caplog.text
    assert reward.batch_errors == 1 and reward.total_errors == 1
