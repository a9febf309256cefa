"""Mathematical equivalence of one (prediction, reference) pair with math-verify.

This module imports sympy and math-verify. Only the verification workers (`rewards._worker`) and the benchmark's
serial baseline import it; the training process never does (`rewards.verify` talks to the workers), because a parsed
sympy object can hang the process that merely prints it.

The rules, on top of math-verify's own (fractions = decimals, `\\dfrac`, `\\sqrt2` = `2^{1/2}`, expanded =
factored, set order, degrees, units, leading zeros, intervals, matrices, `x=3` = `3`):
- both strings are graded as the content of a `\\boxed{}` (so `1,2` is a set and `x+5` is an expression, not "5");
  a prediction that reads as prose ("The answer is 5") is instead searched the way math-verify searches text;
- a number followed only by words ("18 dollars") is graded as the number, a percentage as the number before `%`;
  a whole answer in bold (`\\textbf{(073)}`, `\\mathbf{5}`) is graded as its content;
- thousands separators: digits grouped by three with a space, a thin or no-break space (U+2009, U+202F, U+00A0),
  `\\,`, `\\ `, `\\;`, `\\!`, `~` or `{,}` are one number (`1 000` = `1\\,000` = `1000`; math-verify already
  reads `1,000` and `10,\\!080`); a group must have exactly three digits and the number must not follow `^`/`_`
  or a letter, so `x^2 100` stays as written;
- decimal commas only where unambiguous: a whole answer `D,F` whose integer part has four or more digits (so the
  comma cannot separate thousands) and whose fraction part does not have exactly three digits: `1000,99` = 1000.99
  (after thousands separators are removed: `1 000,99` too). `1,5` and `0,5` stay two-element sets, `1000,500` is
  left alone (thousands or decimal?);
- one rounding policy, for bare numbers and for numbers inside every container (intervals, tuples, sets, matrices,
  equations): a decimal equals an exact value only when it matches it to `FLOAT_ROUNDING` places, so a rounded
  irrational or repeating decimal (`0.866`, even `0.866025`, `0.333333`, `2.6667` in `(0.6, 2.6667]` against
  `(\\frac35, \\frac83]`) is not the exact value while `0.5` is `\\frac12` and `(0.6, 2.5]` is
  `(\\frac35, \\frac52]`;
- and on top of that every numeric equality is relative: two numbers are equal only when they differ by at most
  `REL_TOL` of the larger magnitude (an exact cancellation to zero is zero). math-verify's fixed rounding and
  `evalf(chop=True)` turn every tiny number into 0; here `\\frac{1}{2^{98}}` is not `\\frac{1}{2^{99}}` and
  `10^{-40}` is not `2\\cdot 10^{-40}`;
- a whole answer that is one math span with sentence punctuation inside it (`$\\frac{1}{3}.$`) is graded as its
  content, so math-verify's number fallback never reads `2` out of `$2^{10}.$`;
- an answer that ends in an ellipsis (`1, 2, 3, \\ldots`: a sequence) equals only another such answer, never its
  first terms;
- a function written with its name (`P(x) = 1`) is graded as its right-hand side, whatever the letter
  (`p(x) = 1`); groups of assignments joined by `\\text{and}` (`p = 5, q = 2 \\quad \\text{and} \\quad p = 7, q = 2`)
  are the groups separated by `;`, which math-verify reads as a set of tuples (`(5, 2), (7, 2)`);
- a reference that math-verify cannot read at all is "unusable" (None), never silently wrong.
"""

from __future__ import annotations

import re
from functools import lru_cache

from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify
from math_verify import grader as _grader

