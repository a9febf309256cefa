"""Math equivalence that never hangs and never raises: math-verify in a pool of worker processes.

Why processes, and why these: sympy can run for minutes (or forever, inside C where signals do not reach) on a
hostile answer, and merely printing a parsed power tower hangs. math-verify's own timeout uses `signal.alarm`,
which only works in the main thread (verl once scored every answer 0 because that error was swallowed). So
grading happens in worker processes: `python -m rewards._worker`, started with `subprocess` (no multiprocessing:
a spawn pool breaks in scripts without a main guard, REPLs and `python -`; this process may run threads, so it
never forks), imports sympy once and forks warm workers on request (see `rewards._worker`).

Each item starts its clock when a worker starts grading it (a replacement's start-up is never charged to an
item). The worker stops an item itself after 80% of `timeout` (default 2 s, env `R1_VERIFY_TIMEOUT`) in CPU time;
a worker that has not answered by `timeout` although it had that CPU time is stuck in C code and is killed and
replaced. Either way the item is False. On an overloaded machine a worker that did not get that CPU time is
starved, not stuck, and may take up to 3x `timeout` of wall time (Linux), so load never turns right answers into
zeros. There is one worker per core: hung items burn CPU, so more workers would not make hangs overlap any
better. This process never imports sympy or math-verify.

Verdicts: True/False, or None when the reference is unusable (or no worker could start: logged as an error), so
TRL skips the sample instead of learning from a fake 0.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import re
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from rewards.extract import reference_answer
from rewards.screen import sanitize, too_complex, unevaluated

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 2.0
START_TIMEOUT = 60.0  # seconds a new worker may take to import sympy and say "ready"
MAX_START_FAILURES = 3  # consecutive workers dying before "ready": give up on this batch (verdicts None)
# At its deadline, a worker that has not yet used its CPU budget (plus this margin) was starved, not stuck, and
# gets more wall time, up to MAX_STRETCH times the timeout.
STARVED_MARGIN = 0.15
MAX_STRETCH = 3.0
PIPELINE_DEPTH = 2  # items queued per worker: it never waits for this process between items
MAX_ITEMS_PER_WORKER = 20_000  # recycle workers now and then so caches in sympy cannot grow without bound
CACHE_SIZE = 32_768
_INTEGER_RE = re.compile(r"-?\d{1,100}")  # GSM8K/AIME-style answers (leading zeros included: 025 = 25)
_UNAVAILABLE = object()  # no worker could grade the item
# The item timed out or crashed its worker: False, but not cached (it may have been the machine's fault).
_GAVE_UP = object()


def _env_timeout() -> float:
    raw = os.environ.get("R1_VERIFY_TIMEOUT")
    if not raw:
        return DEFAULT_TIMEOUT
    try:
        value = float(raw)
        if value > 0:
            return value
    except ValueError:
        pass
    logger.warning("ignoring R1_VERIFY_TIMEOUT=%r (want seconds > 0); using %.1f", raw, DEFAULT_TIMEOUT)
    return DEFAULT_TIMEOUT


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _default_workers() -> int:
    """One worker per core (at least 2, at most 16), shared among the training processes on this machine
    (LOCAL_WORLD_SIZE, set by torchrun/accelerate). More would not overlap hangs any better: a hung item burns
    CPU, so hangs compete for the same cores; extra workers would only add context switches."""
    raw = os.environ.get("R1_VERIFY_WORKERS", "")
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    local = os.environ.get("LOCAL_WORLD_SIZE", "1")
    ranks = int(local) if local.isdigit() and int(local) > 0 else 1
    return max(2, min(_cpu_count() // ranks, 16))


def _as_text(value: Any) -> str:
    """A pred/gold as clean text: numbers become their decimal form, None becomes ""."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return ""
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return ""
        if value.is_integer():
            return str(int(value))
        text = repr(value)
        return format(Decimal(text), "f") if "e" in text else text  # 1e-07 would read as 1*e - 7
    try:
        text = value if isinstance(value, str) else str(value)
    except Exception:
        return ""
    return sanitize(text)


