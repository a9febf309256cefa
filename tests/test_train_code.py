"""The code task: config fields (r1.config), the training set (r1.data.load_code_dataset via r1.train.prepare), and a
CPU end-to-end run on tiny:qwen2 with the code + format rewards over a few MBPP train problems."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SUBPROCESS_ENV

from r1.config import parse_args
from r1.data import load_code_dataset
from r1.errors import ConfigError, DatasetError
from r1.train import prepare

REPO = Path(__file__).resolve().parents[1]
TINY_CODE = str(REPO / "tests/configs/tiny_qwen2_code.yaml")
PRESET = str(REPO / "recipes/configs/code_qwen2.5_coder_1.5b.yaml")


def test_code_task_defaults_to_mbpp_and_rejects_math_only_fields(tmp_path):
    run = parse_args(["--config", TINY_CODE, "--dataset_name", "mbpp"])
    assert run.script.task == "code" and run.script.dataset_name == "mbpp"
    run = parse_args(["--task", "code", "--template", "code", "--reward_funcs", "code", "format"])
    assert run.script.dataset_name == "mbpp"  # task=code without a dataset: MBPP's train split
    for flag, value in (("--answer_column", "solution"), ("--min_level", "3"), ("--task_size", "10")):
        with pytest.raises(ConfigError, match=f"{flag[2:]} does not apply to task=code"):
            parse_args(["--config", TINY_CODE, flag, value])
    for flag, value in (("--dataset_split", "validation"), ("--max_train_samples", "8"), ("--decontaminate", "false")):
        parse_args(["--config", TINY_CODE, flag, value])  # dataset fields apply to code too


def test_code_reward_needs_the_code_task(tmp_path):
    run = parse_args(["--config", str(REPO / "tests/configs/tiny_qwen2.yaml"), "--reward_funcs", "code", "format",
                      "--output_dir", str(tmp_path / "o")])
    with pytest.raises(ConfigError, match="reward code needs task=code"):
        prepare(run)


def test_mbpp_train_split_is_decontaminated(data_dir):
    ds, stats = load_code_dataset("mbpp", "train", data_dir=data_dir)
    assert stats["loaded"] == 374 and stats["removed_unusable_tests"] == 0
    assert stats["decontaminated_against"] == {"humaneval": 164, "mbpp": 500}
    assert 250 < stats["final"] == len(ds) < 374  # MBPP repeats some test-split tasks in train; those go
    assert set(ds.column_names) == {"id", "problem", "tests", "entry_point"}
    assert all(601 <= int(i.split("/")[1]) <= 974 for i in ds["id"])
    assert all(isinstance(t, list) and len(t) == 3 and all("assert" in x for x in t) for t in ds["tests"])


def test_a_file_with_problem_and_tests_columns(tmp_path, data_dir):
    rows = [{"question": "Write inc(x).", "tests": ["assert inc(1) == 2"]},
            {"question": "Write dec(x).", "tests": ["dec(1)"]},  # no assert: unusable, dropped
            {"question": "Write neg(x).", "tests": ["assert neg(1) == -1", "assert neg(0) == 0"]}]
    path = tmp_path / "code.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds, stats = load_code_dataset(str(path), problem_column="question", data_dir=data_dir)
    assert ds["problem"] == ["Write inc(x).", "Write neg(x)."] and stats["removed_unusable_tests"] == 1
    path.write_text(json.dumps({"problem": "Write inc(x).", "answer": "x"}) + "\n")
    with pytest.raises(DatasetError, match="has no column 'tests'"):
        load_code_dataset(str(path), data_dir=data_dir)


def test_preset_dry_run_reads_mbpp(data_dir, monkeypatch, capsys):
    from recipes import r1_zero as recipe

    monkeypatch.setenv("R1_DATA_DIR", str(data_dir))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert recipe.main(["--config", PRESET, "--dry_run"]) == 0
    out = capsys.readouterr().out
    data = next(x for x in out.splitlines() if x.startswith("data: "))
    assert "mbpp.jsonl" in data and "'tests'" in data and "```python" in out


def test_tiny_qwen2_code_two_steps(tmp_path, data_dir, monkeypatch):
    monkeypatch.setenv("R1_DATA_DIR", str(data_dir))
    out = tmp_path / "code"
    env = {**SUBPROCESS_ENV, "R1_DATA_DIR": str(data_dir)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", "1", "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO / "recipes/r1_zero.py"),
           "--config", TINY_CODE, "--output_dir", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2]
    assert all(isinstance(r["rewards/code/mean"], float) and isinstance(r["rewards/format/mean"], float) for r in rows)
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"
    plan = prepare(parse_args(["--config", TINY_CODE, "--output_dir", str(tmp_path / "no-run")]))  # same 4 problems
    samples = [json.loads(x) for x in (out / "train_samples.jsonl").read_text().splitlines()]
    assert samples and all(any(p in s["prompt"] for p in plan.dataset["problem"]) for s in samples)
    assert all("Your code should pass these tests:" in s["prompt"] for s in samples)
    assert all(s["rewards"]["code"] == 0.0 for s in samples)  # scored by the sandbox (None would be a failure)
