"""Run configuration: YAML presets plus command-line overrides, checked before anything heavy happens.

A run is described by three dataclasses, parsed together TRL-style (`TrlParser`): `ScriptArguments` (data, task,
template, rewards, held-out evaluation), `ModelArguments` (which model, dtype) and `R1GRPOConfig` (TRL's
`GRPOConfig` plus our fields: dynamic sampling, overlong shaping, artifact cadence, $/GPU-hour). The YAML file sets
defaults, `--field value` on the command line overrides them.

Every mistake we can see without weights is a `ConfigError` with one line that names the problem and the fix: an
unknown key (with the closest valid one), a bad value, a batch that `num_generations` does not divide, a template or
reward name that does not exist. The entry point prints that line and exits 2.
"""

from __future__ import annotations

import dataclasses
import enum
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from trl import GRPOConfig, TrlParser
from trl.scripts._hf_argparser import string_to_bool

from r1.errors import ConfigError, first_line
from r1.generation import installed_vllm_version, vllm_version_problem
from r1.models import dtype_name
from r1.rewarding import check_reward_names
from r1.rollout import BACKENDS as ROLLOUT_BACKENDS
from r1.tasks import TASK_NAMES
from r1.templates import get_template
from rewards.extract import ANSWER_POLICIES
from rewards.registry import UnknownNameError, did_you_mean, lookup

DEFAULT_REFLECTION_WORDS = (
    "wait",
    "let me check",
    "check again",
    "verify",
    "double-check",
    "re-evaluate",
    "re-examine",
    "recheck",
    "hmm",
    "alternatively",
    "mistake",
)


