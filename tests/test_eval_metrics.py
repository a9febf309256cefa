"""r1.scoring against hand-computed values."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from r1.scoring import SampleResult, compute_metrics, majority_vote, pass_at_k


def numeric_same(answers: list[str]) -> list[int]:
    """A stand-in for rewards.cluster_answers: equal as fractions ("0.5" == "1/2"), else equal as stripped strings."""

    def key(s: str):
        try:
            return Fraction(s.replace(" ", ""))
        except (ValueError, ZeroDivisionError):
            return s.strip()

    labels: dict = {}
    return [labels.setdefault(key(a), len(labels)) for a in answers]


def sample(i: int, correct: bool, answer: str = "", fmt: bool = True, tokens: int = 10, trunc: bool = False):
    return SampleResult(i, answer, correct, float(fmt), tokens, trunc)


def test_pass_at_k_hand_values():
    assert pass_at_k(16, 4, 1) == pytest.approx(0.25)
    assert pass_at_k(16, 4, 8) == pytest.approx(1 - math.comb(12, 8) / math.comb(16, 8))
    assert pass_at_k(16, 4, 8) == pytest.approx(1 - 495 / 12870)
    assert pass_at_k(16, 0, 8) == 0.0
    assert pass_at_k(16, 9, 8) == 1.0  # n - c = 7 < k
    assert pass_at_k(16, 16, 16) == 1.0
    assert pass_at_k(1, 1, 1) == 1.0 and pass_at_k(1, 0, 1) == 0.0


def test_pass_at_k_is_stable_for_large_n():
    # C(1024, 512) overflows a float; the product form does not need it.
    assert pass_at_k(1024, 1, 512) == pytest.approx(0.5)
    assert pass_at_k(1024, 3, 1) == pytest.approx(3 / 1024)


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError):
        pass_at_k(4, 1, 8)


def test_compute_metrics_hand_values():
    # 2 problems, n = 4. Problem A: samples 0, 1 correct; problem B: sample 2 correct.
    a = [sample(j, j in (0, 1), tokens=10 * (j + 1), trunc=j == 3) for j in range(4)]
    b = [sample(j, j == 2, fmt=j != 0, tokens=5) for j in range(4)]
    m = compute_metrics([a, b], numeric_same)
    assert m["num_problems"] == 2 and m["num_samples"] == 4
    assert m["avg@4"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    # per-sample-index runs: [0.5, 0.5, 0.5, 0.0] -> sample std (ddof=1)
    runs = [0.5, 0.5, 0.5, 0.0]
    mu = sum(runs) / 4
    assert m["std@4"] == pytest.approx(math.sqrt(sum((r - mu) ** 2 for r in runs) / 3))
    # CI over problems: per-problem [0.5, 0.25], s = 0.1767767, half = 1.96 * s / sqrt(2)
    half = 1.96 * math.sqrt(((0.5 - 0.375) ** 2 + (0.25 - 0.375) ** 2) / 1) / math.sqrt(2)
    assert m["ci95@4"] == pytest.approx([0.375 - half, 0.375 + half])
    assert m["pass@1"] == pytest.approx(m["avg@4"])
    assert m["pass@2"] == pytest.approx((pass_at_k(4, 2, 2) + pass_at_k(4, 1, 2)) / 2)
    assert m["pass@4"] == 1.0
    assert "pass@8" not in m
    assert m["format_rate"] == pytest.approx(7 / 8)
    assert m["mean_tokens"] == pytest.approx((10 + 20 + 30 + 40 + 4 * 5) / 8)
    assert m["truncation_rate"] == pytest.approx(1 / 8)
    assert m["tokens_generated"] == 120


def test_avg_does_not_shrink_as_samples_are_added():
    """lighteval#771: AIME pass@1 fell as n grew. At a fixed 25% correctness rate avg@n must stay 0.25."""
    for n in (4, 8, 16, 32, 64):
        problems = [[sample(j, j % 4 == p % 4) for j in range(n)] for p in range(30)]
        m = compute_metrics(problems, numeric_same)
        assert m[f"avg@{n}"] == pytest.approx(0.25), n
        assert m["pass@1"] == pytest.approx(0.25), n


def test_order_of_samples_does_not_matter():
    a = [sample(j, j == 1, answer=str(j % 2)) for j in range(4)]
    m1 = compute_metrics([a], numeric_same)
    m2 = compute_metrics([list(reversed(a))], numeric_same)
    assert m1 == m2


def test_majority_counts_equal_answers_as_one_vote():
    # "1/2", "0.5" and " 0.5 " are one answer (3 votes) against "3" (2 votes) even though "3" is the most common string.
    assert majority_vote(["3", "1/2", "0.5", "3", "0.5 "], numeric_same) == 1


def test_majority_tie_goes_to_earliest_answer_and_empty_answers_do_not_vote():
    assert majority_vote(["7", "9", "9", "7"], numeric_same) == 0
    assert majority_vote(["9", "7", "7", "9"], numeric_same) == 0
    assert majority_vote(["", "", "9"], numeric_same) == 2
    assert majority_vote(["", "  "], numeric_same) is None


def test_maj_metric_uses_correctness_of_winning_cluster():
    wrong_majority = [sample(0, True, "12"), sample(1, False, "13"), sample(2, False, "13.0")]
    right_majority = [sample(0, False, "5"), sample(1, True, "6/2"), sample(2, True, "3")]
    no_votes = [sample(j, False, "") for j in range(3)]
    m = compute_metrics([wrong_majority, right_majority, no_votes], numeric_same)
    assert m["maj@3"] == pytest.approx(1 / 3)


def test_mismatched_sample_counts_are_rejected():
    with pytest.raises(ValueError):
        compute_metrics([[sample(0, True)], [sample(0, True), sample(1, False)]], numeric_same)
    with pytest.raises(ValueError):
        compute_metrics([], numeric_same)
