"""One training run, from a parsed config to a saved model: what `recipes/r1_zero.py` (and `r1-train`) call.

    run = parse_args(argv)            # r1.config: YAML + command line, checked field by field
    plan = prepare(run)               # everything that can fail without weights: template, rewards, data, model name
    dry_run_lines(run, plan)          # ... or print the resolved settings and stop
    train(run, plan)                  # load, (held-out before), GRPO with R1ZeroTrainer, save, (held-out after)

`prepare` fails in seconds, in one line (`r1.errors`), before any weights load; `train` writes `r1_config.yaml`
first and `summary.json` last (also on failure or interrupt), so nothing a run wrote is lost.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from accelerate import PartialState
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
from trl.models import unwrap_model_for_generation

from r1.artifacts import CONFIG_FILE_NAME, atomic_write_text
from r1.benchmark_eval import EVAL_DIR, BenchmarkEvalCallback, load_eval_benchmarks
from r1.callbacks import CURVES_FILE, METRICS_FILE, SAMPLES_FILE, SUMMARY_FILE, RunArtifactsCallback
from r1.config import RunConfig
from r1.data import MBPP, load_code_dataset, load_training_dataset
from r1.distributed import RankWatchdog, check_launch, end_process_group, engine_name, honour_fsdp_on_cpu
from r1.errors import ConfigError, DatasetError, ModelNotFoundError, first_line
from r1.evaluation import evaluate, problems_sha256
from r1.guards import last_complete_checkpoint
from r1.hub import is_hub_id, is_offline
from r1.memory import dry_run_memory_lines
from r1.models import (
    EMBEDDED_MODELS,
    builtin_model_name,
    find_gguf,
    load_model,
    load_tokenizer,
    resolve_model,
)
from r1.rewarding import build_reward_funcs
from r1.tasks import train_and_heldout
from r1.templates import Template, get_template
from r1.trainer import R1ZeroTrainer

logger = logging.getLogger(__name__)

HELDOUT_BENCHMARK = "heldout"  # in eval_benchmarks: the run's own held-out problems (heldout_size > 0)


@dataclass
class Plan:
    """Everything validated before weights are loaded."""

    template: Template
    dataset: Any = None  # datasets.Dataset with problem/answer (+ task columns); None when a dry run cannot check it
    heldout: Any = None
    eval_benchmarks: dict[str, Any] | None = None  # in-training benchmark evaluation (r1.benchmark_eval)
    model_path: str | None = None  # resolved (None in a dry run for built-in / unverifiable hub models)
    resume: str | None = None  # checkpoint folder to resume from
    data_stats: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ prepare


def prepare(run: RunConfig) -> Plan:
    """Everything that can fail without weights, in the order a user would fix it."""
    check_launch()  # `accelerate launch --cpu --num_processes 2` starts one process: say so, name the command that works
    template = get_template(run.script.template)
    resume = check_output_dir(run)
    notes: list[str] = []
    dataset, heldout, stats = build_dataset(run, notes)
    benchmarks = in_training_benchmarks(run, heldout)
    if dataset is not None and len(dataset) == 0:
        raise ConfigError("the training set is empty; check the dataset and its filters")
    t = run.training
    prompts_per_round = t.generation_batch_size // t.num_generations
    if dataset is not None and len(dataset) < prompts_per_round:
        raise ConfigError(
            f"the training set has {len(dataset)} problems but one generation round needs {prompts_per_round} "
            f"({t.generation_batch_size} completions / num_generations {t.num_generations}); add data or lower "
            "per_device_train_batch_size"
        )
    if run.script.task == "countdown" and "countdown" not in run.script.reward_funcs:
        notes.append("WARNING task=countdown without the countdown reward: accuracy is graded as math equality")
    if run.script.task == "code" and "code" not in run.script.reward_funcs:
        notes.append("WARNING task=code without the code reward: no reward runs the programs against the tests")
    if run.script.task != "code" and "code" in run.script.reward_funcs:
        raise ConfigError(f"reward code needs task=code (problems with tests), not task={run.script.task}; "
                          "pass --task code or drop the code reward")
    if run.model.use_peft and importlib.util.find_spec("peft") is None:
        raise ConfigError("use_peft needs the peft package: pip install 'r1-zero[lora]'")
    model_path = check_model(run.model.model_name_or_path, dry_run=run.script.dry_run,
                             trust_remote_code=t.trust_remote_code, notes=notes)
    return Plan(template, dataset, heldout, eval_benchmarks=benchmarks, model_path=model_path, resume=resume,
                data_stats=stats, notes=notes)


def in_training_benchmarks(run: RunConfig, heldout: Any) -> dict[str, dict[str, Any]] | None:
    """The `eval_benchmarks` to evaluate during training; the name `heldout` means the run's own held-out set."""
    names = list(run.script.eval_benchmarks or [])
    if not names:
        return None
    files = [n for n in names if n != HELDOUT_BENCHMARK]
    try:
        benchmarks = load_eval_benchmarks(files, run.script.eval_data_dir, run.script.eval_limit) if files else {}
    except ValueError as e:  # BenchmarkError included: unknown name, missing file, offline hub
        raise ConfigError(f"eval_benchmarks: {first_line(e)}") from None
    if HELDOUT_BENCHMARK in names:
        if heldout is None:
            raise ConfigError("eval_benchmarks: 'heldout' needs a held-out set; set heldout_size > 0")
        rows = heldout_problems(heldout)[: run.script.eval_limit]
        benchmarks[HELDOUT_BENCHMARK] = {"problems": rows, "source": "the run's held-out set",
                                         "data_sha256": problems_sha256(rows)}
    return benchmarks


