"""The code sandbox against hostile programs: each must score 0.0 while the caller stays unharmed.

All hostile programs run in one parallel batch (module fixture); each test then checks one of them. "Unharmed":
this process is alive and its pool still works, its environment secret and a root-only file were not read, no
file appeared outside the sandbox, a 127.0.0.1 listener got no connection, and no process of the sandbox uids is
left afterwards.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path

import pytest

from rewards.code import code_reward, score
from rewards.sandbox import Job, Limits, SandboxPool

LIMITS = Limits(wall_s=4.0, cpu_s=2.0, memory_mb=256, output_bytes=64 << 10, nproc=8)
SECRET = "r1-secret-" + secrets.token_hex(8)
os.environ["R1_SANDBOX_TEST_SECRET"] = SECRET  # set before any pool starts: the sandbox must not pass it on


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The caller's assets an attack could reach: a root-only file, a listener, paths outside the sandbox."""
    base = tmp_path_factory.mktemp("sandbox_world")
    os.chmod(base, 0o755)
    root_only = base / "root_only.txt"
    root_only.write_text(SECRET)
    os.chmod(root_only, 0o600)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    outside = [base / "written_by_sandbox.txt", Path("/tmp") / f"r1-sandbox-escape-{secrets.token_hex(6)}",
               Path("/var/tmp") / f"r1-sandbox-escape-{secrets.token_hex(6)}",
               Path("/dev/shm") / f"r1-sandbox-escape-{secrets.token_hex(6)}",
               Path(__file__).resolve().parent / f"r1-sandbox-escape-{secrets.token_hex(6)}"]
    yield {"base": base, "root_only": root_only, "port": listener.getsockname()[1], "listener": listener,
           "outside": outside}
    listener.close()
    for p in outside:
        if p.exists():
            p.unlink()


