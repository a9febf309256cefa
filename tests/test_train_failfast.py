"""Bad input fails fast: one line on stderr, exit code 2, before any model weights are loaded; and every preset
passes --dry_run offline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "tests/configs/tiny_qwen2.yaml")
TINY_MATH = str(REPO / "tests/configs/tiny_qwen2_math.yaml")
PRESETS = sorted((REPO / "recipes/configs").glob("*.yaml"))


@pytest.fixture(scope="module")
def recipe():
    from recipes import r1_zero

    return r1_zero


@pytest.fixture
def no_weights(monkeypatch):
    """Any attempt to load weights fails the test: fail-fast errors must come first."""
    import transformers

    import r1.models

    def boom(*a, **k):
        raise AssertionError("model weights were loaded before the error")

    monkeypatch.setattr(r1.models, "load_model", boom)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", boom)


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def run_main(recipe, capsys, *argv: str) -> tuple[int, list[str]]:
    rc = recipe.main(list(argv))
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return rc, err


def cases(tmp: Path) -> dict[str, tuple[list[str], str]]:
    math = ["--config", TINY_MATH, "--decontaminate", "false"]
    wrong_cols = write_jsonl(tmp / "wrong.jsonl", [{"question": "1+1?", "solution": "2"}])
    one_row = write_jsonl(tmp / "one.jsonl", [{"problem": "1+1?", "answer": "2"}])
    levels = write_jsonl(tmp / "levels.jsonl", [{"problem": f"{i}+1?", "answer": str(i + 1), "level": 1} for i in range(5)])
    return {
        "unknown_cli_flag": (["--num_generation", "4"], "unknown option '--num_generation' (did you mean 'num_generations'?)"),
        "unknown_reward": (["--reward_funcs", "accuracy", "acuracy"], "unknown reward 'acuracy' (did you mean 'accuracy'?)"),
        "dataset_missing": ([*math, "--dataset_name", str(tmp / "missing.jsonl")], "does not exist"),
        "column_missing": ([*math, "--dataset_name", wrong_cols], "has no column 'problem' (it has: question, solution)"),
        "empty_after_filters": ([*math, "--dataset_name", levels, "--min_level", "3"], "empty after the level filter"),
        "num_generations": (["--num_generations", "3"], "num_generations (3) must divide"),
        "max_completion_length": (["--max_completion_length", "0"], "max_completion_length must be > 0"),
        "unknown_template": (["--template", "r1zero"], "unknown template 'r1zero' (did you mean 'r1_zero'?)"),
        "model_folder_missing": (["--model_name_or_path", str(tmp / "no-model")], "does not exist"),
        "hub_model_offline": (["--model_name_or_path", "someorg/not-cached-model"], "not in the local Hugging Face cache"),
        "previous_run_in_output_dir": ([], "holds an earlier run"),
        "smaller_than_one_round": ([*math, "--dataset_name", one_row, "--per_device_train_batch_size", "8"], "one generation round needs 2"),
    }


CASE_NAMES = list(cases(Path("/tmp")))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_fail_fast_one_line(name, recipe, capsys, tmp_path, monkeypatch, no_weights):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    argv, expected = cases(tmp_path)[name]
    out = tmp_path / "out"
    if name == "previous_run_in_output_dir":
        out.mkdir()
        (out / "metrics.jsonl").write_text('{"step": 1}\n')
    rc, err = run_main(recipe, capsys, "--config", TINY, "--output_dir", str(out), *argv)
    assert rc == 2
    assert len(err) == 1, err
    assert err[0].startswith("error: ") and expected in err[0], err[0]


def test_unknown_yaml_key_one_line(recipe, capsys, tmp_path, no_weights):
    cfg = Path(TINY).read_text() + "lerning_rate: 1.0e-5\n"
    path = tmp_path / "bad.yaml"
    path.write_text(cfg)
    rc, err = run_main(recipe, capsys, "--config", str(path))
    assert rc == 2 and len(err) == 1
    assert "unknown key 'lerning_rate'" in err[0] and "did you mean 'learning_rate'?" in err[0]


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_every_preset_passes_dry_run(preset, recipe, capsys, monkeypatch, no_weights):
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(var, "1")
    rc = recipe.main(["--config", str(preset), "--dry_run"])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "dry run OK" in out and "loss_type=" in out


def test_math_preset_dry_run_reads_the_local_dataset(recipe, capsys, data_dir, no_weights):
    rc = recipe.main([
        "--config", str(REPO / "recipes/configs/r1_zero_qwen2.5_math_7b.yaml"), "--dry_run",
        "--dataset_name", str(data_dir / "math_train.jsonl"), "--answer_column", "answer",
    ])
    out = capsys.readouterr().out
    assert rc == 0, out
    line = next(x for x in out.splitlines() if x.startswith("data: "))
    n = int(line.split()[1])
    assert 0 < n < 7500  # levels 3-5 only, deduplicated and decontaminated


def test_fail_fast_from_the_command_line_within_10s(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"}
    start = time.time()
    proc = subprocess.run(
        [sys.executable, str(REPO / "recipes/r1_zero.py"), "--config", TINY, "--output_dir", str(tmp_path / "o"),
         "--model_name_or_path", str(tmp_path / "missing-model")],
        capture_output=True, text=True, env=env, timeout=60,
    )
    elapsed = time.time() - start
    assert proc.returncode == 2
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: model folder"), proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert elapsed < 10, f"took {elapsed:.1f} s"


def test_dataset_on_the_command_line_without_a_config_is_what_trains(recipe, capsys, tmp_path, no_weights):
    """No --config and --dataset_name FILE: the demo's model and training settings on FILE (task=math), never the
    demo's arithmetic problems; a missing file or one without an answer column stops in one line."""
    rows = [{"problem": f"What is {i} times 7 plus one hundred and {i}?", "answer": str(8 * i + 100)} for i in range(40)]
    data = write_jsonl(tmp_path / "mine.jsonl", rows)
    rc = recipe.main(["--dataset_name", data, "--decontaminate", "false", "--dry_run", "--output_dir", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert f"data: 40 problems ({data})" in out
    assert "What is 0 times 7 plus one hundred and 0?" in next(x for x in out.splitlines() if x.startswith("first prompt"))
    assert "task='math'" in out and "model_name_or_path='embedded:smollm2-135m'" in out
    assert "note: no --config: " in out and "task_max_operand" in out  # says what it left out of the preset

    rc, err = run_main(recipe, capsys, "--dataset_name", str(tmp_path / "nope.jsonl"), "--output_dir", str(tmp_path / "p"))
    assert rc == 2 and len(err) == 1 and "nope.jsonl" in err[0] and "does not exist" in err[0]
    no_answer = write_jsonl(tmp_path / "noanswer.jsonl", [{"problem": "1+1?", "solution": "2"}] * 4)
    rc, err = run_main(recipe, capsys, "--dataset_name", no_answer, "--decontaminate", "false",
                       "--output_dir", str(tmp_path / "q"))
    assert rc == 2 and len(err) == 1 and "has no column 'answer'" in err[0]
