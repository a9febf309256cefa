"""Reliability of whole training runs (real processes, tiny Qwen2, a few steps each):

- a run killed with SIGKILL after step 2K+1, then again in the middle of writing checkpoint 2K+2, and resumed,
  logs exactly the per-step numbers of an uninterrupted run and ends with the same weights;
- a batch that no reward could score, and a streak of NaN losses, stop the run with one error line and the last
  good checkpoint intact.

The runs go through `recipes/r1_zero.py` via a small launcher (written to a temporary folder) that registers two
test rewards with signal on a random model, and can SIGKILL its own process at a given step or inside a given
checkpoint save: a real kill, at a reproducible moment. The hard case is used on purpose: steps_per_generation 3
(the checkpoint falls inside TRL's generation buffer), dynamic sampling with refills, beta > 0 (reference model),
an epoch boundary between the checkpoint and the kill (5 problems, 3 per generation), and a reward that raises for
some samples (None, counted).
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import SUBPROCESS_ENV, free_port

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "tests/configs/tiny_qwen2.yaml")
ENV = {**SUBPROCESS_ENV, "PYTHONPATH": str(REPO)}

LAUNCHER = r'''
"""recipes/r1_zero.py with test rewards and optional self-inflicted SIGKILL / NaN losses (env R1_TEST_*)."""
import os, signal, sys

import rewards.registry as registry


def _text(c):
    return c if isinstance(c, str) else c[-1]["content"]


def vowels(completions, **kw):
    # share of vowels: varies per sample on a random model; raises for ~1 in 9 samples (SafeReward -> None)
    out = []
    for c in completions:
        t = _text(c)
        if sum(map(ord, t)) % 9 == 0:
            raise ValueError("test reward: unscorable sample")
        out.append(sum(ch in "aeiou" for ch in t) / max(len(t), 1))
    return out


def coin(completions, **kw):
    # 0/1 by a hash of the text: some groups are all 0 -> dynamic sampling drops and refills them
    return [float(sum(map(ord, _text(c))) % 5 == 0) for c in completions]


def broken(completions, **kw):
    raise RuntimeError("test reward: always broken")


registry.REWARD_FUNCS.update(test_vowels=vowels, test_coin=coin, test_broken=broken)

kill_at = int(os.environ.get("R1_TEST_KILL_AT_STEP", "0"))
kill_in_save = int(os.environ.get("R1_TEST_KILL_IN_SAVE", "0"))
nan_from = int(os.environ.get("R1_TEST_NAN_FROM_STEP", "0"))
if kill_at or kill_in_save or nan_from:
    import torch
    import transformers
    import r1.trainer as trainer_module

    class KillAfterLog(transformers.TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):  # after metrics.jsonl got the line
            if state.global_step == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)

    original_init = trainer_module.R1ZeroTrainer.__init__

    def init(self, *a, **k):
        original_init(self, *a, **k)
        self.add_callback(KillAfterLog())
        save = self._save_optimizer_and_scheduler  # runs after the weights were written
        def killing_save(output_dir):
            if self.state.global_step == kill_in_save:
                os.kill(os.getpid(), signal.SIGKILL)
            save(output_dir)
        self._save_optimizer_and_scheduler = killing_save
        compute_loss = self.compute_loss
        def nan_loss(*a, **k):
            loss = compute_loss(*a, **k)
            return loss * float("nan") if nan_from and self.state.global_step + 1 >= nan_from else loss
        self.compute_loss = nan_loss

    trainer_module.R1ZeroTrainer.__init__ = init

from recipes.r1_zero import main

sys.exit(main())
'''

COMMON = [
    "--config", TINY, "--task_size", "5", "--max_steps", "7", "--save_steps", "2", "--logging_steps", "1",
    "--reward_funcs", "test_vowels", "test_coin", "--reward_weights", "1", "0.5", "--learning_rate", "1e-3",
    "--beta", "0.04", "--dynamic_sampling", "true", "--dynamic_sampling_metric", "test_coin",
    "--dynamic_sampling_max_rounds", "2", "--sample_log_steps", "1",
]
SCENARIOS = {
    # one generation per step (rewards logged every step); 5 problems = 5 steps per epoch: the resumed steps 5-7
    # cross the epoch boundary.
    "plain": COMMON,
    # one generation per 3 steps (at steps 1, 4, 7): checkpoint-4 falls inside TRL's generation buffer; 3 steps per
    # epoch, so the resumed run starts in epoch 1 and generates again (with refills) in epoch 2.
    "buffered": [*COMMON, "--steps_per_generation", "3"],
}
# Wall-clock and throughput differ between runs by nature; everything else must not.
TIME_KEYS = {"time", "tokens_per_s", "train_seconds_total", "step_time"}


@pytest.fixture(scope="module")
def launcher(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("launcher")  # its own folder: the script's folder goes on sys.path
    path = folder / "r1_test_launcher.py"
    path.write_text(LAUNCHER)
    return path


def run(launcher: Path, out: Path, *args: str, env: dict[str, str] | None = None, timeout: int = 240,
        processes: int = 1):
    ddp = [] if processes == 1 else [
        "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port()),
    ]
    return subprocess.run(
        [sys.executable, *ddp, str(launcher), *args, "--output_dir", str(out)],
        capture_output=True, text=True, env={**ENV, "R1_REPO": str(REPO), **(env or {})}, timeout=timeout, cwd=REPO,
    )


def ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def rows(out: Path, name: str = "metrics.jsonl") -> list[dict]:
    return [json.loads(line) for line in (out / name).read_text().splitlines()]


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    """The lines the entry point printed for the user (logging and progress bars share stderr)."""
    return [line for line in proc.stderr.splitlines() if line.startswith("error")]


def same(a, b, rel: float = 1e-6) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)
    return a == b


def checkpoints(out: Path) -> list[str]:
    return sorted((p.name for p in out.glob("checkpoint-*")), key=lambda n: int(n.split("-")[1]))


# "buffered" in `make test-slow` only (23 s here); "plain" keeps SIGKILL + exact resume in `make test`.
@pytest.mark.parametrize("scenario", [pytest.param(s, marks=pytest.mark.slow) if s == "buffered" else s
                                      for s in SCENARIOS])
def test_sigkill_and_resume_reproduce_the_uninterrupted_run(scenario, launcher, tmp_path):
    args = SCENARIOS[scenario]
    full, cut = tmp_path / "uninterrupted", tmp_path / "interrupted"
    ok(run(launcher, full, *args))
    reference = rows(full)
    assert [r["step"] for r in reference] == list(range(1, 8))
    assert any(r.get("dynamic_sampling/rounds") for r in reference)  # refills happened
    assert reference[-1]["reward_errors_total"] > 0  # the raising reward was isolated, not fatal

    # 1. SIGKILL right after step 2K+1 = 5 was logged: checkpoints 2 and 4 exist, step 5 is in metrics.jsonl.
    proc = run(launcher, cut, *args, env={"R1_TEST_KILL_AT_STEP": "5"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    first_life = rows(cut)
    assert [r["step"] for r in first_life] == [1, 2, 3, 4, 5]
    assert checkpoints(cut) == ["checkpoint-2", "checkpoint-4"]

    if scenario == "buffered":
        # 2. Resume (`last`), and SIGKILL again in the middle of writing checkpoint-6 (weights written, optimizer
        # not yet): checkpoint-4 stays the newest checkpoint.
        proc = run(launcher, cut, *args, "--resume_from_checkpoint", "last", env={"R1_TEST_KILL_IN_SAVE": "6"})
        assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
        assert checkpoints(cut) == ["checkpoint-2", "checkpoint-4"]  # the half-written one is not a checkpoint-N
        assert (cut / ".r1-staging" / "checkpoint-6" / "model.safetensors").is_file()
        assert not (cut / ".r1-staging" / "checkpoint-6" / "optimizer.pt").exists()
        assert [r["step"] for r in rows(cut)] == [1, 2, 3, 4, 5, 6]  # 5 was dropped and logged again, then 6
    with open(cut / "metrics.jsonl", "a") as f:  # as if the kill had torn a line
        f.write('{"step": 7, "loss": 0.1')

    # 3. Resume with `auto`: from checkpoint-4 again (the newest complete one), to the end.
    proc = run(launcher, cut, *args, "--resume_from_checkpoint", "auto")
    ok(proc)
    resumed = rows(cut)
    assert [r["step"] for r in resumed] == list(range(1, 8))  # each step exactly once, no gap, no torn line
    # Steps 1-4 were not trained again (their lines are those of the first life); step 5 on were.
    assert [r["time"] for r in resumed[:4]] == [r["time"] for r in first_life[:4]]
    assert resumed[4]["time"] > first_life[4]["time"]
    assert checkpoints(cut) == ["checkpoint-2", "checkpoint-4", "checkpoint-6", "checkpoint-7"]
    assert not (cut / ".r1-staging").exists()

    table = [f"{scenario}: step | loss uninterrupted / resumed | grad_norm uninterrupted / resumed | reward "
             "uninterrupted / resumed"]
    for a, b in zip(reference, resumed, strict=True):
        table.append(" | ".join(
            [f"{a['step']:>4}"] + [f"{a.get(k)!r:>22} / {b.get(k)!r:<22}" for k in ("loss", "grad_norm", "reward")]
        ))
        diff = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if k not in TIME_KEYS and not same(a.get(k), b.get(k))}
        assert not diff, f"step {a['step']} differs after resume: {diff}"
    print("\n".join(table))

    # Same prompts (data order) and completions at every step. (A tiny random model barely looks at its prompt, so
    # rewards alone would not show a wrong data order; the prompts do.)
    samples_full = [(s["step"], s["prompt"], s["completion"]) for s in rows(full, "train_samples.jsonl")]
    samples_cut = [(s["step"], s["prompt"], s["completion"]) for s in rows(cut, "train_samples.jsonl")]
    assert samples_cut == samples_full

    from safetensors.torch import load_file

    w_full, w_cut = load_file(full / "model.safetensors"), load_file(cut / "model.safetensors")
    assert w_full.keys() == w_cut.keys()
    worst = max((w_full[k] - w_cut[k]).abs().max().item() for k in w_full)
    assert worst <= 1e-6, worst


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ddp_sigkill_and_resume_reproduce_the_uninterrupted_run(launcher, tmp_path):
    """Two processes (gloo on CPU): per-rank generation buffers and RNG states. ~45 s on 2 cores, hence slow."""
    import torch

    if torch.cuda.device_count() == 1:
        pytest.skip("one GPU: torchrun would put both processes on it")
    args = [*SCENARIOS["buffered"], "--task_size", "14"]  # 6 prompts per generation over 2 processes
    full, cut = tmp_path / "uninterrupted", tmp_path / "interrupted"
    ok(run(launcher, full, *args, processes=2, timeout=600))
    proc = run(launcher, cut, *args, env={"R1_TEST_KILL_AT_STEP": "5"}, processes=2, timeout=600)
    assert proc.returncode != 0 and [r["step"] for r in rows(cut)] == [1, 2, 3, 4, 5]
    assert (cut / "checkpoint-4" / "generation_buffer_rank1.pt").is_file()
    ok(run(launcher, cut, *args, "--resume_from_checkpoint", "last", processes=2, timeout=600))
    reference, resumed = rows(full), rows(cut)
    assert [r["step"] for r in resumed] == list(range(1, 8))
    for a, b in zip(reference, resumed, strict=True):
        diff = {k: (a.get(k), b.get(k)) for k in set(a) | set(b) if k not in TIME_KEYS and not same(a.get(k), b.get(k))}
        assert not diff, f"step {a['step']} differs after resume: {diff}"


def test_unscorable_batch_stops_with_one_line(launcher, tmp_path):
    out = tmp_path / "broken"
    proc = run(launcher, out, "--config", TINY, "--reward_funcs", "test_broken", "--reward_weights", "1")
    assert proc.returncode == 2, proc.stderr[-3000:]
    (last,) = error_lines(proc)
    assert last.startswith("error: step 1: every reward function returned None for all 4 completions"), last
    assert "Traceback" not in proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "RewardError" in summary["error"]


def test_nan_streak_stops_with_one_line_and_keeps_the_last_good_checkpoint(launcher, tmp_path):
    out = tmp_path / "nan"
    args = ["--config", TINY, "--max_steps", "6", "--save_steps", "2", "--max_consecutive_nonfinite", "2",
            "--reward_funcs", "test_coin", "--reward_weights", "1"]
    proc = run(launcher, out, *args, env={"R1_TEST_NAN_FROM_STEP": "3"})
    assert proc.returncode == 2, proc.stderr[-3000:]
    (last,) = error_lines(proc)
    assert last.startswith("error: step 4: the loss or gradient norm was NaN/inf for 2 consecutive steps"), last
    assert f"Last checkpoint: {out / 'checkpoint-2'}" in last and "Traceback" not in proc.stderr
    assert "step 3: non-finite loss or gradient norm" in proc.stderr  # the first skip was logged
    logged = rows(out)
    assert [r["step"] for r in logged] == [1, 2, 3]
    assert logged[2]["nonfinite/skipped"] == 1.0 and logged[2]["nonfinite_skipped_total"] == 1
    assert logged[1]["nonfinite/skipped"] == 0.0
    assert checkpoints(out) == ["checkpoint-2"]

    from safetensors.torch import load_file

    from r1.guards import is_complete_checkpoint

    assert is_complete_checkpoint(out / "checkpoint-2")
    weights = load_file(out / "checkpoint-2" / "model.safetensors")
    assert all(bool(v.isfinite().all()) for v in weights.values())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "failed" and "NonFiniteError" in summary["error"]
