"""Multi-process runs: what was launched, which engine trains, and what happens when a rank is lost.

- `check_launch()`: `accelerate launch --cpu --num_processes 2` (or `--num_processes 2` on a machine without GPUs)
  starts ONE process and says nothing; the run would train on one process with the batch of one. Called in
  `r1.train.prepare`, it stops such a run in seconds, naming the command that starts N CPU processes
  (`accelerate launch --multi_gpu --num_processes N --mixed_precision no ...`: torchrun + gloo).
- `honour_fsdp_on_cpu()`: accelerate turns FSDP on only for GPU-family process groups; on CPU (gloo) it silently
  trains DDP instead. With an FSDP accelerate config on CPU, this makes `AcceleratorState` keep the FSDP plugin, so
  FSDP2 shards over gloo and the FSDP code path is the one that runs (and is tested) on CPU.
- `engine_name(accelerator)`: one line saying what actually trains ("DeepSpeed ZeRO-3 ..."), logged at the start.
- `RankWatchdog`: with more than one process, a daemon thread per rank publishes a heartbeat (and its host and pid)
  in the rendezvous store and watches the others'. A peer whose process is gone (same host: its pid; other hosts:
  no heartbeat for `timeout` seconds), or a store that is unreachable that long (rank 0's machine is gone), ends
  this rank with one line `error: rank N was lost ...` and a non-zero exit, even while the main thread is blocked in
  a collective that would otherwise wait for the collective timeout (30 min by default). A rank whose training
  raised publishes that, so the others say `rank N failed` once instead of repeating (or hiding) its error.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from accelerate.state import AcceleratorState
from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

from r1.errors import ConfigError, R1Error, first_line

logger = logging.getLogger(__name__)

CPU_LAUNCH = "accelerate launch --multi_gpu --num_processes {n} --mixed_precision no recipes/r1_zero.py ..."
EXIT_RANK_LOST = 3


class RankLostError(R1Error, RuntimeError):
    """Another process of the job died or failed; this one stops instead of waiting in a collective."""


# ----------------------------------------------------------------------------------------------------------------
# The launch
# ----------------------------------------------------------------------------------------------------------------


def _parent_cmdline() -> list[str]:
    try:
        raw = Path(f"/proc/{os.getppid()}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def _flag(argv: list[str], name: str) -> str | None:
    for i, a in enumerate(argv):
        if a == name and i + 1 < len(argv):
            return argv[i + 1]
        if a.startswith(name + "="):
            return a.split("=", 1)[1]
    return None


def requested_processes(launcher_argv: list[str]) -> int | None:
    """The number of processes an `accelerate launch` command line asked for (flag, else its config file)."""
    if not any(a == "launch" or a.endswith("accelerate.commands.launch") for a in launcher_argv):
        return None
    value = _flag(launcher_argv, "--num_processes") or _flag(launcher_argv, "--num-processes")
    if value is None and (config := _flag(launcher_argv, "--config_file") or _flag(launcher_argv, "--config-file")):
        try:
            import yaml  # only when a launcher config is named

            value = (yaml.safe_load(Path(config).read_text()) or {}).get("num_processes")
        except (OSError, ValueError):
            return None
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def launch_mismatch(launcher_argv: list[str] | None = None, env: dict[str, str] | None = None) -> str | None:
    """Why this single process is not what the launch asked for (None when it is)."""
    env = os.environ if env is None else env
    if int(env.get("WORLD_SIZE", "1") or 1) > 1:
        return None
    argv = _parent_cmdline() if launcher_argv is None else launcher_argv
    n = requested_processes(argv)
    if not n or n <= 1:
        return None
    import torch  # already loaded by the caller; kept local so the launch parsing stays importable alone

    if torch.cuda.is_available() and "--cpu" not in argv and env.get("ACCELERATE_USE_CPU", "").lower() != "true":
        return None
    how = "accelerate launch --cpu" if "--cpu" in argv else "accelerate launch without --multi_gpu on a machine without GPUs"
    return (f"{how} starts 1 process, not the {n} asked for (--num_processes {n} is ignored); for {n} CPU "
            f"processes run: {CPU_LAUNCH.format(n=n)}")


def check_launch() -> None:
    reason = launch_mismatch()
    if reason:
        raise ConfigError(reason)


# ----------------------------------------------------------------------------------------------------------------
# Engines
# ----------------------------------------------------------------------------------------------------------------


def honour_fsdp_on_cpu() -> bool:
    """With an FSDP accelerate config and gloo (no GPU), keep FSDP instead of accelerate's silent DDP. Must run before
    the trainer creates its Accelerator. Returns whether the patch was installed."""
    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true":
        return False
    if getattr(AcceleratorState.__init__, "_r1_fsdp_on_cpu", False):
        return True
    original = AcceleratorState.__init__

    def init(self: Any, *args: Any, fsdp_plugin: Any = None, **kwargs: Any) -> None:
        original(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
        if self.distributed_type == DistributedType.MULTI_CPU:
            self.distributed_type = DistributedType.FSDP
            self.fsdp_plugin = getattr(self, "fsdp_plugin", None) or fsdp_plugin or FullyShardedDataParallelPlugin()

    init._r1_fsdp_on_cpu = True  # type: ignore[attr-defined]
    AcceleratorState.__init__ = init
    return True


def end_process_group() -> None:
    """Destroy the default process group after a successful run. Without it, gloo's worker threads still hold work
    objects when the interpreter shuts down, and a rank can die with SIGABRT ("terminate called without an active
    exception") after its work is done (pytorch/pytorch#190489). Not on failure: a peer may still be in a collective."""
    import torch.distributed as dist  # training or a launched evaluation already imported it

    if dist.is_available() and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception as e:  # noqa: BLE001 - the run's work is done and saved; a teardown error must not fail it
            logger.warning("process group teardown failed after a successful run: %s", first_line(e))


def engine_name(accelerator: Any) -> str:
    """What trains: 'DDP', 'FSDP2', 'DeepSpeed ZeRO-3 (offload optimizer: cpu)', ... with processes and backend."""
    state = accelerator.state
    kind = str(state.distributed_type).split(".")[-1]
    if kind == "DEEPSPEED":
        zero = state.deepspeed_plugin.deepspeed_config.get("zero_optimization", {})
        offload = [f"{k.split('_')[1]}: {v.get('device')}" for k, v in zero.items()
                   if k.startswith("offload_") and isinstance(v, dict) and v.get("device") not in (None, "none")]
        name = f"DeepSpeed ZeRO-{zero.get('stage', '?')}" + (f" (offload {', '.join(offload)})" if offload else "")
    elif kind == "FSDP":
        name = f"FSDP{getattr(state.fsdp_plugin, 'fsdp_version', 1)}"
    elif kind in ("MULTI_CPU", "MULTI_GPU", "MULTI_XPU", "MULTI_NPU"):
        name = "DDP"
    else:
        name = "single process"
    backend = getattr(state, "backend", None) or "none"
    return f"{name}, {accelerator.num_processes} process(es), backend {backend}, device {accelerator.device.type}"


# ----------------------------------------------------------------------------------------------------------------
# Lost ranks
# ----------------------------------------------------------------------------------------------------------------


def _pid_gone(pid: int) -> bool:
    """True when `pid` (on this host) has exited: no such process, or a zombie waiting to be reaped."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False
    return state in ("Z", "X")


class RankWatchdog:
    """Heartbeats through the rendezvous store (see the module docstring). `start()` after the process group
    exists; `stop()` at the end of training."""

    PREFIX = "r1/watchdog/"

    def __init__(self, rank: int, world_size: int, timeout: float = 60.0, interval: float = 0.5,
                 store: Any = None):
        self.rank, self.world_size = int(rank), int(world_size)
        self.timeout, self.interval = float(timeout), float(interval)
        self.store = store
        self.host = socket.gethostname()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peers: dict[int, tuple[str, int]] = {}
        self._seen: dict[int, tuple[int, float]] = {}
        self._report_lock = threading.Lock()

    def _key(self, kind: str, rank: int) -> str:
        return f"{self.PREFIX}{kind}/{rank}"

    def _connect(self) -> Any:
        import torch.distributed as dist  # training already imported it

        addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT")
        if addr and port:  # an own client: the main thread's store connection may be busy in a collective's setup
            return dist.TCPStore(addr, int(port), is_master=False, timeout=timedelta(seconds=max(self.timeout, 10)),
                                 wait_for_workers=False)
        return dist.distributed_c10d._get_default_store()

    def start(self) -> RankWatchdog:
        if self.world_size <= 1:
            return self
        if self.store is None:
            self.store = self._connect()
        self.store.set(self._key("who", self.rank), f"{self.host} {os.getpid()}")
        self.store.add(self._key("beat", self.rank), 1)
        self._thread = threading.Thread(target=self._run, name="r1-rank-watchdog", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """This rank finished normally: stop watching, and tell the others it may exit now."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=max(5 * self.interval, 5.0))  # not inside a store call when the process exits
            try:
                self.store.set(self._key("done", self.rank), "1")
            except Exception:  # noqa: BLE001 - the others finish without it
                pass
            self._thread, self.store = None, None

    def _peer(self, rank: int) -> tuple[str, int] | None:
        if rank not in self._peers:
            key = self._key("who", rank)
            if not self.store.check([key]):
                return None
            host, pid = self.store.get(key).decode().rsplit(" ", 1)
            self._peers[rank] = (host, int(pid))
        return self._peers[rank]

    def lost_peers(self) -> list[tuple[int, str]]:
        """(rank, why) of every peer that is gone, failed, or silent for `timeout` seconds; one heartbeat tick."""
        now = time.monotonic()
        self.store.add(self._key("beat", self.rank), 1)
        out = []
        for r in range(self.world_size):
            if r == self.rank or self.store.check([self._key("done", r)]):
                continue
            if self.store.check([self._key("failed", r)]):
                out.append((r, "failed: " + self.store.get(self._key("failed", r)).decode()))
                continue
            beats = self.store.add(self._key("beat", r), 0)
            last = self._seen.get(r)
            if last is None or beats != last[0]:
                self._seen[r] = (beats, now)
            peer = self._peer(r)
            if peer is not None and peer[0] == self.host and _pid_gone(peer[1]):
                out.append((r, f"its process (pid {peer[1]} on {peer[0]}) ended"))
            elif now - self._seen[r][1] > self.timeout:
                where = f" on {peer[0]}" if peer else ""
                out.append((r, f"no heartbeat{where} for {now - self._seen[r][1]:.0f} s"))
        return out

    def _run(self) -> None:
        unreachable_since: float | None = None
        while not self._stop.wait(self.interval):
            try:
                lost = self.lost_peers()
                unreachable_since = None
            except Exception as e:  # noqa: BLE001 - a store that cannot be reached is itself the signal
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > self.timeout:
                    addr = f"{os.environ.get('MASTER_ADDR')}:{os.environ.get('MASTER_PORT')}"
                    self.report(f"rank 0's machine was lost (the rendezvous store at {addr} is unreachable: "
                                f"{first_line(e)})")
                continue
            if lost and not self._stop.is_set():
                self.report(self.describe(lost))

    def describe(self, lost: list[tuple[int, str]]) -> str:
        rank, why = lost[0]
        if why.startswith("failed: "):
            return f"rank {rank} failed (its error is shown above); rank {self.rank} stopped too"
        return f"rank {rank} was lost ({why})"

    def report(self, message: str) -> None:
        """Print the one line and end this process now (the main thread may be blocked in a collective)."""
        with self._report_lock:
            self._stop.set()
            print(f"error: {message}; rank {self.rank} exits. Resume with --resume_from_checkpoint last",
                  file=sys.stderr, flush=True)
            os._exit(EXIT_RANK_LOST)

    def publish_failure(self, error: BaseException) -> None:
        """This rank's training raised: tell the others (they stop with one line that points here)."""
        if self.store is None or self._stop.is_set():
            return
        self._stop.set()  # this rank's own error is what it shows; it does not also report the peers it takes down
        try:
            self.store.set(self._key("failed", self.rank), first_line(error)[:300])
        except Exception:  # noqa: BLE001 - the store may be gone too; the error is still raised here
            pass

    def explain(self, error: BaseException, wait: float = 5.0) -> None:
        """Training raised on this rank: if a peer was lost or failed first, that is the cause: report it (exits).
        Otherwise this rank's error is the original: publish it and return (the caller re-raises it)."""
        if self._thread is None:
            return
        peer_error = isinstance(error, KeyboardInterrupt) or "gloo" in str(error).lower() or \
            "connection" in str(error).lower() or type(error).__name__ in ("DistBackendError", "DistNetworkError")
        if peer_error:
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    lost = self.lost_peers()
                except Exception:  # noqa: BLE001
                    lost = []
                if lost:
                    self.report(self.describe(lost))
                time.sleep(self.interval)
        self.publish_failure(error)
