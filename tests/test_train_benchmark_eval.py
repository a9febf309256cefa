"""Benchmark evaluation during training (r1/benchmark_eval.py) and the held-out split for task=math, on tiny:qwen2.

What a user reads: `eval/gsm8k/avg@1` on the metrics.jsonl lines of steps 0, 2 and 4 (one line per step), a
benchmark panel in curves.png, the graded samples under output_dir/eval/step-N; the training itself unchanged by
the evaluation; under DDP both ranks generate and the step-0 numbers equal the one-process run's.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA_DIR, SUBPROCESS_ENV, free_port

from r1.artifacts import read_jsonl

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "tests/configs/tiny_qwen2.yaml"
EVAL_ARGS = ("--eval_benchmarks", "gsm8k", "--eval_steps", "2", "--eval_limit", "4", "--eval_num_samples", "2",
             "--eval_max_new_tokens", "12")
TRAIN_KEYS = ("loss", "reward", "rewards/accuracy/mean", "rewards/format/mean", "grad_norm", "entropy",
              "completion_length", "tokens_generated_total")


def launch(out: Path, *args: str, processes: int = 1, timeout: int = 400, engine: str = "ddp") -> subprocess.CompletedProcess:
    """`accelerate launch` of the recipe: 1 CPU process, or 2 over gloo with DDP or an engine's recipes/accelerate config."""
    if processes == 1:
        mode = ["--cpu"]
    elif engine == "ddp":
        mode = ["--multi_gpu", "--main_process_port", str(free_port())]
    else:
        mode = ["--config_file", str(REPO / "recipes/accelerate" / f"{engine}.yaml"), "--main_process_port", str(free_port())]
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *mode, "--num_processes", str(processes),
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(REPO / "recipes/r1_zero.py"),
           "--config", str(CONFIG), "--output_dir", str(out), "--save_strategy", "no", *args]
    env = {**SUBPROCESS_ENV, "R1_DATA_DIR": str(DATA_DIR)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def test_eval_at_step_0_every_eval_steps_and_the_end(tmp_path, data_dir):
    out = tmp_path / "run"
    proc = launch(out, "--max_steps", "4", *EVAL_ARGS)
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]  # one line per step; step 0 holds only the evaluation
    evaluated = {r["step"]: r for r in rows if "eval/gsm8k/avg@2" in r}
    assert sorted(evaluated) == [0, 2, 4]
    for r in evaluated.values():
        assert 0.0 <= r["eval/gsm8k/avg@2"] <= 1.0 and 0.0 <= r["eval/gsm8k/format_rate"] <= 1.0
        assert 0 < r["eval/gsm8k/mean_tokens"] <= 12
    assert set(rows[0]) == {"step", "time", "eval/gsm8k/avg@2", "eval/gsm8k/format_rate", "eval/gsm8k/mean_tokens"}
    assert "loss" in evaluated[2] and "loss" in evaluated[4]  # merged into the logged training line of the step
    for step in (0, 2, 4):
        samples = read_jsonl(out / "eval" / f"step-{step}" / "samples.jsonl")
        assert len(samples) == 8 and len({(s["id"], s["sample_index"]) for s in samples}) == 8
        assert all(s["tokens"] <= 12 for s in samples)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["eval"]["first_step"] == 0 and summary["eval"]["last_step"] == 4
    assert "eval/gsm8k/avg@2:" in proc.stdout + proc.stderr
    assert (out / "curves.png").stat().st_size > 1000

    # The same run without the evaluation trains identically: evaluating draws no training random numbers.
    plain = tmp_path / "plain"
    launch(plain, "--max_steps", "4")
    base = read_jsonl(plain / "metrics.jsonl")
    train_rows = [r for r in rows if r["step"] > 0]
    for key in TRAIN_KEYS:
        assert [r.get(key) for r in train_rows] == [r.get(key) for r in base], key


TWO_PROCESS_ARGS = ("--max_steps", "1", "--eval_benchmarks", "gsm8k", "--eval_limit", "4", "--eval_num_samples", "2",
                    "--eval_max_new_tokens", "12", "--heldout_size", "6", "--heldout_num_samples", "2",
                    "--heldout_max_new_tokens", "8")


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory, data_dir) -> Path:
    out = tmp_path_factory.mktemp("one") / "run"
    launch(out, *TWO_PROCESS_ARGS)
    return out


@pytest.mark.timeout(900)
@pytest.mark.parametrize("engine", ["ddp", "fsdp", "zero3"])
def test_eval_over_two_processes_equals_one_process(engine, one_process_run, tmp_path):
    """Under DDP, FSDP2 and ZeRO-3 (sharded weights: every rank must make the same generate calls, and the held-out
    evaluation before training runs on weights zero.Init partitioned at load) the step-0 evaluation is the
    one-process one, and the held-out phases run on both ranks."""
    import torch

    if torch.cuda.device_count() == 1:
        pytest.skip("one GPU: torchrun would put both processes on it")
    one, two = one_process_run, tmp_path / "two"
    launch(two, *TWO_PROCESS_ARGS, processes=2, timeout=800, engine=engine)
    first = [read_jsonl(o / "metrics.jsonl")[0] for o in (one, two)]
    assert first[0]["step"] == first[1]["step"] == 0
    for key in ("eval/gsm8k/avg@2", "eval/gsm8k/format_rate", "eval/gsm8k/mean_tokens"):
        assert first[0][key] == first[1][key], key

    def pairs(o):
        return sorted((s["id"], s["sample_index"], s["completion"]) for s in read_jsonl(o / "eval/step-0/samples.jsonl"))

    assert pairs(two) == pairs(one) and len(pairs(two)) == 8  # written once, by rank 0, the same completions
    summaries = [json.loads((o / "summary.json").read_text()) for o in (one, two)]
    for key in ("heldout_accuracy_before", "heldout_greedy_before", "heldout_accuracy_after"):
        assert key in summaries[1] and 0.0 <= summaries[1][key] <= 1.0, key
    assert summaries[1]["heldout_accuracy_before"] == summaries[0]["heldout_accuracy_before"]


