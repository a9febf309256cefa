"""The accuracy grader's regression set (tests/data/grader_cases.jsonl, built by tests/data/build_grader_cases.py):
real answer forms from the shared data sets' solutions, typical model outputs, the forms of issue 11 and hard
negatives. Every case must get its expected verdict; plus the false positives and answer policies of issue 11."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest

from rewards import ANSWER_POLICIES, accuracy_reward, extract_answer, verify_batch

CASES = Path(__file__).resolve().parent / "data" / "grader_cases.jsonl"


def _cases() -> list[dict]:
    return [json.loads(line) for line in CASES.read_text().splitlines() if line.strip()]


def test_regression_set_is_graded_as_expected():
    cases = _cases()
    assert len(cases) >= 150
    by_policy: dict[str, list[int]] = defaultdict(list)
    for i, case in enumerate(cases):
        assert case["policy"] in ANSWER_POLICIES, case
        by_policy[case["policy"]].append(i)
    scores: list[float | None] = [None] * len(cases)
    for policy, idx in by_policy.items():
        out = accuracy_reward(
            [cases[i]["completion"] for i in idx], answer=[cases[i]["gold"] for i in idx], answer_policy=policy
        )
        for i, score in zip(idx, out, strict=True):
            scores[i] = score
    wrong = [
        (c["source"], c["why"], extract_answer(c["completion"], c["policy"])[:80], c["gold"][:80], s)
        for c, s in zip(cases, scores, strict=True)
        if s != float(c["expected"])
    ]
    passed = len(cases) - len(wrong)
    positives = sum(c["expected"] for c in cases)
    print(f"grader regression: {passed}/{len(cases)} ({passed / len(cases):.1%}); {positives} expected 1.0")
    assert not wrong, wrong


def test_tiny_numbers_are_compared_relatively():
    """Rounding to a fixed number of places made every tiny number 0 (issue 11's false positives)."""
    preds = ["\\frac{1}{2^{98}}", "10^{-40}", "10^{-40}", "\\frac{1}{2^{98}}", "10^{-40}", "0.5", "0.333333"]
    golds = ["\\frac{1}{2^{99}}", "2\\cdot 10^{-40}", "0", "2^{-98}", "10^{-40}", "\\frac12", "\\frac13"]
    assert verify_batch(preds, golds) == [False, False, False, True, True, True, False]


def test_policies():
    untagged = ["\\boxed{5}", "The answer is 5"]
    assert accuracy_reward(untagged, answer="5", answer_policy="strict") == [0.0, 0.0]
    assert accuracy_reward(untagged, answer="5", answer_policy="lenient") == [1.0, 1.0]
    truncated = ["<think>2+3 = \\boxed{5}", "<think>ok</think><think>\\boxed{5}"]
    for policy in ANSWER_POLICIES:  # an unterminated think is never searched
        assert accuracy_reward(truncated, answer="5", answer_policy=policy) == [0.0, 0.0]
    good = ["<think>2+3 = 5</think><answer>5</answer>", "<think>2+3</think>\n<answer>\\boxed{5}</answer>"]
    for policy in ANSWER_POLICIES:
        assert accuracy_reward(good, answer="5", answer_policy=policy) == [1.0, 1.0]
    assert accuracy_reward(good, answer="5") == [1.0, 1.0]  # lenient by default


def test_prefilled_think_completions_are_graded_after_reattachment():
    """Training prompts end in "<think>": the trainer re-attaches it, so rewards see "<think>…"."""
    completion = " 2 + 3 = 5 </think> <answer>5</answer>"
    assert accuracy_reward(["<think>" + completion], answer="5", answer_policy="strict") == [1.0]
    assert accuracy_reward(["<think> still thinking \\boxed{5}"], answer="5", answer_policy="strict") == [0.0]


@pytest.mark.parametrize("policy", ANSWER_POLICIES)
def test_hack_forms_score_zero(policy):
    hacks = [
        "lorem ipsum 5 dolor",
        "<think>" + "5 " * 1000,
        "<think>\\boxed{5}",
        "I computed 3, 4 and 5 along the way",
    ]
    assert accuracy_reward(hacks, answer="5", answer_policy=policy) == [0.0] * len(hacks)