# ----------------------------------------------------------------------------------------------- workers

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_stat(pid: int | None) -> list[bytes] | None:
    if pid is None:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None


def _cpu_seconds(pid: int | None) -> float | None:
    """User+system CPU seconds a process has used (Linux /proc), or None."""
    fields = _proc_stat(pid)
    try:
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS if fields else None
    except (IndexError, ValueError):
        return None


@dataclass
class _Worker:
    sock: socket.socket  # our end of the socket pair; the worker (a fork of the fork server) has the other
    started_at: float
    pid: int | None = None  # known once the worker says ready
    ready: bool = False
    # Items sent and not yet answered, oldest first: (index in the batch, request id). The worker grades them in
    # order, so the first one is running; the others wait in its pipe so that it never idles between items.
    sent: deque = field(default_factory=deque)
    item_started: float = 0.0  # when the running item started (its predecessor's reply arrived)
    cpu_at_start: float | None = None  # the worker's CPU seconds then
    deadline: float = 0.0
    lane: int | None = None  # the queue lane this worker serves first
    done: int = 0
    buf: bytearray = field(default_factory=bytearray)

    def start_clock(self, now: float, timeout: float) -> None:
        self.item_started, self.deadline = now, now + timeout
        self.cpu_at_start = _cpu_seconds(self.pid)


class _Spawner:
    """Starts the fork server from one long-lived thread.

    PR_SET_PDEATHSIG fires when the *thread* that started the child exits, so a server started from a caller's
    short-lived thread would be killed with that thread. A daemon thread that lives as long as the process avoids it.
    """

    def __init__(self) -> None:
        self._requests: queue.Queue = queue.Queue()
        threading.Thread(target=self._serve, name="rewards-verify-spawner", daemon=True).start()

    def _serve(self) -> None:
        while True:
            fn, box, done = self._requests.get()
            try:
                box.append(fn())
            except BaseException as e:  # handed back to the caller
                box.append(e)
            done.set()

    def call(self, fn):
        box: list = []
        done = threading.Event()
        self._requests.put((fn, box, done))
        done.wait()
        if isinstance(box[0], BaseException):
            raise box[0]
        return box[0]


class _Lanes:
    """Pending items, one lane per worker slot by a hash of the gold.

    A worker takes from its own lane first, so each reference is parsed by one worker (its cache hits) instead of
    by all of them; an idle worker with an empty lane takes from the longest lane, so no one waits.
    """

    def __init__(self, pairs: Sequence[tuple[str, str]], n_lanes: int) -> None:
        self.n_lanes = max(1, n_lanes)
        self._lanes: dict[int, deque] = {}
        self._count = 0
        for i, (_, gold) in enumerate(pairs):
            self.push(i, gold)

    def lane_of(self, gold: str) -> int:
        return zlib.crc32(gold.encode("utf-8", "replace")) % self.n_lanes

    def push(self, i: int, gold: str, front: bool = False) -> None:
        lane = self._lanes.setdefault(self.lane_of(gold), deque())
        lane.appendleft(i) if front else lane.append(i)
        self._count += 1

    def pop(self, lane: int | None) -> int:
        queue_ = self._lanes.get(lane) if lane is not None else None
        if not queue_:
            queue_ = max(self._lanes.values(), key=len)
        self._count -= 1
        return queue_.popleft()

    def __len__(self) -> int:
        return self._count