def _attacks(world) -> dict[str, tuple[str, list[str], str]]:
    """name -> (program, tests, mode). Every test would pass if the attack worked."""
    port, root_only, outside = world["port"], world["root_only"], world["outside"]
    mbpp = ["assert f(1) == 2", "assert f(2) == 3"]
    check = ["def check(candidate):\n    assert candidate(1) == 2\n    assert candidate(5) == 6\n\ncheck(f)\n"]
    writes = "\n".join(f"    try:\n        open({str(p)!r}, 'w').write('x')\n        ok += 1\n    except OSError:\n"
                       f"        pass" for p in outside)
    return {
        "infinite loop": ("def f(x):\n    while True:\n        pass\n", mbpp, "asserts"),
        "sleep": ("import time\ntime.sleep(1000)\ndef f(x):\n    return x + 1\n", mbpp, "asserts"),
        "fork bomb": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
                      mbpp, "asserts"),
        "memory bomb": ("a = []\nwhile True:\n    a.append(bytearray(50 << 20))\n", mbpp, "asserts"),
        "huge allocation": ("x = bytearray(1 << 40)\ndef f(x):\n    return x + 1\n", mbpp, "asserts"),
        "stdout flood": ("import sys\nwhile True:\n    sys.stdout.write('x' * 65536)\n", mbpp, "asserts"),
        "sys.exit(0) before tests": ("import sys\nsys.exit(0)\n", mbpp, "asserts"),
        "os._exit(0) before tests": ("import os\nos._exit(0)\n", check, "check"),
        "os._exit(0) inside the call": ("import os\ndef f(x):\n    os._exit(0)\n", check, "check"),
        "raise SystemExit in the call": ("def f(x):\n    raise SystemExit(0)\n", mbpp, "asserts"),
        "print PASS": ("print('PASS'); print('All tests passed'); print('ok')\ndef f(x):\n    return 0\n",
                       check, "check"),
        "__eq__ always True": ("class A:\n    def __eq__(self, o):\n        return True\n    def __ne__(self, o):\n"
                               "        return False\n    __hash__ = object.__hash__\ndef f(x):\n    return A()\n",
                               check, "check"),
        "int subclass __eq__": ("class I(int):\n    def __eq__(self, o):\n        return True\n"
                                "    __hash__ = int.__hash__\ndef f(x):\n    return I(0)\n", mbpp, "asserts"),
        "shadow abs/math/round": ("class M:\n    def isclose(self, *a, **k):\n        return True\nmath = M()\n"
                                  "def abs(x):\n    return 0\ndef round(*a):\n    return 2\ndef f(x):\n    return 0.0\n",
                                  ["import math\nassert math.isclose(f(1), 2.0)", "assert abs(f(1) - 2.0) < 1e-9",
                                   "assert round(f(1)) == 2"], "asserts"),
        "segfault": ("import ctypes\nctypes.string_at(0)\n", mbpp, "asserts"),
        "segfault in the call": ("import ctypes\ndef f(x):\n    return ctypes.string_at(0)\n", check, "check"),
        "kill the parent": ("import os, signal\ndef f(x):\n    os.kill(os.getppid(), signal.SIGKILL)\n"
                            "    return x + 1\n", ["assert f(1) == 3"], "asserts"),
        "kill the caller and everyone": (f"import os, signal\nfor pid in ({os.getpid()}, {os.getppid()}, -1, 1):\n"
                                         "    try:\n        os.kill(pid, signal.SIGKILL)\n    except OSError:\n"
                                         "        pass\ndef f(x):\n    return 0\n", mbpp, "asserts"),
        "read a root-only file": (f"def f(x):\n    return open({str(root_only)!r}).read()\n",
                                  [f"assert f(1) == {SECRET!r}"], "asserts"),
        "read /etc/shadow": ("def f(x):\n    return len(open('/etc/shadow').read()) > 0\n", ["assert f(1)"],
                             "asserts"),
        "read environment secret": ("import os\ndef f(x):\n    return os.environ.get('R1_SANDBOX_TEST_SECRET')\n",
                                    [f"assert f(1) == {SECRET!r}"], "asserts"),
        "read the caller's /proc environ": (
            f"def f(x):\n    return {SECRET!r} in open('/proc/{os.getpid()}/environ').read()\n",
            ["assert f(1) is True"], "asserts"),
        "write outside the work dir": (f"def f(x):\n    ok = 0\n{writes}\n    return ok\n",
                                       ["assert f(1) >= 1"], "asserts"),
        "network connection": (f"import socket\ndef f(x):\n    s = socket.create_connection(('127.0.0.1', {port}), 2)\n"
                               "    s.sendall(b'hi')\n    return x + 1\n", mbpp, "asserts"),
        "huge int to str": ("def f(x):\n    return len(str(10 ** 100000)) + x - 100000\n", mbpp, "asserts"),
        "huge str to int": ("def f(x):\n    return int('9' * 100000) % 7 + x\n", mbpp, "asserts"),
        "namespace escape (unshare)": ("import ctypes\ndef f(x):\n"
                                       "    return 2 if ctypes.CDLL(None).unshare(0x10000000) == 0 else 0\n",
                                       ["assert f(1) == 2"], "asserts"),
        "setuid root": ("import os\ndef f(x):\n    os.setuid(0)\n    return x + 1\n", mbpp, "asserts"),
        "read the tests from memory": (_MEMORY_SCAN, ["assert f(1) == 90125"], "asserts"),
        "find the tests via gc and frames": (
            "import gc, sys\ndef f(x):\n    seen = []\n    fr = sys._getframe()\n    while fr:\n"
            "        seen += [repr(v) for v in fr.f_locals.values()]\n        fr = fr.f_back\n"
            "    for o in gc.get_objects():\n        try:\n            seen.append(repr(o)[:2000])\n"
            "        except Exception:\n            pass\n    import re\n    for s in seen:\n"
            "        m = re.search(r'f\\(1\\) == (\\d+)', s)\n        if m:\n            return int(m.group(1))\n"
            "    return -1\n", ["assert f(1) == 77031"], "asserts"),
        "overwrite builtins/AssertionError": ("import builtins\nbuiltins.AssertionError = Exception\n"
                                              "builtins.isinstance = lambda *a: True\ndef f(x):\n    return 0\n",
                                              check, "check"),
    }


_MEMORY_SCAN = r'''
import ctypes, re
def f(x):
    needle = b"assert f(1) == "
    for line in open("/proc/self/maps"):
        parts = line.split()
        if "r" not in parts[1] or (len(parts) > 5 and parts[5] in ("[vvar]", "[vsyscall]", "[vvar_vclock]")):
            continue
        lo, hi = (int(v, 16) for v in parts[0].split("-"))
        try:
            data = ctypes.string_at(lo, hi - lo)
        except Exception:
            continue
        for m in re.finditer(re.escape(needle) + rb"(\d+)", data):
            if m.group(1) != b"":
                return int(m.group(1))
    return -1
'''


def _sandbox_processes(uids: set[int]) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid in uids:
                    found.append(int(entry))
            except OSError:
                pass
    return found


@pytest.fixture(scope="module")
def pool():
    with SandboxPool(workers=2, limits=LIMITS) as p:
        yield p


