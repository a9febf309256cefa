"""Run untrusted Python programs against tests, locally, safely enough for model output as root in CI.

Standard library only (no torch, no third-party packages). Used by `rewards.code`; usable on its own:

    from rewards.sandbox import SandboxPool
    with SandboxPool(workers=2) as pool:
        result = pool.run("def f(x):\\n    return x + 1", ["assert f(1) == 2"], mode="asserts")
    result.passed, result.status      # [True], "ok"

Threat model
============
The program is hostile: it was written by a model under RL pressure, and a wrong pass is a training signal for
cheating. It may loop, sleep, fork, allocate, flood output, exit early, kill, read secrets, write files, open
connections, return objects that lie about equality, or introspect the process it runs in. The caller (a trainer
or the test suite, often root) must stay unharmed, and the verdict must not be forgeable by the program.

Verdicts: two processes per run, and the program never sees the tests
---------------------------------------------------------------------
Each run uses two fresh processes with different unprivileged uids:

* the *candidate* process C executes the program, then serves requests: "call this function with these
  arguments", "get/set this attribute". It returns plain data only: exact built-in types (None, bool, int,
  float, complex, str, bytes, list, tuple, dict, set, frozenset, range, dict views; generators and built-in
  iterators are materialised as iterators). Anything else (instances of the program's classes, functions,
  subclasses of built-ins) stays in C and is seen by the tests as an opaque handle that can be called and have
  attributes read/written, and that is equal only to itself.
* the *tester* process T executes the tests (the dataset's asserts or HumanEval `check`), in a namespace where
  each of the program's globals is a decoded copy (plain data), a handle (functions, classes, objects) or the
  same stdlib module. T decides every verdict itself and streams it to the launcher over a pipe C does not hold.

So: `sys.exit(0)` / `os._exit(0)` / a crash before or during the tests make calls fail (no verdict from C is
ever trusted); printing "PASS" goes nowhere that matters; an object whose `__eq__` says yes to everything never
reaches the comparison (it is a handle there, equal only to itself); monkeypatching builtins, `sys.settrace`,
frame or `gc` introspection only affect C, which holds no verdict, no nonce and no test text: C is forked before
the launcher has read the tests from its control pipe, from a fork server that never reads tests at all, so the
tests (and their expected values) are not in C's memory, not even as freed bytes. C cannot signal, ptrace or
read the memory of T (different uid, T is non-dumpable, and C lives in its own PID namespace).

What this does not catch (inherent to test-based rewards, not to this sandbox): programs that special-case the
visible inputs, and HumanEval helpers the program redefines (e.g. `poly`, `encode_cyclic`) unless the tests
define their own copy; `rewards.code_data` puts the prompt's helpers into the HumanEval test program for this.
Semantics that differ from one-process execution: the tests see opaque handles for non-plain results (so a test
that compares instances of the program's classes, checks `isinstance` against them, iterates them or does
arithmetic on them fails), in-place mutation is copied back only for top-level list/dict/set arguments, and
callables defined in the tests cannot be passed to the program.

Isolation (root, the CI case; all verified by tests/test_code_sandbox.py)
------------------------------------------------------------------------
| concern | mechanism |
|---|---|
| fresh process per program | C and T are forked per run from a warm fork server ("zygote", `python -I -S`) that never runs candidate code |
| no network | the zygote unshares a network namespace once (no interfaces but a down loopback); seccomp also denies non-AF_UNIX sockets |
| no privileges | C and T `setgroups([])`, `setresgid`/`setresuid` to a random per-zygote uid pair (not 65534, so that RLIMIT_NPROC and the final kill sweep are per sandbox), `PR_SET_NO_NEW_PRIVS`, all mounts `nosuid` |
| filesystem | the zygote unshares a mount namespace: every mount remounted read-only, a fresh tmpfs (size- and inode-capped) over /tmp holds the per-run work directories (0700, owned by C's uid; removed after the run); /proc remounted with `hidepid=2` (other uids' processes invisible) |
| root-only files, other users' files | C's uid owns nothing outside its work directory |
| processes | per run a new PID namespace with C as its init; killing C makes the kernel kill every descendant; RLIMIT_NPROC (binds: the uid is unprivileged); without a PID namespace a `kill(-1, SIGKILL)` sweep running as C's uid |
| time | RLIMIT_CPU, and the launcher kills everything at the wall-clock deadline |
| memory | RLIMIT_AS per process (RLIMIT_NPROC x RLIMIT_AS bounds a fork bomb's total) |
| output | C's stdout/stderr go to a pipe the launcher drains; past the cap the run is killed (status `output_limit`) |
| files | RLIMIT_FSIZE, RLIMIT_NOFILE, RLIMIT_CORE=0, tmpfs size/inode caps |
| environment | the zygote starts with an empty environment; C gets only HOME/TMPDIR (its work dir), PATH and LANG |
| huge ints | `sys.set_int_max_str_digits(4300)` in C and T; JSON frames capped in size |
| kernel attack surface | seccomp filter in C (x86-64, aarch64): EPERM for namespace/mount/ptrace/bpf/keyctl/module/perf/ userfaultfd syscalls, `clone` with namespace flags, and sockets other than AF_UNIX; `clone3` and `io_uring_setup` ENOSYS |
| parent death | the zygote exits at EOF on its control pipe (the caller died or closed the pool); PR_SET_PDEATHSIG on the launcher and both children: a killed caller leaves nothing behind |

Fallbacks (logged once; `SandboxPool.isolation` says which mechanisms are active)
---------------------------------------------------------------------------------
* Root, but a namespace cannot be created (e.g. a container without CAP_SYS_ADMIN): the missing namespace is
  skipped. No network namespace: the program can reach the network and local services (loopback) unless seccomp
  is active (it denies AF_INET/AF_INET6/AF_NETLINK/AF_PACKET sockets; AF_UNIX sockets to world-writable
  filesystem sockets remain possible). No mount namespace: the file system is not read-only; the program can
  write where its uid may (world-writable /tmp, /var/tmp, /dev/shm) and can see other programs' files there if
  they are world-readable. No PID namespace: descendants are killed by a uid sweep (still complete, because the
  uid is unique to this sandbox).
* Not root: no uid change is possible. The sandbox then needs an unprivileged user namespace (it maps the caller's
  uid, creates network, mount and per-run PID namespaces and drops every capability in C and T with
  SECBIT_NOROOT). C and T run as the caller's uid: C can read whatever the caller can read (the mount namespace
  makes it read-only, not invisible), and the uid sweep is impossible (the PID namespace is what kills
  descendants). Without user namespaces and without root, `SandboxPool` refuses to start (`SandboxUnavailable`)
  unless `isolation="rlimits"` is asked for explicitly: then only rlimits, a new session, an empty environment
  and a private work directory apply, which protects against accidents, not against a hostile program (it runs
  as the caller, can signal the caller, use the network, and a daemonised descendant can escape the kill).
"""

