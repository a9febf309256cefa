"""Verification worker process: `python -m rewards._worker` (started by `rewards.verify`, not by users).

Protocol, one JSON object per line: the worker first prints {"ready": true}; then for each request
{"i": id, "p": pred, "g": gold, "t": cpu_seconds} it replies {"i": id, "r": true|false|null, "timeout": bool}.
It exits on stdin EOF, and (Linux) is killed with its parent through PR_SET_PDEATHSIG, so no orphan survives
a killed trainer. sympy runs here, in this process's main thread, so a CPU-time signal timer can interrupt it; a
hang inside C code that ignores signals is ended by the parent killing this process.
"""

from __future__ import annotations

import json
import logging
import os
import select
import signal
import sys
import warnings

PR_SET_PDEATHSIG = 1
_WARMUP = [
    ("\\frac{1}{2}", "0.5"),
    ("(x+1)^2", "x^2+2x+1"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
    ("(1,2]", "(1,2]"),
    ("\\{1,2\\}", "2,1"),
    ("x=3", "3"),
    ("2^{1/2}", "\\sqrt2"),
    ("30^\\circ", "\\frac{\\pi}{6}"),
]


class ItemTimeout(BaseException):
    """Raised by the timer; a BaseException so that math-verify's and sympy's `except Exception` do not eat it."""


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except Exception:
            pass
    parent = os.environ.get("R1_VERIFY_PARENT_PID")
    if parent and parent.isdigit() and os.getppid() != int(parent):
        os._exit(0)  # the parent died before prctl took effect


def _limit_memory() -> None:
    """A hostile answer must not swap the machine to death: cap this process's address space."""
    try:
        import resource

        mb = int(os.environ.get("R1_VERIFY_MEMORY_MB", "4096"))
        if mb > 0:
            resource.setrlimit(resource.RLIMIT_AS, (mb * 2**20, mb * 2**20))
    except Exception:
        pass


def _on_alarm(signum, frame):
    raise ItemTimeout


def main() -> None:
    _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business; it cleans us up
    # The protocol owns the original stdout; anything else that prints (sympy, warnings) goes to stderr.
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)  # math-verify logs every timeout/parse failure as a warning
    _limit_memory()

    from rewards import mathcheck

    mathcheck.verify_pair(*_WARMUP[0])  # compiles math-verify's regexes
    signal.signal(signal.SIGPROF, _on_alarm)

    def reply(obj: dict) -> None:
        out.write(json.dumps(obj).encode() + b"\n")

    reply({"ready": True, "pid": os.getpid()})
    # sympy imports its simplify/polys/sets/matrices machinery on first use (~0.3 s of CPU). Pay that while idle,
    # one small step at a time, so neither start-up nor the first real answers carry it.
    warmup = list(_WARMUP[1:])
    pending = b""
    while True:
        while b"\n" not in pending:
            if warmup and not select.select([0], [], [], 0)[0]:
                try:
                    mathcheck.verify_pair(*warmup.pop(0))
                except Exception:
                    pass
                continue
            chunk = os.read(0, 1 << 16)
            if not chunk:
                return  # stdin closed: the parent is done with us
            pending += chunk
        line, pending = pending.split(b"\n", 1)
        try:
            req = json.loads(line)
            item, pred, gold, seconds = req["i"], req["p"], req["g"], float(req["t"])
        except Exception:
            continue
        reply({"i": item, **_grade(mathcheck, pred, gold, seconds)})


def _grade(mathcheck, pred: str, gold: str, cpu_seconds: float) -> dict:
    """One verdict under a CPU-time budget (a busy machine is not a hang)."""
    try:
        signal.setitimer(signal.ITIMER_PROF, max(cpu_seconds, 0.01))
        try:
            result = mathcheck.verify_pair(pred, gold, cache_gold=True)
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
    except ItemTimeout:
        return {"r": False, "timeout": True}
    except Exception:  # MemoryError, RecursionError, sympy internals: the answer is not verifiable
        return {"r": False, "timeout": False}
    return {"r": result, "timeout": False}


if __name__ == "__main__":
    main()