class _Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reset_state()

    def _reset_state(self) -> None:
        self._pid = os.getpid()
        self._workers: list[_Worker] = []
        self._selector: selectors.BaseSelector | None = None
        self._spawner: _Spawner | None = None
        self._server: subprocess.Popen | None = None  # the fork server
        self._control: socket.socket | None = None  # our end of its control socket
        self._start_failures = 0
        self._tokens = 0
        self.size = _default_workers()
        self.stats = {"in_process": 0, "items": 0, "timeouts": 0, "killed": 0, "crashed": 0, "started": 0}

    # -- process management

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parent.parent)
        paths = [package_root] + [p or os.getcwd() for p in sys.path]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        env["R1_VERIFY_PARENT_PID"] = str(os.getpid())
        return env

    def _start_server(self) -> None:
        """Start the fork server (from the long-lived spawner thread, see `_Spawner`)."""
        ours, theirs = socket.socketpair()

        def start() -> subprocess.Popen:
            return subprocess.Popen(
                [sys.executable, "-m", "rewards._worker"],
                stdin=theirs.fileno(),
                env=self._env(),
                close_fds=True,
            )

        if self._spawner is None:
            self._spawner = _Spawner()
        try:
            self._server = self._spawner.call(start)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self._control = ours

    def _server_alive(self) -> bool:
        return self._server is not None and self._server.poll() is None

    def _stop_server(self) -> None:
        if self._control is not None:
            self._control.close()  # the server exits on EOF; its workers die with it (PR_SET_PDEATHSIG)
            self._control = None
        if self._server is not None:
            try:
                self._server.wait(timeout=2)
            except Exception:
                self._server.kill()
                try:
                    self._server.wait(timeout=5)
                except Exception:
                    pass
            self._server = None

    def _spawn(self) -> None:
        """Ask the fork server for one more worker (it is ready when it says so)."""
        ours, theirs = socket.socketpair()
        try:
            for attempt in (1, 2):
                try:
                    if not self._server_alive():
                        self._stop_server()
                        self._start_server()
                    assert self._control is not None
                    socket.send_fds(self._control, [b"f"], [theirs.fileno()])
                    break
                except OSError:
                    if attempt == 2:
                        raise
                    self._stop_server()  # it died between the check and the request: start a new one
        except Exception as e:
            logger.error("could not start a verification worker (%s: %s)", type(e).__name__, e)
            self._start_failures += 1
            ours.close()
            return
        finally:
            theirs.close()
        taken = {w.lane for w in self._workers}
        lane = next((k for k in range(self.size) if k not in taken), None)
        worker = _Worker(sock=ours, started_at=time.monotonic(), lane=lane)
        self._workers.append(worker)
        assert self._selector is not None
        self._selector.register(ours, selectors.EVENT_READ, worker)
        self.stats["started"] += 1

    def _kill(self, worker: _Worker) -> None:
        """SIGKILL a worker, making sure the pid is still our fork server's child (pids get reused)."""
        fields = _proc_stat(worker.pid)
        if (
            worker.pid is None
            or not fields
            or self._server is None
            or fields[1] != str(self._server.pid).encode()
        ):
            return
        try:
            os.kill(worker.pid, signal.SIGKILL)
        except OSError:
            pass

    def _retire(self, worker: _Worker, kill: bool) -> None:
        """Forget a worker: kill it if it may be stuck, and close its socket (an idle worker exits on EOF)."""
        if worker in self._workers:
            self._workers.remove(worker)
        try:
            assert self._selector is not None
            self._selector.unregister(worker.sock)
        except Exception:
            pass
        if kill:
            self._kill(worker)
        worker.sock.close()

    def pids(self) -> list[int]:
        """Process ids of the fork server and the workers that reported ready (for tests and benchmarks)."""
        server = [self._server.pid] if self._server_alive() else []
        return server + [w.pid for w in self._workers if w.pid is not None]

    def _ensure_started(self) -> None:
        if self._pid != os.getpid():  # we are a forked child: the workers belong to the parent
            self._reset_state()
        if self._selector is None:
            self._selector = selectors.DefaultSelector()
        while len(self._workers) < self.size and self._start_failures < MAX_START_FAILURES:
            before = len(self._workers)
            self._spawn()
            if len(self._workers) == before:
                break

    def shutdown(self) -> None:
        """Stop all workers (they exit on stdin EOF; stragglers are killed)."""
        # At exit a daemon thread may be frozen inside `run` holding the lock: do not wait for it forever.
        locked = self._lock.acquire(timeout=5)
        try:
            if self._pid != os.getpid():
                self._reset_state()
                return
            workers, self._workers = list(self._workers), []
            for w in workers:
                w.sock.close()  # an idle worker exits on EOF...
            self._stop_server()  # ... and a busy one dies with the fork server
            if self._selector is not None:
                self._selector.close()
                self._selector = None
        finally:
            if locked:
                self._lock.release()

    def after_fork_in_child(self) -> None:
        """A forked child must not talk to its parent's workers: drop them (without killing them)."""
        self._lock = threading.Lock()
        for w in self._workers:
            w.sock.close()
        if self._control is not None:
            self._control.close()
        self._reset_state()

    # -- grading

    def run(self, pairs: Sequence[tuple[str, str]], timeout: float) -> list:
        """Grade `pairs` ((pred, gold) strings); each entry True/False/None, _GAVE_UP or _UNAVAILABLE."""
        with self._lock:
            try:
                return self._run(pairs, timeout)
            except Exception:  # a bug here must not take training down: say so loudly and skip the samples
                logger.exception("verification failed; returning None for %d items", len(pairs))
                for w in list(self._workers):
                    if w.sent:
                        self._retire(w, kill=True)
                return [_UNAVAILABLE] * len(pairs)

    def _run(self, pairs: Sequence[tuple[str, str]], timeout: float) -> list:
        self._start_failures = 0
        self._ensure_started()
        assert self._selector is not None
        results: list = [_UNAVAILABLE] * len(pairs)
        max_starts = self.stats["started"] + len(pairs) + 2 * self.size + 10  # never an endless respawn loop
        todo = _Lanes(pairs, self.size)
        # CPU seconds for the worker's own timer, which ends a slow item before the hard deadline if it can
        soft = max(0.05, min(timeout - 0.25, timeout * 0.8))

        while todo or any(w.sent for w in self._workers):
            self._dispatch(pairs, todo, soft, timeout)
            if not self._workers or self.stats["started"] > max_starts:
                logger.error(
                    "no verification worker could start (see the worker's error above); %d answers not graded",
                    len(todo),
                )
                break
            wake = min(
                [w.deadline for w in self._workers if w.sent]
                + [w.started_at + START_TIMEOUT for w in self._workers if not w.ready],
                default=time.monotonic() + 1.0,
            )
            for key, _ in self._selector.select(max(0.0, wake - time.monotonic())):
                self._read(key.data, results, todo, pairs, timeout)

            now = time.monotonic()
            for w in list(self._workers):
                if w.sent and now >= w.deadline and not self._starved(w, now, soft, timeout):
                    # stuck (in C code, or ignoring its timer): kill it; what waited behind goes elsewhere
                    results[w.sent[0][0]] = _GAVE_UP
                    self.stats["timeouts"] += 1
                    self.stats["killed"] += 1
                    self._drop(w, todo, pairs, kill=True)
                elif not w.ready and now >= w.started_at + START_TIMEOUT:
                    logger.error(
                        "a verification worker did not start within %.0f s; replacing it", START_TIMEOUT
                    )
                    self._start_failures += 1
                    self._drop(w, todo, pairs, kill=True)
        for w in list(self._workers):
            if w.sent:  # only after giving up: never leave a worker holding a stale item
                self._retire(w, kill=True)
        self.stats["items"] += len(pairs)
        return results

    def _dispatch(self, pairs: Sequence[tuple[str, str]], todo: _Lanes, soft: float, timeout: float) -> None:
        """Keep every ready worker's pipeline full."""
        for w in list(self._workers):
            if w.ready and not w.sent and w.done >= MAX_ITEMS_PER_WORKER:
                self._retire(w, kill=False)
                self._ensure_started()
                continue
            while todo and w.ready and len(w.sent) < PIPELINE_DEPTH:
                i = todo.pop(w.lane)
                pred, gold = pairs[i]
                self._tokens += 1
                try:
                    w.sock.sendall(
                        json.dumps({"i": self._tokens, "p": pred, "g": gold, "t": soft}).encode() + b"\n"
                    )
                except Exception:  # died while idle (e.g. killed from outside): its items go elsewhere
                    todo.push(i, gold, front=True)
                    self._drop(w, todo, pairs, kill=True)
                    break
                w.sent.append((i, self._tokens))
                if len(w.sent) == 1:
                    w.start_clock(time.monotonic(), timeout)

    def _drop(self, w: _Worker, todo: _Lanes, pairs: Sequence[tuple[str, str]], kill: bool) -> None:
        """Retire a worker and requeue the items that were waiting in its pipe (not the running one)."""
        for i, _ in list(w.sent)[1:]:
            todo.push(i, pairs[i][1], front=True)
        w.sent.clear()
        self._retire(w, kill=kill)
        self._ensure_started()

    @staticmethod
    def _starved(w: _Worker, now: float, soft: float, timeout: float) -> bool:
        """At its deadline, had the worker's own CPU-time limit (`soft`) a chance to fire? If not, extend.

        A hung item burns CPU; when the worker has used `soft` seconds of CPU and still not answered, its timer
        could not interrupt it (C code): kill. If it used less, the machine is overloaded and the item merely
        waited for a CPU; killing it would turn a correct answer into a silent zero. The wait is capped at
        MAX_STRETCH times the timeout. Linux only (/proc); elsewhere the deadline is plain wall-clock time.
        """
        cpu = _cpu_seconds(w.pid)
        if cpu is None or w.cpu_at_start is None:
            return False
        used = cpu - w.cpu_at_start
        hard_stop = w.item_started + MAX_STRETCH * timeout
        fair_share = soft + STARVED_MARGIN
        if used >= fair_share or now >= hard_stop:
            return False
        w.deadline = min(now + fair_share - used, hard_stop)  # CPU time cannot outrun the wall clock
        return True

    def _read(
        self, w: _Worker, results: list, todo: _Lanes, pairs: Sequence[tuple[str, str]], timeout: float
    ) -> None:
        try:
            chunk = w.sock.recv(1 << 16)
        except OSError:
            chunk = b""
        if not chunk:  # the worker died
            if w.sent:  # ... on its running item (segfault, OOM kill): that answer is not verifiable
                results[w.sent[0][0]] = _GAVE_UP
                self.stats["crashed"] += 1
            elif not w.ready:
                self._start_failures += 1
            self._drop(w, todo, pairs, kill=True)
            return
        w.buf += chunk
        while b"\n" in w.buf:
            line, _, rest = w.buf.partition(b"\n")
            w.buf = bytearray(rest)
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("ready"):
                w.ready, w.pid = True, msg.get("pid")
                self._start_failures = 0
                self._ensure_started()
            elif w.sent and msg.get("i") == w.sent[0][1]:
                i, _ = w.sent.popleft()
                results[i] = _GAVE_UP if msg.get("timeout") else msg.get("r")
                self.stats["timeouts"] += bool(msg.get("timeout"))
                w.done += 1
                if w.sent:  # the next item starts now
                    w.start_clock(time.monotonic(), timeout)


