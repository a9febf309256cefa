"""Learning-stall alarms (r1/alarms.py): each fires once, at the step its condition holds, with a suggested fix."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
from test_train_artifacts import fake_trainer
from transformers import TrainerControl, TrainerState

from r1.alarms import StallAlarms
from r1.callbacks import RunArtifactsCallback

ARGS = SimpleNamespace(alarm_window=3, alarm_clipped_ratio=0.5, alarm_entropy_fraction=0.1, alarm_unscored_frac=0.05)
HEALTHY = {"clipped_ratio": 0.1, "frac_reward_zero_std": 0.5, "entropy": 1.0, "rewards/accuracy/none_frac": 0.0,
           "accuracy": 0.2, "format_rate": 0.5}


def run(changes_by_step: dict[int, dict], steps: int = 8) -> dict[int, dict[str, str]]:
    """Feed `steps` healthy records with the given changes from each listed step on; returns what fired where."""
    alarms, fired, current = StallAlarms(ARGS), {}, dict(HEALTHY)
    for step in range(1, steps + 1):
        current.update(changes_by_step.get(step, {}))
        out = alarms.check({"step": step, **current})
        if out:
            fired[step] = out
    return fired


@pytest.mark.parametrize(
    ("name", "changes", "step"),
    [
        ("truncated", {2: {"clipped_ratio": 0.8}}, 4),  # above 0.5 at steps 2, 3, 4: the third in a row
        ("no_signal", {3: {"frac_reward_zero_std": 1.0}}, 5),
        ("entropy_collapse", {4: {"entropy": 0.05}}, 6),  # below 0.1 x the first value (1.0) at steps 4, 5, 6
        ("unscored", {6: {"rewards/accuracy/none_frac": 0.25}}, 6),
        ("format_without_accuracy", {2: {"accuracy": 0.0}, 3: {"format_rate": 0.6}, 4: {"format_rate": 0.9}}, 4),
    ],
)
def test_each_alarm_fires_once_at_its_step_with_a_fix(name, changes, step):
    fired = run(changes)
    assert list(fired) == [step] and list(fired[step]) == [name]
    assert "suggested fix:" in fired[step][name]


def test_healthy_and_borderline_runs_stay_quiet():
    assert run({}) == {}
    assert run({2: {"clipped_ratio": 0.8}, 4: {"clipped_ratio": 0.1}, 5: {"clipped_ratio": 0.8}, 7: {"clipped_ratio": 0.1}}) == {}  # never 3 in a row
    assert run({2: {"accuracy": 0.0}}) == {}  # accuracy 0 but the format rate did not rise
    assert run({2: {"entropy": 0.2}}) == {}  # lower, not collapsed
    assert run({2: {"entropy": 0.05}, 3: {"entropy": 0.9}, 4: {"entropy": 0.05}, 6: {"entropy": 0.9}}) == {}  # dips
    assert StallAlarms(SimpleNamespace(**{**vars(ARGS), "alarm_window": 0})).check({"entropy": 0.0, "step": 1}) == {}


def test_alarms_go_into_metrics_jsonl_and_summary_and_do_not_refire_after_resume(tmp_path):
    trainer = fake_trainer(tmp_path)
    cb = RunArtifactsCallback(trainer)
    state, control = TrainerState(), TrainerControl()
    cb.on_train_begin(trainer.args, state, control)
    for step, entropy in ((1, 1.0), (2, 0.01), (3, 0.01), (4, 0.01)):
        state.global_step = step
        cb.on_log(trainer.args, state, control, logs={"loss": 0.1, "entropy": entropy})
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [sorted(k for k in r if k.startswith("alarm/")) for r in lines] == [[], [], [], ["alarm/entropy_collapse"]]
    assert cb.write_summary("completed")["alarms"] == ["entropy_collapse"]

    resumed = RunArtifactsCallback(fake_trainer(tmp_path))
    state.global_step = 4
    resumed.on_train_begin(trainer.args, state, control)
    state.global_step = 5
    resumed.on_log(trainer.args, state, control, logs={"loss": 0.1, "entropy": 0.01})
    last = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[-1])
    assert last["step"] == 5 and not any(k.startswith("alarm/") for k in last)