FLOAT_ROUNDING = 10  # math-verify's default (6) accepts 0.866025 for sqrt(3)/2
REL_TOL = 1e-9  # relative difference under which two numbers are equal
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
_BOLD_RE = re.compile(r"\\(?:textbf|mathbf|boldsymbol|bm)\s*\{([^{}]*)\}")
_THOUSANDS_SEP = r"(?:\\[,;! ]|~|\{,\}|[ \u2009\u202f\u00a0])"
_THOUSANDS_RE = re.compile(
    r"(?<![\w^_.,\\])(?<!\^\{)(?<!_\{)(\d{1,3})((?:" + _THOUSANDS_SEP + r"\d{3})+)(?![\d])"
)
_THOUSANDS_GAP_RE = re.compile(_THOUSANDS_SEP)
_DECIMAL_COMMA_RE = re.compile(r"(-?\d{4,}),(\d{1,2}|\d{4,})")


def _numbers_plain(answer: str) -> str:
    """Thousands separators removed and an unambiguous decimal comma made a point (see the module docstring)."""
    if any(c in answer for c in " ~\\{\u2009\u202f\u00a0"):
        answer = _THOUSANDS_RE.sub(lambda m: m.group(1) + _THOUSANDS_GAP_RE.sub("", m.group(2)), answer)
    m = _DECIMAL_COMMA_RE.fullmatch(answer)
    if m and not m.group(1).lstrip("-").startswith("0"):
        answer = m.group(1) + "." + m.group(2)
    return answer


_SINGLE_MATH_RE = re.compile(r"\$\$(.+?)\$\$|\$([^$]+)\$|\\\[(.+?)\\\]|\\\((.+?)\\\)", re.DOTALL)
_INLINE_PUNCT_RE = re.compile(r"(?<![\\$])\$([^$]*?[^$.\s])\s*[.,;]\s*\$(?!\$)")
_DISPLAY_PUNCT_RE = re.compile(r"([^.\s])\s*[.,;]\s*(\\\]|\\\)|\$\$)")
_ELLIPSIS_END_RE = re.compile(r",\s*(?:\.{3}|…|\\[lc]?dots)\s*\$?\s*$")
_FUNCTION_LABEL_RE = re.compile(r"[A-Za-z]\s*\(\s*[a-z]\s*\)\s*=(?P<rhs>[^=]+)")


def _unwrapped(answer: str) -> str:
    """The content of an answer that is exactly one math span, without sentence punctuation written inside it
    (`$\\frac{1}{3}.$` is `\\frac{1}{3}`); any other answer unchanged."""
    m = _SINGLE_MATH_RE.fullmatch(answer)
    if m is None:
        return answer
    inner = next(g for g in m.groups() if g is not None).strip()
    if "$" in inner or any(d in inner for d in ("\\[", "\\]", "\\(", "\\)")):
        return answer
    if inner.endswith(("..", "…")) or not inner.endswith((".", ",", ";")):
        return answer  # nothing written after the math: math-verify reads the span as it is
    return inner.rstrip(".,;").strip() or answer


_AND_BETWEEN_GROUPS_RE = re.compile(r"\s*(?:\\q?quad\s*)*\\text\s*\{\s*and\s*\}\s*(?:\\q?quad\s*)*")


def _ends_in_ellipsis(answer: str) -> bool:
    return _ELLIPSIS_END_RE.search(_unwrapped(answer.strip())) is not None


def _groups_joined_by_and(answer: str) -> str:
    """`p = 5, q = 2 \\quad \\text{and} \\quad p = 7, q = 2`: groups of assignments joined by "and" are the
    groups separated by `;` (which math-verify reads as a set of tuples, like `(5, 2), (7, 2)`)."""
    if "=" not in answer or "," not in answer or "\\text" not in answer:
        return answer
    return _AND_BETWEEN_GROUPS_RE.sub("; ", answer)