def check_model(name: str, *, dry_run: bool, trust_remote_code: bool, notes: list[str]) -> str | None:
    """Resolve the model name; in a dry run, built-in models are only checked by name (no conversion) and a hub
    id that cannot be verified offline is a warning, not an error."""
    if dry_run and name.startswith(("embedded:", "tiny:")):
        name = builtin_model_name(name)
        if name.startswith("embedded:"):
            find_gguf(EMBEDDED_MODELS[name.split(":", 1)[1]])  # the package is installed
        notes.append(f"model {name}: built-in name OK (materialised on first real run)")
        return None
    try:
        return resolve_model(name, trust_remote_code=trust_remote_code)
    except ModelNotFoundError:
        if dry_run and is_hub_id(name) and is_offline():
            notes.append(f"WARNING model {name}: hub id not in the local cache and offline; not verified (downloaded at launch)")
            return None
        raise


def build_dataset(run: RunConfig, notes: list[str]) -> tuple[Any, Any, dict[str, Any]]:
    """(train dataset, held-out dataset or None, stats). Raises DatasetError / ConfigError in one line."""
    s = run.script
    if s.task == "math":
        if s.dry_run and is_hub_id(s.dataset_name) and is_offline():
            notes.append(f"WARNING dataset {s.dataset_name}: hub dataset offline; columns and filters not verified")
            return None, None, {}
        ds, stats = load_training_dataset(
            s.dataset_name, s.dataset_split, problem_column=s.problem_column, answer_column=s.answer_column,
            dataset_config=s.dataset_config, min_level=s.min_level, max_level=s.max_level, dedupe=s.dedupe,
            decontaminate=s.decontaminate, limit=s.max_train_samples, seed=s.task_seed,
        )
        if s.heldout_size:
            ds, heldout = split_heldout(ds, s.heldout_size, s.task_seed)
            stats = {**stats, "heldout": len(heldout), "final": len(ds)}
            return ds, heldout, stats
        return ds, None, stats
    if s.task == "code":
        return build_code_dataset(run, notes)
    settings = generator_settings(run)
    try:
        train, heldout = train_and_heldout(s.task, s.task_size, s.heldout_size, seed=s.task_seed, **settings)
    except ValueError as e:
        raise ConfigError(f"task {s.task}: {first_line(e)}") from None
    stats = {"source": f"generated:{s.task}", "settings": settings, "seed": s.task_seed, "final": len(train)}
    return train, (heldout if s.heldout_size else None), stats