from __future__ import annotations

import atexit
import builtins
import ctypes
import errno
import json
import logging
import os
import platform
import secrets
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

logger = logging.getLogger(__name__)

# ----------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Limits:
    """Per-run limits. `wall_s` covers loading the program and all tests; `memory_mb` is RLIMIT_AS per process."""

    wall_s: float = 10.0
    cpu_s: float = 5.0
    memory_mb: int = 512
    output_bytes: int = 1 << 20
    nproc: int = 8
    file_mb: int = 16
    nofile: int = 64


@dataclass
class RunResult:
    """One run's verdicts. `passed[i]` is the tester's verdict on test i (False when it did not run).

    status: "ok" (all tests ran), "program_error" (the program did not load: syntax error, exception, exit),
    "timeout", "output_limit", "crashed" (a sandbox process died early), "tests_error" (a test did not compile),
    "sandbox_error" (the sandbox itself failed: the verdict is unknown, not a failure of the program).
    """

    passed: list[bool]
    status: str
    detail: str = ""
    output: str = ""
    seconds: float = 0.0

    @property
    def all_passed(self) -> bool:
        return self.status == "ok" and bool(self.passed) and all(self.passed)

    @property
    def fraction(self) -> float:
        return sum(self.passed) / len(self.passed) if self.passed else 0.0


class SandboxUnavailable(RuntimeError):
    """No isolation mechanism that can contain a hostile program is available here."""


MODES = ("asserts", "check")
WORK_ROOT = "/tmp"  # inside the zygote's mount namespace this is a fresh tmpfs
MAX_FRAME = 64 << 20
INT_DIGITS = 4300
OUTPUT_KEEP = 4096  # bytes of the program's output kept in RunResult.output
_MAX_ITEMS = 2_000_000
_MAX_DEPTH = 200

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
CLONE_NEWCGROUP = 0x02000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME, MS_STRICTATIME = 1024, 2048, 1 << 21, 1 << 24
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_SECUREBITS, PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP = 1, 4, 28, 38, 22
SECCOMP_MODE_FILTER = 2

_libc = None


def _c():
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def _check(ret: int, what: str) -> int:
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _unshare(flags: int) -> None:
    _check(_c().unshare(ctypes.c_int(flags)), "unshare")


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    enc = lambda s: None if s is None else s.encode()  # noqa: E731
    _check(_c().mount(enc(src), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def _prctl(option: int, arg: int) -> int:
    return _c().prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0))


# ----------------------------------------------------------------------------------------------- framing