_POOL = _Pool()
_cache: OrderedDict[tuple[str, str], bool | None] = OrderedDict()
_usable_golds: OrderedDict[str, None] = OrderedDict()
_cache_lock = threading.Lock()


def _after_fork_in_child() -> None:
    global _cache_lock
    _cache_lock = threading.Lock()  # may have been held by another thread at fork time
    _POOL.after_fork_in_child()


atexit.register(_POOL.shutdown)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _remember(key: tuple[str, str], verdict: bool | None) -> None:
    with _cache_lock:
        _cache[key] = verdict
        _cache.move_to_end(key)
        if len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        if verdict is not None:
            _usable_golds[key[1]] = None
            _usable_golds.move_to_end(key[1])
            if len(_usable_golds) > CACHE_SIZE:
                _usable_golds.popitem(last=False)


def verify_batch(
    preds: Sequence[Any], golds: Sequence[Any], timeout: float | None = None
) -> list[bool | None]:
    """Is each `preds[i]` mathematically equal to `golds[i]`? One verdict per pair, in order.

    True/False, or None when the gold is unusable (empty, unreadable, absurd) or no worker could run.
    A gold that is a whole solution is graded as the value it states (`rewards.extract.reference_answer`).
    Answers that fail the cheap screens (over 1000 characters, absurd powers/factorials/binomials/nesting, an
    integral/sum/product/limit/derivative the gold does not have: `rewards.screen`) are False without reaching
    sympy; two plain integers are compared right here (math-verify's verdict, without the round trip);
    identical (pred, gold) pairs are graded once, and verdicts are cached (timeouts are not). `timeout` is the hard per-item limit in seconds (default: env R1_VERIFY_TIMEOUT, else 2).
    Safe to call from any thread; concurrent calls are served one after another.
    """
    if len(preds) != len(golds):
        raise ValueError(f"verify_batch: {len(preds)} predictions but {len(golds)} references")
    limit = float(timeout) if timeout is not None and timeout > 0 else _env_timeout()
    results: list[bool | None] = [None] * len(preds)
    pending: dict[tuple[str, str], list[int]] = {}
    for i, (pred, gold) in enumerate(zip(preds, golds, strict=True)):
        gold_s, pred_s = reference_answer(_as_text(gold).strip()).strip(), _as_text(pred).strip()
        if not gold_s or too_complex(gold_s):
            results[i] = None
            continue
        if not pred_s or too_complex(pred_s) or unevaluated(pred_s, gold_s):
            results[i] = False
            continue
        if _INTEGER_RE.fullmatch(pred_s) and _INTEGER_RE.fullmatch(gold_s):
            results[i] = int(pred_s) == int(
                gold_s
            )  # what math-verify says for two integers, without a round trip
            _POOL.stats["in_process"] += 1
            continue
        key = (pred_s, gold_s)
        with _cache_lock:
            cached = _cache.get(key, _UNAVAILABLE)
            if cached is _UNAVAILABLE and pred_s == gold_s and gold_s in _usable_golds:
                cached = True  # identical strings, and the gold is known to parse
        if cached is not _UNAVAILABLE:
            results[i] = cached  # type: ignore[assignment]
            continue
        pending.setdefault(key, []).append(i)
    if pending:
        keys = list(pending)
        for key, verdict in zip(keys, _POOL.run(keys, limit), strict=True):
            if verdict is _UNAVAILABLE:
                continue  # stays None; not cached, the next call tries again
            if verdict is _GAVE_UP:
                verdict = False  # not cached either
            else:
                verdict = None if verdict is None else bool(verdict)
                _remember(key, verdict)
            for i in pending[key]:
                results[i] = verdict
    return results


