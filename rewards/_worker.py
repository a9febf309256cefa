"""Verification processes: `python -m rewards._worker` (started by `rewards.verify`, not by users).

The parent starts one *fork server* with `subprocess` (never multiprocessing). It imports sympy and math-verify
once, warms them up, and then forks one worker per request. Each request carries one end of a socket pair
(SCM_RIGHTS); the forked worker grades answers over it. Forking from this single-threaded process is safe (the
trainer, which may run threads, never forks), and a new worker is ready in milliseconds with warm caches, so
replacing a killed worker costs almost nothing.

Worker protocol, one JSON object per line: the worker first sends {"ready": true, "pid": pid}; then for each
request {"i": id, "p": pred, "g": gold, "t": cpu_seconds} it replies {"i": id, "r": true|false|null,
"timeout": bool}. It exits when its socket closes. sympy runs in the worker's main thread, so a CPU-time signal
timer interrupts slow Python code; a hang inside C code is ended by the parent killing the worker.

Lifetimes (Linux, PR_SET_PDEATHSIG): the fork server dies with the parent, the workers die with the fork server,
so a killed trainer leaves no process behind. The fork server exits when its control socket closes.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import warnings

PR_SET_PDEATHSIG = 1
# First-use costs (sympy imports its simplify/polys/sets/matrices machinery lazily, the LaTeX parser builds its
# prediction tables) are paid once, in the fork server before it forks anything, so every worker starts warm.
_WARMUP = [
    ("\\frac{1}{2}", "0.5"),
    ("(x+1)^2", "x^2+2x+1"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
    ("(1,2]", "(1,2]"),
    ("\\{1,2\\}", "2,1"),
    ("x=3", "3"),
    ("2^{1/2}", "\\sqrt2"),
    ("30^\\circ", "\\frac{\\pi}{6}"),
    ("\\frac{3\\sqrt{3}}{4}", "1.299"),
    ("(-\\infty, 0] \\cup (2, \\infty)", "x \\le 0"),
    ("6 - 5i", "-5i+6"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)"),
    ("\\text{(C)}", "C"),
    ("10\\%", "\\$10"),
    ("1 \\pm \\sqrt{19}", "1+\\sqrt{19}, 1-\\sqrt{19}"),
    ("\\dfrac{14}{3}", "4\\frac{2}{3}"),
    ("10^{-40}", "2\\cdot 10^{-40}"),  # the relative-tolerance check (mathcheck._relatively_equal)
    ("x - 10^{-40}", "x - 2\\cdot 10^{-40}"),
    ("1\\,000", "1000"),
]


class ItemTimeout(BaseException):
    """Raised by the timer; a BaseException so that math-verify's and sympy's `except Exception` do not eat it."""


def _die_with_parent(expected_parent: int | None) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes  # local: Linux only

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        except Exception:
            pass
    if expected_parent and os.getppid() != expected_parent:
        os._exit(0)  # the parent died before prctl took effect


def _limit_memory() -> None:
    """A hostile answer must not swap the machine to death: cap the address space (inherited by workers)."""
    try:
        import resource  # local: POSIX only

        mb = int(os.environ.get("R1_VERIFY_MEMORY_MB", "4096"))
        if mb > 0:
            resource.setrlimit(resource.RLIMIT_AS, (mb * 2**20, mb * 2**20))
    except Exception:
        pass


def _on_timer(signum, frame):
    raise ItemTimeout


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


def serve(conn: socket.socket) -> None:
    """A worker: grade requests from `conn` until it closes."""
    from rewards import mathcheck  # local: worker processes only (sympy stays out of the parent)

    signal.signal(signal.SIGPROF, _on_timer)

    def reply(obj: dict) -> None:
        conn.sendall(json.dumps(obj).encode() + b"\n")

    reply({"ready": True, "pid": os.getpid()})
    pending = b""
    while True:
        while b"\n" not in pending:
            chunk = conn.recv(1 << 16)
            if not chunk:
                return  # the parent closed the connection (or is gone)
            pending += chunk
        line, pending = pending.split(b"\n", 1)
        try:
            req = json.loads(line)
            item, pred, gold, seconds = req["i"], req["p"], req["g"], float(req["t"])
        except Exception:
            continue
        reply({"i": item, **_grade(mathcheck, pred, gold, seconds)})


def fork_server() -> None:
    """Fork a worker for each socket received on stdin (a Unix socket); exit when it closes."""
    parent = os.environ.get("R1_VERIFY_PARENT_PID", "")
    _die_with_parent(int(parent) if parent.isdigit() else None)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business; it cleans us up
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # workers are reaped automatically
    os.dup2(2, 1)  # stray prints (sympy, warnings) go to stderr
    sys.stdout = sys.stderr
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)  # math-verify logs every timeout and parse failure as a warning
    _limit_memory()

    from rewards import mathcheck  # local: worker processes only (sympy stays out of the parent)

    for pred, gold in _WARMUP:  # before the first fork, so that every worker starts warm
        try:
            mathcheck.verify_pair(pred, gold)
        except Exception:
            pass
    control = socket.socket(fileno=0)
    server_pid = os.getpid()
    while True:
        try:
            msg, fds, _, _ = socket.recv_fds(control, 16, 4)
        except OSError:
            return
        if not msg:
            return  # the parent closed the control socket
        for fd in fds:
            pid = os.fork()
            if pid == 0:
                try:
                    control.close()
                    for other in fds:  # another worker's socket must not stay open here (EOF = death)
                        if other != fd:
                            os.close(other)
                    _die_with_parent(server_pid)
                    with socket.socket(fileno=fd) as conn:
                        serve(conn)
                finally:
                    os._exit(0)
        for fd in fds:
            os.close(fd)


if __name__ == "__main__":
    fork_server()