def _read_exact(fd: int, n: int) -> bytes:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, min(n - got, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _send_frame(fd: int, obj: Any) -> None:
    data = json.dumps(obj, separators=(",", ":")).encode()
    _write_all(fd, struct.pack("<I", len(data)) + data)


def _recv_frame(fd: int) -> Any:
    (n,) = struct.unpack("<I", _read_exact(fd, 4))
    if n > MAX_FRAME:
        raise ValueError("frame too large")
    return json.loads(_read_exact(fd, n))


# ----------------------------------------------------------------------------------------------- values
# Plain data crosses between C and T as tagged JSON: a JSON object is always a tag {"tag": payload}.

_ITER_TYPES: tuple[type, ...] = ()


def _iter_types() -> tuple[type, ...]:
    global _ITER_TYPES
    if not _ITER_TYPES:
        import itertools  # sandbox processes only (warmed in the fork server): off the caller's import path
        import types  # sandbox processes only, as above

        samples = [iter([]), iter(()), iter(set()), iter(""), iter(b""), iter(range(0)), iter({}), iter({}.values()),
                   iter({}.items()), reversed([]), reversed(range(0)), iter(bytearray())]
        kinds = {type(s) for s in samples} | {map, filter, zip, enumerate, reversed, types.GeneratorType}
        kinds |= {itertools.chain, itertools.islice, itertools.count, itertools.cycle, itertools.repeat,
                  itertools.accumulate, itertools.permutations, itertools.combinations, itertools.product,
                  itertools.starmap, itertools.groupby, itertools.zip_longest, itertools.takewhile,
                  itertools.dropwhile, itertools.filterfalse, itertools.compress,
                  itertools.combinations_with_replacement}
        _ITER_TYPES = tuple(kinds)
    return _ITER_TYPES


def _extra_types() -> tuple[Any, type, type]:
    import collections  # sandbox processes only (encoding values): off the caller's import path
    import decimal  # sandbox processes only, as above
    import fractions  # sandbox processes only, as above

    return collections, decimal.Decimal, fractions.Fraction


# Imported once in the fork server: every run starts with them loaded (faster, and available where the
# interpreter's own stdlib directory is unreadable to the sandbox uid and could not be bind-mounted).
_WARM_MODULES = (
    "array", "bisect", "cmath", "collections", "copy", "dataclasses", "datetime", "decimal", "enum", "fractions",
    "functools", "hashlib", "heapq", "itertools", "json", "math", "numbers", "operator", "random", "re",
    "statistics", "string", "struct", "textwrap", "types", "typing", "unicodedata",
)


class _Encoder:
    """Exact built-in types become tagged JSON; anything else becomes a handle (`to_handle`) or an error."""

    def __init__(self, to_handle):
        self.to_handle = to_handle
        self.items = 0

    def enc(self, x: Any, depth: int = 0) -> Any:
        self.items += 1
        if self.items > _MAX_ITEMS or depth > _MAX_DEPTH:
            raise ValueError("value too large or too deeply nested")
        t = type(x)
        if x is None or t is bool or t is str:
            return x
        if t is int:
            if x.bit_length() > 14_000:  # ~4300 decimal digits
                raise ValueError("integer too large")
            return x
        if t is float:
            return x
        d = depth + 1
        if t is list:
            return {"l": [self.enc(v, d) for v in list.__iter__(x)]}
        if t is tuple:
            return {"t": [self.enc(v, d) for v in tuple.__iter__(x)]}
        if t is dict:
            return {"d": [[self.enc(k, d), self.enc(v, d)] for k, v in dict.items(x)]}
        if t is set:
            return {"s": [self.enc(v, d) for v in set.__iter__(x)]}
        if t is frozenset:
            return {"f": [self.enc(v, d) for v in frozenset.__iter__(x)]}
        if t is bytes:
            return {"b": x.hex()}
        if t is bytearray:
            return {"ba": bytes(x).hex()}
        if t is complex:
            return {"c": [x.real, x.imag]}
        if t is range:
            return {"rg": [x.start, x.stop, x.step]}
        coll, decimal_, fraction_ = _extra_types()
        if t is coll.Counter or t is coll.OrderedDict or t is coll.defaultdict:
            tag = {coll.Counter: "ctr", coll.OrderedDict: "od", coll.defaultdict: "dd"}[t]
            return {tag: [[self.enc(k, d), self.enc(v, d)] for k, v in dict.items(x)]}
        if t is coll.deque:
            return {"dq": [self.enc(v, d) for v in x]}
        if t is decimal_:
            return {"dec": decimal_.__str__(x)}
        if t is fraction_:
            return {"fr": [self.enc(x.numerator, d), self.enc(x.denominator, d)]}
        if t is type and getattr(builtins, x.__name__, None) is x:
            return {"bt": x.__name__}
        kind = t.__name__
        if kind in ("dict_keys", "dict_values", "dict_items") and t.__module__ == "builtins":
            return {kind: [self.enc(v, d) for v in x]}
        if t in _iter_types():
            out = []
            for v in x:
                out.append(self.enc(v, d))
                if len(out) > _MAX_ITEMS:
                    raise ValueError("iterator too long")
            return {"it": out}
        return self.to_handle(x)


def _decode(x: Any, from_handle, depth: int = 0) -> Any:
    if depth > _MAX_DEPTH + 2:
        raise ValueError("too deeply nested")
    if not isinstance(x, dict):
        if isinstance(x, list):
            raise ValueError("untagged list")
        return x
    if len(x) != 1:
        raise ValueError("bad tag")
    ((tag, v),) = x.items()
    d = depth + 1
    if tag == "l":
        return [_decode(i, from_handle, d) for i in v]
    if tag == "t":
        return tuple(_decode(i, from_handle, d) for i in v)
    if tag == "d":
        return {_decode(k, from_handle, d): _decode(i, from_handle, d) for k, i in v}
    if tag == "s":
        return {_decode(i, from_handle, d) for i in v}
    if tag == "f":
        return frozenset(_decode(i, from_handle, d) for i in v)
    if tag == "b":
        return bytes.fromhex(v)
    if tag == "ba":
        return bytearray.fromhex(v)
    if tag == "c":
        return complex(float(v[0]), float(v[1]))
    if tag == "rg":
        return range(int(v[0]), int(v[1]), int(v[2]))
    if tag == "it":
        return iter([_decode(i, from_handle, d) for i in v])
    if tag == "dict_keys":
        return {_decode(i, from_handle, d): None for i in v}.keys()
    if tag == "dict_values":
        return dict(enumerate(_decode(i, from_handle, d) for i in v)).values()
    if tag == "dict_items":
        return dict(_decode(i, from_handle, d) for i in v).items()
    if tag in ("ctr", "od", "dd"):
        coll = _extra_types()[0]
        pairs = [(_decode(k, from_handle, d), _decode(i, from_handle, d)) for k, i in v]
        return coll.Counter(dict(pairs)) if tag == "ctr" else coll.OrderedDict(pairs) if tag == "od" \
            else coll.defaultdict(None, pairs)
    if tag == "dq":
        return _extra_types()[0].deque(_decode(i, from_handle, d) for i in v)
    if tag == "dec":
        return _extra_types()[1](str(v))
    if tag == "fr":
        num, den = _decode(v[0], from_handle, d), _decode(v[1], from_handle, d)
        if type(num) is not int or type(den) is not int:
            raise ValueError("bad fraction")
        return _extra_types()[2](num, den)
    if tag == "bt":
        value = getattr(builtins, str(v), None)
        if type(value) is not type:
            raise ValueError("not a builtin type")
        return value
    if tag == "r":
        return from_handle(v)
    raise ValueError(f"unknown tag {tag!r}")


# ----------------------------------------------------------------------------------------------- candidate (C)


def _candidate_main(program: str, sock: int) -> None:
    """Run the program, then serve the tester's requests. Nothing here is trusted by anyone."""
    handles: dict[int, Any] = {}

    def to_handle(obj: Any) -> dict:
        h = len(handles) + 1
        handles[h] = obj
        try:
            name = type(obj).__name__
            name = name if isinstance(name, str) else "object"
        except Exception:
            name = "object"
        return {"r": [h, name[:100], bool(callable(obj))]}

    def from_handle(v: Any) -> Any:
        return handles[int(v)]

    ns: dict[str, Any] = {"__name__": "__solution__", "__builtins__": builtins}
    try:
        exec(compile(program, "<solution>", "exec", dont_inherit=True), ns)
    except BaseException as e:  # SystemExit included: exiting before the tests is a failure
        _send_frame(sock, {"err": _describe(e)})
        return
    import types  # candidate process only (already warm in the fork server)

    glob = {}
    for name, value in list(ns.items()):
        if not isinstance(name, str) or name.startswith("__"):
            continue
        try:
            if isinstance(value, types.ModuleType):
                glob[name] = {"mod": str(value.__name__)}
                continue
            origin = getattr(value, "__module__", None)
            qual = getattr(value, "__name__", None)
            if (isinstance(origin, str) and isinstance(qual, str) and origin in sys.modules
                    and getattr(sys.modules[origin], qual, None) is value):
                glob[name] = {"std": [origin, qual]}  # e.g. `from math import isclose`
                continue
        except Exception:
            pass
        try:
            glob[name] = {"v": _Encoder(to_handle).enc(value)}
        except Exception:
            glob[name] = {"v": to_handle(value)}
    _send_frame(sock, {"g": glob})
    while True:
        try:
            req = _recv_frame(sock)
        except EOFError:
            return
        try:
            op = req["op"]
            target = handles[int(req["h"])]
            if op == "call":
                args = [_decode(a, from_handle) for a in req["a"]]
                kwargs = {str(k): _decode(v, from_handle) for k, v in req["k"].items()}
                value = target(*args, **kwargs)
                enc = _Encoder(to_handle)
                back = {}
                for i, a in enumerate(args):  # in-place mutation of top-level list/dict/set arguments
                    if type(a) in (list, dict, set):
                        back[str(i)] = enc.enc(a)
                reply = {"v": enc.enc(value), "m": back}
            elif op == "get":
                reply = {"v": _Encoder(to_handle).enc(getattr(target, str(req["n"])))}
            elif op == "set":
                setattr(target, str(req["n"]), _decode(req["v"], from_handle))
                reply = {"v": None}
            else:
                reply = {"e": ["RuntimeError", "bad request"]}
        except BaseException as e:
            reply = {"e": [_exc_name(e), _describe(e, with_type=False)]}
        _send_frame(sock, reply)


def _exc_name(e: BaseException) -> str:
    try:
        return str(type(e).__name__)[:100]
    except Exception:
        return "Exception"


def _describe(e: BaseException, with_type: bool = True) -> str:
    try:
        msg = str(e)[:300]
    except Exception:
        msg = ""
    return f"{_exc_name(e)}: {msg}" if with_type else msg


# ----------------------------------------------------------------------------------------------- tester (T)


_NO_IMPORT = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "__hello__", "__phello__",
              "webbrowser", "pydoc", "ensurepip", "venv", "site"}