def _clean(answer: str) -> str:
    """Remove decoration that is not part of the answer: markdown bold, trailing punctuation, outer spaces."""
    answer = _unwrapped(answer.strip()).strip()
    if len(answer) > 4 and answer.startswith("**") and answer.endswith("**"):
        answer = answer[2:-2].strip()
    while answer and answer[-1] in ".;:,":
        answer = answer[:-1].rstrip()
    bold = _BOLD_RE.fullmatch(answer)
    if bold:  # \textbf{(073)}: emphasis, not part of the answer
        answer = bold.group(1).strip()
    answer = _numbers_plain(answer)
    answer = _groups_joined_by_and(answer)
    label = _FUNCTION_LABEL_RE.fullmatch(answer)
    if label and "," not in label.group("rhs"):
        answer = label.group("rhs").strip()  # `P(x) = 1` is the function `1`, whatever it is called
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
        # already delimited math, or a sentence: let math-verify find the math in it (without the sentence
        # punctuation written inside a math span, which makes it fall back to reading "1" out of "$1/3.$")
        answer = _INLINE_PUNCT_RE.sub(r"$\1$", answer)
        return _DISPLAY_PUNCT_RE.sub(r"\1\2", answer)
    return "\\boxed{" + answer + "}"


_math_verify_numeric_eq = _grader.sympy_numeric_eq


def _number_values(x) -> list:
    """The numeric readings of a sympy value: itself, and for a percentage also the number before `%`."""
    inner = _grader.get_pct_val(x, None)
    return [x] if inner is None else [x, inner]


def _close(x, y) -> bool:
    """Two numbers within REL_TOL of the larger magnitude (an exact cancellation to zero counts as equal)."""
    for u in _number_values(x):
        for v in _number_values(y):
            diff = (u - v).evalf(30)
            if diff == 0 or getattr(diff, "_prec", 100) < 10:  # exact, or a cancellation with no digits left
                return True
            scale = max(abs(u.evalf(30)), abs(v.evalf(30)))
            if bool(abs(diff) <= REL_TOL * scale):
                return True
    return False


def _relatively_equal(a, b) -> bool:
    """False when `a` and `b` differ by more than REL_TOL relatively: as numbers, or (expressions) in the numeric
    coefficient of some term (`x - 10^{-40}` is not `x - 2\\cdot 10^{-40}`). True otherwise, and whenever they cannot
    be read that way (matrices: math-verify's recursion brings their elements back here one by one)."""
    try:
        if getattr(a, "is_number", False) and getattr(b, "is_number", False):
            return _close(a, b)
        if not (hasattr(a, "as_coefficients_dict") and hasattr(b, "as_coefficients_dict")):
            return True
        if a.count_ops() > 200 or b.count_ops() > 200:
            return True
        terms_a, terms_b = a.expand().as_coefficients_dict(), b.expand().as_coefficients_dict()
        if set(terms_a) != set(terms_b):
            return True  # different shapes: math-verify's verdict stands
        return all(_close(terms_a[k], terms_b[k]) for k in terms_a)
    except Exception:
        return True  # not evaluable as numbers: math-verify's verdict stands


def _numeric_eq(a, b, float_rounding: int, numeric_precision: int) -> bool:
    """math-verify's numeric equality, then the relative-tolerance check (its recursion over matrix elements comes
    back through here, so elements are checked too)."""
    return _math_verify_numeric_eq(a, b, float_rounding, numeric_precision) and _relatively_equal(a, b)


_grader.sympy_numeric_eq = _numeric_eq  # this process only grades (workers, the benchmark's serial baseline)


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
    gold_value, pred_value = _in_base(_clean(gold)), _in_base(_clean(pred))
    # math-verify drops base subscripts (52_9 would equal 52_8): compare the values
    if gold_value is not None and pred_value is not None:
        return gold_value >= 0 and gold_value == pred_value
    if _ends_in_ellipsis(gold) != _ends_in_ellipsis(pred):  # `1, 2, 3, ...` (a sequence) is not `1, 2, 3`
        return False if parse_answer(gold, timeout) else None
    gold_parsed = parse_gold_cached(gold) if cache_gold else parse_answer(gold, timeout)
    if not gold_parsed:
        return None
    pred_parsed = parse_answer(pred, timeout)
    if not pred_parsed:
        return False
    return bool(verify(gold_parsed, pred_parsed, float_rounding=FLOAT_ROUNDING, timeout_seconds=timeout))