def build_code_dataset(run: RunConfig, notes: list[str]) -> tuple[Any, Any, dict[str, Any]]:
    """task=code: MBPP's split from the data dir (dataset_name mbpp) or a dataset with problem and tests columns."""
    s = run.script
    mbpp = s.dataset_name.strip().lower() == MBPP
    if s.dry_run and not mbpp and is_hub_id(s.dataset_name) and is_offline():
        notes.append(f"WARNING dataset {s.dataset_name}: hub dataset offline; columns and tests not verified")
        return None, None, {}
    try:
        ds, stats = load_code_dataset(
            s.dataset_name, s.dataset_split, problem_column=s.problem_column, dataset_config=s.dataset_config,
            dedupe=s.dedupe, decontaminate=s.decontaminate, limit=s.max_train_samples, seed=s.task_seed,
        )
    except DatasetError as e:
        if not (s.dry_run and mbpp and "not found" in str(e)):
            raise
        notes.append(f"WARNING {first_line(e)}: the training set is not verified (set R1_DATA_DIR before training)")
        return None, None, {}
    if s.heldout_size:
        ds, heldout = split_heldout(ds, s.heldout_size, s.task_seed)
        return ds, heldout, {**stats, "heldout": len(heldout), "final": len(ds)}
    return ds, None, stats


def split_heldout(ds: Any, size: int, seed: int) -> tuple[Any, Any]:
    """(training set, held-out set): `size` problems drawn with `seed` and taken out of the training data."""
    if size >= len(ds):
        raise ConfigError(f"heldout_size {size} leaves no training data ({len(ds)} problems); lower heldout_size")
    order = ds.shuffle(seed=seed).select(range(size))
    taken = set(order["problem"])
    return ds.filter(lambda row: row["problem"] not in taken, desc="removing held-out problems"), order


def generator_settings(run: RunConfig) -> dict[str, Any]:
    """The keyword arguments of the task generator (r1.tasks) from the script options."""
    s = run.script
    if s.task == "arithmetic":
        if s.task_level:
            return {"level": s.task_level}
        return {"ops": s.task_ops or ["+"], "max_operand": s.task_max_operand, "num_operands": s.task_num_operands}
    settings: dict[str, Any] = {
        "num_numbers": s.countdown_num_numbers,
        "min_number": s.countdown_min_number,
        "max_number": s.countdown_max_number,
        "max_target": s.countdown_max_target,
    }
    if s.task_ops:
        settings["ops"] = s.task_ops
    return settings


def check_output_dir(run: RunConfig) -> str | None:
    """The checkpoint to resume from, if any; a fresh run must not silently mix with (or truncate) an earlier
    run's artifacts."""
    out = Path(run.training.output_dir)
    resume = resolve_resume(run.training.resume_from_checkpoint, run.training.output_dir)
    # `auto` = continue if there is a checkpoint, else start here (e.g. preempted before the first save).
    auto = str(run.training.resume_from_checkpoint).lower() == "auto"
    if resume or auto or run.script.dry_run or not out.exists():
        return resume
    previous = sorted(out.glob("checkpoint-*")) + [p for p in (out / METRICS_FILE,) if p.exists()]
    if previous and not run.script.overwrite_output_dir:
        raise ConfigError(
            f"output_dir {str(out)!r} holds an earlier run ({previous[-1].name}); continue it with "
            "--resume_from_checkpoint last, start over with --overwrite_output_dir true, or pick another --output_dir"
        )
    return None


def resolve_resume(value: Any, output_dir: str) -> str | None:
    """`resume_from_checkpoint` as a folder: none/false -> None; last/true/auto -> the last complete checkpoint
    (auto: None when there is none yet); a path -> itself, which must exist."""
    if value is None or str(value).lower() in ("", "false", "none", "no"):
        return None
    if str(value).lower() in ("last", "auto", "true", "yes"):
        found = last_complete_checkpoint(output_dir)  # skips a checkpoint-N left incomplete by a kill mid-save
        if found is None and str(value).lower() != "auto":
            raise ConfigError(f"--resume_from_checkpoint {value}: no checkpoint-N folder in {output_dir}")
        return found
    if not Path(value).is_dir():
        raise ConfigError(f"checkpoint {value!r} does not exist; pass a checkpoint-N folder or 'last'")
    return str(value)