@dataclass
class ScriptArguments:
    """What to train on and how it is scored (open-r1 / TRL option names)."""

    dataset_name: str | None = field(
        default=None,
        metadata={"help": "Hub dataset id or local .jsonl/.json/.parquet file. Required for task=math; task=code: "
                  "default mbpp (MBPP's mbpp.jsonl in $R1_DATA_DIR), or a file with problem and tests columns."},
    )
    dataset_config: str | None = field(default=None, metadata={"help": "Hub dataset configuration name."})
    dataset_split: str = field(default="train", metadata={"help": "Dataset split to train on."})
    problem_column: str = field(default="problem", metadata={"help": "Column holding the problem text."})
    answer_column: str = field(default="answer", metadata={"help": "Column holding the reference answer."})
    min_level: int | None = field(default=None, metadata={"help": "Keep problems with level >= this (MATH)."})
    max_level: int | None = field(default=None, metadata={"help": "Keep problems with level <= this (MATH)."})
    dedupe: bool = field(default=True, metadata={"help": "Drop exact-duplicate problems."})
    decontaminate: bool = field(
        default=True, metadata={"help": "Drop training problems that overlap the evaluation benchmarks."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep at most this many problems."})
    template: str = field(default="r1_zero", metadata={"help": "Prompt template (see r1.templates.TEMPLATES)."})
    reward_funcs: list[str] = field(
        default_factory=lambda: ["accuracy", "format"],
        metadata={"help": "Reward function names (rewards.REWARD_FUNCS, plus soft_overlong)."},
    )
    answer_policy: str = field(
        default="lenient",
        metadata={"help": "What the accuracy reward credits: strict = only an <answer> block after </think> (the R1-Zero "
                  "preset); lenient = also a final \\boxed{} or an explicit final statement (rewards.extract)."},
    )
    task: str = field(
        default="math",
        metadata={"help": "math or code (a dataset), countdown or arithmetic (problems generated on the fly, seeded)."},
    )
    task_size: int = field(default=10000, metadata={"help": "Number of generated training problems."})
    task_seed: int = field(default=0, metadata={"help": "Seed of the generator (the held-out set uses seed + 1)."})
    task_level: list[int] | None = field(
        default=None, metadata={"help": "Arithmetic: difficulty level(s) 1-5 (r1.tasks.ARITHMETIC_LEVELS); overrides ops/operands."}
    )
    task_ops: list[str] | None = field(
        default=None, metadata={"help": "Operations to draw from (arithmetic default: +; countdown: + - * /)."}
    )
    task_max_operand: int = field(default=9, metadata={"help": "Arithmetic: operands are drawn from 0..max."})
    task_num_operands: int = field(default=2, metadata={"help": "Arithmetic: operands per problem."})
    countdown_num_numbers: list[int] = field(
        default_factory=lambda: [3, 4], metadata={"help": "Countdown: how many numbers a problem has (choices)."}
    )
    countdown_min_number: int = field(default=1, metadata={"help": "Countdown: smallest number."})
    countdown_max_number: int = field(default=100, metadata={"help": "Countdown: largest number."})
    countdown_max_target: int = field(default=100, metadata={"help": "Countdown: largest target."})
    heldout_size: int = field(
        default=0,
        metadata={"help": "Held-out problems evaluated before/after training (0 = skip): generated apart from the "
                  "training set (arithmetic), or a seeded split taken out of the training data (math)."},
    )
    heldout_num_samples: int = field(default=4, metadata={"help": "Samples per held-out problem (avg@n)."})
    heldout_temperature: float = field(default=0.6, metadata={"help": "Sampling temperature of the held-out avg@n."})
    heldout_max_new_tokens: int | None = field(
        default=None, metadata={"help": "Held-out generation length (default: max_completion_length)."}
    )
    eval_benchmarks: list[str] | None = field(
        default=None,
        metadata={"help": "Benchmarks evaluated during training with eval's own runner (names as in python -m eval "
                  "--benchmarks, or .jsonl/.json/.parquet files; `heldout` = the run's held-out set): before the first "
                  "step, every eval_steps steps and at the end; logged to metrics.jsonl as eval/<benchmark>/avg@<n>."},
    )
    eval_limit: int | None = field(default=None, metadata={"help": "Evaluate the first K problems of each benchmark."})
    eval_num_samples: int = field(default=1, metadata={"help": "Samples per benchmark problem (n of avg@n)."})
    eval_temperature: float = field(default=0.6, metadata={"help": "Benchmark sampling temperature (0 = greedy)."})
    eval_max_new_tokens: int | None = field(
        default=None, metadata={"help": "Benchmark generation length (default: max_completion_length)."}
    )
    eval_data_dir: str | None = field(
        default=None, metadata={"help": "Folder with the benchmark files (default: $R1_DATA_DIR, else the hub)."}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Start fresh in an output_dir that holds an earlier run (its artifacts are deleted)."},
    )
    dry_run: bool = field(
        default=False, metadata={"help": "Validate everything that can be validated without weights, print, exit."}
    )

    def __post_init__(self) -> None:
        if isinstance(self.reward_funcs, str):
            self.reward_funcs = [self.reward_funcs]
        for name in ("task_ops", "task_level", "countdown_num_numbers"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, list):
                setattr(self, name, [value])
        try:
            self.task = lookup("task", self.task, TASK_NAMES)
        except UnknownNameError as e:
            raise ConfigError(str(e)) from None
        if self.task == "math" and not self.dataset_name:
            raise ConfigError("task=math needs dataset_name (a hub id or a local .jsonl/.parquet file)")
        if self.task == "code" and not self.dataset_name:
            self.dataset_name = "mbpp"  # r1.data.MBPP: MBPP's train split from the data dir
        if isinstance(self.eval_benchmarks, str):
            self.eval_benchmarks = [b for b in self.eval_benchmarks.split(",") if b.strip()]
        for name in ("eval_limit", "eval_max_new_tokens"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.eval_temperature < 0:
            raise ConfigError(f"eval_temperature must be >= 0 (got {self.eval_temperature}); 0 is greedy")
        for name in ("task_size", "heldout_num_samples", "eval_num_samples"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.heldout_size < 0:
            raise ConfigError(f"heldout_size must be >= 0 (got {self.heldout_size})")
        if not self.reward_funcs:
            raise ConfigError("reward_funcs is empty; name at least one reward, e.g. --reward_funcs accuracy format")
        self.reward_funcs = check_reward_names(self.reward_funcs)  # one spelling everywhere: accuracy_reward -> accuracy
        try:
            self.answer_policy = lookup("answer policy", self.answer_policy, ANSWER_POLICIES)
        except UnknownNameError as e:
            raise ConfigError(str(e)) from None


@dataclass
class ModelArguments:
    """Which model to train. Names are resolved by `r1.models.resolve_model` (same names as the eval CLI)."""

    model_name_or_path: str = field(
        default="embedded:smollm2-135m",
        metadata={"help": "Hub id, local folder, embedded:smollm2-135m or tiny:{qwen2,llama,deepseek-v3}."},
    )
    model_revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit)."})
    dtype: str = field(default="auto", metadata={"help": "Weights dtype: auto, float32, bfloat16, float16."})
    attn_implementation: str | None = field(
        default=None, metadata={"help": "Attention kernel, e.g. sdpa, flash_attention_2, eager."}
    )
    # LoRA through TRL's PEFT options (TRL's names). The reference model of beta > 0 is the base with the adapter
    # disabled (no second copy); output_dir and checkpoints hold the adapter, which the eval CLI loads (r1.models).
    use_peft: bool = field(
        default=False, metadata={"help": "Train a LoRA adapter instead of all weights (needs `pip install peft`)."}
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank."})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA alpha (the update is scaled by alpha / r)."})
    lora_dropout: float = field(
        default=0.0,
        metadata={"help": "LoRA dropout. 0 on purpose (TRL's default is 0.05): dropout in the policy makes the GRPO "
                  "ratio and the KL to the reference noisy even before the first update."},
    )
    lora_target_modules: list[str] | None = field(
        default_factory=lambda: ["all-linear"],
        metadata={"help": "Modules that get an adapter: all-linear (every linear layer but the output head: attention "
                  "and MLP, as RL with LoRA needs), or module names like q_proj v_proj."},
    )

    def __post_init__(self) -> None:
        try:
            dtype_name(self.dtype)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if isinstance(self.lora_target_modules, str):
            self.lora_target_modules = [self.lora_target_modules]
        if self.lora_r < 1 or self.lora_alpha <= 0 or not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"lora_r must be >= 1, lora_alpha > 0 and lora_dropout in [0, 1) (got {self.lora_r}, "
                              f"{self.lora_alpha}, {self.lora_dropout})")
        if not self.lora_target_modules:
            raise ConfigError("lora_target_modules is empty; name modules (e.g. q_proj v_proj) or all-linear")


@dataclass
class R1GRPOConfig(GRPOConfig):
    """TRL's `GRPOConfig` plus what r1-zero adds on top of `GRPOTrainer`."""

    dynamic_sampling: bool = field(
        default=False,
        metadata={"help": "DAPO dynamic sampling: drop groups whose rewards are all equal, refill with new prompts."},
    )
    dynamic_sampling_max_rounds: int = field(
        default=4, metadata={"help": "Extra generation rounds per step to refill the batch before giving up."}
    )
    dynamic_sampling_metric: str = field(
        default="reward",
        metadata={"help": "What must vary within a group: 'reward' (weighted sum) or one reward function's name."},
    )
    overlong_buffer_len: int = field(
        default=0,
        metadata={"help": "DAPO soft overlong punishment buffer (tokens) for the soft_overlong reward; 0 = off."},
    )
    sample_log_steps: int = field(
        default=10, metadata={"help": "Write sample completions to samples.jsonl every N steps (0 = never)."}
    )
    sample_log_count: int = field(default=8, metadata={"help": "Samples written per dump."})
    plot_every_s: float = field(
        default=30.0, metadata={"help": "Refresh curves.png at most this often (seconds); always at the end."}
    )
    max_train_seconds: float | None = field(
        default=None,
        metadata={"help": "Stop training (saving a checkpoint) after this many seconds of training; None = no limit."},
    )
    gpu_hour_cost: float = field(
        default=2.5, metadata={"help": "$ per GPU-hour for the cost estimate in summary.json."}
    )
    gpu_memory_gib: float = field(
        default=80.0,
        metadata={"help": "Memory of one accelerator (GiB): --dry_run warns when the estimated peak per device "
                  "(r1/memory.py) exceeds it."},
    )
    reflection_words: list[str] = field(
        default_factory=lambda: list(DEFAULT_REFLECTION_WORDS),
        metadata={"help": "Words counted per step as the 'aha moment' signal."},
    )
    fast_rollout: bool = field(
        default=True,
        metadata={"help": "Generate with r1.rollout's lean decode loop (same tokens as TRL's generate, less overhead); "
                  "ignored with use_vllm."},
    )
    fast_rollout_backend: str = field(
        default="auto",
        metadata={"help": "exact (dynamic cache, TRL's exact draws) | compiled (static cache + compiled decode on a "
                  "copy of the weights) | auto (compiled on CUDA, exact elsewhere)."},
    )
    fast_rollout_dtype: str = field(
        default="auto", metadata={"help": "dtype of the compiled backend's weight copy (auto = bf16 on CUDA with bf16)."}
    )
    stop_at_answer: bool = field(
        default=True,
        metadata={"help": "End a completion right after </answer> (with EOS: it counts as terminated) when the template "
                  "asks for answer tags; base models otherwise write on, and the last answer block is graded."},
    )
    alarm_window: int = field(
        default=5,
        metadata={"help": "Learning-stall alarms (r1/alarms.py) look at this many logged steps in a row; 0 = off."},
    )
    alarm_clipped_ratio: float = field(
        default=0.5, metadata={"help": "Alarm when the share of completions cut at max_completion_length stays above this."}
    )
    alarm_entropy_fraction: float = field(
        default=0.1, metadata={"help": "Alarm when the token entropy falls below this fraction of its first value."}
    )
    alarm_unscored_frac: float = field(
        default=0.05, metadata={"help": "Alarm when more than this share of one reward's values are None or errors."}
    )
    cpu_retain_freed_memory: bool = field(
        default=True,
        metadata={"help": "Training on CPU: keep freed memory in the process (glibc mallopt) instead of faulting in "
                  "fresh pages every step (~10 % of a small model's step); no numerical effect. See r1/cpu_memory.py."},
    )
    max_consecutive_nonfinite: int = field(
        default=5,
        metadata={
            "help": "A step whose loss or gradient norm is NaN/inf is skipped (no update) and counted; stop the run "
            "after this many in a row (0 = never stop)."
        },
    )
    rank_lost_timeout: float = field(
        default=60.0,
        metadata={"help": "Several processes: a rank whose process ended (same machine) or that sent no heartbeat for "
                  "this many seconds (other machines) is lost; the others exit with one line naming it instead of "
                  "waiting in a collective (r1/distributed.py)."},
    )

    def __post_init__(self) -> None:
        if self.max_completion_length is not None and self.max_completion_length <= 0:
            raise ConfigError(
                f"max_completion_length must be > 0 (got {self.max_completion_length}); e.g. --max_completion_length 512"
            )
        if self.dynamic_sampling_max_rounds < 0:
            raise ConfigError(f"dynamic_sampling_max_rounds must be >= 0 (got {self.dynamic_sampling_max_rounds})")
        if self.overlong_buffer_len < 0:
            raise ConfigError(f"overlong_buffer_len must be >= 0 (got {self.overlong_buffer_len})")
        if self.fast_rollout_backend not in ROLLOUT_BACKENDS:
            raise ConfigError(
                f"fast_rollout_backend must be one of {', '.join(ROLLOUT_BACKENDS)} (got {self.fast_rollout_backend!r})"
            )
        if self.gpu_memory_gib <= 0:
            raise ConfigError(f"gpu_memory_gib must be > 0 (got {self.gpu_memory_gib}), e.g. 80 for an 80 GB GPU")
        if self.alarm_window < 0:
            raise ConfigError(f"alarm_window must be >= 0 (got {self.alarm_window}); 0 turns the alarms off")
        if self.max_consecutive_nonfinite < 0:
            raise ConfigError(f"max_consecutive_nonfinite must be >= 0 (got {self.max_consecutive_nonfinite}); 0 never stops")
        if isinstance(self.reflection_words, str):
            self.reflection_words = [self.reflection_words]
        # transformers 5 renamed gradient_checkpointing -> activation_checkpointing; TRL (and our presets) use the
        # old name. Resolve it here so the old name works without a warning and a CLI override of it is not ignored.
        for old, new in (("gradient_checkpointing", "activation_checkpointing"),
                         ("gradient_checkpointing_kwargs", "activation_checkpointing_kwargs")):
            if getattr(self, new, None) is not None and getattr(self, old) is not None and getattr(self, new) != getattr(self, old):
                raise ConfigError(f"{old} and {new} disagree; set only {old}")
            if getattr(self, new, None) is None:
                setattr(self, new, getattr(self, old))
        if not _has_accelerator():
            # No GPU: TRL's default bf16=True would be an error, and processes started by torchrun
            # (`accelerate launch --multi_gpu --num_processes N`) only form a (gloo) process group with use_cpu.
            if self.bf16 is None and not self.fp16:
                self.bf16 = False
            self.use_cpu = True
        try:
            super().__post_init__()
        except ValueError as e:
            if "divisible by num_generations" in str(e):
                raise ConfigError(self._batch_message()) from None
            raise

    def _batch_message(self) -> str:
        return (
            f"num_generations ({self.num_generations}) must divide the generation batch ({self.generation_batch_size} "
            f"= per_device_train_batch_size {self.per_device_train_batch_size} x {self.world_size} processes x "
            f"steps_per_generation {self.steps_per_generation}); change one of them"
        )


DATACLASSES = (ScriptArguments, ModelArguments, R1GRPOConfig)
ALGORITHM_FIELDS = (
    "loss_type",
    "beta",
    "scale_rewards",
    "epsilon",
    "epsilon_high",
    "num_generations",
    "num_iterations",
    "temperature",
    "top_p",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_steps",
    "max_completion_length",
    "mask_truncated_completions",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "steps_per_generation",
    "generation_batch_size",
    "gradient_checkpointing",
    "bf16",
    "reward_weights",
    "dynamic_sampling",
    "dynamic_sampling_metric",
    "overlong_buffer_len",
    "max_steps",
    "num_train_epochs",
    "logging_steps",
    "save_steps",
    "seed",
    "use_vllm",
    "stop_at_answer",
    "output_dir",
)
# Aliases, secrets and per-machine values that a saved config must not pin.
NEVER_WRITTEN = ("activation_checkpointing", "activation_checkpointing_kwargs", "hub_token", "use_cpu", "local_rank")
# Fields GRPOConfig derives from others: written back only when the user set them (both set is an error in TRL).
DERIVED_FIELDS = ("generation_batch_size", "steps_per_generation")


@dataclass
class RunConfig:
    """The parsed run: the three dataclasses plus where they came from."""

    script: ScriptArguments
    model: ModelArguments
    training: R1GRPOConfig
    config_path: str | None
    user_keys: set[str]
    debug: bool = False
    notes: list[str] = field(default_factory=list)
    cli_keys: set[str] = field(default_factory=set)  # the subset of user_keys set on the command line

    def to_yaml_dict(self) -> dict[str, Any]:
        """Flat mapping that `--config` accepts again: all script and model options, the algorithm fields, our own
        training fields, and every training field the user set. (Comparing against a second default config would
        construct another TrainingArguments, which re-initialises the distributed state: not done.)"""
        out: dict[str, Any] = {}
        ignored = inapplicable_fields(self)  # written, they would be an error when the file is read back
        for obj in (self.script, self.model):
            for f in dataclasses.fields(obj):
                if f.name != "dry_run" and f.name not in ignored:
                    out[f.name] = _plain(getattr(obj, f.name))
        ours = {f.name for f in dataclasses.fields(R1GRPOConfig)} - {f.name for f in dataclasses.fields(GRPOConfig)}
        as_dict = self.training.to_dict()
        for f in dataclasses.fields(self.training):
            name = f.name
            if not f.init or name.startswith("_") or name not in as_dict or name in NEVER_WRITTEN:
                continue
            if (name in DERIVED_FIELDS or name in ignored) and name not in self.user_keys:
                continue
            if name in self.user_keys or name in ALGORITHM_FIELDS or name in ours:
                value = _plain(as_dict[name])
                if _is_serialisable(value):
                    out[name] = value
        return out

    def summary_lines(self) -> list[str]:
        """Human-readable resolved settings (printed by --dry_run and at the start of a run)."""
        t = self.training
        lines = [f"config: {self.config_path or '(none)'}"] + [f"note: {n}" for n in self.notes]
        lines.append("script: " + ", ".join(f"{f.name}={getattr(self.script, f.name)!r}" for f in dataclasses.fields(self.script) if f.name != "dry_run"))
        lines.append("model: " + ", ".join(f"{f.name}={getattr(self.model, f.name)!r}" for f in dataclasses.fields(self.model)))
        lines.append("training: " + ", ".join(f"{k}={_plain(getattr(t, k))!r}" for k in ALGORITHM_FIELDS))
        prompts = t.generation_batch_size // t.num_generations
        lines.append(
            f"batch: {t.world_size} process(es) x {t.per_device_train_batch_size} per device x {t.steps_per_generation} "
            f"steps/generation = {t.generation_batch_size} completions = {prompts} prompt(s) x {t.num_generations} "
            "samples per generation round"
        )
        extra = sorted(k for k in self.user_keys if k not in ALGORITHM_FIELDS and hasattr(t, k))
        if extra:
            lines.append("other training fields set: " + ", ".join(f"{k}={_plain(getattr(t, k))!r}" for k in extra))
        return lines


def _plain(value: Any) -> Any:
    """Enums to their values, tuples to lists, so the YAML round-trips."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _is_serialisable(value: Any) -> bool:
    if value is None or isinstance(value, (bool, int, float, str)):
        return True
    if isinstance(value, list):
        return all(_is_serialisable(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _is_serialisable(v) for k, v in value.items())
    return False


def valid_keys() -> list[str]:
    return sorted({f.name for cls in DATACLASSES for f in dataclasses.fields(cls) if f.init})


def _make_parser():
    class _Parser(TrlParser):
        def error(self, message: str):  # argparse would print usage and exit; we want one line
            raise ConfigError(f"bad command-line option: {message}")

    return _Parser(DATACLASSES, allow_abbrev=False)


def _split_meta_args(argv: list[str]) -> tuple[list[str], str | None, bool]:
    """Pull out `--config PATH` and a bare `--debug` (TrainingArguments.debug with a value is left alone)."""
    args, config, debug = [], None, False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--config":
            if i + 1 >= len(argv):
                raise ConfigError("--config needs a path, e.g. --config recipes/configs/demo.yaml")
            config = argv[i + 1]
            i += 2
            continue
        if a.startswith("--config="):
            config = a.split("=", 1)[1]
        elif a == "--debug" and (i + 1 >= len(argv) or argv[i + 1].startswith("--")):
            debug = True
        else:
            args.append(a)
        i += 1
    return args, config, debug


def load_yaml_config(path: str) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {path!r} not found; presets live in recipes/configs/")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"config file {path!r} is not valid YAML{where}: {getattr(e, 'problem', e)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path!r} must be a YAML mapping of option: value")
    return data


def _check_cli_flags(parser: Any, args: list[str], keys: list[str]) -> None:
    known = {s for a in parser._actions for s in a.option_strings}
    for a in args:
        if a.startswith("--") and len(a) > 2:
            flag = a.split("=", 1)[0]
            if flag not in known and flag.replace("-", "_") not in known:
                name = flag[2:]
                raise ConfigError(f"unknown option {flag!r}{did_you_mean(name, keys)}; see --help for valid options")


def _cli_keys(args: list[str]) -> set[str]:
    keys = set()
    for a in args:
        if a.startswith("--"):
            k = a[2:].split("=", 1)[0].replace("-", "_")
            keys.add(k[3:] if k.startswith("no_") and k[3:] in valid_keys() else k)
    return keys


def parse_args(argv: list[str] | None = None, default_config: str | None = None) -> RunConfig:
    """Parse `--config FILE` plus `--field value` overrides into a RunConfig, or raise ConfigError (one line).

    Without `--config`, `default_config` (the demo preset) supplies the settings; when the command line picks its
    own data (`--dataset_name` or `--task`), the preset's data fields are left out, so the run trains on that data
    with the preset's model and algorithm settings (a note says so).
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args, config_path, debug = _split_meta_args(argv)
    debug = debug or os.environ.get("R1_DEBUG", "") not in ("", "0")
    notes: list[str] = []
    config = load_yaml_config(config_path or default_config) if (config_path or default_config) else {}
    if config_path is None and default_config and _cli_keys(args) & {"dataset_name", "task"}:
        dropped = sorted(k for k in config if k in TASK_FIELDS or k == "task")
        config = {k: v for k, v in config.items() if k not in dropped}
        notes.append(f"no --config: {default_config}'s model and training settings, your data ({', '.join(dropped)} "
                     "from the preset left out)")
    config_path = config_path or default_config

    env = config.pop("env", None)
    if env is not None:
        if not isinstance(env, dict):
            raise ConfigError("`env` in the config must be a mapping of VARIABLE: value")
        for k, v in env.items():
            os.environ[str(k)] = str(v)
    keys = valid_keys()
    for key in config:
        if key not in keys:
            raise ConfigError(
                f"unknown key {key!r} in {config_path}{did_you_mean(str(key), keys)}; "
                "valid keys are the fields of ScriptArguments, ModelArguments and R1GRPOConfig (see --help)"
            )

    parser = _make_parser()
    _check_cli_flags(parser, args, keys)
    parser.set_defaults_with_config(**config)
    bf16_unchecked = _wants_dry_run(config, args) and not _has_accelerator()
    try:
        *objs, remaining = parser.parse_args_into_dataclasses(args=args, return_remaining_strings=True)
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        if "support bf16" in str(e):
            raise ConfigError("bf16 is on but this machine has no bf16-capable GPU; pass --bf16 false (or run on a GPU)") from None
        raise ConfigError(first_line(e)) from None
    if remaining:
        raise ConfigError(f"unexpected argument {remaining[0]!r}; options look like --name value")
    script, model, training = objs
    user_keys = set(config) | _cli_keys(args)
    if bf16_unchecked and training.bf16:
        notes.append("dry run without a GPU: bf16 support not checked")
    run = RunConfig(script, model, training, config_path, user_keys, debug, notes, _cli_keys(args))
    _check_cross_fields(run)
    return run


def _wants_dry_run(config: dict[str, Any], args: list[str]) -> bool:
    for i, a in enumerate(args):
        if a == "--dry_run":
            nxt = args[i + 1] if i + 1 < len(args) else None
            if nxt is None or nxt.startswith("--"):
                return True
            try:
                return bool(string_to_bool(nxt))
            except Exception:
                return True
        if a.startswith("--dry_run="):
            return a.split("=", 1)[1].lower() in ("1", "true", "yes", "y", "t")
    return bool(config.get("dry_run"))


def _has_accelerator() -> bool:
    return torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())


