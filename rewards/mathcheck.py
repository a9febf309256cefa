"""Mathematical equivalence of one (prediction, reference) pair with math-verify.

This module imports sympy and math-verify. Only the verification workers (`rewards._worker`) and the benchmark's
serial baseline import it; the training process never does (`rewards.verify` talks to the workers), because a parsed
sympy object can hang the process that merely prints it.

The rules, on top of math-verify's own (fractions = decimals, `\\dfrac`, `\\sqrt2` = `2^{1/2}`, expanded =
factored, set order, degrees, units, leading zeros, intervals, matrices, `x=3` = `3`):
- both strings are graded as the content of a `\\boxed{}` (so `1,2` is a set and `x+5` is an expression, not "5");
  a prediction that reads as prose ("The answer is 5") is instead searched the way math-verify searches text;
- a number followed only by words ("18 dollars") is graded as the number, a percentage as the number before `%`;
- a decimal equals an exact value only to `FLOAT_ROUNDING` places, so a rounded irrational (`0.866`, even
  `0.866025`) is not `\\frac{\\sqrt3}{2}` while `0.5` is `\\frac12`;
- a reference that math-verify cannot read at all is "unusable" (None), never silently wrong.
"""

from __future__ import annotations

import re
from functools import lru_cache

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

FLOAT_ROUNDING = 10  # math-verify's default (6) accepts 0.866025 for sqrt(3)/2
_EXTRACTION = (LatexExtractionConfig(), ExprExtractionConfig())

_MATH_DELIMS_RE = re.compile(r"(?<!\\)\$|\\\(|\\\[")
_TEXT_CMD_RE = re.compile(r"\\(?:text|textbf|mbox|mathrm|operatorname)\s*\{[^{}]*\}")
_LATEX_CMD_RE = re.compile(r"\\(?:begin|end)\s*\{[^{}]*\}|\\[A-Za-z]+")
_WORD_RE = re.compile(r"[A-Za-z]{2,}")
_NUMBER_THEN_WORDS_RE = re.compile(
    r"\s*(-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+)\s+([A-Za-z][A-Za-z\s]*)"
)
_BASE_NUMBER_RE = re.compile(r"\s*([0-9A-Za-z]+)_\{?(\d{1,2})\}?\s*")
_PERCENT_RE = re.compile(r"\s*\\?%$")
_MATH_WORDS = frozenset("sin cos tan cot sec csc log ln exp sqrt mod pmod pi and or".split())


def _clean(answer: str) -> str:
    """Remove decoration that is not part of the answer: markdown bold, trailing punctuation, outer spaces."""
    answer = answer.strip()
    if len(answer) > 4 and answer.startswith("**") and answer.endswith("**"):
        answer = answer[2:-2].strip()
    while answer and answer[-1] in ".;:,":
        answer = answer[:-1].rstrip()
    # A percentage is compared as the number before the sign (math-verify's own handling accepts 50% = 50 but
    # not 12.5% = 12.5).
    return _PERCENT_RE.sub("", answer)


def _is_prose(answer: str) -> bool:
    """Two or more plain words outside LaTeX commands and \\text{…}: a sentence, not a formula."""
    bare = _LATEX_CMD_RE.sub(" ", _TEXT_CMD_RE.sub(" ", answer))
    words = [w for w in _WORD_RE.findall(bare) if w.lower() not in _MATH_WORDS]
    return len(words) >= 2


def _as_document(answer: str) -> str:
    """The text handed to math-verify's `parse` for one answer string."""
    answer = _clean(answer)
    m = _NUMBER_THEN_WORDS_RE.fullmatch(answer)
    if m and all(len(w) >= 3 and w.lower() not in _MATH_WORDS for w in m.group(2).split()):
        return "\\boxed{" + m.group(1) + "}"
    if _MATH_DELIMS_RE.search(answer) or _is_prose(answer):
        return answer  # already delimited math, or a sentence: let math-verify find the math in it
    return "\\boxed{" + answer + "}"


def parse_answer(answer: str, timeout: int | None = None) -> list:
    """math-verify's parse of one answer string (`[]` when nothing could be read)."""
    return parse(answer and _as_document(answer), extraction_config=_EXTRACTION, parsing_timeout=timeout)


@lru_cache(maxsize=4096)
def parse_gold_cached(gold: str) -> list:
    """References repeat (every generation of a prompt has the same one): parse each once per process."""
    return parse_answer(gold)


def _in_base(answer: str) -> int | None:
    """The value of a number written with a base subscript (`52_8` -> 42), else None."""
    m = _BASE_NUMBER_RE.fullmatch(answer)
    if not m or not 2 <= int(m.group(2)) <= 36:
        return None
    try:
        return int(m.group(1), int(m.group(2)))
    except ValueError:
        return -1  # digits that do not exist in that base: a value no other answer has


def verify_pair(pred: str, gold: str, *, timeout: int | None = None, cache_gold: bool = False) -> bool | None:
    """True/False for `pred` equal to `gold`; None when `gold` itself cannot be read.

    `timeout` is math-verify's own (signal.alarm) timeout in whole seconds; the workers pass None and bound the
    whole call with their own timer instead, since math-verify's alarm would cancel theirs.
    """
    gold_value, pred_value = _in_base(gold), _in_base(pred)
    # math-verify drops base subscripts (52_9 would equal 52_8): compare the values
    if gold_value is not None and pred_value is not None:
        return gold_value >= 0 and gold_value == pred_value
    gold_parsed = parse_gold_cached(gold) if cache_gold else parse_answer(gold, timeout)
    if not gold_parsed:
        return None
    pred_parsed = parse_answer(pred, timeout)
    if not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, float_rounding=FLOAT_ROUNDING, timeout_seconds=timeout))
