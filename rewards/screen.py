"""Cheap checks that run in the calling process before anything reaches sympy.

A model under RL pressure writes anything: megabytes of text, `9^{9^{9^9}}`, `100000!`, ten thousand nested braces.
Some of these make sympy (or Python's own big-integer code) run for minutes inside C, where no signal can stop
it; the verification workers would be killed by the hard timeout, but every kill costs a replacement process.
These checks reject such answers in microseconds. They only look at the string (no parsing, no sympy) and only
reject what no real final answer looks like, so verdicts on ordinary answers are unchanged.

Answers that parse but are costly to verify are decided here too, instead of each using the whole per-item budget:
- `too_complex` (either side; a reference that fails it is unusable): besides length, nesting, huge powers and
  factorials, a binomial coefficient of a number above `MAX_BINOMIAL` (`\\binom{10^6}{5\\cdot10^5}`), a Gamma of a
  number above `MAX_FACTORIAL`, and a power of a sum of several symbols whose expansion has more than
  `MAX_EXPANSION_TERMS` terms (`(x+y+z)^{100}`), fractions nested deeper than `MAX_FRACTION_NESTING`, powers
  of powers higher than `MAX_POWER_NESTING` (`x^{x^{x^{…}}}`, `((…(x+1)^2…)^2)^2`), transcendental functions nested deeper than
  `MAX_FUNCTION_NESTING` (`\\tan(\\tan(\\tan(\\tan(\\tan(1)))))`), a root, trig, log or decimal next to a
  numeric power of more than `MAX_IRRATIONAL_DIGITS` digits (`\\sin(10^{99999})`), and towers of `e` and `\\pi`
  (`e^{e^{e^{e}}}`) like towers of digits;
- `unevaluated` (prediction against reference): a prediction that still holds an integral, a sum, a product, a
  limit or a derivative that the reference does not hold is not a final answer (`\\int_0^1 x^{x^{x^x}} dx`,
  `\\sum_{n=1}^\\infty n^{n^{n^n}}`, and also the restated question `\\sum_{k=1}^{100} k` for "compute the sum"):
  it is wrong without evaluating it. A reference that holds the same operator is graded normally.
"""

from __future__ import annotations

import math
import re

# The longest reference in MATH train has 159 characters; longer "answers" are not final answers.
MAX_ANSWER_CHARS = 1000
MAX_NESTING = 50  # bracket depth; real answers stay below 10
MAX_RESULT_DIGITS = 100_000  # a numeric power with more digits than this is not an answer, it is an attack
MAX_EXPONENT = 1_000_000  # x^{10^7} is not an answer either, whatever x is
MAX_FACTORIAL = 10_000
MAX_BINOMIAL = 20_000  # \binom{20000}{10000} takes 20 ms, \binom{10^6}{5*10^5} seconds
MAX_FRACTION_NESTING = 12  # 12 nested \frac parse in 0.25 s, 20 take seconds (the LaTeX parser)
MAX_POWER_NESTING = 6  # x^{x^{x^{x^{x^{x^{x}}}}}} takes 0.25 s, 8 levels 1 s; ((x+1)^2)^2 nested 10 deep, minutes
MAX_FUNCTION_NESTING = 3  # \tan(\tan(\tan(\tan(1)))) takes 0.5 s to compare, one level more seconds
MAX_IRRATIONAL_DIGITS = 20_000  # \sin(10^{20000}) takes 0.07 s, \sin(10^{99999}) 2 s
MAX_EXPANSION_TERMS = 2_000  # (x+y+z)^{30} has 496 terms and takes 0.7 s to compare; (x+y+z)^{100} minutes