def dry_run_lines(run: RunConfig, plan: Plan) -> list[str]:
    """What `--dry_run` prints: the resolved settings, notes, the data and the first rendered prompt."""
    lines = run.summary_lines() + [f"note: {n}" for n in plan.notes]
    if plan.dataset is not None:
        first = plan.dataset[0]
        lines.append(f"data: {len(plan.dataset)} problems ({plan.data_stats.get('source')}), columns {plan.dataset.column_names}")
        preview = plan.template.render(str(first["problem"]), None)
        lines.append("first prompt (without the model's chat template): " + preview.replace("\n", "\\n")[:1200])
    for name, b in (plan.eval_benchmarks or {}).items():
        lines.append(f"eval benchmark {name}: {len(b['problems'])} problems ({b['source']}), avg@"
                     f"{run.script.eval_num_samples} at step 0, every {run.training.eval_steps or '-'} steps and the end")
    if plan.heldout is not None:
        lines.append(f"held-out: {len(plan.heldout)} problems, avg@{run.script.heldout_num_samples} at "
                     f"T={run.script.heldout_temperature} and greedy")
    lines += dry_run_memory_lines(run, plan.model_path, plan.dataset, plan.template)  # r1.memory; WARNING when over
    warned = sum(n.startswith("WARNING") for n in plan.notes)
    tail = f" ({warned} warning(s) above: not verifiable offline)" if warned else ""
    lines.append(f"dry run OK: configuration, template, rewards, data and model name are valid{tail}")
    return lines


# ------------------------------------------------------------------------------------------------ train


def train(run: RunConfig, plan: Plan) -> list[str]:
    """Train as planned; returns the result lines for the user (model folder, held-out before/after, curves). With
    several processes, an error on one rank, before or during training, ends the others with one line naming it."""
    honour_fsdp_on_cpu()  # an FSDP launch config on CPU: FSDP over gloo, not accelerate's silent DDP
    state = PartialState()
    watchdog = RankWatchdog(state.process_index, state.num_processes, timeout=run.training.rank_lost_timeout).start()
    try:
        lines = train_and_report(run, plan, state, watchdog)
    except BaseException as e:
        watchdog.explain(e)  # exits here when another rank was lost or failed first; else tells the others
        raise
    end_process_group()
    return lines


def train_and_report(run: RunConfig, plan: Plan, state: PartialState, watchdog: RankWatchdog) -> list[str]:
    """Load, evaluate held-out before, train, save, evaluate after; the result lines (main process)."""
    out = Path(run.training.output_dir)
    if state.is_main_process:
        start_output_dir(run, out, fresh=not plan.resume)
    for line in run.summary_lines():
        logger.info(line)
    tokenizer, model = load_policy(run, plan)
    extra: dict[str, Any] = {"template": run.script.template, "model": run.model.model_name_or_path, "data": plan.data_stats}
    if plan.heldout is not None and not plan.resume:
        extra.update(heldout_phase(model, tokenizer, plan, run, "before", state))
    trainer = build_trainer(run, plan, model, tokenizer)
    logger.info("distributed: %s", engine_name(trainer.accelerator))
    trainer.artifacts.summary_extra.update(extra)
    train_seconds = run_training(trainer, plan.resume)
    trainer.save_model(str(out))  # model + tokenizer (processing_class)
    if state.is_main_process:
        tokenizer.save_pretrained(str(out))
    if plan.heldout is not None:
        trainer.artifacts.summary_extra.update(heldout_phase(trainer.model, tokenizer, plan, run, "after", state, trainer))
    last = trainer.artifacts.records[-1] if trainer.artifacts.records else {}
    trainer.artifacts.summary_extra.update(
        format_rate_final=last.get("format_rate"), train_seconds=round(train_seconds, 1), steps=trainer.state.global_step
    )
    state.wait_for_everyone()
    watchdog.stop()  # every rank is past the last collective: a peer that exits now is not lost
    summary = trainer.artifacts.write_summary("completed")
    return result_lines(summary, trainer.artifacts, run.script.heldout_num_samples, out) if state.is_main_process else []


def start_output_dir(run: RunConfig, out: Path, fresh: bool) -> None:
    """Create output_dir, clear an earlier run when asked to, and write the resolved config first."""
    out.mkdir(parents=True, exist_ok=True)
    if run.script.overwrite_output_dir and fresh:
        for p in out.glob("checkpoint-*"):
            shutil.rmtree(p, ignore_errors=True)
        for name in (METRICS_FILE, SAMPLES_FILE, CURVES_FILE, SUMMARY_FILE):
            (out / name).unlink(missing_ok=True)
        shutil.rmtree(out / EVAL_DIR, ignore_errors=True)
    header = "# Resolved r1-zero run config: reusable as --config; `python -m eval --model` reads `template`.\n"
    atomic_write_text(out / CONFIG_FILE_NAME, header + yaml.safe_dump(run.to_yaml_dict(), sort_keys=True))


