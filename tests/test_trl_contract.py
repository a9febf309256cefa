"""The private TRL / transformers / accelerate surface r1-zero overrides or reads, pinned by signature.

Our mixins override narrow private methods (`r1/guards.py`, `r1/rollout.py`, `r1/trainer.py`), the decode loop
stands in for `GenerationMixin._sample` (`r1/decoding.py`), and `r1/distributed.py` wraps `AcceleratorState`. A
release that renames a parameter or a method would not fail loudly: an override of a method that no longer exists is
never called, so the fast rollout path, the resume state or the NaN guard would silently stop working. Each entry
below is one named test: an upgrade fails exactly the test of what moved, with the file that relies on it.
The versions these signatures were read from: trl 1.16.0, transformers 5.24.0, accelerate 1.15.0 (pyproject pins the
tested ranges).
"""

from __future__ import annotations

import importlib
import inspect

import pytest

# (object path, parameters in order, who relies on it)
SIGNATURES = [
    ("trl.GRPOTrainer._generate_single_turn",
     ["self", "prompt_ids", "images", "multimodal_fields", "num_generations", "has_tool_images"],
     "r1/rollout.py FastRolloutMixin (the fast rollout path)"),
    ("trl.GRPOTrainer._generate_and_score_completions", ["self", "inputs"], "r1/trainer.py dynamic sampling"),
    ("trl.GRPOTrainer._calculate_rewards", ["self", "inputs", "prompts", "completions", "completion_ids_list"],
     "r1/trainer.py reward health metrics"),
    ("trl.GRPOTrainer._get_train_sampler", ["self", "dataset"], "r1/guards.py EpochRepeatSampler (exact resume)"),
    ("trl.GRPOTrainer._save_checkpoint", ["self", "model", "trial"], "r1/guards.py atomic checkpoints"),
    ("trl.GRPOTrainer._load_optimizer_and_scheduler", ["self", "checkpoint"], "r1/guards.py resume state"),
    ("trl.GRPOTrainer.training_step", ["self", "model", "inputs", "num_items_in_batch"], "r1/guards.py NaN guard"),
    ("trl.GRPOTrainer.compute_loss", ["self", "model", "inputs", "return_outputs", "num_items_in_batch"],
     "tests (loss checks)"),
    ("trl.GRPOTrainer._prepare_inputs", ["self", "generation_batch"], "r1/guards.py generation buffer"),
    ("transformers.Trainer._get_output_dir", ["self", "trial"], "r1/guards.py staging folder"),
    ("transformers.Trainer._get_grad_norm", ["self", "model", "grad_norm"], "r1/guards.py non-finite step skip"),
    ("transformers.Trainer._save_optimizer_and_scheduler", ["self", "output_dir"], "tests (kill mid-save)"),
    ("transformers.generation.utils.GenerationMixin._sample",
     ["self", "input_ids", "logits_processor", "stopping_criteria", "generation_config", "synced_gpus", "streamer",
      "model_kwargs"], "r1/decoding.py lean_sample (same arguments as the loop it replaces)"),
    ("transformers.cache_utils.DynamicLayer.lazy_initialization", ["self", "key_states", "value_states"],
     "r1/decoding.py preallocated KV cache"),
    ("transformers.cache_utils.DynamicLayer.update", ["self", "key_states", "value_states", "args", "kwargs"],
     "r1/decoding.py preallocated KV cache"),
    ("trl.trainer.utils.RepeatSampler.__init__",
     ["self", "data_source", "mini_repeat_count", "batch_size", "repeat_count", "shuffle", "seed"],
     "r1/guards.py EpochRepeatSampler"),
    ("transformers.trainer_utils.rotate_checkpoints",
     ["output_dir", "save_total_limit", "best_model_checkpoint", "use_mtime", "checkpoint_prefix"],
     "r1/guards.py checkpoint rotation"),
    ("accelerate.state.AcceleratorState.__init__",
     ["self", "mixed_precision", "cpu", "dynamo_plugin", "deepspeed_plugin", "fsdp_plugin", "torch_tp_plugin",
      "megatron_lm_plugin", "parallelism_config", "_from_accelerator", "kwargs"],
     "r1/distributed.py honour_fsdp_on_cpu"),
]

# Attributes of a GRPOTrainer that r1 reads or writes (assigned in TRL's source).
ATTRIBUTES = [
    ("_buffered_inputs", "r1/guards.py saves/restores the generation buffer"),
    ("_step", "r1/guards.py restores TRL's micro-step counter"),
    ("_metrics", "r1/trainer.py and r1/guards.py log per-step metrics"),
    ("_tokenizer", "r1/trainer.py pads refilled batches"),
    ("num_iterations", "r1/guards.py generation cadence"),
    ("reward_func_names", "r1/trainer.py dynamic sampling metric"),
    ("_is_vlm", "r1/rollout.py fast path eligibility"),
]


def _resolve(path: str):
    parts = path.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(path)


@pytest.mark.parametrize("path, params, user", SIGNATURES, ids=[s[0].rsplit(".", 2)[-2] + "." + s[0].rsplit(".", 1)[-1]
                                                                 for s in SIGNATURES])
def test_signature(path, params, user):
    try:
        obj = _resolve(path)
    except (ImportError, AttributeError) as e:
        pytest.fail(f"{path} is gone ({e}); {user} relies on it")
    found = list(inspect.signature(obj).parameters)
    assert found == params, f"{path} changed: {found} (expected {params}); check {user}"


@pytest.mark.parametrize("name, user", ATTRIBUTES, ids=[a[0] for a in ATTRIBUTES])
def test_grpo_trainer_attribute(name, user):
    from trl import GRPOTrainer

    source = inspect.getsource(GRPOTrainer)
    assert f"self.{name} =" in source or f"self.{name}:" in source, f"GRPOTrainer no longer sets self.{name}; {user}"


def test_generate_accepts_custom_generate():
    """r1/rollout.py passes `custom_generate=lean_sample` to `model.generate`."""
    from transformers.generation.utils import GenerationMixin

    assert "custom_generate" in inspect.signature(GenerationMixin.generate).parameters


def test_our_overrides_exist_in_the_base_classes():
    """Every method the mixins define with a leading underscore overrides one of TRL/transformers (or is ours, listed)."""
    from trl import GRPOTrainer

    from r1.guards import RunGuardsMixin
    from r1.rollout import FastRolloutMixin
    from r1.trainer import R1ZeroTrainer

    for mixin in (RunGuardsMixin, FastRolloutMixin, R1ZeroTrainer):
        for name, value in vars(mixin).items():
            if not callable(value) or not name.startswith("_") or name.startswith("__"):
                continue
            if hasattr(GRPOTrainer, name):
                base = list(inspect.signature(getattr(GRPOTrainer, name)).parameters)
                ours = list(inspect.signature(value).parameters)
                assert ours[:len(base)] == base or "args" in ours, f"{mixin.__name__}.{name}{ours} vs TRL {base}"


def test_installed_versions_are_in_the_tested_ranges():
    """pyproject pins trl/transformers to the ranges tested here; an install outside them fails this test."""
    from importlib.metadata import version

    from packaging.version import Version

    assert Version("1.16") <= Version(version("trl")) < Version("1.17"), version("trl")
    assert Version("5.24") <= Version(version("transformers")) < Version("5.25"), version("transformers")