class RemoteError(Exception):
    """An exception raised by the program; its type is not a built-in exception."""


class _Link:
    def __init__(self, sock: int):
        self.sock = sock
        self.dead: str | None = None

    def request(self, req: dict) -> Any:
        if self.dead:
            raise RemoteError(self.dead)
        try:
            _send_frame(self.sock, req)
            reply = _recv_frame(self.sock)
        except (EOFError, OSError, ValueError) as e:
            self.dead = f"the program's process ended ({type(e).__name__})"
            raise RemoteError(self.dead) from None
        if not isinstance(reply, dict):
            raise RemoteError("bad reply")
        if "e" in reply:
            name, msg = (list(reply["e"]) + ["", ""])[:2]
            cls = getattr(builtins, str(name), None)
            if isinstance(cls, type) and issubclass(cls, Exception) and not issubclass(cls, RemoteError):
                raise cls(str(msg))
            raise RemoteError(f"{name}: {msg}")
        return reply

    def decode(self, v: Any) -> Any:
        return _decode(v, self.handle)

    def handle(self, v: Any) -> Remote:
        h, name, is_callable = v
        return Remote(self, int(h), str(name), bool(is_callable))

    def encode(self, x: Any) -> Any:
        def refuse(obj):
            if isinstance(obj, Remote) and object.__getattribute__(obj, "_link") is self:
                return {"r": object.__getattribute__(obj, "_h")}
            raise TypeError(f"cannot pass a {type(obj).__name__} to the program")

        return _Encoder(refuse).enc(x)


class Remote:
    """A value that stays in the program's process: callable, attributes readable and writable, equal only to
    itself (so an `__eq__` that claims equality with anything never runs where the verdict is decided)."""

    __slots__ = ("_link", "_h", "_name", "_callable")

    def __init__(self, link: _Link, h: int, name: str, is_callable: bool):
        object.__setattr__(self, "_link", link)
        object.__setattr__(self, "_h", h)
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_callable", is_callable)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        link = object.__getattribute__(self, "_link")
        h = object.__getattribute__(self, "_h")
        req = {"op": "call", "h": h, "a": [link.encode(a) for a in args],
               "k": {k: link.encode(v) for k, v in kwargs.items()}}
        reply = link.request(req)
        for i, state in dict(reply.get("m") or {}).items():
            i = int(i)
            if 0 <= i < len(args):
                _apply_mutation(args[i], link.decode(state))
        return link.decode(reply["v"])

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        link = object.__getattribute__(self, "_link")
        return link.decode(link.request({"op": "get", "h": object.__getattribute__(self, "_h"), "n": name})["v"])

    def __setattr__(self, name: str, value: Any) -> None:
        link = object.__getattribute__(self, "_link")
        link.request({"op": "set", "h": object.__getattribute__(self, "_h"), "n": name, "v": link.encode(value)})

    def __repr__(self) -> str:
        return f"<{object.__getattribute__(self, '_name')} in the program's process>"


def _apply_mutation(arg: Any, state: Any) -> None:
    if type(arg) is list and type(state) is list:
        arg[:] = state
    elif type(arg) is dict and type(state) is dict:
        arg.clear()
        arg.update(state)
    elif type(arg) is set and type(state) is set:
        arg.clear()
        arg.update(state)


def _tester_main(tests: list[str], mode: str, sock: int, out: int) -> None:
    """Run the tests against the program's process; write one verdict line per test to `out`, then "done"."""
    import importlib  # tester process only: off the caller's import path

    def emit(obj: dict) -> None:
        _write_all(out, json.dumps(obj).encode() + b"\n")

    link = _Link(sock)
    codes = []
    for i, src in enumerate(tests):
        try:
            codes.append(compile(src, f"<test {i}>", "exec", dont_inherit=True))
        except BaseException as e:
            emit({"done": True, "status": "tests_error", "detail": _describe(e)})
            return
    try:
        hello = _recv_frame(sock)
    except BaseException as e:
        emit({"done": True, "status": "program_error", "detail": f"no program ({type(e).__name__})"})
        return
    if not isinstance(hello, dict) or "g" not in hello:
        detail = str(hello.get("err", "bad hello"))[:400] if isinstance(hello, dict) else "bad hello"
        emit({"done": True, "status": "program_error", "detail": detail})
        return
    # The tests see the program's globals, except that a builtin or stdlib-module name always means the real
    # thing (a program defining `abs`, `round` or a fake `math` must not change what the tests compute), and a
    # module or a stdlib object the program imported is imported here for real (never a handle into the program).
    base: dict[str, Any] = {"__name__": "__tests__", "__builtins__": builtins}
    stdlib = set(getattr(sys, "stdlib_module_names", ())) - _NO_IMPORT

    def std_module(name: str) -> Any:
        if name.split(".")[0] not in stdlib:
            raise ImportError(name)
        return importlib.import_module(name)

    for name, spec in dict(hello["g"]).items():
        name = str(name)
        try:
            if name in stdlib:
                base[name] = std_module(name)
            elif "mod" in spec:
                base[name] = std_module(str(spec["mod"]))
            elif "std" in spec:
                base[name] = getattr(std_module(str(spec["std"][0])), str(spec["std"][1]))
            elif not hasattr(builtins, name):
                base[name] = link.decode(spec["v"])
        except BaseException:
            continue
    detail = ""
    for i, code in enumerate(codes):
        ok = False
        try:
            exec(code, dict(base))
            ok = True
        except BaseException as e:  # SystemExit/KeyboardInterrupt from a test are failures too
            if not detail:
                detail = f"test {i}: {_describe(e)}"
        emit({"i": i, "ok": ok})
    emit({"done": True, "status": "ok", "detail": detail[:500]})


# ----------------------------------------------------------------------------------------------- seccomp

