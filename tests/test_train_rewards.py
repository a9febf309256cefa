"""Reward glue: prefill re-attached, a failing sample scores None and is counted, an unscorable batch stops the run."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from r1.rewarding import RewardError, SafeReward, build_reward_funcs, check_reward_names, check_scored

TINY = str(Path(__file__).resolve().parent / "configs" / "tiny_qwen2.yaml")


def test_prefill_is_reattached_before_scoring():
    seen = []

    def spy(completions, **kw):
        seen.extend(completions)
        return [1.0] * len(completions)

    SafeReward(spy, "spy", prefill="<think>")(prompts=["p", "q"], completions=["a</think><answer>1</answer>", "b"])
    assert seen == ["<think>a</think><answer>1</answer>", "<think>b"]


def test_format_reward_sees_the_prefill():
    (fmt,) = build_reward_funcs(["format"], prefill="<think>")
    assert fmt(prompts=["p"], completions=[" 1 + 1 = 2 </think><answer>2</answer>"]) == [1.0]
    (raw,) = build_reward_funcs(["format"], prefill="")
    assert raw(prompts=["p"], completions=[" 1 + 1 = 2 </think><answer>2</answer>"]) == [0.0]


def test_one_failing_sample_scores_none_and_is_counted():
    def flaky(completions, answer, **kw):
        if any("BAD" in c for c in completions):
            raise ZeroDivisionError("hostile sample")
        return [float(c == a) for c, a in zip(completions, answer, strict=True)]

    r = SafeReward(flaky, "flaky")
    out = r(prompts=["p"] * 3, completions=["1", "BAD", "3"], answer=["1", "2", "4"], completion_ids=[[1], [2], [3]])
    assert out == [1.0, None, 0.0]
    assert r.batch_errors == 1 and r.total_errors == 1
    r(prompts=["p"], completions=["BAD"], answer=["x"])
    assert r.total_errors == 2


def test_non_numbers_and_wrong_lengths_are_caught():
    r = SafeReward(lambda completions, **kw: [math.nan, math.inf, "x", 0.5][: len(completions)], "odd")
    assert r(completions=["a", "b", "c", "d"]) == [None, None, None, 0.5]
    assert r.batch_errors == 3
    short = SafeReward(lambda completions, **kw: [1.0], "short")  # one value per call: right only for one sample
    assert short(completions=["a", "b"]) == [1.0, 1.0]  # rescored one by one


def test_all_none_batch_is_a_clear_error():
    check_scored(torch.tensor([[float("nan"), 1.0], [0.0, float("nan")]]), ["accuracy", "format"], step=3)
    with pytest.raises(RewardError) as e:
        check_scored(torch.full((4, 2), float("nan")), ["accuracy", "format"], step=7)
    assert "step 7" in str(e.value) and "all 4 completions" in str(e.value) and "\n" not in str(e.value)


def test_reward_names():
    check_reward_names(["accuracy", "format", "tag_count", "countdown", "soft_overlong"])
    with pytest.raises(ValueError, match=r"unknown reward 'acuracy' \(did you mean 'accuracy'\?\)"):
        check_reward_names(["acuracy"])
    (over,) = build_reward_funcs(["soft_overlong"], max_completion_length=10, overlong_buffer_len=4)
    assert over.__name__ == "soft_overlong"
    assert over(completions=["a"] * 3, completion_ids=[[1] * 5, [1] * 8, [1] * 11]) == [0.0, -0.5, -1.0]


# ----------------------------------------------------------------------------------------------- in the trainer


def _trainer(tmp_path, reward):
    from datasets import Dataset

    from r1.config import parse_args
    from r1.models import load_model, load_tokenizer, resolve_model
    from r1.trainer import R1ZeroTrainer

    run = parse_args([
        "--config", TINY, "--output_dir", str(tmp_path), "--max_completion_length", "4",
        "--reward_funcs", "accuracy", "--reward_weights", "1",
    ])
    path = resolve_model("tiny:qwen2")
    trainer = R1ZeroTrainer(
        model=load_model(path, dtype="float32"),
        reward_funcs=[SafeReward(reward, "crafted")],
        args=run.training,
        train_dataset=Dataset.from_dict({"prompt": ["What is 1 + 1?"] * 4}),
        processing_class=load_tokenizer(path),
        artifacts=False,
    )
    trainer.model.train()
    return trainer


def test_trainer_survives_a_raising_reward_and_counts_it(tmp_path):
    calls = {"n": 0}

    def one_bad(completions, **kw):
        calls["n"] += 1
        if len(completions) > 1:
            raise RuntimeError("batch contains a hostile completion")
        return [1.0] if calls["n"] != 3 else [float("nan")]  # the second sample (third call) is unusable

    trainer = _trainer(tmp_path, one_bad)
    out = trainer._generate_and_score_completions([{"prompt": "What is 1 + 1?"}] * 4)
    assert out["advantages"].shape == (4,)
    assert trainer._metrics["train"]["rewards/crafted/errors"] == [1.0]
    assert trainer._metrics["train"]["rewards/crafted/none_frac"] == [0.25]  # visible, never a silent 0
    assert trainer.reward_errors_total == 1
    assert out["advantages"][1].item() == 0.0  # the unscorable sample gets no advantage (not a silent 0 reward)


def test_trainer_stops_when_nothing_could_be_scored(tmp_path):
    def never(completions, **kw):
        raise RuntimeError("always broken")

    trainer = _trainer(tmp_path, never)
    with pytest.raises(RewardError, match="every reward function returned None for all 4 completions"):
        trainer._generate_and_score_completions([{"prompt": "What is 1 + 1?"}] * 4)