# Script fields that only mean something for some tasks: set for another task, they would be silently ignored.
_MATH = ("math",)
_DATASET = ("math", "code")
_GENERATED = ("countdown", "arithmetic")
TASK_FIELDS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("dataset_name", "dataset_config", "dataset_split", "problem_column", "dedupe", "decontaminate",
                     "max_train_samples"), _DATASET),
    **dict.fromkeys(("answer_column", "min_level", "max_level"), _MATH),
    **dict.fromkeys(("task_size", "task_ops"), _GENERATED),
    **dict.fromkeys(("heldout_size", "heldout_num_samples", "heldout_temperature", "heldout_max_new_tokens"),
                    ("math", "arithmetic", "countdown", "code")),
    **dict.fromkeys(("task_level", "task_max_operand", "task_num_operands"), ("arithmetic",)),
    **dict.fromkeys(("countdown_num_numbers", "countdown_min_number", "countdown_max_number",
                     "countdown_max_target"), ("countdown",)),
}


# Fields whose value decides whether other fields apply (see inapplicable_fields).
APPLICABILITY_FIELDS = {"task", "task_level", "template", "reward_funcs", "heldout_size", "eval_benchmarks", "alarm_window",
                        "dynamic_sampling", "sample_log_steps", "fast_rollout", "fast_rollout_backend", "use_vllm",
                        "use_peft"}