@pytest.fixture(scope="module")
def hostile(pool, world):
    attacks = _attacks(world)
    # A run with the same tests first: nothing of an earlier run may be left for the memory scan to find.
    pool.run("def f(x):\n    return 90125\n", ["assert f(1) == 90125"])
    names = list(attacks)
    t = time.monotonic()
    results = pool.run_many([Job(*attacks[n]) for n in names])
    return {"results": dict(zip(names, results, strict=True)), "seconds": time.monotonic() - t, "attacks": attacks}


def test_isolation_mechanisms_active_as_root(pool):
    info = pool.isolation
    if os.geteuid() != 0:
        pytest.skip("the full set of mechanisms needs root")
    for key in ("uid_drop", "netns", "mntns", "readonly_fs", "pidns", "hidepid", "seccomp"):
        assert info[key], (key, info)


@pytest.mark.parametrize("name", list(_attacks({"port": 1, "root_only": "x", "outside": []})))
def test_hostile_program_scores_zero(hostile, world, pool, name):
    result = hostile["results"][name]
    assert score(result) == 0.0, (name, result)
    assert score(result, fraction=True) == 0.0, (name, result)
    assert not any(result.passed), (name, result)


def test_caller_unharmed(hostile, world, pool):
    results = hostile["results"]
    # the pool still works, so its fork servers and this process survived every attack
    assert pool.run("def f(x):\n    return x + 1\n", ["assert f(1) == 2"]).all_passed
    for p in world["outside"]:
        assert not p.exists(), p
    try:
        conn, _ = world["listener"].accept()
        conn.close()
        pytest.fail("a sandboxed program connected to the caller's 127.0.0.1 listener")
    except BlockingIOError:
        pass
    assert world["root_only"].read_text() == SECRET
    assert os.environ["R1_SANDBOX_TEST_SECRET"] == SECRET
    # every process of the sandbox uids is gone (fork bomb included)
    uids = {z.info[k] for z in pool._zygotes if z is not None for k in ("uid_c", "uid_t")}
    deadline = time.monotonic() + 5
    while _sandbox_processes(uids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _sandbox_processes(uids)
    # the attacks that should have been stopped by a limit were
    assert results["infinite loop"].status in ("timeout", "ok")  # wall clock, or RLIMIT_CPU killed the program
    assert results["sleep"].status == "timeout"
    assert results["stdout flood"].status == "output_limit"
    assert results["sys.exit(0) before tests"].status == "program_error"
    assert hostile["seconds"] < 30


def test_work_directories_removed(pool):
    """Runs leave nothing in the fork server's private /tmp (seen from outside through /proc/PID/root)."""
    if not pool.isolation["mntns"]:
        pytest.skip("no mount namespace")
    r = pool.run("import os\nopen('left.txt', 'w').write('x' * 1000)\nos.mkdir('d')\nos.chmod('d', 0)\n"
                 "def f(x):\n    return os.getcwd()\n", ["assert f(1).startswith('/tmp/')"])
    assert r.all_passed, r
    for z in pool._zygotes:
        if z is not None:
            left = [e for e in os.listdir(f"/proc/{z.proc.pid}/root/tmp") if e != ".py"]
            assert left == []


def test_no_network_interfaces(pool):
    prog = ("import socket\ndef f(x):\n    try:\n        socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n"
            "        return 'socket'\n    except OSError as e:\n        return 'denied'\n")
    assert pool.run(prog, ["assert f(1) == 'denied'"]).all_passed
    prog = "import socket\ndef f(x):\n    a, b = socket.socketpair()\n    a.sendall(b'x')\n    return b.recv(1)\n"
    assert pool.run(prog, ["assert f(1) == b'x'"]).all_passed  # AF_UNIX between its own ends still works


def test_environment_is_empty(pool):
    prog = "import os\ndef f(x):\n    return sorted(os.environ)\n"
    assert pool.run(prog, ["assert set(f(1)) <= {'HOME', 'TMPDIR', 'PATH', 'LANG', 'LC_CTYPE'}"]).all_passed


def test_runs_unprivileged(pool):
    prog = "import os\ndef f(x):\n    return (os.getuid(), os.geteuid(), os.getgroups())\n"
    info = pool.isolation
    if not info["uid_drop"]:
        pytest.skip("not root")
    # a per-fork-server uid far from real accounts (not root, not nobody), no supplementary groups
    assert pool.run(prog, ["u = f(1)\nassert u[0] == u[1] >= 1_000_000_000 and u[2] == []"]).all_passed


# ----------------------------------------------------------------------------------------------- positive cases


def test_correct_programs_pass(pool):
    jobs = [
        Job("def f(x):\n    print('debug', x)\n    return x + 1\n", ["assert f(1) == 2", "assert f(-1) == 0"]),
        Job("import heapq\nfrom fractions import Fraction\ndef f(xs):\n    return heapq.nsmallest(2, xs)\n"
            "def g(a, b):\n    return Fraction(a, b)\n",
            ["assert f([5, 1, 3]) == [1, 3]", "assert g(1, 2) == Fraction(1, 2)"]),
        Job("from collections import Counter\ndef f(xs):\n    return Counter(xs)\n", ["assert f('aab') == {'a': 2, 'b': 1}"]),
        Job("def f(xs):\n    xs.sort()\n", ["x = [3, 1, 2]\nf(x)\nassert x == [1, 2, 3]"]),
        Job("def f(n):\n    return (i * i for i in range(n))\n", ["assert list(f(3)) == [0, 1, 4]"]),
        Job("def f(x):\n    if x < 0:\n        raise ValueError('neg')\n    return x\n",
            ["try:\n    f(-1)\nexcept ValueError:\n    pass\nelse:\n    assert False"]),
        Job("class Node:\n    def __init__(self, v):\n        self.v = v\n        self.left = None\n"
            "def depth(n):\n    return 0 if n is None else 1 + depth(n.left)\n",
            ["root = Node(1)\nroot.left = Node(2)\nassert depth(root) == 2"]),
        Job("def f(x):\n    return [x, (x, 1.5), {x: {x}}, b'ab', None, True, 2 + 3j, range(2)]\n",
            ["assert f(1) == [1, (1, 1.5), {1: {1}}, b'ab', None, True, 2 + 3j, range(2)]"]),
        Job("def add(a, b):\n    return a + b\n",
            ["def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate('a', 'b') == 'ab'\n\n"
             "check(add)\n"], "check"),
        Job("def f(x):\n    return type(x)\n", ["assert f(1) is int", "assert f('') == str"]),
    ]
    results = pool.run_many(jobs)
    for job, r in zip(jobs, results, strict=True):
        assert r.all_passed, (job.program, r)


def test_fraction_and_partial_results(pool):
    r = pool.run("def f(x):\n    return 2\n", ["assert f(1) == 2", "assert f(2) == 3", "assert f(3) == 2"])
    assert r.status == "ok" and r.passed == [True, False, True]
    assert score(r) == 0.0 and score(r, fraction=True) == pytest.approx(2 / 3)
    # a test that hangs: the earlier verdicts stand, the rest are failures
    slow = Limits(wall_s=2.0, cpu_s=1.0)
    r = pool.run("def f(x):\n    while x > 1:\n        pass\n    return x\n",
                 ["assert f(1) == 1", "assert f(2) == 2", "assert f(1) == 1"], limits=slow)
    assert r.status in ("timeout", "ok") and r.passed == [True, False, False], r  # wall clock or RLIMIT_CPU


def test_code_reward_on_hostile_completions():
    completions = ["```python\nimport os\nos._exit(0)\n```", "```python\ndef f(x):\n    return x + 1\n```"]
    assert code_reward(completions, tests=[["assert f(1) == 2"]] * 2) == [0.0, 1.0]


def test_killed_caller_leaves_nothing_behind():
    """SIGKILL the process that owns a busy pool: its fork servers, launchers and programs all go away."""
    import signal
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    script = (
        f"import sys, threading; sys.path.insert(0, {str(root)!r})\n"
        "from rewards.sandbox import Job, Limits, SandboxPool\n"
        "p = SandboxPool(workers=2, limits=Limits(wall_s=3.0, cpu_s=2.0))\n"
        "p.run('x = 1', ['assert x == 1'])\n"
        "job = Job('import os, time\\nos.fork()\\ntime.sleep(100)', ['assert 1'])\n"
        "threading.Thread(target=p.run_many, args=([job, job],), daemon=True).start()\n"
        "import time; time.sleep(0.5)\n"
        "print(' '.join(f'{z.proc.pid}:{z.info[\"uid_c\"]}:{z.info[\"uid_t\"]}' for z in p._zygotes if z), flush=True)\n"
        "time.sleep(100)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline().split()
    assert line, "the child did not start its pool"
    zygotes = [int(x.split(":")[0]) for x in line]
    uids = {int(u) for x in line for u in x.split(":")[1:]}
    assert _sandbox_processes(uids), "the programs should be running"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (_sandbox_processes(uids) or any(os.path.exists(f"/proc/{z}") for z in zygotes)):
        time.sleep(0.2)
    assert not _sandbox_processes(uids)
    assert not [z for z in zygotes if os.path.exists(f"/proc/{z}")]
