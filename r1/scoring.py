"""Evaluation metrics over n samples per problem: avg@n, maj@n (cons@n), unbiased pass@k and run statistics.

Definitions (DeepSeek-R1 reporting protocol):
- avg@n ("pass@1" in the R1 paper): mean correctness over all n samples of all problems. It does not depend on n
  beyond sampling noise — adding samples at a fixed correctness rate leaves it unchanged (cf. lighteval#771).
- std@n: sample standard deviation (ddof=1) of the n per-sample-index accuracies (run j = sample j of every
  problem); 0 when n == 1. It is the run-to-run spread a single-sample evaluation would show.
- ci95@n: normal-approximation 95% interval over problems, mean ± 1.96·s/√P with s the (ddof=1) standard deviation
  of the per-problem accuracies, clipped to [0, 1]; None when P < 2. AIME has only 30 problems: this is the width
  that matters when comparing two models.
- maj@n / cons@n: majority vote over the n extracted answers. Mathematically equal answers are one vote (clustered
  with the rewards' equivalence check, `rewards.cluster_answers`). Ties go to the answer that appeared first (smallest
  sample index). Empty answers do not vote; a problem with no votes counts as wrong. The winner is graded by the
  stored correctness of its first sample. Not applicable to code benchmarks (None): programs have no canonical
  answer to vote on, text equality of programs is a poor proxy, and voting on execution results would need test
  inputs beyond the graded tests themselves.
- pass@k: the unbiased estimator 1 − C(n−c, k)/C(n, k) (Chen et al., 2021), averaged over problems, for k = 1, 2,
  4, … ≤ n.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

# `cluster(answers) -> one cluster label per answer`, equal labels = mathematically equal answers
# (eval passes `rewards.cluster_answers`: string-identical answers share a label for free, and each new distinct answer
# is checked against one representative per cluster).
Clusterer = Callable[[list[str]], list[int]]


@dataclass(frozen=True)
class SampleResult:
    """The graded outcome of one (problem, sample_index) generation."""

    sample_index: int
    answer: str
    correct: bool
    format_score: float  # the format reward (1.0 = tags right)
    tokens: int
    truncated: bool


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with `c` correct out of `n` samples.

    1 − C(n−c, k)/C(n, k) written as the product 1 − Π_{i=n−c+1..n} (1 − k/i), which never forms the huge binomials.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prod = 1.0
    for i in range(n - c + 1, n + 1):
        prod *= 1.0 - k / i
    return 1.0 - prod


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _std(xs: Sequence[float]) -> float:
    """Sample standard deviation (ddof=1); 0 for fewer than two values."""
    if len(xs) < 2:
        return 0.0
    m = _mean(xs)
    return math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def majority_vote(answers: Sequence[str], cluster: Clusterer) -> int | None:
    """Position of the first answer of the most-voted cluster; ties go to the cluster that appeared first (smallest
    sample index when `answers` are in sample order). Empty answers do not vote; None when nothing voted."""
    labels = cluster(list(answers))
    votes: dict[int, list[int]] = {}
    for pos, (answer, label) in enumerate(zip(answers, labels, strict=True)):
        if answer.strip():
            votes.setdefault(label, []).append(pos)
    if not votes:
        return None
    best = max(votes.values(), key=lambda members: (len(members), -members[0]))
    return best[0]


def powers_of_two(n: int) -> list[int]:
    ks, k = [], 1
    while k <= n:
        ks.append(k)
        k *= 2
    return ks


def compute_metrics(problems: Sequence[Sequence[SampleResult]], cluster: Clusterer | None) -> dict[str, object]:
    """All metrics for a benchmark: `problems[i]` holds the n graded samples of problem i (any order).

    Every problem must have the same number of samples n. Keys carry n (`avg@16`, `maj@16`, `pass@8`, …).
    `cluster=None`: no majority vote (code benchmarks); `maj@n` is None.
    """
    if not problems:
        raise ValueError("compute_metrics needs at least one problem")
    ns = {len(p) for p in problems}
    if len(ns) != 1 or 0 in ns:
        raise ValueError(f"every problem needs the same, non-zero number of samples; got {sorted(ns)}")
    n = ns.pop()
    ordered = [sorted(p, key=lambda s: s.sample_index) for p in problems]
    indices = {tuple(s.sample_index for s in p) for p in ordered}
    if len(indices) != 1:
        raise ValueError("problems were sampled at different sample indices")

    per_problem = [_mean([float(s.correct) for s in p]) for p in ordered]
    runs = [_mean([float(p[j].correct) for p in ordered]) for j in range(n)]
    avg = _mean(per_problem)
    ci: list[float] | None = None
    if len(ordered) >= 2:
        half = 1.96 * _std(per_problem) / math.sqrt(len(ordered))
        ci = [max(0.0, avg - half), min(1.0, avg + half)]

    maj = []
    for p in ordered if cluster is not None else ():
        winner = majority_vote([s.answer for s in p], cluster)
        maj.append(float(winner is not None and p[winner].correct))

    samples = [s for p in ordered for s in p]
    out: dict[str, object] = {
        "num_problems": len(ordered),
        "num_samples": n,
        f"avg@{n}": avg,
        f"std@{n}": _std(runs),
        f"ci95@{n}": ci,
        f"maj@{n}": _mean(maj) if cluster is not None else None,
    }
    for k in powers_of_two(n):
        out[f"pass@{k}"] = _mean([pass_at_k(n, sum(s.correct for s in p), k) for p in ordered])
    out["format_rate"] = _mean([s.format_score for s in samples])
    out["mean_tokens"] = _mean([float(s.tokens) for s in samples])
    out["truncation_rate"] = _mean([float(s.truncated) for s in samples])
    out["tokens_generated"] = sum(s.tokens for s in samples)
    return out