def inapplicable_fields(run: RunConfig) -> dict[str, str]:
    """Fields that the rest of the config makes meaningless (set, they would be silently ignored), with why."""
    s, t = run.script, run.training
    out = {name: f"{name} does not apply to task={s.task} (it is used by task={'/'.join(tasks)})"
           for name, tasks in TASK_FIELDS.items() if s.task not in tasks}
    depends = {  # field -> (does it apply?, what makes it apply)
        "task_ops": (not s.task_level, "task_level, which sets the operations itself; drop one of them"),
        "task_max_operand": (not s.task_level, "task_level, which sets the operands itself; drop one of them"),
        "task_num_operands": (not s.task_level, "task_level, which sets the operands itself; drop one of them"),
        "heldout_num_samples": (s.heldout_size > 0, "heldout_size > 0"),
        "heldout_temperature": (s.heldout_size > 0, "heldout_size > 0"),
        "heldout_max_new_tokens": (s.heldout_size > 0, "heldout_size > 0"),
        **dict.fromkeys(("eval_limit", "eval_num_samples", "eval_temperature", "eval_max_new_tokens", "eval_data_dir",
                         "eval_steps"), (bool(s.eval_benchmarks), "eval_benchmarks")),
        "dynamic_sampling_max_rounds": (t.dynamic_sampling, "dynamic_sampling true"),
        "dynamic_sampling_metric": (t.dynamic_sampling, "dynamic_sampling true"),
        "overlong_buffer_len": (t.overlong_buffer_len == 0 or "soft_overlong" in s.reward_funcs,
                                "the soft_overlong reward in reward_funcs"),
        "sample_log_count": (t.sample_log_steps > 0, "sample_log_steps > 0"),
        "answer_policy": ("accuracy" in s.reward_funcs, "the accuracy reward in reward_funcs"),
        **dict.fromkeys(("alarm_clipped_ratio", "alarm_entropy_fraction", "alarm_unscored_frac"),
                        (t.alarm_window > 0, "alarm_window > 0")),
        "stop_at_answer": (get_template(s.template).stop_text is not None and not t.use_vllm,
                           "a template with </answer> and transformers rollouts (not use_vllm)"),
        "fast_rollout_backend": (t.fast_rollout and not t.use_vllm, "fast_rollout true and use_vllm false"),
        "fast_rollout_dtype": (t.fast_rollout and not t.use_vllm and t.fast_rollout_backend != "exact",
                               "the compiled fast_rollout_backend"),
        **dict.fromkeys(("lora_r", "lora_alpha", "lora_dropout", "lora_target_modules"),
                        (run.model.use_peft, "use_peft true")),
    }
    for name, (applies, needs) in depends.items():
        if not applies and name not in out:
            out[name] = f"{name} is set but does not apply: {needs if 'drop' in needs else 'it only applies with ' + needs}"
    if not t.use_vllm:
        for name in (f.name for f in dataclasses.fields(t) if f.name.startswith("vllm_")):
            out[name] = f"{name} is set but use_vllm is false; set --use_vllm true or drop it"
    return out


