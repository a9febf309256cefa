"""Countdown reward (TinyZero): reach `target` using each of `nums` exactly once with + - * / and parentheses.

The answer is the content of the last `<answer>` block (outside `<think>`; a `\\boxed{}` inside it is unwrapped),
optionally written as `expr = target`. It is parsed with `ast` and evaluated by walking the tree with exact
fractions (never `eval`): only integer literals, the four binary operators and parentheses are allowed. Unary
minus/plus is rejected: the given numbers are the only operands, and a "-3" is not one of them (it also never
reaches a positive target that binary operators cannot). `×`, `÷`, `\\times`, `\\div`, `\\cdot` are read as * and /.

Score: 1.0 when correct; FORMAT_SCORE (0.1, TinyZero's value) when an answer block exists but the expression is
invalid or wrong; 0.0 with no answer block; None when the sample's own `target`/`nums` are unusable.
"""

from __future__ import annotations

import ast
import logging
import numbers
from collections import Counter
from fractions import Fraction
from typing import Any

from rewards._columns import per_sample
from rewards.extract import completion_text, last_answer_block, last_boxed

logger = logging.getLogger(__name__)

FORMAT_SCORE = 0.1
# Six numbers and their operators fit in 50 characters; anything longer is garbage (or a parser attack).
MAX_EXPRESSION_CHARS = 300
_OPERATORS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_REPLACEMENTS = (
    ("\\times", "*"),
    ("\\cdot", "*"),
    ("\\div", "/"),
    ("×", "*"),
    ("÷", "/"),
    ("\\left", ""),
    ("\\right", ""),
    ("$", ""),
    ("{", "("),
    ("}", ")"),
)


class _Invalid(Exception):
    pass


def _evaluate(node: ast.AST, used: list[int]) -> Fraction:
    """Exact value of an allowed expression tree; records the integer literals it uses."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, used)
    if isinstance(node, ast.Constant) and type(node.value) is int:
        used.append(node.value)
        return Fraction(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate(node.left, used), _evaluate(node.right, used)
        if isinstance(node.op, ast.Add):
            return left + right
        if isinstance(node.op, ast.Sub):
            return left - right
        if isinstance(node.op, ast.Mult):
            return left * right
        if right == 0:
            raise _Invalid("division by zero")
        return left / right
    raise _Invalid(f"{type(node).__name__} is not allowed")


def check_expression(expression: str, target: int, nums: list[int]) -> bool:
    """True iff `expression` uses each of `nums` exactly once and evaluates exactly to `target`."""
    expr = expression.strip()
    for old, new in _REPLACEMENTS:
        expr = expr.replace(old, new)
    if "=" in expr:  # "expr = target" is fine, as long as the right side is the target
        expr, _, rhs = expr.partition("=")
        try:
            if Fraction(rhs.strip().rstrip(".")) != target:
                return False
        except (ValueError, ZeroDivisionError):
            return False
    expr = expr.strip().rstrip(".").strip()
    if not expr or len(expr) > MAX_EXPRESSION_CHARS:
        return False
    try:
        tree = ast.parse(expr, mode="eval")
        used: list[int] = []
        value = _evaluate(tree, used)
    except (_Invalid, SyntaxError, ValueError, RecursionError, MemoryError, TypeError):
        return False
    return Counter(used) == Counter(nums) and value == target


def _as_int(value: Any) -> int | None:
    try:
        if isinstance(value, bool):
            return None
        number = Fraction(str(value).strip())
        return int(number) if number.denominator == 1 else None
    except (ValueError, ZeroDivisionError, TypeError):
        return None


def _as_int_list(value: Any) -> list[int] | None:
    if isinstance(value, str):
        try:
            value = ast.literal_eval(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            return None
    try:
        ints = [_as_int(v) for v in value]
    except TypeError:
        return None
    return None if not ints or any(v is None for v in ints) else ints  # type: ignore[return-value]


def countdown_reward(
    completions: list[Any], target: Any = None, nums: Any = None, **kwargs: Any
) -> list[float | None]:
    """1.0 / FORMAT_SCORE / 0.0 per completion (see the module docstring); ignores other keyword arguments."""
    n = len(completions)
    targets = per_sample(target, n, "target")
    if isinstance(nums, (list, tuple)) and nums and isinstance(nums[0], numbers.Number):
        nums = [nums] * n  # one flat list of numbers: shared by the whole batch
    nums_lists = per_sample(nums, n, "nums")
    if targets is None or nums_lists is None:
        return [None] * n
    scores: list[float | None] = []
    for completion, t, ns in zip(completions, targets, nums_lists, strict=True):
        try:
            goal, given = _as_int(t), _as_int_list(ns)
            if goal is None or given is None:
                scores.append(None)
                continue
            block = last_answer_block(completion_text(completion))
            if block is None:
                scores.append(0.0)
                continue
            boxed = last_boxed(block)
            expression = boxed if boxed is not None else block
            scores.append(1.0 if check_expression(expression, goal, given) else FORMAT_SCORE)
        except Exception:  # never take training down
            logger.exception("countdown_reward failed on one completion; scoring it None")
            scores.append(None)
    return scores