# (x86-64 number, aarch64 number) for syscalls the program never needs; None where the arch lacks it.
_DENY = {
    "ptrace": (101, 117), "process_vm_readv": (310, 270), "process_vm_writev": (311, 271),
    "unshare": (272, 97), "setns": (308, 268), "mount": (165, 40), "umount2": (166, 39),
    "pivot_root": (155, 41), "chroot": (161, 51), "bpf": (321, 280), "keyctl": (250, 219),
    "add_key": (248, 217), "request_key": (249, 218), "perf_event_open": (298, 241), "userfaultfd": (323, 282),
    "init_module": (175, 105), "finit_module": (313, 273), "delete_module": (176, 106), "kexec_load": (246, 104),
    "reboot": (169, 142), "swapon": (167, 224), "swapoff": (168, 225), "open_by_handle_at": (304, 265),
    "name_to_handle_at": (303, 264), "fsopen": (430, 430), "fsmount": (432, 432), "move_mount": (429, 429),
    "open_tree": (428, 428), "mount_setattr": (442, 442), "acct": (163, 89), "settimeofday": (164, 170),
    "clock_settime": (227, 112), "sethostname": (170, 161), "setdomainname": (171, 162),
    "lookup_dcookie": (212, 18), "iopl": (172, None), "ioperm": (173, None), "vhangup": (153, 58),
    "quotactl": (179, 60), "kcmp": (312, 272), "pidfd_getfd": (438, 438), "fanotify_init": (300, 262),
}
_ENOSYS = {"clone3": (435, 435), "io_uring_setup": (425, 425)}
_ARCHES = {"x86_64": (0, 0xC000003E, 41, 56), "aarch64": (1, 0xC00000B7, 198, 220)}  # idx, audit arch, socket, clone
_NS_FLAGS = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP


def _seccomp_program() -> bytes | None:
    arch = _ARCHES.get(platform.machine())
    if arch is None:
        return None
    idx, audit_arch, nr_socket, nr_clone = arch
    LD, JEQ, JSET, RET = 0x20, 0x15, 0x45, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, BPF_JMP|JSET|K, BPF_RET|K
    ALLOW, KILL = 0x7FFF0000, 0x80000000
    EPERM, ENOSYS = 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
    ins: list[tuple[int, int, int, int]] = [
        (LD, 0, 0, 4), (JEQ, 1, 0, audit_arch), (RET, 0, 0, KILL),  # wrong arch: kill
        (LD, 0, 0, 0),  # syscall number
    ]
    for table, action in ((_DENY, EPERM), (_ENOSYS, ENOSYS)):
        for nrs in table.values():
            nr = nrs[idx]
            if nr is not None:
                ins += [(JEQ, 0, 1, nr), (RET, 0, 0, action)]
    # socket(family, ...): only AF_UNIX (1)
    ins += [(JEQ, 0, 3, nr_socket), (LD, 0, 0, 16), (JEQ, 1, 0, socket.AF_UNIX), (RET, 0, 0, EPERM), (LD, 0, 0, 0)]
    # clone(flags, ...): no namespace flags (x86-64 and aarch64 both pass flags first)
    ins += [(JEQ, 0, 3, nr_clone), (LD, 0, 0, 16), (JSET, 0, 1, _NS_FLAGS), (RET, 0, 0, EPERM)]
    ins += [(RET, 0, 0, ALLOW)]
    return b"".join(struct.pack("<HBBI", *i) for i in ins)


def _install_seccomp() -> bool:
    prog = _seccomp_program()
    if prog is None:
        return False
    buf = ctypes.create_string_buffer(prog)

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]

    fprog = SockFprog(len(prog) // 8, ctypes.cast(buf, ctypes.c_void_p))
    ret = _c().prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER),
                     ctypes.c_void_p(ctypes.addressof(fprog)), ctypes.c_ulong(0), ctypes.c_ulong(0))
    return ret == 0


# ----------------------------------------------------------------------------------------------- zygote


def _die_with_parent() -> None:
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _mountinfo() -> list[tuple[str, set[str]]]:
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            target = parts[4].encode().decode("unicode_escape")
            out.append((target, set(parts[5].split(","))))
    return out


def _readonly_everything() -> None:
    flag_of = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC, "noatime": MS_NOATIME,
               "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME, "strictatime": MS_STRICTATIME}
    for target, opts in _mountinfo():
        if "ro" in opts:
            continue
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID
        for name, bit in flag_of.items():
            if name in opts:
                flags |= bit
        try:
            _mount(None, target, None, flags)
        except OSError:
            if target == "/":
                raise


def _bind_stdlib() -> list[str]:
    """The interpreter's import path, bind-mounted read-only under WORK_ROOT/.py: the sandbox uid may not be able
    to reach it where it is (e.g. a pyenv under /root, mode 0700)."""
    top = os.path.join(WORK_ROOT, ".py")
    os.mkdir(top, 0o755)
    os.chmod(top, 0o755)
    out = []
    for i, path in enumerate(p for p in sys.path if p and os.path.isdir(p)):
        target = os.path.join(top, str(i))
        os.mkdir(target, 0o755)
        _mount(path, target, None, MS_BIND | MS_REC)
        _mount(None, target, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
        out.append(target)
    return out


def _enter_user_namespace() -> None:
    """Not root: become root of a new user namespace that maps only the caller's uid/gid."""
    uid, gid = os.getuid(), os.getgid()
    try:
        _unshare(CLONE_NEWUSER)
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write(f"0 {uid} 1")
        with open("/proc/self/gid_map", "w") as f:
            f.write(f"0 {gid} 1")
    except OSError as e:
        raise SandboxUnavailable(f"not root and no user namespace ({e})") from None


def _pid_namespace_works() -> bool:
    """Whether a child can unshare a PID namespace and fork its init (probed in a throwaway child)."""
    pid = os.fork()
    if pid == 0:
        try:
            _unshare(CLONE_NEWPID)
            inner = os.fork()
            if inner == 0:
                os._exit(0 if os.getpid() == 1 else 1)
            _, status = os.waitpid(inner, 0)
            os._exit(0 if os.waitstatus_to_exitcode(status) == 0 else 1)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status) == 0