# C0 controls except tab/newline/CR, DEL, C1 controls, and UTF-16 surrogates (a lone one cannot even be encoded).
_BAD_CHARS_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_POWER_RE = re.compile(r"\^|\*\*")
_DIGITS_BEFORE_RE = re.compile(r"(\d+)\s*[)}]*\s*$")
_LATEX_WORD_RE = re.compile(r"\\[A-Za-z]+")
_TOWER_RE = re.compile(r"(?:\d+|e|p)(?:(?:\^|\*\*)(?:\d+|e|p))*")  # e and \pi (as "p") are numbers too
_CHAIN_RE = re.compile(r"\d+(?:\s*(?:\^|\*\*)\s*[{(]?\s*\d+[\s)}]*)*")
_FACTORIAL_RE = re.compile(r"(\d+)\s*!")
_GROUP_FACTORIAL_RE = re.compile(r"[)}\]]\s*!")
_BINOMIAL_RE = re.compile(r"\\[dt]?binom\s*\{?\s*(\d+)|\{?\s*(\d+)\s*\\choose\b|\bC\s*\(\s*(\d+)\s*,|C_\{?(\d+)\}?\^")
_FRAC_OPEN_RE = re.compile(r"\\[dt]?frac\s*\{")
_EXPONENT_OPEN_RE = re.compile(r"\^\s*\{")
_FUNCTION_RE = re.compile(
    r"\\(?:a?(?:rc)?(?:sin|cos|tan|cot|sec|csc)h?|log|ln|lg|exp|operatorname\s*\{[A-Za-z]+\})(?![A-Za-z])"
)
_IRRATIONAL_OP_RE = re.compile(r"\\(?:sqrt|a?(?:rc)?(?:sin|cos|tan|cot|sec|csc)h?|log|ln|lg|exp)(?![A-Za-z])|\d\.\d")
_GAMMA_RE = re.compile(r"\\Gamma\s*(?:\\left)?\s*[({]\s*(\d+)")
_GROUP_POWER_RE = re.compile(r"\)\s*\^\s*\{?\s*(\d+)")
_SYMBOL_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z](?![A-Za-z])")
# Operators that a final answer has already evaluated (the kind is the key, so \iint and \int are one kind).
_OPERATOR_RE = re.compile(
    r"\\(?P<int>[io]*int|idotsint)(?![A-Za-z])|\\(?P<sum>sum)(?![A-Za-z])|\\(?P<prod>prod|coprod)(?![A-Za-z])"
    r"|\\(?P<lim>lim|limsup|liminf|varlimsup|varliminf)(?![A-Za-z])"
    r"|\\[dt]?frac\s*\{\s*(?:\\mathrm\s*\{\s*)?(?P<deriv>d)(?:\^\{?\d+\}?)?\s*\}?\s*\}\s*\{\s*(?:\\mathrm\s*\{\s*)?d\s*\}?\s*[A-Za-z]"
)


def sanitize(text: str) -> str:
    """Drop control characters and lone surrogates so the text always encodes (JSON, UTF-8) and regexes behave."""
    return _BAD_CHARS_RE.sub("", text)


def too_complex(answer: str) -> str | None:
    """Why `answer` must not be given to sympy (a short reason), or None when it looks like a normal answer."""
    if len(answer) > MAX_ANSWER_CHARS:
        return f"longer than {MAX_ANSWER_CHARS} characters"
    if _nesting_depth(answer) > MAX_NESTING:
        return f"nested deeper than {MAX_NESTING}"
    if ("^" in answer or "**" in answer) and _huge_power(answer):
        return "astronomically large power"
    if "!" in answer and _huge_factorial(answer):
        return "astronomically large factorial"
    if ("binom" in answer or "choose" in answer or "C" in answer) and _huge_binomial(answer):
        return "binomial coefficient of a huge number"
    if "Gamma" in answer and any(int(m.group(1)[:8]) > MAX_FACTORIAL for m in _GAMMA_RE.finditer(answer)):
        return "Gamma of a huge number"
    if "^" in answer and _huge_expansion(answer):
        return "power of a sum with too many terms"
    if "\\frac" in answer and _flagged_nesting(answer, _FRAC_OPEN_RE, second_group=True) > MAX_FRACTION_NESTING:
        return f"fractions nested deeper than {MAX_FRACTION_NESTING}"
    if "^" in answer and _power_nesting(answer) > MAX_POWER_NESTING:
        return f"powers nested deeper than {MAX_POWER_NESTING}"
    if "\\" in answer and _function_nesting(answer) > MAX_FUNCTION_NESTING:
        return f"functions nested deeper than {MAX_FUNCTION_NESTING}"
    if "^" in answer and _IRRATIONAL_OP_RE.search(answer) and _power_digits(answer) > MAX_IRRATIONAL_DIGITS:
        return "irrational function of a huge power"
    return None