def _check_cross_fields(run: RunConfig) -> None:
    s, t = run.script, run.training
    ignored = inapplicable_fields(run)
    for name in sorted(run.user_keys & set(ignored)):
        if name in run.cli_keys or not (run.cli_keys & APPLICABILITY_FIELDS):
            where = "on the command line" if name in run.cli_keys else f"in {run.config_path}"
            raise ConfigError(f"{ignored[name]} (set {where})")
        # the config file set it and a command-line override made it meaningless: say so, don't stop the run
        run.notes.append(f"WARNING {ignored[name]} (set in {run.config_path}; ignored after the command-line overrides)")
    if t.reward_weights is not None and len(t.reward_weights) != len(s.reward_funcs):
        raise ConfigError(
            f"reward_weights has {len(t.reward_weights)} values but reward_funcs has {len(s.reward_funcs)} "
            f"({', '.join(s.reward_funcs)}); give one weight per reward"
        )
    metric = t.dynamic_sampling_metric
    if metric != "reward" and metric not in s.reward_funcs:
        raise ConfigError(
            f"dynamic_sampling_metric {metric!r} is neither 'reward' nor one of reward_funcs ({', '.join(s.reward_funcs)})"
        )
    if "soft_overlong" in s.reward_funcs and t.overlong_buffer_len <= 0:
        raise ConfigError("reward soft_overlong needs overlong_buffer_len > 0 (DAPO uses 4096 of a 20480 budget)")
    if t.overlong_buffer_len >= (t.max_completion_length or 0) and t.overlong_buffer_len > 0:
        raise ConfigError(
            f"overlong_buffer_len ({t.overlong_buffer_len}) must be smaller than max_completion_length ({t.max_completion_length})"
        )
    if t.use_vllm:
        problem = vllm_version_problem(installed_vllm_version())
        if problem:
            raise ConfigError(f"use_vllm: {problem}, or drop --use_vllm")
        if t.stop_at_answer and get_template(s.template).stop_text:
            run.notes.append("WARNING use_vllm: vLLM rollouts are not stopped at </answer> (stop_at_answer applies to "
                             "the transformers rollout paths); completions may run on after the answer")
    if t.eval_steps is not None and t.eval_steps <= 0:
        raise ConfigError(f"eval_steps must be > 0 (got {t.eval_steps})")