def _setup_zygote(cfg: dict) -> dict:
    """Namespaces shared by all runs of this zygote; returns what is active."""
    want = cfg["isolation"]
    info = {"mode": want, "root": os.geteuid() == 0, "userns": False, "netns": False, "mntns": False,
            "readonly_fs": False, "hidepid": False, "pidns": False, "uid_drop": False, "seccomp": False,
            "uid_c": cfg["uid_c"], "uid_t": cfg["uid_t"], "work_root": WORK_ROOT, "notes": []}
    if want == "rlimits":
        import tempfile  # fallback only: the isolated modes use a tmpfs, not tempfile

        info["work_root"] = tempfile.mkdtemp(prefix="r1-sandbox-")
        info["notes"].append("rlimits only: no namespaces, no uid change")
        return info
    if info["root"]:
        info["uid_drop"] = True
    else:
        _enter_user_namespace()
        info["userns"] = True
    try:
        _unshare(CLONE_NEWNET)
        info["netns"] = True
    except OSError as e:
        info["notes"].append(f"no network namespace: {e}")
    try:
        _unshare(CLONE_NEWIPC | CLONE_NEWUTS)
    except OSError as e:
        info["notes"].append(f"no ipc/uts namespace: {e}")
    try:
        _unshare(CLONE_NEWNS)
        info["mntns"] = True
        _mount(None, "/", None, MS_REC | MS_PRIVATE)
        try:
            _readonly_everything()
            info["readonly_fs"] = True
        except OSError as e:
            info["notes"].append(f"file system not read-only: {e}")
        _mount("tmpfs", WORK_ROOT, "tmpfs", MS_NOSUID | MS_NODEV, "size=128m,nr_inodes=32768,mode=0711")
        if info["uid_drop"]:
            info["sys_path"] = _bind_stdlib()
        try:
            _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=2")
            info["hidepid"] = True
        except OSError as e:
            info["notes"].append(f"/proc not remounted: {e}")
    except OSError as e:
        info["notes"].append(f"no mount namespace: {e}")
        if info["mntns"]:
            raise SandboxUnavailable(f"mount namespace set-up failed: {e}") from None
        import tempfile  # fallback only, as above

        info["work_root"] = tempfile.mkdtemp(prefix="r1-sandbox-")
        os.chmod(info["work_root"], 0o711)
    info["pidns"] = _pid_namespace_works()  # a PID namespace per run: probe once
    if not info["pidns"]:
        info["notes"].append("no PID namespace: descendants are killed by a uid sweep")
        if info["userns"]:
            raise SandboxUnavailable("user namespace without PID namespaces cannot kill descendants")
    info["seccomp"] = _seccomp_program() is not None
    return info