def answers_equal(pred: Any, gold: Any, timeout: float | None = None) -> bool:
    """Single-pair convenience: True only when verification says equal (unusable gold → False)."""
    return verify_batch([pred], [gold], timeout=timeout)[0] is True


def cluster_answers(answers: Sequence[Any], timeout: float | None = None) -> list[int]:
    """Group answers that are mathematically equal (for majority voting): a cluster id per answer.

    Cluster ids are assigned in order of first appearance (0, 1, …). Each new distinct answer is compared with one
    representative per existing cluster, all in one parallel `verify_batch` call. Empty answers share no cluster.
    """
    labels: list[int] = []
    reps: list[str] = []  # representative answer of each cluster
    seen: dict[str, int] = {}
    for answer in answers:
        text = _as_text(answer).strip()
        if text in seen:
            labels.append(seen[text])
            continue
        label = -1
        if text and reps:
            verdicts = verify_batch([text] * len(reps), reps, timeout=timeout)
            label = next((k for k, v in enumerate(verdicts) if v is True), -1)
        if label < 0:
            label = len(reps)
            reps.append(text)
        if text:
            seen[text] = label
        labels.append(label)
    return labels


def start(wait: bool = True) -> bool:
    """Start the worker processes now rather than on the first call (e.g. while a trainer is being built).

    With `wait`, block until a worker has graded a probe; returns whether verification works.
    """
    with _POOL._lock:
        _POOL._ensure_started()
    if not wait:
        return bool(_POOL._workers)
    probe = f"{time.monotonic_ns()}"  # uncached, so it really goes through a worker
    return _POOL.run([(probe, probe)], DEFAULT_TIMEOUT)[0] is True


def shutdown() -> None:
    """Stop the worker processes now (they also stop at interpreter exit, and restart on the next call)."""
    _POOL.shutdown()


def stats() -> dict[str, int]:
    """Counters since start: integer pairs graded in-process, items graded by workers, timeouts, and workers
    killed/crashed/started."""
    return dict(_POOL.stats)
