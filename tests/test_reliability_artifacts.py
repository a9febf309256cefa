"""r1.artifacts under real SIGKILLs: a writer killed at random moments never leaves a whole file half-written, and
JSONL logs lose at most their torn last line, which readers skip and `repair_jsonl` removes.

(These writers back metrics.jsonl, train_samples.jsonl, summary.json, curves.png, r1_config.yaml and eval's
samples.jsonl / results.json; checkpoints are staged and renamed by r1.guards, tested in test_reliability_runs.py.)
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from r1.artifacts import iter_jsonl, read_jsonl, repair_jsonl

REPO = Path(__file__).resolve().parents[1]

WRITER = r"""
import sys
from r1.artifacts import append_jsonl, atomic_write_json
folder = sys.argv[1]
pad = "x" * 400_000
i = 0
print("ready", flush=True)
while True:
    i += 1
    atomic_write_json(f"{folder}/state.json", {"i": i, "pad": pad})
    append_jsonl(f"{folder}/log.jsonl", [{"i": i, "j": j, "pad": pad[:20_000]} for j in range(3)])
"""


def test_sigkill_mid_write_leaves_readable_artifacts(tmp_path):
    rng = random.Random(0)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    kept = 0
    for _ in range(6):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path)], stdout=subprocess.PIPE, env=env)
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.05, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = json.loads((tmp_path / "state.json").read_text())  # the old or the new file, never a mix
        assert len(state["pad"]) == 400_000
        records = list(iter_jsonl(tmp_path / "log.jsonl"))  # a torn last line is skipped, not an error
        assert records and all(len(r["pad"]) == 20_000 for r in records)
        removed = repair_jsonl(tmp_path / "log.jsonl")
        assert (tmp_path / "log.jsonl").read_bytes().endswith(b"\n")
        assert read_jsonl(tmp_path / "log.jsonl") == records
        assert removed < 3 * 20_100 and len(records) >= kept  # at most one torn append lost; nothing before it
        kept = len(records)
        # leftovers of the interrupted atomic write are hidden temp files, never the real name
        assert all(p.name.startswith(".state.json.") for p in tmp_path.iterdir() if p.name.endswith(".tmp"))
    assert kept > 6


def test_a_corrupt_line_in_the_middle_is_an_error_not_silently_dropped(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1}\n{"step": 2, "lo\n{"step": 3}\n')
    try:
        list(iter_jsonl(path))
    except ValueError:
        pass
    else:
        raise AssertionError("a corrupt line before the last one must not be skipped silently")


def test_append_jsonl_keeps_lone_surrogates_as_escapes(tmp_path):
    """Decoded model text can hold a lone surrogate; logging it must not crash a run and must round-trip."""
    from r1.artifacts import append_jsonl, read_jsonl

    path = tmp_path / "samples.jsonl"
    append_jsonl(path, {"completion": "ok \ud800 é"})
    append_jsonl(path, {"completion": "next"})
    assert [r["completion"] for r in read_jsonl(path)] == ["ok \ud800 é", "next"]