def _zygote_main() -> None:
    """Fork server: reads jobs on fd 0, forks a launcher per job; the launcher writes the result on fd 1.

    It exits when fd 0 reaches EOF, i.e. when the caller closes the pool or dies (not PR_SET_PDEATHSIG: that
    follows the *thread* that started us, and pools start fork servers from short-lived worker threads).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(INT_DIGITS)
    cfg = _recv_frame(0)
    try:
        info = _setup_zygote(cfg)
    except SandboxUnavailable as e:
        _send_frame(1, {"unavailable": str(e)})
        return
    _iter_types()  # warm, so children do not import itertools/types under rlimits
    for name in _WARM_MODULES:
        try:
            __import__(name)
        except ImportError:
            pass
    _send_frame(1, {"ready": True, "info": info})
    while True:
        try:
            job = _recv_frame(0)
            program = _read_exact(0, int(job["plen"])).decode("utf-8", "replace")
        except (EOFError, OSError):
            return
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _launcher(job, program, info)
                code = 0
            except BaseException:
                import traceback  # only when a launcher fails

                traceback.print_exc()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            # the launcher died; the control stream may be out of step: report and stop (the pool respawns us)
            try:
                _send_frame(1, {"status": "sandbox_error", "passed": [], "detail": "launcher failed"})
            except OSError:
                pass
            return


# ----------------------------------------------------------------------------------------------- launcher


def _drop_privileges(uid: int, info: dict) -> None:
    if info["uid_drop"]:
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
    elif info["userns"]:
        # root inside our user namespace: keep uid 0 there but drop every capability, for good
        SECBIT_NOROOT, SECBIT_NOROOT_LOCKED, SECBIT_NO_SETUID_FIXUP, SECBIT_NO_SETUID_FIXUP_LOCKED = 1, 2, 4, 8
        SECBIT_KEEP_CAPS_LOCKED, SECBIT_NO_CAP_AMBIENT_RAISE, SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED = 32, 64, 128
        bits = (SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED
                | SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED)
        if _prctl(PR_SET_SECUREBITS, bits) != 0:
            raise OSError(ctypes.get_errno(), "securebits")
        PR_CAPBSET_DROP = 24
        for cap in range(64):
            if _prctl(PR_CAPBSET_DROP, cap) != 0 and ctypes.get_errno() == errno.EINVAL:
                break
        header = (ctypes.c_uint32 * 2)(0x20080522, 0)
        data = (ctypes.c_uint32 * 6)()
        _check(_c().capset(header, data), "capset")
    if _prctl(PR_SET_NO_NEW_PRIVS, 1) != 0:
        raise OSError(ctypes.get_errno(), "no_new_privs")


def _set_limits(lim: Limits, nproc: int, memory_mb: int, fsize_mb: int) -> None:
    import resource  # sandbox processes only: off the caller's import path

    def cap(kind: int, value: int) -> None:
        resource.setrlimit(kind, (value, value))

    cpu = max(1, int(lim.cpu_s + 0.999))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    cap(resource.RLIMIT_AS, memory_mb << 20)
    cap(resource.RLIMIT_FSIZE, fsize_mb << 20)
    cap(resource.RLIMIT_NOFILE, lim.nofile)
    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_NPROC, nproc)
    if hasattr(resource, "RLIMIT_MSGQUEUE"):
        cap(resource.RLIMIT_MSGQUEUE, 0)
    if hasattr(resource, "RLIMIT_MEMLOCK"):
        cap(resource.RLIMIT_MEMLOCK, 0)


def _close_fds_except(keep: set[int]) -> None:
    fds = sorted(int(x) for x in os.listdir("/proc/self/fd") if x.isdigit()) if os.path.isdir("/proc/self/fd") \
        else range(3, 1024)
    for fd in fds:
        if fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass


def _reset_signals() -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGCHLD, signal.SIGPIPE, signal.SIGHUP, signal.SIGXFSZ):
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass


def _child_candidate(program: str, sock: int, out_w: int, workdir: str, lim: Limits, info: dict) -> None:
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_w, 1)
    os.dup2(out_w, 2)
    _close_fds_except({0, 1, 2, sock})
    _reset_signals()
    try:
        os.setsid()
    except OSError:
        pass
    os.chdir(workdir)
    os.environ.clear()
    os.environ.update({"HOME": workdir, "TMPDIR": workdir, "PATH": "/usr/local/bin:/usr/bin:/bin",
                       "LANG": "C.UTF-8"})
    _set_limits(lim, lim.nproc, lim.memory_mb, lim.file_mb)
    _drop_privileges(info["uid_c"], info)
    _die_with_parent()
    if info.get("sys_path"):
        sys.path[:] = info["sys_path"]
    if info["seccomp"] and not _install_seccomp():
        raise OSError("seccomp filter not installed")
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(INT_DIGITS)
    sys.stdout = open(1, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)
    sys.stdin = open(0, encoding="utf-8", closefd=False)
    sys.argv = ["solution"]
    _candidate_main(program, sock)


def _child_tester(tests_r: int, sock: int, out_w: int, lim: Limits, info: dict, mode: str) -> None:
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    _close_fds_except({0, 1, 2, tests_r, sock, out_w})
    _reset_signals()
    os.chdir("/")
    os.environ.clear()
    _set_limits(lim, 4, max(1024, lim.memory_mb), 0)
    _drop_privileges(info["uid_t"], info)
    _prctl(PR_SET_DUMPABLE, 0)
    if info.get("sys_path"):
        sys.path[:] = info["sys_path"]
    _die_with_parent()
    if hasattr(sys, "set_int_max_str_digits"):
        sys.set_int_max_str_digits(INT_DIGITS)
    chunks = []
    while True:
        chunk = os.read(tests_r, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(tests_r)
    tests = json.loads(b"".join(chunks))
    _tester_main([str(t) for t in tests], mode, sock, out_w)


def _kill_uid(uid: int) -> None:
    """Kill every process of `uid` (a uid unique to this sandbox): a child that becomes it and kills -1."""
    pid = os.fork()
    if pid == 0:
        try:
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            for _ in range(3):
                os.kill(-1, signal.SIGKILL)
        except BaseException:
            pass
        os._exit(0)
    os.waitpid(pid, 0)


def _rmtree(path: str) -> None:
    import shutil  # launcher process only: off the caller's import path

    def onerror(func, p, exc):
        try:
            os.chmod(p, 0o700)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=onerror)


def _collect(verdict_r: int, out_r: int, n_tests: int, lim: Limits, deadline: float) -> tuple[list[bool], str, str, bytearray]:
    """Read the tester's verdict stream and the program's output until "done", the deadline or the output cap."""
    passed = [False] * n_tests
    status, detail, output = "crashed", "", bytearray()
    out_total = 0
    pending = b""
    fds = [verdict_r, out_r]
    done = False
    while not done:
        left = deadline - time.monotonic()
        if left <= 0:
            status, detail = "timeout", f"wall time {lim.wall_s:g} s"
            break
        ready, _, _ = select.select(fds, [], [], left)
        if out_r in ready:
            chunk = os.read(out_r, 1 << 16)
            if not chunk:
                fds.remove(out_r)
            else:
                out_total += len(chunk)
                if len(output) < OUTPUT_KEEP:
                    output += chunk[: OUTPUT_KEEP - len(output)]
                if out_total > lim.output_bytes:
                    status, detail = "output_limit", f"more than {lim.output_bytes} bytes of output"
                    break
        if verdict_r in ready:
            chunk = os.read(verdict_r, 1 << 16)
            if not chunk:
                detail = "the tester ended without a verdict"
                break
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                msg = json.loads(line)
                if msg.get("done"):
                    status, detail, done = msg["status"], msg.get("detail", ""), True
                    break
                i = int(msg["i"])
                if 0 <= i < n_tests:
                    passed[i] = bool(msg["ok"])
    return passed, status, detail, output


def _reap(pid_c: int, pid_t: int, info: dict) -> None:
    """Kill and wait for C and T, and (without a PID namespace) every descendant they left."""
    for pid in (pid_c, pid_t):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    for pid in (pid_c, pid_t):
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    if not info["pidns"]:
        if info["uid_drop"]:
            _kill_uid(info["uid_c"])
            _kill_uid(info["uid_t"])
        else:
            for pid in (pid_c,):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    pass


def _launcher(job: dict, program: str, info: dict) -> None:
    """Per run, as the zygote's user: fork T, fork C (before the tests are read), feed T the tests, collect."""
    _die_with_parent()
    t0 = time.monotonic()
    lim = Limits(**job["limits"])
    mode = job["mode"]
    n_tests = int(job["n"])
    workdir = os.path.join(info["work_root"], secrets.token_hex(12))
    os.mkdir(workdir, 0o700)
    if info["uid_drop"]:
        os.chown(workdir, info["uid_c"], info["uid_c"])
    sock_t, sock_c = socket.socketpair()
    tests_r, tests_w = os.pipe()
    verdict_r, verdict_w = os.pipe()
    out_r, out_w = os.pipe()

    pid_t = os.fork()
    if pid_t == 0:
        try:
            _child_tester(tests_r, sock_t.fileno(), verdict_w, lim, info, mode)
        finally:
            os._exit(0)
    if info["pidns"]:
        _unshare(CLONE_NEWPID)
    pid_c = os.fork()
    if pid_c == 0:
        try:
            _child_candidate(program, sock_c.fileno(), out_w, workdir, lim, info)
        finally:
            os._exit(0)
    for fd in (tests_r, verdict_w, out_w):
        os.close(fd)
    sock_t.close()
    sock_c.close()
    # only now read the tests from the control pipe: C was forked without them
    tests_blob = _read_exact(0, int(job["tlen"]))
    try:
        _write_all(tests_w, tests_blob)
    except OSError:
        pass
    os.close(tests_w)
    del tests_blob

    passed, status, detail, output = _collect(verdict_r, out_r, n_tests, lim, t0 + lim.wall_s)
    _reap(pid_c, pid_t, info)
    _rmtree(workdir)
    if status not in ("ok", "timeout", "crashed"):
        passed = [False] * n_tests  # timeout/crashed keep the verdicts the tester gave before (fraction mode)
    result = {"status": status, "passed": passed, "detail": str(detail)[:500],
              "output": output.decode("utf-8", "replace"), "seconds": time.monotonic() - t0}
    _send_frame(1, result)


# ----------------------------------------------------------------------------------------------- pool (caller side)

_BOOT = (
    "import importlib.util, sys\n"
    "spec = importlib.util.spec_from_file_location('_r1_sandbox', sys.argv[1])\n"
    "mod = importlib.util.module_from_spec(spec); sys.modules['_r1_sandbox'] = mod\n"
    "spec.loader.exec_module(mod); mod._zygote_main()\n"
)
_WARNED: set[str] = set()


