"""Generated tasks: reproducible, correct by an independent check (ast + fractions), disjoint held-out sets."""

from __future__ import annotations

import ast
import re
from collections import Counter
from fractions import Fraction

import pytest

from r1.tasks import (
    ARITHMETIC_LEVELS,
    arithmetic_dataset,
    countdown_dataset,
    generate_task,
    train_and_heldout,
)

_BINOPS = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
}


def exact_value(expression: str) -> tuple[Fraction, list[int]]:
    """Value of an integer +-*/ expression (no eval) and the numbers it uses."""
    used: list[int] = []

    def walk(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
            return _BINOPS[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.Constant) and type(node.value) is int:
            used.append(node.value)
            return Fraction(node.value)
        raise AssertionError(f"unexpected syntax in {expression!r}: {ast.dump(node)}")

    return walk(ast.parse(expression, mode="eval")), used


def test_countdown_answers_reach_the_target_using_each_number_once() -> None:
    ds = countdown_dataset(500, seed=3)
    assert set(ds.column_names) == {"problem", "answer", "nums", "target"}
    sizes = Counter()
    for row in ds:
        value, used = exact_value(row["answer"])
        assert value == row["target"], row
        assert sorted(used) == sorted(row["nums"]), row
        assert 1 <= row["target"] <= 100 and all(1 <= x <= 100 for x in row["nums"])
        assert row["problem"] == (
            f"Using the numbers {row['nums']}, create an equation that equals {row['target']}. You can use basic "
            "arithmetic operations (+, -, *, /) and each number can only be used once."
        )
        sizes[len(row["nums"])] += 1
    assert set(sizes) == {3, 4} and min(sizes.values()) > 100
    assert len(set(ds["problem"])) == len(ds)
    assert any("*" in a for a in ds["answer"]) and any("/" in a for a in ds["answer"])


def test_countdown_settings() -> None:
    ds = countdown_dataset(100, seed=0, num_numbers=4, max_number=20, max_target=50, ops=("+", "-"))
    for row in ds:
        value, used = exact_value(row["answer"])
        assert value == row["target"] <= 50 and len(row["nums"]) == 4 and max(row["nums"]) <= 20
        assert not re.search(r"[*/]", row["answer"])
    with pytest.raises(ValueError, match="ops"):
        countdown_dataset(5, ops=("^",))
    with pytest.raises(ValueError, match="num_numbers"):
        countdown_dataset(5, num_numbers=1)


@pytest.mark.parametrize(
    "make",
    [
        lambda s: countdown_dataset(50, seed=s),
        lambda s: arithmetic_dataset(50, seed=s, level=[1, 2, 3, 4, 5]),
    ],
    ids=["countdown", "arithmetic"],
)
def test_same_seed_same_data_other_seed_other_data(make) -> None:
    assert make(7).to_list() == make(7).to_list()
    assert make(7)["problem"] != make(8)["problem"]


def test_arithmetic_answers_are_correct() -> None:
    for level, spec in ARITHMETIC_LEVELS.items():
        ds = arithmetic_dataset(90, seed=level, level=level)  # level 1 has only 100 distinct sums
        for row in ds:
            m = re.fullmatch(r"What is (.+)\?", row["problem"])
            assert m, row
            value, used = exact_value(m.group(1))
            assert value == Fraction(int(row["answer"])) and value >= 0, row
            assert len(used) == spec.num_operands and max(used) <= spec.max_operand
            ops = set(re.findall(r" ([-+*/]) ", m.group(1)))
            assert ops <= set(spec.ops)
        assert set(ds["level"]) == {level}
    mixed = arithmetic_dataset(300, seed=0, level=[1, 3])
    assert set(mixed["level"]) == {1, 3}


def test_arithmetic_by_hand_settings() -> None:
    ds = arithmetic_dataset(100, seed=0, ops=("*",), max_operand=12, num_operands=3)
    for row in ds:
        value, used = exact_value(row["problem"][len("What is ") : -1])
        assert value == int(row["answer"]) and len(used) == 3 and max(used) <= 12
    negative = arithmetic_dataset(80, seed=0, ops=("-",), max_operand=9, allow_negative=True)
    assert any(a.startswith("-") for a in negative["answer"])
    with pytest.raises(ValueError, match="level"):
        arithmetic_dataset(5, level=9)
    with pytest.raises(ValueError, match="distinct problems"):
        arithmetic_dataset(101, level=1)  # only 10 x 10 single-digit sums exist
    assert len(arithmetic_dataset(101, level=1, unique=False)) == 101


def test_heldout_is_disjoint_and_stable() -> None:
    train, heldout = train_and_heldout("arithmetic", 300, 64, seed=5, max_operand=19)
    assert len(train) == 300 and len(heldout) == 64
    assert not set(train["problem"]) & set(heldout["problem"])
    _, heldout_again = train_and_heldout("arithmetic", 50, 64, seed=5, max_operand=19)
    assert heldout_again["problem"] == heldout["problem"]  # independent of the training-set size
    ctrain, cheld = train_and_heldout("countdown", 200, 40, seed=0)
    assert not set(ctrain["problem"]) & set(cheld["problem"])
    excluded = arithmetic_dataset(50, seed=1, max_operand=19, exclude=heldout["problem"])
    assert not set(excluded["problem"]) & set(heldout["problem"])


def test_generate_task_registry() -> None:
    assert (
        generate_task("arithmetic", 3, seed=1, level=2).to_list()
        == arithmetic_dataset(3, seed=1, level=2).to_list()
    )
    with pytest.raises(ValueError, match="countdown, arithmetic"):
        generate_task("sudoku", 3)