def test_math_heldout_is_a_seeded_split_taken_out_of_the_training_data(tmp_path, data_dir):
    from r1.config import parse_args
    from r1.train import prepare

    def plan(seed):
        return prepare(parse_args([
            "--config", str(CONFIG), "--task", "math", "--dataset_name", str(data_dir / "gsm8k_train.jsonl"),
            "--max_train_samples", "200", "--heldout_size", "20", "--task_seed", str(seed),
            "--output_dir", str(tmp_path / "out"),
        ]))

    p = plan(0)
    held, train = set(p.heldout["problem"]), set(p.dataset["problem"])
    assert len(held) == 20 and not held & train and len(p.dataset) == 180
    assert set(plan(0).heldout["problem"]) == held and set(plan(1).heldout["problem"]) != held


@pytest.mark.parametrize(
    "args, expected",
    [
        (["--eval_limit", "4"], "eval_limit is set but does not apply: it only applies with eval_benchmarks"),
        (["--eval_steps", "2"], "eval_steps is set but does not apply: it only applies with eval_benchmarks"),
        (["--eval_benchmarks", "gsm8kk"], "eval_benchmarks: unknown benchmark 'gsm8kk' (did you mean 'gsm8k'?)"),
        (["--eval_benchmarks", "gsm8k", "--eval_num_samples", "0"], "eval_num_samples must be >= 1"),
        (["--task", "countdown", "--heldout_temperature", "0.3"],
         "heldout_temperature is set but does not apply: it only applies with heldout_size > 0"),
    ],
)
def test_bad_eval_settings_are_one_line(args, expected, tmp_path, data_dir):
    from r1.config import parse_args
    from r1.errors import ConfigError
    from r1.train import prepare

    with pytest.raises(ConfigError) as e:
        prepare(parse_args(["--config", str(CONFIG), *args, "--eval_data_dir", str(data_dir), "--output_dir",
                            str(tmp_path)] if "--eval_benchmarks" in args else ["--config", str(CONFIG), *args]))
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_heldout_as_an_in_training_benchmark(tmp_path):
    """`eval_benchmarks: heldout` evaluates the run's own held-out problems (and needs heldout_size > 0)."""
    from r1.config import parse_args
    from r1.errors import ConfigError
    from r1.train import prepare

    base = ["--config", str(REPO / "tests/configs/tiny_qwen2.yaml"), "--output_dir", str(tmp_path / "o"), "--dry_run"]
    plan = prepare(parse_args([*base, "--heldout_size", "6", "--eval_benchmarks", "heldout", "--eval_limit", "4"]))
    rows = plan.eval_benchmarks["heldout"]["problems"]
    assert [r["problem"] for r in rows] == [r["problem"] for r in plan.heldout][:4]
    assert not {r["problem"] for r in rows} & set(plan.dataset["problem"])  # disjoint from training
    with pytest.raises(ConfigError, match="'heldout' needs a held-out set"):
        prepare(parse_args([*base, "--eval_benchmarks", "heldout"]))


def test_countdown_heldout_is_graded_by_the_countdown_rule(tmp_path):
    """Held-out before/after works for every task: countdown problems keep target/nums and are graded like the
    countdown reward (full credit only), with no majority vote over equations."""
    from r1.config import parse_args
    from r1.evaluation import evaluate, grade
    from r1.templates import get_template
    from r1.train import prepare

    plan = prepare(parse_args(["--config", str(CONFIG), "--task", "countdown", "--template", "countdown",
                               "--reward_funcs", "countdown", "--reward_weights", "1", "--heldout_size", "3",
                               "--output_dir", str(tmp_path), "--dry_run"]))
    row = plan.heldout[0]
    assert {"target", "nums", "problem", "answer"} <= set(row) and not {r["problem"] for r in plan.heldout} & set(plan.dataset["problem"])
    tmpl = get_template("countdown")
    right, wrong = f"x</think><answer>{row['answer']}</answer>", "x</think><answer>1 + 1</answer>"
    graded = grade([right, wrong, "no tags"], [row["answer"]] * 3, tmpl, countdown=[(row["target"], row["nums"])] * 3)
    assert [g["correct"] for g in graded] == [True, False, False]

    class Scripted:
        name = "scripted"

        def generate(self, prompts, seeds, **kw):
            from r1.generation import Completion
            return [Completion(right if s % 2 else wrong, 5, False) for s in seeds]

    problems = [{**r, "id": i} for i, r in enumerate(plan.heldout)][:1]
    m = evaluate(Scripted(), None, problems, "countdown", num_samples=4, temperature=0.6, max_new_tokens=8,
                 progress=False, model_id="scripted", dtype="float32")
    assert 0.0 < m["avg@4"] < 1.0 and m["maj@4"] is None
