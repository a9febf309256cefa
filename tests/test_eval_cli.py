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
from conftest import free_port

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
        (["--benchmarks", "{twin_a},{twin_b}"], "two benchmarks are both named 'twin'"),
    ],
)
def test_bad_input_is_one_line_before_any_weights(args, expected, tmp_path, data_dir, capsys, no_weights):
    noanswer = tmp_path / "noanswer.jsonl"
    noanswer.write_text('{"id": 1, "problem": "1+1?", "solution": "2"}\n')
    twins = {}
    for side in ("a", "b"):  # two files with the same stem
        (tmp_path / side).mkdir()
        twins[f"twin_{side}"] = tmp_path / side / "twin.jsonl"
        twins[f"twin_{side}"].write_text('{"id": 1, "problem": "1+1?", "answer": "2"}\n')
    args = [a.format(noanswer=noanswer, missing=tmp_path / "missing", **twins) for a in args]
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
        "r1-eval: error: unknown benchmark 'aime2024' (did you mean 'aime24'?); choose from aime24, aime25, amc23, math500, gsm8k, "
        "humaneval, mbpp or pass a .jsonl/.json/.parquet file with problem and answer (code: tests) columns"
    ]
    assert time.time() - start < 10


def test_two_processes_split_the_work_and_match_one_process(tmp_path, data_dir):
    """`accelerate launch --multi_gpu --num_processes 2 -m eval` (2 CPU processes over gloo): every (problem, sample)
    once in samples.jsonl, written by rank 0 alone, and the metrics of the one-process run."""
    import torch

    if torch.cuda.device_count() == 1:
        pytest.skip("one GPU: torchrun would put both processes on it")
    common = ["--benchmarks", "gsm8k", "--limit", "8", "--num-samples", "2", "--max-new-tokens", "16",
              "--batch-size", "4", "--data-dir", str(data_dir)]
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
              "--main_process_port", str(free_port())]
    two, one = tmp_path / "two", tmp_path / "one"
    proc = subprocess.run([*launch, *eval_cmd(*common, "--output", str(two))[1:]], cwd=REPO, env=ENV,
                          capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("| gsm8k | 8 |") == 1  # the table once, from rank 0
    proc = subprocess.run(eval_cmd(*common, "--output", str(one)), cwd=REPO, env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_jsonl(two / "samples.jsonl")
    assert len(rows) == 16 and len({(r["id"], r["sample_index"]) for r in rows}) == 16
    assert sorted(rows, key=lambda r: (r["id"], r["sample_index"])) == sorted(
        read_jsonl(one / "samples.jsonl"), key=lambda r: (r["id"], r["sample_index"]))
    m_two = json.loads((two / "results.json").read_text())
    m_one = json.loads((one / "results.json").read_text())
    assert m_two["num_processes"] == 2
    for m in (m_two, m_one):
        m["benchmarks"]["gsm8k"]["metrics"].pop("wall_time_s")
    assert m_two["benchmarks"] == m_one["benchmarks"]


def fake_run(tmp_path, steps, template="r1_zero"):
    """A training output_dir with checkpoint-N folders (the tiny model's files + trainer_state.json)."""
    from r1.models import resolve_model

    run = tmp_path / "run"
    run.mkdir()
    (run / cli.CONFIG_FILE_NAME).write_text(f"model_name_or_path: tiny:qwen2\ntemplate: {template}\n")
    for n in steps:
        shutil.copytree(resolve_model("tiny:qwen2"), run / f"checkpoint-{n}")
        (run / f"checkpoint-{n}" / "trainer_state.json").write_text(json.dumps({"global_step": n}))
    return run


def test_checkpoint_sweep_table_json_and_resume(tmp_path, data_dir, capsys):
    run = fake_run(tmp_path, [2, 4])
    shutil.copytree(run / "checkpoint-4", run / "checkpoint-6")  # killed mid-save: no trainer_state.json
    (run / "checkpoint-6" / "trainer_state.json").unlink()
    out = tmp_path / "sweep"
    args = ["--model", str(run), "--checkpoints", "all", "--benchmarks", "gsm8k", "--limit", "2", "--num-samples", "2",
            "--max-new-tokens", "8", "--data-dir", str(data_dir), "--output", str(out), "--no-progress"]
    assert cli.main(args) == 0
    table = capsys.readouterr().out
    assert "| step | gsm8k avg@2 | mean | format | best |" in table
    rows = [line for line in table.splitlines() if line.startswith(("| 2 |", "| 4 |"))]
    assert len(rows) == 2 and rows[0].endswith("| * |")  # same weights: the tie goes to the earliest step
    summary = json.loads((out / "checkpoints.json").read_text())
    assert set(summary["steps"]) == {"2", "4"} and summary["best_step"] == 2
    assert set(summary["steps"]["4"]["metrics"]["gsm8k"]) >= {"avg@2", "maj@2", "format_rate", "mean_tokens"}
    for n in (2, 4):
        results = json.loads((out / f"checkpoint-{n}" / "results.json").read_text())
        assert results["step"] == n and results["settings"]["template"] == "r1_zero"
        assert len(read_jsonl(out / f"checkpoint-{n}" / "samples.jsonl")) == 4
    before = (out / "checkpoint-2" / "samples.jsonl").read_bytes()
    assert cli.main([*args[:3], "last", *args[4:]]) == 0  # resumes: checkpoint-4 is done, nothing generated again
    assert (out / "checkpoint-2" / "samples.jsonl").read_bytes() == before
    assert json.loads((out / "checkpoints.json").read_text())["steps"].keys() == {"4"}
    capsys.readouterr()
    assert cli.main([*args[:3], "2,8", *args[4:]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no checkpoint for step(s) 8" in err[0] and "it has steps 2, 4" in err[0]


@pytest.mark.parametrize(
    "steps, args, expected",
    [
        ([], ["--checkpoints", "all"], "has no complete checkpoint-N folder"),
        ([1], ["--checkpoints", "two"], "--checkpoints must be all, last or steps like 100,200"),
        ([1], ["--checkpoints", "last", "--tensor-parallel-size", "2", "--backend", "transformers"],
         "apply to the vLLM backend only"),
        ([1], ["--gpu-memory-utilization", "1.5"], "--gpu-memory-utilization must be in (0, 1]"),
        ([1], ["--backend", "vllm"], "--backend vllm: vLLM 0.10.2 is installed but r1-zero (through TRL 1.16) "
         "supports vLLM 0.22.0 to 0.31.0; pip install 'r1-zero[vllm]'"),
    ],
)
def test_sweep_and_vllm_bad_input_is_one_line(steps, args, expected, tmp_path, data_dir, capsys, no_weights, monkeypatch):
    import r1.generation

    monkeypatch.setattr(r1.generation, "installed_vllm_version", lambda: "0.10.2")  # a version TRL 1.16 refuses
    run = fake_run(tmp_path, steps)
    assert cli.main(["--model", str(run), "--benchmarks", "gsm8k", *args, "--data-dir", str(data_dir),
                     "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and expected in err[0], err