def load_policy(run: RunConfig, plan: Plan) -> tuple[Any, Any]:
    """The tokenizer and the model to train (safetensors only; trust_remote_code as configured)."""
    t = run.training
    revision = run.model.model_revision
    tokenizer = load_tokenizer(plan.model_path, trust_remote_code=t.trust_remote_code, revision=revision)
    model = load_model(plan.model_path, dtype=run.model.dtype, trust_remote_code=t.trust_remote_code,
                       revision=revision)
    if run.model.attn_implementation:
        model.set_attn_implementation(run.model.attn_implementation)
    return tokenizer, model


def lora_config(run: RunConfig) -> Any:
    """The LoRA adapter TRL wraps the policy in (`use_peft`; TRL's `get_peft_config` with our defaults), or None."""
    m = run.model
    if not m.use_peft:
        return None
    try:
        from peft import LoraConfig  # local: optional (r1-zero[lora]), only with use_peft
    except ImportError:
        raise ConfigError("use_peft needs the peft package: pip install 'r1-zero[lora]'") from None
    targets = m.lora_target_modules[0] if len(m.lora_target_modules) == 1 else list(m.lora_target_modules)
    return LoraConfig(task_type="CAUSAL_LM", r=m.lora_r, lora_alpha=m.lora_alpha, lora_dropout=m.lora_dropout,
                      target_modules=targets, bias="none")


def build_trainer(run: RunConfig, plan: Plan, model: Any, tokenizer: Any) -> R1ZeroTrainer:
    """Rendered prompts and rewards around the loaded model -> an R1ZeroTrainer with its run artifacts."""
    t, s = run.training, run.script
    dataset = plan.dataset.map(
        lambda row: {"prompt": plan.template.render(str(row["problem"]), tokenizer)}, desc="rendering prompts"
    )
    reward_funcs = build_reward_funcs(s.reward_funcs, prefill=plan.template.prefill,
                                      max_completion_length=t.max_completion_length,
                                      overlong_buffer_len=t.overlong_buffer_len, answer_policy=s.answer_policy)
    trainer = R1ZeroTrainer(model=model, reward_funcs=reward_funcs, args=t, train_dataset=dataset,
                            processing_class=tokenizer, template=plan.template, peft_config=lora_config(run))
    if run.model.use_peft:  # adapter_config.json names the base portably: tiny:qwen2 / a hub id / an absolute folder
        name = run.model.model_name_or_path
        base = name if name.startswith(("tiny:", "embedded:")) else (plan.model_path or name)
        trainer.model.peft_config["default"].base_model_name_or_path = base
        trainer.model.peft_config["default"].revision = run.model.model_revision
    if plan.eval_benchmarks:
        trainer.add_callback(BenchmarkEvalCallback(
            trainer, plan.eval_benchmarks, template=s.template, num_samples=s.eval_num_samples,
            temperature=s.eval_temperature, max_new_tokens=s.eval_max_new_tokens or t.max_completion_length,
            stop_at_answer=t.stop_at_answer,
        ))
    return trainer


def run_training(trainer: R1ZeroTrainer, resume: str | None) -> float:
    """`trainer.train()` with SIGTERM turned into an interrupt; summary.json records a failure or interrupt."""

    def on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous_handler = signal.signal(signal.SIGTERM, on_sigterm)
    start = time.time()
    try:
        trainer.train(resume_from_checkpoint=resume)
    except BaseException as e:
        status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        trainer.artifacts.write_summary(status, error=f"{type(e).__name__}: {first_line(e)}")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    return time.time() - start


def heldout_phase(model: Any, tokenizer: Any, plan: Plan, run: RunConfig, tag: str, state: PartialState,
                  trainer: R1ZeroTrainer | None = None) -> dict[str, float]:
    """The held-out evaluation `tag` ("before"/"after"), shared between all processes (r1.evaluation splits the
    batches between ranks), as summary.json fields (main process)."""
    fields: dict[str, float] = {}
    with whole_weights(model, trainer) as policy:
        result = heldout_eval(policy, tokenizer, plan, run, tag)
    if state.is_main_process:
        fields = {f"heldout_accuracy_{tag}": result["accuracy"], f"heldout_greedy_{tag}": result["greedy"],
                  f"heldout_format_{tag}": result["format_rate"]}
        logger.info("held-out %s training: avg@%d %.3f, greedy %.3f, format %.3f", tag, run.script.heldout_num_samples,
                    result["accuracy"], result["greedy"], result["format_rate"])
    state.wait_for_everyone()
    return fields