def _flagged_nesting(text: str, opener: re.Pattern, second_group: bool = False) -> int:
    """How many braces opened by `opener` (a pattern ending in "{") enclose one another at most; with
    `second_group`, the group right after such a brace's group counts too (`\\frac{a}{b}`: both)."""
    flagged = {m.end() - 1 for m in opener.finditer(text)}
    stack: list[bool] = []
    depth = best = 0
    for i, ch in enumerate(text):
        if ch == "{" and (i == 0 or text[i - 1] != "\\"):
            stack.append(i in flagged)
            depth += i in flagged
            best = max(best, depth)
        elif ch == "}" and stack and (i == 0 or text[i - 1] != "\\"):
            was_flagged = stack.pop()
            depth -= was_flagged
            if was_flagged and second_group:
                j = i + 1
                while j < len(text) and text[j] == " ":
                    j += 1
                if j < len(text) and text[j] == "{" and j not in flagged:
                    flagged.add(j)
    return best


def _power_nesting(text: str) -> int:
    """Height of the deepest power of a power: braced exponents (`x^{x^{x}}`: 3) or powers of bracketed powers
    (`((x+1)^2)^2`: 2)."""
    braced = _flagged_nesting(text, _EXPONENT_OPEN_RE) + 1
    groups = []
    for m in _GROUP_POWER_RE.finditer(text):
        depth, i = 0, m.start()
        while i >= 0:
            if text[i] == ")":
                depth += 1
            elif text[i] == "(":
                depth -= 1
                if depth == 0:
                    break
            i -= 1
        groups.append((max(i, 0), m.start()))
    stacked = max((sum(1 for s, e in groups if s <= start < e) + 1 for start, _ in groups), default=0)
    return max(braced, stacked)


def _function_nesting(text: str) -> int:
    """How deeply transcendental functions are applied inside one another (`\\tan(\\tan(1))`: 2)."""
    calls = list(_FUNCTION_RE.finditer(text))
    if len(calls) <= MAX_FUNCTION_NESTING:
        return len(calls)
    spans = []
    for call in calls:  # a function's argument: the bracket group after it, else the next token
        start = call.end()
        while start < len(text) and text[start] in " ^_{}0123456789" and text[start] not in "({[":
            start += 1
        end = _group_end(text, start) if start < len(text) and text[start] in "({[" else start + 1
        spans.append((call.start(), end))
    best = 0
    for start, _ in spans:
        best = max(best, sum(1 for s, e in spans if s <= start < e))
    return best


def _group_end(text: str, start: int) -> int:
    opener = text[start]
    closer = {"(": ")", "{": "}", "[": "]"}[opener]
    depth = 0
    for i in range(start, len(text)):
        if text[i] == opener:
            depth += 1
        elif text[i] == closer:
            depth -= 1
            if depth == 0:
                return i + 1
    return len(text)


def _power_digits(text: str) -> float:
    """The most digits any numeric power in `text` has (`10^{5000}`: 5001)."""
    most = 0.0
    for m in _POWER_RE.finditer(text):
        log_exp = _log10_tower(_exponent_text(text, m.end()))
        base = _DIGITS_BEFORE_RE.search(text, 0, m.start())
        if log_exp is None or not base or base.group(1).lstrip("0") in ("", "1") or log_exp > 300:
            continue
        most = max(most, 10**log_exp * math.log10(int(base.group(1)[:300])))
    return most


def _operators(text: str) -> set[str]:
    if "\\" not in text:
        return set()
    return {m.lastgroup for m in _OPERATOR_RE.finditer(text) if m.lastgroup}


def unevaluated(pred: str, gold: str) -> str | None:
    """Why `pred` is not a final answer for `gold` (an operator left unevaluated), or None."""
    extra = _operators(pred) - _operators(gold)
    if extra:
        return "unevaluated " + ", ".join(sorted(extra))
    return None


def _huge_binomial(text: str) -> bool:
    for m in _BINOMIAL_RE.finditer(text):
        digits = next(g for g in m.groups() if g is not None)
        if len(digits) > 8 or int(digits) > MAX_BINOMIAL:
            return True
    return False


