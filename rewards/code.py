"""Code reward: the completion's program is run against the problem's tests in the sandbox (`rewards.sandbox`).

    code_reward(completions, tests=[[...], ...])          # one test list per completion
    code_reward(completions, tests=..., fraction=True)    # fraction of asserts passed instead of all-or-nothing

The program is the last fenced ```python block (also ```py / ```python3; else the last untagged fence) of the
final answer, which is the last `<answer>` block when there is one, else the text after the last `</think>`, else
the whole completion; without a closed fence, the final answer text itself.

Tests (`tests` column), two formats:
* MBPP style: a list of snippets, each with at least one `assert` (e.g. "assert f(1) == 2"); each is scored on its
  own, so `fraction=True` gives partial credit.
* HumanEval style: one program that defines `check(candidate)` and ends with the call `check(<entry point>)`;
  scored as a whole.
Rewards: 1.0 when every test passes (or the fraction passed), 0.0 otherwise (including timeouts, crashes and a
missing program), None when the tests are unusable (missing, empty, not strings, a syntax error, no assert, a
HumanEval program without its final `check(...)` call) or when the sandbox itself failed (logged).
"""

from __future__ import annotations

import ast
import logging
import textwrap
from typing import Any

from rewards._columns import per_sample
from rewards.extract import completion_text, last_answer_block
from rewards.sandbox import Job, Limits, RunResult, SandboxPool, default_pool

logger = logging.getLogger(__name__)

_PYTHON_TAGS = {"python", "py", "python3", "py3"}
MAX_TESTS_CHARS = 1 << 20
MAX_PROGRAM_CHARS = 1 << 20


def final_answer(text: str) -> str:
    """The part of a completion that holds the answer: the last `<answer>` block, else the text after the last
    `</think>`, else everything."""
    block = last_answer_block(text)
    if block is not None:
        return block
    end = text.rfind("</think>")
    return text[end + len("</think>"):] if end >= 0 else text


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(info string, content) of every closed ``` fence, in order; one pass over the lines."""
    blocks: list[tuple[str, str]] = []
    open_tag: str | None = None
    indent = ""
    body: list[str] = []
    for line in text.split("\n"):
        stripped = line.strip()
        if open_tag is None:
            if stripped.startswith("```"):
                open_tag = stripped[3:].strip().split()[0].lower() if stripped[3:].strip() else ""
                indent = line[: len(line) - len(line.lstrip())]
                body = []
        elif stripped == "```" or (stripped.startswith("```") and not stripped[3:].strip()):
            content = "\n".join(b[len(indent):] if b.startswith(indent) else b for b in body)
            blocks.append((open_tag, content))
            open_tag = None
        else:
            body.append(line)
    return blocks


def extract_program(text: Any) -> str:
    """The program in a completion (see the module docstring for the rule)."""
    try:
        text = completion_text(text)
        answer = final_answer(text)
        blocks = _fenced_blocks(answer)
        tagged = [c for tag, c in blocks if tag in _PYTHON_TAGS]
        if tagged:
            return textwrap.dedent(tagged[-1]).strip("\n") + "\n"
        untagged = [c for tag, c in blocks if tag == ""]
        if untagged:
            return textwrap.dedent(untagged[-1]).strip("\n") + "\n"
        return textwrap.dedent(answer).strip("\n") + "\n" if answer.strip() else ""
    except Exception:  # never take training down
        return ""


def _has_assert(tree: ast.AST) -> bool:
    return any(isinstance(node, ast.Assert) for node in ast.walk(tree))


def parse_tests(tests: Any) -> tuple[str, list[str]] | None:
    """("check", [program]) for a HumanEval test program, ("asserts", snippets) for MBPP asserts, None when unusable."""
    if tests is None:
        return None
    if isinstance(tests, str):
        tests = [tests]
    try:
        tests = list(tests)
    except TypeError:
        return None
    if not tests or not all(isinstance(t, str) and t.strip() for t in tests):
        return None
    if sum(len(t) for t in tests) > MAX_TESTS_CHARS:
        return None
    trees = []
    for t in tests:
        try:
            trees.append(ast.parse(t))
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None
    if len(tests) == 1:
        body = trees[0].body
        defines_check = any(isinstance(n, ast.FunctionDef) and n.name == "check" for n in body)
        if defines_check:
            last = body[-1]
            calls_check = (isinstance(last, ast.Expr) and isinstance(last.value, ast.Call)
                           and isinstance(last.value.func, ast.Name) and last.value.func.id == "check"
                           and len(last.value.args) == 1)
            if not calls_check or not _has_assert(trees[0]):
                return None
            return "check", tests
    if not all(_has_assert(tree) for tree in trees):
        return None
    return "asserts", tests


def score(result: RunResult, fraction: bool = False) -> float | None:
    """A run's reward: None for a sandbox failure, else 1.0/0.0 (or the fraction of tests passed)."""
    if result.status == "sandbox_error":
        return None
    if fraction:
        return result.fraction if result.status in ("ok", "timeout", "crashed") else 0.0
    return 1.0 if result.all_passed else 0.0


def run_programs(programs: list[str], tests: list[Any], pool: SandboxPool | None = None,
                 limits: Limits | None = None) -> list[RunResult | None]:
    """Run each program against its tests in parallel; None where the tests are unusable.

    An empty program is not run (status "program_error"). `pool` defaults to the process-wide pool.
    """
    results: list[RunResult | None] = [None] * len(programs)
    jobs, where = [], []
    for i, (program, t) in enumerate(zip(programs, tests, strict=True)):
        parsed = parse_tests(t)
        if parsed is None:
            continue
        mode, snippets = parsed
        if not program.strip() or len(program) > MAX_PROGRAM_CHARS:
            results[i] = RunResult([False] * len(snippets), "program_error", "no program")
            continue
        jobs.append(Job(program, snippets, mode, limits))
        where.append(i)
    if jobs:
        pool = pool or default_pool()
        for i, r in zip(where, pool.run_many(jobs), strict=True):
            results[i] = r
    return results


def score_programs(programs: list[str], tests: list[Any], fraction: bool = False, pool: SandboxPool | None = None,
                   limits: Limits | None = None) -> list[float | None]:
    """Rewards for programs (not completions): what eval calls after its own extraction."""
    return [None if r is None else score(r, fraction) for r in run_programs(programs, tests, pool, limits)]


def code_reward(completions: list[Any], tests: Any = None, fraction: bool = False, **kwargs: Any) -> list[float | None]:
    """1.0 when the completion's program passes all its tests (or the fraction passed with `fraction=True`),
    0.0 otherwise, None for unusable tests. `tests`: one test list per completion (the dataset's column)."""
    n = len(completions)
    if tests is None:
        logger.error("code_reward needs the dataset's `tests` column; scoring %d completions None", n)
        return [None] * n
    try:
        per = per_sample(tests, n, "tests")
        if per is None:
            return [None] * n
        programs = [extract_program(c) for c in completions]
        rewards = score_programs(programs, per, fraction=fraction)
        failed = sum(r is None for r, t in zip(rewards, per, strict=True) if parse_tests(t) is not None)
        if failed:
            logger.error("code_reward: the sandbox failed on %d of %d programs; scoring them None", failed, n)
        return rewards
    except Exception:  # never take a training run down; None is skipped by TRL and counted by our trainer
        logger.exception("code_reward failed on a batch of %d; scoring it None", n)
        return [None] * n

