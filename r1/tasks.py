"""Seeded problem generators: TinyZero's Countdown and arithmetic, returned as `datasets.Dataset`.

Generated tasks need no download, have exactly checkable answers and a difficulty knob, which makes them the
offline demo's training data and a clean testbed for the RL loop. Everything is drawn from one `random.Random(seed)`:
the same settings and seed give the same rows on every machine; `exclude` (or `train_and_heldout`) keeps a
held-out set disjoint from the training problems.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import datasets

from rewards.registry import lookup

COUNTDOWN_PROMPT = (
    "Using the numbers {nums}, create an equation that equals {target}. You can use basic arithmetic operations "
    "(+, -, *, /) and each number can only be used once."
)
ARITHMETIC_PROMPT = "What is {expression}?"
MAX_CONSECUTIVE_REJECTIONS = 20_000


@dataclass(frozen=True)
class ArithmeticLevel:
    ops: tuple[str, ...]
    max_operand: int
    num_operands: int


# Difficulty ladder for curricula: each level adds an operation, bigger numbers or another operand.
ARITHMETIC_LEVELS: dict[int, ArithmeticLevel] = {
    1: ArithmeticLevel(("+",), 9, 2),
    2: ArithmeticLevel(("+", "-"), 19, 2),
    3: ArithmeticLevel(("+", "-", "*"), 19, 2),
    4: ArithmeticLevel(("+", "-", "*"), 99, 3),
    5: ArithmeticLevel(("+", "-", "*", "/"), 99, 3),
}
_OPS = ("+", "-", "*", "/")


def _check_ops(ops: Sequence[str]) -> tuple[str, ...]:
    ops = tuple(ops)
    bad = [o for o in ops if o not in _OPS]
    if not ops or bad:
        raise ValueError(f"ops must be a non-empty subset of {', '.join(_OPS)} (got {list(ops)})")
    return ops


def _collect(
    n: int,
    make: Callable[[random.Random], dict[str, Any] | None],
    seed: int,
    exclude: Iterable[str] | None,
    unique: bool,
) -> list[dict[str, Any]]:
    """Draw rows from `make` until n are collected, skipping excluded (and, if unique, repeated) problems."""
    if n < 0:
        raise ValueError(f"n must be >= 0 (got {n})")
    rng = random.Random(seed)
    blocked = set(exclude or ())
    rows: list[dict[str, Any]] = []
    rejected = 0
    while len(rows) < n:
        row = make(rng)
        if row is None or row["problem"] in blocked:
            rejected += 1
            if rejected > MAX_CONSECUTIVE_REJECTIONS:
                raise ValueError(
                    f"could only generate {len(rows)} of {n} distinct problems with these settings; allow more "
                    "(bigger numbers, more operations) or set unique=False"
                )
            continue
        rejected = 0
        if unique:
            blocked.add(row["problem"])
        rows.append(row)
    return rows


def _to_dataset(rows: list[dict[str, Any]], columns: Sequence[str]) -> Any:
    return datasets.Dataset.from_dict({c: [r[c] for r in rows] for c in columns})


# --------------------------------------------------------------------------------------------------------------
# Countdown
# --------------------------------------------------------------------------------------------------------------


def countdown_problem(nums: Sequence[int], target: int) -> str:
    return COUNTDOWN_PROMPT.format(nums=list(nums), target=target)


def _countdown_row(
    rng: random.Random,
    num_numbers: Sequence[int],
    min_number: int,
    max_number: int,
    max_target: int,
    ops: tuple[str, ...],
) -> dict[str, Any] | None:
    """Random numbers combined by a random expression tree using each exactly once; its value is the target.

    Intermediate values stay positive integers (no x - x, exact divisions only), so every target is reachable
    by construction and `answer` is one solution.
    """
    count = rng.choice(list(num_numbers))
    nums = [rng.randint(min_number, max_number) for _ in range(count)]
    pool: list[tuple[int, str]] = [(v, str(v)) for v in nums]
    while len(pool) > 1:
        a, b = pool.pop(rng.randrange(len(pool))), pool.pop(rng.randrange(len(pool)))
        (x, ex), (y, ey) = (a, b) if a[0] >= b[0] else (b, a)  # x >= y: keeps '-' and '/' positive
        choices = [o for o in ops if (o != "-" or x > y) and (o != "/" or x % y == 0)]
        if not choices:
            return None
        op = rng.choice(choices)
        value = {"+": x + y, "-": x - y, "*": x * y, "/": x // y if op == "/" else 0}[op]
        if rng.random() < 0.5 and op in "+*":  # commutative: vary the written order
            ex, ey = ey, ex
        pool.append((value, f"({ex} {op} {ey})"))
    target, expr = pool[0]
    if not 1 <= target <= max_target:
        return None
    answer = expr[1:-1] if expr.startswith("(") else expr
    return {"problem": countdown_problem(nums, target), "answer": answer, "nums": nums, "target": target}


def countdown_dataset(
    n: int,
    *,
    seed: int = 0,
    num_numbers: int | Sequence[int] = (3, 4),
    min_number: int = 1,
    max_number: int = 100,
    max_target: int = 100,
    ops: Sequence[str] = _OPS,
    exclude: Iterable[str] | None = None,
    unique: bool = True,
) -> Any:
    """TinyZero's Countdown: columns `problem`, `answer` (one solution), `nums` (list[int]), `target` (int).

    `num_numbers` is how many numbers a problem has (an int or the choices, TinyZero: 3 or 4), drawn from
    [min_number, max_number]; targets are in [1, max_target].
    """
    num_numbers = (num_numbers,) if isinstance(num_numbers, int) else tuple(num_numbers)
    if not num_numbers or min(num_numbers) < 2:
        raise ValueError(f"num_numbers must be >= 2 (got {num_numbers})")
    if not 1 <= min_number <= max_number:
        raise ValueError(f"need 1 <= min_number <= max_number (got {min_number}, {max_number})")
    if max_target < 1:
        raise ValueError(f"max_target must be >= 1 (got {max_target})")
    ops = _check_ops(ops)
    rows = _collect(
        n,
        lambda rng: _countdown_row(rng, num_numbers, min_number, max_number, max_target, ops),
        seed,
        exclude,
        unique,
    )
    return _to_dataset(rows, ["problem", "answer", "nums", "target"])


# --------------------------------------------------------------------------------------------------------------
# Arithmetic
# --------------------------------------------------------------------------------------------------------------


def evaluate_flat(operands: Sequence[int], ops: Sequence[str]) -> Fraction | None:
    """Value of `a0 op0 a1 op1 a2 ...` with the usual precedence (× and ÷ first); None on division by zero."""
    terms: list[Fraction] = [Fraction(operands[0])]
    signs: list[int] = [1]
    for op, b in zip(ops, operands[1:], strict=True):
        if op == "*":
            terms[-1] *= b
        elif op == "/":
            if b == 0:
                return None
            terms[-1] /= b
        else:
            terms.append(Fraction(b))
            signs.append(1 if op == "+" else -1)
    return sum((s * t for s, t in zip(signs, terms, strict=True)), Fraction(0))


def _arithmetic_row(
    rng: random.Random, spec: ArithmeticLevel, level: int | None, allow_negative: bool
) -> dict[str, Any] | None:
    ops = [rng.choice(spec.ops) for _ in range(spec.num_operands - 1)]
    operands = [rng.randint(0, spec.max_operand) for _ in range(spec.num_operands)]
    for i, op in enumerate(ops):  # make divisions exact: the dividend is a multiple of the divisor
        if op == "/":
            divisor = rng.randint(1, max(1, min(spec.max_operand, 12)))
            operands[i + 1] = divisor
            operands[i] = divisor * rng.randint(0, max(1, spec.max_operand // divisor))
    value = evaluate_flat(operands, ops)
    if value is None or value.denominator != 1 or (value < 0 and not allow_negative):
        return None
    expression = " ".join(str(x) for pair in zip(operands, [*ops, ""], strict=True) for x in pair).strip()
    return {
        "problem": ARITHMETIC_PROMPT.format(expression=expression),
        "answer": str(value.numerator),
        "level": level or 0,
    }


def arithmetic_dataset(
    n: int,
    *,
    seed: int = 0,
    level: int | Sequence[int] | None = None,
    ops: Sequence[str] = ("+",),
    max_operand: int = 9,
    num_operands: int = 2,
    allow_negative: bool = False,
    exclude: Iterable[str] | None = None,
    unique: bool = True,
) -> Any:
    """Problems like "What is 7 + 12?" with `answer` "19" and a `level` column (0 when set by hand).

    Either give `ops` / `max_operand` (operands are drawn from 0..max_operand) / `num_operands`, or `level`: one
    of ARITHMETIC_LEVELS, or several to mix them (each problem draws its level uniformly). Standard precedence;
    divisions are exact; results are non-negative unless `allow_negative`.
    """
    if level is not None:
        levels = [level] if isinstance(level, int) else list(level)
        unknown = [lv for lv in levels if lv not in ARITHMETIC_LEVELS]
        if not levels or unknown:
            raise ValueError(
                f"unknown arithmetic level(s) {unknown or levels}; choose from {sorted(ARITHMETIC_LEVELS)}"
            )

        def make(rng: random.Random) -> dict[str, Any] | None:
            lv = rng.choice(levels)
            return _arithmetic_row(rng, ARITHMETIC_LEVELS[lv], lv, allow_negative)

    else:
        if max_operand < 1 or num_operands < 2:
            raise ValueError(
                f"need max_operand >= 1 and num_operands >= 2 (got {max_operand}, {num_operands})"
            )
        spec = ArithmeticLevel(_check_ops(ops), max_operand, num_operands)

        def make(rng: random.Random) -> dict[str, Any] | None:
            return _arithmetic_row(rng, spec, None, allow_negative)

    return _to_dataset(_collect(n, make, seed, exclude, unique), ["problem", "answer", "level"])


# --------------------------------------------------------------------------------------------------------------
# Registry and held-out sets
# --------------------------------------------------------------------------------------------------------------

GENERATED_TASKS: dict[str, Callable[..., Any]] = {"countdown": countdown_dataset, "arithmetic": arithmetic_dataset}
# every task a run can train on: `math` and `code` read a dataset (r1.data), the others generate their problems
DATASET_TASKS = ("math", "code")
TASK_NAMES = (*DATASET_TASKS, *GENERATED_TASKS)


def generate_task(name: str, n: int, **settings: Any) -> Any:
    """Generate `n` problems of the task `name` (see GENERATED_TASKS) with its settings (seed, level, ...)."""
    return GENERATED_TASKS[lookup("task", name, GENERATED_TASKS)](n, **settings)


def train_and_heldout(
    name: str, n_train: int, n_heldout: int, *, seed: int = 0, **settings: Any
) -> tuple[Any, Any]:
    """A training set and a held-out set of the same task and settings, with no problem in common.

    The held-out set is drawn first (seed + 1) so it stays the same whatever n_train is: before/after
    comparisons across runs of different length use the same problems.
    """
    heldout = generate_task(name, n_heldout, seed=seed + 1, **settings)
    train = generate_task(name, n_train, seed=seed, exclude=heldout["problem"], **settings)
    return train, heldout
