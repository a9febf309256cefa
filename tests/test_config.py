"""Run configuration: YAML + CLI parsing, one-line errors, presets, the saved config round-trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from r1.config import RunConfig, parse_args
from r1.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "tests/configs/tiny_qwen2.yaml")
PRESETS = sorted((REPO / "recipes/configs").glob("*.yaml"))


def parse(*argv: str) -> RunConfig:
    return parse_args(["--config", TINY, *argv])


def test_yaml_values_and_cli_overrides():
    run = parse("--learning_rate", "3e-5", "--beta", "0.04", "--reward_funcs", "accuracy", "tag_count",
                "--reward_weights", "1", "0.5", "--no_fast_rollout")
    assert run.model.model_name_or_path == "tiny:qwen2"  # from YAML
    assert run.training.learning_rate == 3e-5 and run.training.beta == 0.04  # CLI wins
    assert run.script.reward_funcs == ["accuracy", "tag_count"] and run.training.reward_weights == [1.0, 0.5]
    assert run.training.fast_rollout is False
    assert {"learning_rate", "beta", "fast_rollout", "model_name_or_path"} <= run.user_keys


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--lerning_rate", "1e-5"], "unknown option '--lerning_rate' (did you mean 'learning_rate'?)"),
        (["--beta", "abc"], "invalid float value: 'abc'"),
        (["--num_generations", "3"], "num_generations (3) must divide the generation batch (4"),
        (["--max_completion_length", "0"], "max_completion_length must be > 0"),
        (["--reward_weights", "1.0"], "reward_weights has 1 values but reward_funcs has 2"),
        (["--task", "chess"], "unknown task 'chess'; choose one of: math, code, countdown, arithmetic"),
        (["--task", "countdwn"], "unknown task 'countdwn' (did you mean 'countdown'?)"),
        (["--task", "math"], "task=math needs dataset_name"),
        (["stray"], "unexpected argument 'stray'"),
        (["--dynamic_sampling", "true", "--dynamic_sampling_metric", "speed"], "dynamic_sampling_metric 'speed'"),
        # a field the rest of the config makes meaningless is an error, never silently ignored
        (["--countdown_max_target", "50"], "countdown_max_target does not apply to task=arithmetic"),
        (["--dataset_name", "x.jsonl"], "dataset_name does not apply to task=arithmetic"),
        (["--task_level", "2", "--task_ops", "+"], "task_ops is set but does not apply: task_level"),
        (["--heldout_temperature", "0.3"], "heldout_temperature is set but does not apply: it only applies with heldout_size > 0"),
        (["--dynamic_sampling_max_rounds", "2"], "dynamic_sampling_max_rounds is set but does not apply"),
        (["--fast_rollout", "false", "--fast_rollout_backend", "exact"], "fast_rollout_backend is set but does not apply"),
        (["--overlong_buffer_len", "4"], "overlong_buffer_len is set but does not apply"),
        (["--vllm_mode", "server"], "vllm_mode is set but use_vllm is false"),
        (["--reward_funcs", "accuracy", "soft_overlong", "--reward_weights", "1", "1"], "needs overlong_buffer_len > 0"),
    ],
)
def test_bad_options_are_one_line_errors(argv, expected):
    with pytest.raises(ConfigError) as e:
        parse(*argv)
    assert expected in str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_yaml_key_names_the_closest_valid_one(tmp_path):
    cfg = yaml.safe_load(Path(TINY).read_text())
    cfg["num_generation"] = 4
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match=r"unknown key 'num_generation' in .*bad.yaml \(did you mean 'num_generations'\?\)"):
        parse_args(["--config", str(path)])


def test_missing_or_broken_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        parse_args(["--config", str(tmp_path / "nope.yaml")])
    (tmp_path / "broken.yaml").write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        parse_args(["--config", str(tmp_path / "broken.yaml")])


def test_gradient_checkpointing_old_name_is_honoured_without_conflict():
    run = parse("--gradient_checkpointing", "true")
    assert run.training.gradient_checkpointing is True and run.training.activation_checkpointing is True


def test_saved_config_round_trips(tmp_path):
    run = parse("--learning_rate", "2e-5", "--template", "chat", "--output_dir", str(tmp_path / "o"))
    saved = run.to_yaml_dict()
    assert saved["template"] == "chat" and saved["learning_rate"] == 2e-5
    assert "generation_batch_size" not in saved and "activation_checkpointing" not in saved
    path = tmp_path / "r1_config.yaml"
    path.write_text(yaml.safe_dump(saved))
    again = parse_args(["--config", str(path)])
    assert again.to_yaml_dict() == saved
    assert again.training.generation_batch_size == run.training.generation_batch_size


@pytest.mark.parametrize("preset", PRESETS, ids=[p.stem for p in PRESETS])
def test_presets_set_every_algorithm_field_explicitly(preset):
    cfg = yaml.safe_load(preset.read_text())
    required = {
        "loss_type", "beta", "scale_rewards", "epsilon", "epsilon_high", "num_generations", "temperature", "top_p",
        "learning_rate", "lr_scheduler_type", "max_completion_length", "mask_truncated_completions",
        "num_iterations", "gradient_checkpointing", "bf16", "reward_funcs", "reward_weights", "template",
        "logging_steps", "save_steps", "model_name_or_path", "task", "output_dir", "seed",
    }
    assert required <= set(cfg), sorted(required - set(cfg))
    parse_args(["--config", str(preset)])  # and it parses (use_cpu is implied on a machine without GPU)
