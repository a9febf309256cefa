"""Math equivalence and the worker pool: verdicts, hostile answers, threads, scripts, REPLs, stuck workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rewards
from rewards import accuracy_reward, answers_equal, cluster_answers, verify_batch
from rewards import verify as verify_mod

REPO = Path(__file__).resolve().parents[1]

EQUAL = [
    ("0.5", "\\frac{1}{2}"),  # decimal vs fraction
    ("\\frac12", "0.5"),
    ("\\dfrac{3}{4}", "\\frac34"),
    ("2^{1/2}", "\\sqrt2"),
    ("(x+1)^2", "x^2+2x+1"),  # factored vs expanded
    ("ab+2a+5b+10", "(a+5)(b+2)"),
    ("\\{3,2,1\\}", "\\{1,2,3\\}"),  # set order
    ("7, 5, 3", "3, 5, 7"),
    ("90", "90^\\circ"),  # degrees
    ("90 degrees", "90^\\circ"),
    ("5.4", "5.4 \\text{ cents}"),  # text units
    ("18 dollars", "18"),
    ("\\$18.00", "18"),
    ("25", "025"),  # leading zeros (AIME)
    ("025", "25"),
    ("[1,2)", "[1,2)"),  # intervals
    ("(-\\infty, 2) \\cup (3, \\infty)", "(-\\infty,2)\\cup(3,\\infty)"),
    (
        "\\begin{pmatrix} -\\frac13 \\\\ \\frac23 \\end{pmatrix}",
        "\\begin{pmatrix} -1/3 \\\\ 2/3 \\end{pmatrix}",
    ),
    ("3", "x=3"),  # equations
    ("x = 3", "x=3"),
    ("2x+3", "y = 2x + 3"),
    ("Evelyn", "\\text{Evelyn}"),  # text answers
    ("C", "\\text{(C)}"),
    ("10080", "10,\\!080"),
    ("101010_2", "52_8"),  # numbers in other bases
    ("12.5", "12.5\\%"),
    ("The final answer is $\\frac{14}{3}$.", "\\frac{14}{3}"),
    ("1 000", "1000"),  # thousands separators: space, thin space, \\, and friends
    ("1\\,000", "1000"),
    ("12\u2009345", "12345"),
    ("1000,99", "1000.99"),  # an unambiguous decimal comma
    ("(0.6, 2.5]", "(\\frac{3}{5}, \\frac{5}{2}]"),  # exact decimals in containers
    ("\\frac{1}{2^{98}}", "2^{-98}"),
    ("\\textbf{(073)}", "73"),
    ("43_5", "43_5."),
    ("The result is $\\frac{2}{7}.$", "\\frac27"),  # sentence punctuation inside the math
    ("$$\\sqrt{5},$$", "\\sqrt5"),
    ("2, 4, 6, \\ldots", "2, 4, 6, \\dots"),
    ("g(t) = 2t", "f(t) = 2t"),  # a function under another name
    ("a=2,b=3;a=3,b=2", "a = 2, b = 3 \\quad \\text{and} \\quad a = 3, b = 2"),  # groups of assignments
]
NOT_EQUAL = [
    ("0.866", "\\frac{\\sqrt3}{2}"),  # a rounded irrational is not the exact value
    ("0.866025", "\\frac{\\sqrt{3}}{2}"),
    ("3.14159", "\\pi"),
    ("0.333333", "\\frac13"),
    ("(1,2)", "[1,2)"),  # open vs half-open interval
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 2 \\\\ 1 \\end{pmatrix}"),
    ("x=4", "x=3"),
    ("52_9", "52_8"),
    ("x + 18", "18"),  # an expression containing the number is not the number
    ("18, 19", "18"),
    ("\\text{Evenly}", "\\text{Evelyn}"),
    ("D", "\\text{(C)}"),
    ("1/0", "5"),
    ("", "5"),
    ("\\frac{1}{2^{98}}", "\\frac{1}{2^{99}}"),  # relative tolerance: tiny numbers are not all 0
    ("10^{-40}", "2\\cdot 10^{-40}"),
    ("x - 10^{-40}", "x - 2\\cdot 10^{-40}"),
    ("(0.6, 2.6667]", "(\\frac{3}{5}, \\frac{8}{3}]"),  # one rounding policy, in containers too
    ("\\begin{pmatrix} 0.333 \\\\ 1 \\end{pmatrix}", "\\begin{pmatrix} \\frac13 \\\\ 1 \\end{pmatrix}"),
    ("1,5", "1.5"),  # ambiguous comma: a set
    ("43_6.", "43_5."),
    ("\\sum_{k=1}^{100} k", "5050"),  # the restated question is not an answer
    ("The result is $1/3.$", "1"),  # a full stop inside the math never lets the number fallback read "1"
    ("$5^{3}.$", "5"),
    ("2, 4, 6, \\ldots", "2, 4, 6"),  # a sequence is not its first terms
    ("2, 4, 6", "2, 4, 6, \\dots"),
    ("g(t) = 2t", "f(t) = 3t"),
]


def test_equivalences():
    preds, golds = zip(*(EQUAL + NOT_EQUAL), strict=True)
    verdicts = verify_batch(list(preds), list(golds))
    expected = [True] * len(EQUAL) + [False] * len(NOT_EQUAL)
    wrong = [(p, g, v) for p, g, v, e in zip(preds, golds, verdicts, expected, strict=True) if v is not e]
    assert not wrong


def test_unusable_reference_gives_none_and_inputs_are_coerced():
    assert verify_batch(["1", "1", "1", "1"], ["", None, "   ", "9^{9^{9^9}}"]) == [None] * 4
    assert verify_batch([18, 0.5, "2.0"], ["18", "1/2", 2]) == [True, True, True]
    assert accuracy_reward(["<answer>5</answer>"] * 2, answer=["5", ""]) == [1.0, None]
    assert accuracy_reward(["<answer>5</answer>"], answer="5") == [1.0]  # a scalar column
    with pytest.raises(ValueError):
        verify_batch(["1"], ["1", "2"])


def test_answers_equal_and_clusters():
    assert answers_equal("\\frac{1}{2}", "0.5") and not answers_equal("1/3", "0.3")
    labels = cluster_answers(["1/2", "0.5", "3", "\\frac{2}{4}", "", "03", "x", ""])
    assert labels[:4] == [0, 0, 1, 0] and labels[5] == 1
    assert len({labels[4], labels[6], labels[7]} - {0, 1}) == 3  # empty / unparseable answers stay apart


def test_verdicts_do_not_depend_on_the_cache():
    pairs = [("\\frac{2}{4}", "0.5"), ("0.51", "0.5"), ("x^2-1", "(x-1)(x+1)")]
    preds, golds = [p for p, _ in pairs], [g for _, g in pairs]
    first = verify_batch(preds, golds)
    verify_mod._cache.clear()
    verify_mod._usable_golds.clear()
    assert verify_batch(preds, golds) == first == [True, False, True]


# --------------------------------------------------------------------------------------------- hostile

HOSTILE = [
    r"<think>x</think><answer>\boxed{9^{9^{9^9}}+1}</answer>",
    r"<answer>\boxed{2^{2^{2^{2^{2^{2}}}}}}</answer>",
    r"<answer>9**9**9**9</answer>",
    "lorem ipsum " * 90_000,  # ~1 MB, no answer block
    r"<answer>\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}</answer>",
    "<answer>" + "+".join(["1"] * 20_000) + "</answer>",
    r"<answer>\boxed{12</answer>" + r"\boxed{" * 1000,
    r"\boxed{",
    "<answer>\x00\x01\ud800 5 \udfff\x1b[31m\x7f</answer>",
    r"<answer>\boxed{\frac{1}{0}}</answer>",
    r"<answer>1/0 + 0/0</answer>",
    r"<answer>\boxed{100000!}</answer>",
    r"<answer>\boxed{(10^{9})!}</answer>",
    r"<answer>\boxed{10^{10^{10}}}</answer>",
]


def test_hostile_batch_returns_floats_quickly():
    verify_batch(["1/1"], ["1"])  # workers up (start-up is not what this measures)
    start = time.monotonic()
    out = accuracy_reward(HOSTILE, answer=["5"] * len(HOSTILE))
    elapsed = time.monotonic() - start
    assert len(out) == 14 and all(isinstance(x, float) for x in out)
    assert out == [0.0] * len(HOSTILE) and elapsed <= 3.0, elapsed
    # the pool survived: ordinary grading still works
    assert accuracy_reward(["<answer>\\boxed{5}</answer>"], answer=["5"]) == [1.0]


COSTLY = [  # answers that parse but are costly to verify: decided by the screens, never sent to a worker
    r"\int_0^1 x^{x^{x^x}} dx",
    r"\sum_{n=1}^\infty n^{n^{n^n}}",
    r"\int_0^\infty e^{-x^{x}} dx",
    r"\binom{1000000}{500000}",
    r"(x+y+z)^{100}",
    r"\Gamma(1000000)",
    r"\tan(\tan(\tan(\tan(\tan(1)))))",
    r"e^{e^{e^{e^{e}}}}",
    r"\sin(10^{99999})",
    r"x^{x^{x^{x^{x^{x^{x^{x^{2}}}}}}}}",
    "\\frac{1}{" * 20 + "2" + "}" * 20,
    "(" * 10 + "x+1" + ")^2" * 10,
]


def test_costly_answers_are_decided_without_workers():
    verify_batch(["1/1"], ["1"])
    before = verify_mod.stats()
    assert verify_batch(COSTLY, ["5"] * len(COSTLY)) == [False] * len(COSTLY)
    after = verify_mod.stats()
    assert after["items"] == before["items"] and after["timeouts"] == before["timeouts"]


def test_hostile_reference_is_unusable_not_a_hang():
    start = time.monotonic()
    assert accuracy_reward(["<answer>1</answer>"] * 2, answer=["9^{9^{9^9}}", "x" * 5000]) == [None, None]
    assert time.monotonic() - start < 2.0


def _warm_pool() -> None:
    """Grade until every worker has reported ready (readiness is noticed while a batch runs)."""
    end = time.monotonic() + 60
    while time.monotonic() < end:
        fresh = [
            f"{time.monotonic_ns()}{k}/1" for k in range(8)
        ]  # never cached, not integers: goes to workers
        verify_batch(fresh, fresh)
        workers = verify_mod._POOL._workers
        if len(workers) >= verify_mod._POOL.size and all(w.ready for w in workers):
            return
        time.sleep(0.1)


def test_stuck_worker_is_killed_and_replaced():
    """Freeze every worker (as if stuck in C code): their items time out, later items and calls still verify."""
    _warm_pool()
    frozen = [w.pid for w in verify_mod._POOL._workers]
    assert frozen
    for pid in frozen:
        os.kill(pid, signal.SIGSTOP)
    try:
        n = len(frozen) + 3
        golds = [str(100 + k) for k in range(n)]
        preds = [f"{2 * (100 + k)}/2" for k in range(n)]  # not plain integers: these need a worker
        start = time.monotonic()
        # 1 s: less than a fresh worker's start-up on a busy machine, which must not be charged to any item
        out = verify_batch(preds, golds, timeout=1.0)
        elapsed = time.monotonic() - start
    finally:
        for pid in frozen:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
    assert out.count(False) == len(frozen) and out.count(True) == 3, out
    assert elapsed < 15
    alive = {w.pid for w in verify_mod._POOL._workers}
    assert not alive & set(frozen)
    assert verify_batch(preds, golds) == [True] * n  # the timed-out items were not cached as False


def test_calls_from_threads():
    results: dict[int, list] = {}

    def grade(k: int) -> None:
        results[k] = verify_batch([f"{k}/2", f"{k}"], [f"{k / 2}", f"{k + 1}"])

    threads = [threading.Thread(target=grade, args=(k,)) for k in range(1, 7)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert results == {k: [True, False] for k in range(1, 7)}
    # workers started from a thread that has ended still serve (they are owned by a long-lived thread)
    pids = {w.pid for w in verify_mod._POOL._workers}
    verify_mod.shutdown()
    t = threading.Thread(target=lambda: results.update(x=verify_batch(["7/7"], ["1"])))
    t.start()
    t.join(60)
    started = {w.pid for w in verify_mod._POOL._workers}
    assert results["x"] == [True] and started and not started & pids
    time.sleep(0.5)  # had PR_SET_PDEATHSIG been tied to the ended thread, these workers would now be dead
    assert verify_batch(["4/2"], ["2"]) == [True]
    assert started <= {w.pid for w in verify_mod._POOL._workers}
    assert all(_alive(pid) for pid in started)


# ------------------------------------------------------------------------------- scripts and processes

_SCRIPT = """
import os, sys
import rewards
from rewards import verify
print(rewards.accuracy_reward(["<answer>\\\\boxed{\\\\frac{1}{2}}</answer>", "<answer>3</answer>"], answer=["0.5", "4"]))
print("PIDS", *verify._POOL.pids(), flush=True)
"""


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status  # a zombie is dead (its parent is gone; init reaps it)


def _wait_gone(pids: list[int], seconds: float = 10.0) -> list[int]:
    end = time.monotonic() + seconds
    while time.monotonic() < end and any(_alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


def _pids(stdout: str) -> list[int]:
    line = next(ln for ln in stdout.splitlines() if ln.startswith("PIDS"))
    return [int(p) for p in line.split()[1:]]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_python_stdin_script_without_main_guard_exits_cleanly():
    out = subprocess.run(
        [sys.executable, "-"], input=_SCRIPT, capture_output=True, text=True, timeout=120, cwd=REPO
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[0] == "[1.0, 0.0]"
    pids = _pids(out.stdout)
    assert pids and not _wait_gone(pids)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_interactive_repl_session(tmp_path):
    session = "import rewards\nrewards.verify_batch(['2^{1/2}'], ['\\\\sqrt{2}'])\nexit()\n"
    out = subprocess.run(
        [sys.executable, "-i", "-q"],
        input=session,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert out.returncode == 0, out.stderr
    assert "[True]" in out.stdout + out.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")
def test_killed_parent_leaves_no_workers():
    script = _SCRIPT + "import time; time.sleep(60)\n"
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("PIDS"):
                break
        pids = _pids("".join(lines))
        assert pids and all(_alive(p) for p in pids)
    finally:
        proc.kill()
        proc.wait()
    assert not _wait_gone(pids)


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_forked_child_gets_its_own_workers():
    verify_batch(["3/3"], ["1"])
    parent_pids = {w.pid for w in verify_mod._POOL._workers}
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: must not talk to the parent's workers
        try:
            ok = verify_batch(["\\frac{3}{6}"], ["0.5"]) == [True]
            own = {w.pid for w in verify_mod._POOL._workers}
            os.write(write_end, b"ok" if ok and own and not own & parent_pids else b"bad")
            verify_mod.shutdown()
        finally:
            os._exit(0)
    os.close(write_end)
    _, status = os.waitpid(pid, 0)
    assert os.read(read_end, 8) == b"ok"
    assert {w.pid for w in verify_mod._POOL._workers} == parent_pids
    assert verify_batch(["0.25"], ["1/4"]) == [True]


def test_timeout_setting(monkeypatch):
    monkeypatch.setenv("R1_VERIFY_TIMEOUT", "0.7")
    assert verify_mod._env_timeout() == 0.7
    monkeypatch.setenv("R1_VERIFY_TIMEOUT", "soon")
    assert verify_mod._env_timeout() == verify_mod.DEFAULT_TIMEOUT
    assert rewards.verify_batch(["5/5"], ["1"], timeout=0.5) == [True]


def test_workers_that_cannot_start_give_none_not_zero(monkeypatch, caplog):
    """No silent zeros: if verification cannot run at all, the verdicts are None (TRL skips them) and it is logged."""
    verify_mod.shutdown()
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    start = time.monotonic()
    completions = ["<answer>41/1</answer>", "<answer>84/2</answer>"]  # fractions: a worker must grade them
    assert accuracy_reward(completions, answer=["42", "42"]) == [None, None]
    assert time.monotonic() - start < 10
    assert "verification worker" in caplog.text
    monkeypatch.undo()
    assert accuracy_reward(completions, answer=["42", "42"]) == [0.0, 1.0]


@settings(max_examples=150, deadline=None)
@given(
    st.integers(-(10**12), 10**12),
    st.integers(-3, 3),
    st.integers(0, 2),
    st.integers(0, 2),
)
def test_integer_fast_path_agrees_with_math_verify(a, delta, zeros_a, zeros_b):
    """Plain integers are compared in-process; the verdict must be exactly math-verify's."""
    from rewards import mathcheck  # sympy in the test process is fine; the library process never imports it

    def show(n: int, zeros: int) -> str:
        return ("-" if n < 0 else "") + "0" * zeros + str(abs(n))

    pred, gold = show(a + delta, zeros_a), show(a, zeros_b)
    assert verify_batch([pred], [gold]) == [mathcheck.verify_pair(pred, gold)]