class _Zygote:
    def __init__(self, isolation: str):
        uid_base = 1_000_000_000 + 2 * secrets.randbelow(500_000_000)
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-B", "-X", "utf8", "-c", _BOOT, os.path.abspath(__file__)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={}, close_fds=True, start_new_session=True,
            cwd="/",
        )
        self.lock = threading.Lock()
        _send_frame(self.proc.stdin.fileno(), {"isolation": isolation, "uid_c": uid_base, "uid_t": uid_base + 1})
        reply = self._read(60.0)
        if reply is None or "unavailable" in reply or not reply.get("ready"):
            self.kill()
            why = reply.get("unavailable") if isinstance(reply, dict) else "the fork server did not start"
            raise SandboxUnavailable(str(why))
        self.info: dict = reply["info"]

    def _read(self, timeout: float) -> dict | None:
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        buf = b""
        need = 4
        length = None
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                return None
            chunk = os.read(fd, need - len(buf))
            if not chunk:
                return None
            buf += chunk
            if len(buf) == need:
                if length is None:
                    (length,) = struct.unpack("<I", buf)
                    if length > MAX_FRAME:
                        return None
                    buf, need = b"", length
                    if need == 0:
                        return None
                else:
                    return json.loads(buf)

    def run(self, program: str, tests: list[str], mode: str, lim: Limits) -> dict | None:
        prog = program.encode("utf-8", "surrogatepass")
        blob = json.dumps(tests).encode()
        job = {"plen": len(prog), "tlen": len(blob), "n": len(tests), "mode": mode, "limits": asdict(lim)}
        header = json.dumps(job).encode()
        try:
            _write_all(self.proc.stdin.fileno(), struct.pack("<I", len(header)) + header + prog + blob)
        except OSError:
            return None
        return self._read(lim.wall_s + 20.0)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.proc.kill()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=10)
        except Exception:
            pass
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except Exception:
                pass


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_workers() -> int:
    """`R1_SANDBOX_WORKERS`, else one per core (at least 2, at most 16), shared by the local training processes."""
    raw = os.environ.get("R1_SANDBOX_WORKERS", "")
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    local = os.environ.get("LOCAL_WORLD_SIZE", "1")
    ranks = int(local) if local.isdigit() and int(local) > 0 else 1
    return max(2, min(_cpu_count() // ranks, 16))


@dataclass
class Job:
    """One program and its tests. mode "asserts": each test is a snippet scored on its own; mode "check": one
    test program, scored as a whole."""

    program: str
    tests: list[str]
    mode: str = "asserts"
    limits: Limits | None = None


class SandboxPool:
    """Warm fork servers ("zygotes"), one per worker; `run_many` spreads jobs over them in parallel.

    isolation: "auto" (root: uid drop + namespaces + seccomp; not root: user namespace, else SandboxUnavailable),
    or "rlimits" (no containment of a hostile program; explicit opt-in only). Thread-safe.
    """

    def __init__(self, workers: int | None = None, limits: Limits | None = None, isolation: str = "auto"):
        if isolation not in ("auto", "rlimits"):
            raise ValueError(f"isolation must be 'auto' or 'rlimits', not {isolation!r}")
        self.workers = workers or default_workers()
        self.limits = limits or Limits()
        self.isolation_mode = isolation
        self._zygotes: list[_Zygote | None] = [None] * self.workers
        self._free: list[int] = list(range(self.workers))
        self._cond = threading.Condition()
        self._closed = False
        first = self._get(0)  # fail fast when no isolation is possible
        self.isolation: dict = dict(first.info)
        for note in self.isolation.get("notes", []):
            if note not in _WARNED:
                _WARNED.add(note)
                logger.warning("sandbox: %s", note)

    def _get(self, slot: int) -> _Zygote:
        z = self._zygotes[slot]
        if z is None or not z.alive():
            if z is not None:
                z.kill()
            z = _Zygote(self.isolation_mode)
            self._zygotes[slot] = z
        return z

    def run(self, program: str, tests: list[str], mode: str = "asserts", limits: Limits | None = None) -> RunResult:
        return self.run_many([Job(program, tests, mode, limits)])[0]

    def run_many(self, jobs: list[Job]) -> list[RunResult]:
        """Results in job order. Jobs run in parallel on the pool's workers."""
        results: list[RunResult | None] = [None] * len(jobs)
        queue = list(range(len(jobs)))
        qlock = threading.Lock()

        def worker() -> None:
            while True:
                with qlock:
                    if not queue:
                        return
                    i = queue.pop(0)
                results[i] = self._run_one(jobs[i])

        n = min(self.workers, len(jobs))
        if n <= 1:
            worker()
        else:
            threads = [threading.Thread(target=worker, daemon=True) for _ in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        return [r if r is not None else RunResult([], "sandbox_error", "no result") for r in results]

    def _run_one(self, job: Job) -> RunResult:
        if job.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {job.mode!r}")
        lim = job.limits or self.limits
        with self._cond:
            while not self._free:
                if self._closed:
                    return RunResult([False] * len(job.tests), "sandbox_error", "pool closed")
                self._cond.wait()
            slot = self._free.pop()
        try:
            try:
                z = self._get(slot)
            except SandboxUnavailable as e:
                return RunResult([False] * len(job.tests), "sandbox_error", str(e))
            reply = z.run(job.program, list(job.tests), job.mode, lim)
            if reply is None and not z.alive():  # it had died before or while taking the job: once more
                z.kill()
                self._zygotes[slot] = None
                try:
                    z = self._get(slot)
                except SandboxUnavailable as e:
                    return RunResult([False] * len(job.tests), "sandbox_error", str(e))
                reply = z.run(job.program, list(job.tests), job.mode, lim)
            if reply is None or not isinstance(reply, dict) or "status" not in reply:
                z.kill()
                self._zygotes[slot] = None
                return RunResult([False] * len(job.tests), "sandbox_error", "the fork server did not answer")
            if reply["status"] == "sandbox_error":
                z.kill()
                self._zygotes[slot] = None
            passed = [bool(p) for p in reply.get("passed", [])]
            if len(passed) != len(job.tests):
                passed = [False] * len(job.tests)
            return RunResult(passed, str(reply["status"]), str(reply.get("detail", "")),
                             str(reply.get("output", "")), float(reply.get("seconds", 0.0)))
        finally:
            with self._cond:
                self._free.append(slot)
                self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        for i, z in enumerate(self._zygotes):
            if z is not None:
                z.kill()
                self._zygotes[i] = None

    def __enter__(self) -> SandboxPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


_DEFAULT: SandboxPool | None = None
_DEFAULT_LOCK = threading.Lock()


def default_pool() -> SandboxPool:
    """The process-wide pool (created on first use, closed at exit)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            _DEFAULT = SandboxPool()
            atexit.register(_DEFAULT.close)
        return _DEFAULT
