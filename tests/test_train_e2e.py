"""End to end: `accelerate launch --cpu recipes/r1_zero.py --config tests/configs/...yaml` on tiny models.

Each run is a couple of GRPO steps; the assertions are on what a user reads afterwards: metrics.jsonl (one line per
step, reward keys), the checkpoint, summary.json, the saved config and model, and, for DDP, that both processes'
completions were gathered into every step.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import SUBPROCESS_ENV, free_port

REPO = Path(__file__).resolve().parents[1]
ENV = dict(SUBPROCESS_ENV)


def launch(config: str, out: Path, *args: str, processes: int = 1, timeout: int = 300) -> subprocess.CompletedProcess:
    # `--cpu` uses accelerate's single-process launcher (several CPU processes would need mpirun); DDP over gloo is
    # torchrun's launcher (`--multi_gpu`), which our config turns into CPU processes when no GPU is present.
    mode = ["--cpu"] if processes == 1 else ["--multi_gpu", "--main_process_port", str(free_port())]
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", *mode, "--num_processes", str(processes),
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        str(REPO / "recipes/r1_zero.py"), "--config", str(REPO / config), "--output_dir", str(out), *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def metrics(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def check_run(out: Path, steps: int, reward_names: list[str]) -> list[dict]:
    rows = metrics(out)
    assert [r["step"] for r in rows] == list(range(1, steps + 1))
    for r in rows:
        for name in reward_names:
            assert isinstance(r[f"rewards/{name}/mean"], float)
        for key in ("reward", "accuracy", "completion_length", "clipped_ratio", "entropy", "tokens_per_s",
                    "reflection/per_completion", "tokens_generated_total", "loss", "learning_rate"):
            assert key in r, key
        assert r["tokens_per_s"] > 0
    assert (out / f"checkpoint-{steps}" / "trainer_state.json").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == steps
    assert summary["tokens_generated"] == rows[-1]["tokens_generated_total"] > 0
    assert (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file()
    saved = yaml.safe_load((out / "r1_config.yaml").read_text())
    assert saved["template"] and saved["reward_funcs"] == reward_names
    samples = [json.loads(x) for x in (out / "train_samples.jsonl").read_text().splitlines()]
    assert samples and set(samples[0]["rewards"]) == set(reward_names)
    return rows


# Per-step values that are functions of the weights, the data order and the random draws: a resumed run must log
# the same numbers as the uninterrupted one. Timing columns (tokens_per_s, seconds) differ by nature.
RESUME_KEYS = ("loss", "reward", "reward_std", "rewards/accuracy/mean", "rewards/format/mean", "accuracy", "kl",
               "grad_norm", "entropy", "completion_length", "clipped_ratio", "tokens_generated_total", "learning_rate")


def check_samples_show_problems(out: Path, config: str) -> None:
    """Every logged sample's prompt holds the text of a training problem, and that problem's answer is the one
    logged with it (a template that dropped the problem would still produce a prompt, of instructions only)."""
    from r1.config import parse_args
    from r1.train import prepare

    plan = prepare(parse_args(["--config", str(REPO / config), "--output_dir", str(out.parent / "no-run")]))
    samples = [json.loads(x) for x in (out / "train_samples.jsonl").read_text().splitlines()]
    assert samples
    for s in samples:
        found = [r for r in plan.dataset if r["problem"] in s["prompt"]]
        assert found, f"no training problem in the logged prompt {s['prompt']!r}"
        assert s["answer"] in {r["answer"] for r in found}
        assert s["prompt"] in {plan.template.render(r["problem"]) for r in found}


def test_tiny_qwen2_three_steps_then_exact_resume(tmp_path):
    config = "tests/configs/tiny_qwen2.yaml"
    args = ("--max_steps", "3", "--beta", "0.04", "--save_steps", "1")
    out = tmp_path / "qwen2"
    launch(config, out, *args)
    rows = check_run(out, 3, ["accuracy", "format"])
    assert all("kl" in r for r in rows)  # beta > 0: reference model and k3 KL are live
    assert (out / "curves.png").stat().st_size > 1000
    check_samples_show_problems(out, config)

    # The same run killed after checkpoint-1: checkpoints 2 and 3 were never written, but steps 2 and 3 had been
    # logged. Resuming must not log them twice, and must redo them exactly: same losses, rewards, completions.
    # (The random model earns no reward here, so its weights do not move: what tells the runs apart is the data
    # order and the random draws, seen in the entropy and the logged completions. Resume with learning weights and
    # optimizer state is tests/test_reliability_runs.py, with test rewards that have signal.)
    killed = tmp_path / "killed"
    shutil.copytree(out, killed)
    for step in (2, 3):
        shutil.rmtree(killed / f"checkpoint-{step}")
    stale = [rows[0], {"step": 2, "stale": True}, {"step": 3, "stale": True}]
    (killed / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stale))
    launch(config, killed, *args, "--resume_from_checkpoint", "last")
    resumed = metrics(killed)
    assert [r["step"] for r in resumed] == [1, 2, 3] and not any("stale" in r for r in resumed)
    for key in RESUME_KEYS:
        assert [r[key] for r in resumed] == [r[key] for r in rows], key
    samples = (out / "train_samples.jsonl").read_text().splitlines()
    assert (killed / "train_samples.jsonl").read_text().splitlines() == samples
    assert {json.loads(x)["step"] for x in samples} == {1, 2, 3}


def test_tiny_deepseek_v3_two_steps(tmp_path):
    out = tmp_path / "dsv3"
    launch("tests/configs/tiny_deepseek_v3.yaml", out, "--max_steps", "2")
    check_run(out, 2, ["accuracy", "format", "tag_count"])


@pytest.mark.timeout(600)
def test_ddp_two_processes_gather_rewards(tmp_path):
    import torch

    if torch.cuda.device_count() == 1:
        pytest.skip("one GPU: torchrun would put both processes on it")
    out = tmp_path / "ddp"
    launch("tests/configs/tiny_qwen2.yaml", out, "--max_steps", "2", processes=2, timeout=540)
    rows = check_run(out, 2, ["accuracy", "format"])
    for r in rows:
        # per_device_train_batch_size 4 x 2 processes: every step scores the completions of both ranks
        assert r["completions/count"] == 8
        assert r["completions/ranks_contributing"] == 2
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_processes"] == 2
