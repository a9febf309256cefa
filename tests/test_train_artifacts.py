"""Run artifacts: metrics.jsonl lines, resume truncation, the time cap, summary cost maths, curves; held-out
evaluation results."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch
from transformers import TrainerControl, TrainerState

from r1.callbacks import RunArtifactsCallback, render_curves
from r1.guards import TimeLimitCallback


class FakeAccelerator:
    def __init__(self, device="cpu", processes=1):
        self.is_main_process = True
        self.num_processes = processes
        self.device = torch.device(device) if device == "cpu" else SimpleNamespace(type=device)

    def gather(self, t):
        return t


def fake_trainer(tmp_path, **args):
    defaults = dict(output_dir=str(tmp_path), plot_every_s=1e9, gpu_hour_cost=3.0, max_steps=10, save_strategy="steps",
                    alarm_window=3, alarm_clipped_ratio=0.5, alarm_entropy_fraction=0.1, alarm_unscored_frac=0.05)
    return SimpleNamespace(
        args=SimpleNamespace(**{**defaults, **args}),
        accelerator=FakeAccelerator(),
        state=TrainerState(),
        completion_tokens_total=0,
        reward_errors_total=0,
        nonfinite_skipped_total=0,
        reflection_words=["wait", "verify"],
        reflection_counts={},
        pending_samples=[],
    )


def test_metrics_lines_totals_and_resume_truncation(tmp_path):
    trainer = fake_trainer(tmp_path)
    cb = RunArtifactsCallback(trainer)
    state, control = TrainerState(), TrainerControl()
    cb.on_train_begin(trainer.args, state, control)
    for step in (1, 2, 3):
        state.global_step = step
        trainer.completion_tokens_total += 100
        trainer.reflection_counts.update({"wait": step})
        cb.on_log(trainer.args, state, control, logs={"loss": 0.1, "reward": 0.5, "completions/mean_length": 12.0})
    cb.on_log(trainer.args, state, control, logs={"train_runtime": 1.0})  # the end-of-training summary: not a step
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines] == [1, 2, 3]
    assert lines[-1]["tokens_generated_total"] == 300 and lines[-1]["completion_length"] == 12.0
    assert lines[1]["reflection/wait"] == 2 and lines[1]["reflection/count"] == 2 and trainer.reflection_counts == {}

    # resume from a checkpoint at step 2: step 3 is dropped (it will be redone) and totals continue from step 2
    trainer2 = fake_trainer(tmp_path)
    cb2 = RunArtifactsCallback(trainer2)
    resumed = TrainerState()
    resumed.global_step = 2
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 4, "torn')  # a torn last line from a kill
    cb2.on_train_begin(trainer2.args, resumed, TrainerControl())
    assert [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    resumed.global_step = 3
    trainer2.completion_tokens_total = 50
    cb2.on_log(trainer2.args, resumed, TrainerControl(), logs={"loss": 0.2})
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 3 and last["tokens_generated_total"] == 250


def test_time_cap_stops_and_saves(tmp_path):
    trainer = fake_trainer(tmp_path)
    artifacts = RunArtifactsCallback(trainer)
    cap = TimeLimitCallback(trainer, 0.0001, artifacts.train_seconds_total)
    state, control = TrainerState(), TrainerControl()
    for cb in (artifacts, cap):
        cb.on_train_begin(trainer.args, state, control)
    trainer.pending_samples.append({"step": 1, "completion": "x"})
    artifacts.on_step_end(trainer.args, state, control)
    assert not control.should_training_stop  # the artifacts callback writes samples; it does not stop anything
    assert trainer.pending_samples == [] and (tmp_path / "train_samples.jsonl").read_text().count("\n") == 1
    cap.on_step_end(trainer.args, state, control)
    assert control.should_training_stop and control.should_save
    no_save = fake_trainer(tmp_path / "b", save_strategy="no")
    control = TrainerControl()
    TimeLimitCallback(no_save, 0.0001, lambda: 1.0).on_step_end(no_save.args, TrainerState(), control)
    assert control.should_training_stop and not control.should_save


def test_time_cap_stops_before_a_step_that_would_overrun(tmp_path):
    trainer = fake_trainer(tmp_path)
    clock = [50.0]
    cap = TimeLimitCallback(trainer, 100.0, lambda: clock[0])
    state = TrainerState()
    cap.on_train_begin(trainer.args, state, TrainerControl())
    clock[0] = 60.0  # 60 s in, the last step took 10 s: room for another
    control = TrainerControl()
    cap.on_step_end(trainer.args, state, control)
    assert not control.should_training_stop
    clock[0] = 100.0 - 1.0  # the step took 39 s: the next would end past 100 s
    cap.on_step_end(trainer.args, state, control)
    assert control.should_training_stop


def test_summary_cost_counts_gpu_hours_only_on_gpus(tmp_path):
    trainer = fake_trainer(tmp_path)
    cb = RunArtifactsCallback(trainer)
    cb._base_seconds = 3600.0  # as if resumed after one hour
    summary = cb.write_summary("completed")
    assert summary["device"] == "cpu" and summary["gpu_hours"] == 0.0 and summary["estimated_cost_usd"] == 0.0
    trainer.accelerator = FakeAccelerator(device="cuda", processes=8)
    summary = cb.write_summary("failed", error="RuntimeError: boom")
    assert summary["gpu_hours"] >= 8.0 and abs(summary["estimated_cost_usd"] - summary["gpu_hours"] * 3.0) < 1e-3
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["status"] == "failed" and on_disk["error"] == "RuntimeError: boom"


def test_curves_png():
    records = [{"step": i, "reward": i / 20, "accuracy": i / 40, "format_rate": 1.0, "completion_length": 30 - i}
               for i in range(1, 21)]
    png = render_curves(records)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


# ----------------------------------------------------------------------------------------------- held-out evaluation

TINY_CONFIG = str(Path(__file__).resolve().parent / "configs" / "tiny_qwen2.yaml")


def heldout_run(tmp_path, *extra):
    from r1.config import parse_args
    from r1.train import prepare

    run = parse_args(["--config", TINY_CONFIG, "--output_dir", str(tmp_path / "out"), "--heldout_size", "3",
                      "--heldout_num_samples", "3", "--heldout_temperature", "0.7", *extra])
    return run, prepare(run)


class StubModel:
    training = True

    def eval(self):
        self.training = False
        return self

    def train(self, mode=True):
        self.training = mode
        return self


def test_heldout_eval_reports_sampled_as_accuracy_and_greedy_as_greedy(tmp_path, monkeypatch):
    """Sampled avg@n and greedy accuracy come from two evaluate() calls; each result must land under its own name
    (a random tiny model scores 0 on both, so the real calls cannot tell a swap: these fakes return distinct values)."""
    import r1.train

    run, plan = heldout_run(tmp_path, "--heldout_max_new_tokens", "5")
    calls = []

    def fake_evaluate(model, tokenizer, problems, template, *, num_samples, temperature, **kw):
        assert model.training is False  # evaluated in eval mode
        calls.append(dict(problems=problems, template=template, n=num_samples, t=temperature, **kw))
        if temperature == 0.0 and num_samples == 1:
            return {"avg@1": 0.75, "format_rate": 0.125}
        assert (temperature, num_samples) == (0.7, 3)
        return {"avg@3": 0.25, "format_rate": 0.5, "avg@1": 0.0}

    monkeypatch.setattr(r1.train, "evaluate", fake_evaluate)
    model = StubModel()
    result = r1.train.heldout_eval(model, None, plan, run, "before")
    assert result == {"accuracy": 0.25, "format_rate": 0.5, "greedy": 0.75, "greedy_format_rate": 0.125}
    assert model.training is True  # training mode restored
    assert sorted((c["t"], c["n"]) for c in calls) == [(0.0, 1), (0.7, 3)]
    want = [{**r, "id": i} for i, r in enumerate(plan.heldout)]  # every column travels (countdown, code grading)
    for c in calls:
        assert c["problems"] == want and c["template"] == "r1_zero"
        assert c["max_new_tokens"] == 5 and c["seed"] == run.training.seed

    fields = r1.train.heldout_phase(model, None, plan, run, "after", SimpleNamespace(is_main_process=True,
                                                                                     wait_for_everyone=lambda: None))
    assert fields == {"heldout_accuracy_after": 0.25, "heldout_greedy_after": 0.75, "heldout_format_after": 0.5}


def test_heldout_eval_equals_direct_evaluate_calls_on_tiny_qwen2(tmp_path):
    """The same numbers as calling r1.evaluation.evaluate directly: sampled avg@n at the held-out temperature, and
    greedy avg@1 (real generation on the tiny model, 3 problems, 4 new tokens)."""
    from r1.evaluation import evaluate
    from r1.models import load_model, load_tokenizer
    from r1.train import heldout_eval

    run, plan = heldout_run(tmp_path, "--heldout_max_new_tokens", "4")
    model, tokenizer = load_model("tiny:qwen2", dtype="float32"), load_tokenizer("tiny:qwen2")
    result = heldout_eval(model, tokenizer, plan, run, "before")
    problems = [{"id": i, "problem": r["problem"], "answer": r["answer"]} for i, r in enumerate(plan.heldout)]
    common = dict(top_p=1.0, max_new_tokens=4, seed=run.training.seed, progress=False)
    sampled = evaluate(model, tokenizer, problems, "r1_zero", num_samples=3, temperature=0.7, **common)
    greedy = evaluate(model, tokenizer, problems, "r1_zero", num_samples=1, temperature=0.0, **common)
    assert result["accuracy"] == sampled["avg@3"] and result["format_rate"] == sampled["format_rate"]
    assert result["greedy"] == greedy["avg@1"] and result["greedy_format_rate"] == greedy["format_rate"]