@contextlib.contextmanager
def whole_weights(model: Any, trainer: R1ZeroTrainer | None) -> Iterator[Any]:
    """The policy with its whole weights on every rank for generation: through the trainer as TRL's rollouts do
    (ZeRO-3 gathered, engine hooks off), or, before the trainer exists, gathered from the partitions `zero.Init`
    loaded it into (ZeRO-3 with zero3_init_flag). Otherwise the model as it is."""
    if trainer is not None:
        with unwrap_model_for_generation(trainer.model_wrapped, trainer.accelerator,
                                         gather_deepspeed3_params=trainer.args.ds3_gather_for_generation) as policy:
            yield policy
    elif is_deepspeed_zero3_enabled():
        import deepspeed  # ZeRO-3 runs only; DeepSpeed is an optional dependency

        with deepspeed.zero.GatheredParameters(list(model.parameters())):
            yield model
    else:
        yield model


def heldout_problems(heldout: Any) -> list[dict[str, Any]]:
    """The held-out rows as evaluation problems, numbered; every column travels (countdown problems are graded on
    `target`/`nums`, code problems on `tests`)."""
    return [{**r, "id": i} for i, r in enumerate(heldout)]


def heldout_eval(model: Any, tokenizer: Any, plan: Plan, run: RunConfig, tag: str) -> dict[str, float]:
    """avg@n at the configured temperature and greedy accuracy on the held-out problems (r1.evaluation)."""
    s = run.script
    problems = heldout_problems(plan.heldout)
    common = dict(top_p=1.0, max_new_tokens=s.heldout_max_new_tokens or run.training.max_completion_length,
                  seed=run.training.seed, batch_size=64, progress=False, stop_at_answer=run.training.stop_at_answer)
    was_training = model.training
    model.eval()
    try:
        sampled = evaluate(model, tokenizer, problems, s.template, num_samples=s.heldout_num_samples,
                           temperature=s.heldout_temperature, benchmark=f"heldout-{tag}", **common)
        greedy = evaluate(model, tokenizer, problems, s.template, num_samples=1, temperature=0.0,
                          benchmark=f"heldout-{tag}-greedy", **common)
    finally:
        model.train(was_training)
    n = s.heldout_num_samples
    return {
        "accuracy": float(sampled[f"avg@{n}"]),
        "format_rate": float(sampled["format_rate"]),
        "greedy": float(greedy["avg@1"]),
        "greedy_format_rate": float(greedy["format_rate"]),
    }


def result_lines(summary: dict[str, Any], artifacts: RunArtifactsCallback, n: int, out: Path) -> list[str]:
    """The closing report: steps and time, held-out before -> after, format rate, where the artifacts are."""
    lines = [f"trained {summary['steps']} steps in {summary['train_seconds']:.0f} s; model saved to {out}"]
    if "heldout_accuracy_after" in summary and "heldout_accuracy_before" in summary:
        lines.append(
            f"held-out avg@{n}: {summary['heldout_accuracy_before']:.3f} -> {summary['heldout_accuracy_after']:.3f}   "
            f"greedy: {summary['heldout_greedy_before']:.3f} -> {summary['heldout_greedy_after']:.3f}"
        )
    ev = summary.get("eval")
    if ev:
        for key, first in ev["first"].items():
            if "/avg@" in key:
                lines.append(f"{key}: {first:.3f} (step {ev['first_step']}) -> {ev['last'].get(key, float('nan')):.3f} "
                             f"(step {ev['last_step']})")
    if summary.get("format_rate_final") is not None:
        lines.append(f"format rate (last logged step): {summary['format_rate_final']:.3f}")
    curves = artifacts.plot()
    lines.append(f"curves: {curves}" if curves else "curves: (matplotlib not installed)")
    lines.append(f"summary: {out / SUMMARY_FILE}   metrics: {artifacts.metrics_path}")
    return lines