def _huge_expansion(text: str) -> bool:
    """A power `(…)^N` of a group holding k distinct one-letter symbols expands to C(N+k, k) terms."""
    for m in _GROUP_POWER_RE.finditer(text):
        exponent = int(m.group(1)[:8])
        if exponent < 2:
            continue
        depth, i = 0, m.start()
        while i >= 0:  # back to the matching "("
            if text[i] == ")":
                depth += 1
            elif text[i] == "(":
                depth -= 1
                if depth == 0:
                    break
            i -= 1
        group = text[max(i, 0) : m.start()]
        if "+" not in group and "-" not in group:
            continue
        k = len(set(_SYMBOL_RE.findall(_LATEX_WORD_RE.sub(" ", group))))
        if k >= 2 and math.comb(exponent + k, k) > MAX_EXPANSION_TERMS:
            return True
    return False


def _nesting_depth(text: str) -> int:
    depth = best = 0
    for ch in text:
        if ch in "{([":
            depth += 1
            best = max(best, depth)
        elif ch in "})]" and depth:
            depth -= 1
    return best


def _exponent_text(text: str, start: int) -> str:
    """The exponent that begins at `start`: a `{…}`/`(…)` group, a digit run, or a single token."""
    while start < len(text) and text[start] == " ":
        start += 1
    if start >= len(text):
        return ""
    opener = text[start]
    if opener in "{(":
        closer = "}" if opener == "{" else ")"
        depth = 0
        for i in range(start, len(text)):
            if text[i] == opener:
                depth += 1
            elif text[i] == closer:
                depth -= 1
                if depth == 0:
                    return text[start + 1 : i]
        return text[start + 1 :]
    # 9**9**9 and 9^9^9 are right-associative: the exponent is the whole chain
    m = _CHAIN_RE.match(text, start)
    return m.group() if m else text[start : start + 1]


_PI_RE = re.compile(r"\\pi(?![A-Za-z])")


def _tower_number(part: str) -> float:
    if part == "e":
        return math.e
    if part == "p":
        return math.pi
    return int(part) if len(part) < 300 else 10**300


def _log10_tower(text: str) -> float | None:
    """log10 of a purely numeric power tower like `9^{9^9}` or `e^{e^{e}}` (braces/parens/spaces ignored), else
    None."""
    flat = re.sub(r"[{}()\s]", "", _PI_RE.sub("p", text)).lstrip("+-")  # 3^{-10^9} costs as much as 3^{10^9}
    if not _TOWER_RE.fullmatch(flat):
        return None
    parts = [_tower_number(p) for p in re.split(r"\^|\*\*", flat)]
    log_value = math.log10(parts[-1]) if parts[-1] > 0 else -math.inf  # evaluate right to left: a^(b^(c))
    for base in reversed(parts[:-1]):
        if base in (0, 1):
            log_value = 0.0 if base == 1 else -math.inf
            continue
        exponent = 10**log_value if log_value < 300 else math.inf
        log_value = exponent * math.log10(base)
    return log_value


def _huge_power(text: str) -> bool:
    for m in _POWER_RE.finditer(text):
        exponent = _exponent_text(text, m.end())
        log_exp = _log10_tower(exponent)
        if log_exp is None:
            continue  # symbolic exponent: sympy keeps it symbolic; the worker timeout covers the rest
        if log_exp > math.log10(MAX_EXPONENT):
            return True
        base = _DIGITS_BEFORE_RE.search(text, 0, m.start())
        if base and base.group(1).lstrip("0") not in ("", "1"):
            digits = 10**log_exp * math.log10(int(base.group(1)[:300]))
            if digits > MAX_RESULT_DIGITS:
                return True
    return False


def _huge_factorial(text: str) -> bool:
    for m in _FACTORIAL_RE.finditer(text):
        if len(m.group(1)) > 6 or int(m.group(1)) > MAX_FACTORIAL:
            return True
    # A factorial of a bracketed expression that itself holds a power or factorial: (10^9)!, (5!)!
    for m in _GROUP_FACTORIAL_RE.finditer(text):
        closer = text[m.start()]
        opener = {")": "(", "}": "{", "]": "["}[closer]
        depth, i = 0, m.start()
        while i >= 0:
            if text[i] == closer:
                depth += 1
            elif text[i] == opener:
                depth -= 1
                if depth == 0:
                    break
            i -= 1
        group = text[max(i, 0) : m.start()]
        if "^" in group or "!" in group or "**" in group or re.search(r"\d{5,}", group):
            return True
    return False
