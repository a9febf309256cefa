"""Self-consistency on the real benchmarks: every reference answer equals itself and not a perturbed copy.

For every record, `<think>…</think><answer>\\boxed{ANSWER}</answer>` must score 1.0 against its own answer and a
perturbed answer must score 0.0. The perturbation is "+1 on the last integer" (zero padding kept), except where
that integer is not part of the value:
- a base subscript (`52_8`): the digits are perturbed instead (`53_8`), since `52_9` is a different number only
  by its base, which is what the perturbation is meant to avoid testing;
- a unit's exponent (`864 \\mbox{ inches}^2`): units are ignored by design, so the number before them is perturbed;
- no integer at all: a multiple-choice letter moves to the next letter, a `\\text{word}` gets another word, any
  other expression gets `+1` (`\\pi` -> `\\pi+1`).
Exceptions would be listed in ALLOWED with a reason; after fixing the library (base subscripts were ignored by
math-verify, percentages compared inconsistently) there are none.
"""

from __future__ import annotations

import json
import re

import pytest

from rewards import accuracy_reward

DATASETS = ["math500", "aime24", "aime25", "amc23", "gsm8k_test"]
ALLOWED: dict[tuple[str, str], str] = {}  # (dataset, answer) -> why it may fail; empty: every record passes

_UNIT_POWER = re.compile(r"\\(?:mbox|text)\{[^{}]*\}\^\d+$")
_BASE_SUFFIX = re.compile(r"_\{?\d+\}?$")
_CHOICE = re.compile(r"\\text\{\((?P<letter>[A-E])\)\}")
_WORD = re.compile(r"\\text\{(?P<word>[A-Za-z ]+)\}")


def perturb(answer: str) -> str:
    """A different answer of the same shape (see the module docstring)."""
    if m := _CHOICE.fullmatch(answer):
        return "\\text{(" + "BCDEA"["ABCDE".index(m.group("letter"))] + ")}"
    if m := _WORD.fullmatch(answer):
        return "\\text{" + m.group("word") + "s}"
    unit = _UNIT_POWER.search(answer)
    scope = answer[: unit.start()] if unit else answer
    scope = _BASE_SUFFIX.sub(lambda m: " " * len(m.group()), scope)  # blank out a base subscript
    ints = list(re.finditer(r"\d+", scope))
    if not ints:
        return answer + "+1"
    m = ints[-1]
    return answer[: m.start()] + str(int(m.group()) + 1).zfill(len(m.group())) + answer[m.end() :]


def test_perturb():
    assert perturb("025") == "026"
    assert perturb("52_8") == "53_8"
    assert perturb("864 \\mbox{ inches}^2") == "865 \\mbox{ inches}^2"
    assert perturb("\\text{(E)}") == "\\text{(A)}"
    assert perturb("\\text{Evelyn}") == "\\text{Evelyns}"
    assert perturb("\\pi") == "\\pi+1"
    assert perturb("10,\\!080") == "10,\\!081"


@pytest.mark.parametrize("name", DATASETS)
def test_reference_answers_verify_against_themselves(name, data_dir):
    path = data_dir / f"{name}.jsonl"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    golds = [str(r["answer"]) for r in records]
    right = [f"<think>I worked it out.</think><answer>\\boxed{{{g}}}</answer>" for g in golds]
    wrong = [f"<think>I worked it out.</think><answer>\\boxed{{{perturb(g)}}}</answer>" for g in golds]
    scores = accuracy_reward(right + wrong, answer=golds + golds)
    right_scores, wrong_scores = scores[: len(golds)], scores[len(golds) :]

    failures = [
        (g, kind, score)
        for g, r, w in zip(golds, right_scores, wrong_scores, strict=True)
        for kind, score, want in (("self", r, 1.0), ("perturbed", w, 0.0))
        if score != want and (name, g) not in ALLOWED
    ]
    rate_right = sum(s == 1.0 for s in right_scores) / len(golds)
    rate_wrong = sum(s == 0.0 for s in wrong_scores) / len(golds)
    print(f"{name}: {len(golds)} records, self 1.0: {rate_right:.1%}, perturbed 0.0: {rate_wrong:.1%}")
    assert not failures, failures
