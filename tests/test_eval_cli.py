"""`python -m eval` end to end on a tiny random model: outputs, kill -9 + resume, template from a run folder, bad input."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from eval import cli
from r1.artifacts import read_jsonl

REPO = Path(__file__).resolve().parents[1]
# One torch thread: the tiny model gains nothing from more, and the kill/resume comparison needs every run (killed
# subprocess, in-process resume, in-process reference) to use the same thread count for bit-identical floats.
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture
def one_thread():
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def eval_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "eval", "--model", "tiny:qwen2", "--no-progress", *args]


def test_end_to_end_writes_results_and_samples(tmp_path, data_dir):
    out = tmp_path / "tmp"
    args = ["--benchmarks", "aime24", "--limit", "3", "--num-samples", "2", "--data-dir", str(data_dir)]
    proc = subprocess.run(
        eval_cmd(*args, "--output", str(out), "--max-new-tokens", "24"),
        cwd=REPO, env=ENV, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| aime24 | 3 |" in proc.stdout  # the markdown table

    results = json.loads((out / "results.json").read_text())
    assert {"model", "model_path", "template", "model_dtype", "settings", "benchmarks", "versions", "wall_time_s",
            "tokens_generated", "command"} <= set(results)
    assert results["template"] == "r1_zero"
    assert {"temperature", "top_p", "max_new_tokens", "seed", "num_samples", "batch_size", "backend"} <= set(
        results["settings"]
    )
    assert {"torch", "transformers"} <= set(results["versions"])
    bench = results["benchmarks"]["aime24"]
    assert bench["data_sha256"] == hashlib.sha256((data_dir / "aime24.jsonl").read_bytes()).hexdigest()
    m = bench["metrics"]
    for key in ("avg@2", "std@2", "ci95@2", "maj@2", "pass@1", "pass@2", "format_rate", "mean_tokens",
                "truncation_rate", "tokens_generated", "num_problems", "num_samples"):
        assert key in m, key
    assert m["num_problems"] == 3 and m["num_samples"] == 2
    assert results["tokens_generated"] == m["tokens_generated"] > 0

    rows = read_jsonl(out / "samples.jsonl")
    assert len(rows) == 6
    assert {(r["id"], r["sample_index"]) for r in rows} == {(i, j) for i in ("2024-I-1", "2024-I-2", "2024-I-3") for j in (0, 1)}
    for r in rows:
        assert {"benchmark", "id", "sample_index", "completion", "answer", "correct", "tokens", "truncated"} <= set(r)
        assert 0 < r["tokens"] <= 24


def test_kill_9_then_resume_matches_an_uninterrupted_run(tmp_path, data_dir, capsys, one_thread):
    common = ["--benchmarks", "gsm8k", "--limit", "4", "--num-samples", "4", "--batch-size", "2",
              "--max-new-tokens", "48", "--temperature", "1.0", "--data-dir", str(data_dir)]
    total = 16

    killed = tmp_path / "killed"
    proc = subprocess.Popen(eval_cmd(*common, "--output", str(killed)), cwd=REPO, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    samples = killed / "samples.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if samples.exists() and samples.read_bytes().count(b"\n") >= 1:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    before = read_jsonl(samples)
    assert 0 < len(before) < total
    with open(samples, "a") as f:  # as if the kill had hit the middle of a write
        f.write('{"benchmark": "gsm8k", "id": "gsm8k-te')

    assert cli.main(eval_cmd(*common, "--output", str(killed))[3:]) == 0
    full = tmp_path / "full"
    assert cli.main(eval_cmd(*common, "--output", str(full))[3:]) == 0

    resumed_rows = read_jsonl(samples)
    assert len(resumed_rows) == total
    assert len({(r["id"], r["sample_index"]) for r in resumed_rows}) == total  # nothing done twice
    assert resumed_rows[: len(before)] == before  # finished samples were kept, not redone

    def by_pair(rows):
        return {(r["id"], r["sample_index"]): (r["completion"], r["correct"], r["tokens"]) for r in rows}

    assert by_pair(resumed_rows) == by_pair(read_jsonl(full / "samples.jsonl"))
    m_resumed = json.loads((killed / "results.json").read_text())["benchmarks"]["gsm8k"]["metrics"]
    m_full = json.loads((full / "results.json").read_text())["benchmarks"]["gsm8k"]["metrics"]
    for key in ("avg@4", "std@4", "ci95@4", "maj@4", "pass@1", "pass@2", "pass@4", "format_rate", "mean_tokens",
                "truncation_rate", "tokens_generated"):
        assert m_resumed[key] == m_full[key], key

    capsys.readouterr()
    assert cli.main(eval_cmd(*common, "--output", str(full))[3:] + ["--seed", "1"]) == 2  # refuse to mix settings
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "seed: 0 -> 1" in err[0]


def test_template_comes_from_the_training_run_folder(tmp_path, data_dir):
    from r1.models import resolve_model

    run = tmp_path / "run"
    shutil.copytree(resolve_model("tiny:qwen2"), run)
    (run / cli.CONFIG_FILE_NAME).write_text("model_name_or_path: tiny:qwen2\ntemplate: boxed\n")
    base = ["--model", str(run), "--benchmarks", "aime24", "--data-dir", str(data_dir), "--output", str(tmp_path / "o")]
    assert cli._prepare(cli.build_parser().parse_args(base))["settings"]["template"] == "boxed"
    assert cli._prepare(cli.build_parser().parse_args(base + ["--template", "chat"]))["settings"]["template"] == "chat"
    ckpt = run / "checkpoint-2"
    shutil.copytree(resolve_model("tiny:qwen2"), ckpt)
    args = cli.build_parser().parse_args(["--model", str(ckpt), *base[2:]])
    assert cli._prepare(args)["settings"]["template"] == "boxed"


@pytest.fixture
def no_weights(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("weights were loaded before the input was checked")

    monkeypatch.setattr(cli, "_load", boom)


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--benchmarks", "aime24,nope"], "unknown benchmark 'nope'"),
        (["--benchmarks", "{noanswer}"], "no 'answer' column (it has: id, problem, solution)"),
        (["--benchmarks", "aime24", "--model", "{missing}"], "does not exist"),
        (["--benchmarks", "aime24", "--template", "nope"], "unknown template 'nope'"),
        (["--benchmarks", "aime24", "--num-samples", "0"], "--num-samples must be >= 1"),
        (["--benchmarks", "aime24", "--top-p", "0"], "--top-p must be in (0, 1]"),
    ],
)
def test_bad_input_is_one_line_before_any_weights(args, expected, tmp_path, data_dir, capsys, no_weights):
    noanswer = tmp_path / "noanswer.jsonl"
    noanswer.write_text('{"id": 1, "problem": "1+1?", "solution": "2"}\n')
    args = [a.format(noanswer=noanswer, missing=tmp_path / "missing") for a in args]
    if "--model" not in args:
        args = ["--model", "tiny:qwen2", *args]
    assert cli.main([*args, "--data-dir", str(data_dir), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("r1-eval: error: ") and expected in err[0], err


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path):
    start = time.time()
    proc = subprocess.run(eval_cmd("--benchmarks", "aime2024", "--output", str(tmp_path)), cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "r1-eval: error: unknown benchmark 'aime2024' (did you mean 'aime24'?); choose from aime24, aime25, amc23, math500, gsm8k or pass a "
        ".jsonl/.json/.parquet file with problem and answer columns"
    ]
    assert time.time() - start < 10
