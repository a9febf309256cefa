"""Shared test fixtures: the path to the shared data sets; tests never reach a hub."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = Path(os.environ.get("R1_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))

# Tests never touch a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Environment for training/eval subprocesses: offline, quiet, one torch thread (2 shared cores thrash with more).
SUBPROCESS_ENV = {
    **os.environ,
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "PYTHONWARNINGS": "ignore",
    "OMP_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
}


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The shared data sets. Missing data is a failure, never a skip: a CI machine without them would otherwise
    pass while running none of the tests on real data."""
    if not DATA_DIR.is_dir():
        pytest.fail(
            f"shared data sets not found at {DATA_DIR}: put them there (../shared/data next to the repository) or set "
            "R1_DATA_DIR to the folder that holds them (math_train.jsonl, math500.jsonl, gsm8k_*.jsonl, ...)",
            pytrace=False,
        )
    return DATA_DIR


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from intra-op threads, and on a busy 2-core CI machine they lose a lot. Use it with
    `pytestmark = pytest.mark.usefixtures("one_torch_thread")`."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def count_direct_steps(monkeypatch):
    """The mask mode of every call to `r1.decode_step.DirectDecoder` (one per decode step it ran) during the test."""
    from r1.decode_step import DirectDecoder

    calls: list[str | None] = []
    original = DirectDecoder.__call__

    def counting(self, *args, **kwargs):
        calls.append(self.mask_mode)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(DirectDecoder, "__call__", counting)
    return calls


def free_port() -> int:
    """A free TCP port for a multi-process launch: the default rendezvous port (29500) may still be held by the
    previous test's processes, which fails the next launch with "address already in use"."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
