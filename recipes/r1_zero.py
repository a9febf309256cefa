"""GRPO training, R1-Zero style: a base model, rule-based rewards, no value network.

    accelerate launch recipes/r1_zero.py --config recipes/configs/NAME.yaml [--field value ...]
    accelerate launch recipes/r1_zero.py                  # the offline demo (recipes/configs/demo.yaml)
    python recipes/r1_zero.py --config ... --dry_run      # validate and print the resolved settings, no weights

Steps: parse and validate the config (fail fast, one line) -> build the training problems (dataset or generator)
and render them with the prompt template -> load the model -> optional held-out evaluation -> train with
`R1ZeroTrainer` (checkpoints, metrics.jsonl, curves.png, summary.json in output_dir) -> save the final model, its
tokenizer and `r1_config.yaml` (so `python -m eval --model OUTPUT_DIR` uses the same template) -> held-out again.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # `python recipes/r1_zero.py` without `pip install -e .`
    sys.path.insert(0, str(REPO_ROOT))
DEMO_CONFIG = REPO_ROOT / "recipes" / "configs" / "demo.yaml"

logger = logging.getLogger("r1_zero")


@dataclass
class Plan:
    """Everything validated before weights are loaded."""

    template: Any
    dataset: Any = None  # datasets.Dataset with problem/answer (+ task columns); None when skipped in a dry run
    heldout: Any = None
    model_path: str | None = None  # resolved (None in a dry run for built-in / unverifiable hub models)
    resume: str | None = None  # checkpoint folder to resume from
    data_stats: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ validation


def _is_hub_id(name: str) -> bool:
    from eval.benchmarks import FILE_SUFFIXES

    return (
        not Path(name).expanduser().exists()
        and not name.lower().endswith(FILE_SUFFIXES)
        and not name.startswith(("/", ".", "~"))
        and name.count("/") <= 1
    )


def _offline() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
        for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def check_template(name: str) -> Any:
    from r1.config import ConfigError, did_you_mean
    from r1.templates import TEMPLATES, get_template

    if name not in TEMPLATES:
        raise ConfigError(f"unknown template {name!r}{did_you_mean(name, list(TEMPLATES))}; choose one of: {', '.join(TEMPLATES)}")
    return get_template(name)


def check_model(name: str, *, dry_run: bool, trust_remote_code: bool, notes: list[str]) -> str | None:
    """Resolve the model name; in a dry run, built-in models are only checked by name (no conversion) and a hub
    id that cannot be verified offline is a warning, not an error."""
    from r1.models import ModelNotFoundError, model_names, resolve_model

    if name.startswith(("embedded:", "tiny:")):
        if name not in model_names():
            raise ModelNotFoundError(f"unknown built-in model {name!r}; valid built-in names: {', '.join(model_names())}")
        if dry_run:
            if name.startswith("embedded:"):
                from r1.models import EMBEDDED_MODELS, _find_gguf

                _find_gguf(EMBEDDED_MODELS[name.split(":", 1)[1]])  # the package is installed
            notes.append(f"model {name}: built-in name OK (materialised on first real run)")
            return None
    try:
        return resolve_model(name, trust_remote_code=trust_remote_code)
    except ModelNotFoundError:
        if dry_run and _is_hub_id(name) and _offline():
            notes.append(f"WARNING model {name}: hub id not in the local cache and offline; not verified (downloaded at launch)")
            return None
        raise


def build_dataset(run: Any, notes: list[str]) -> tuple[Any, Any, dict[str, Any]]:
    """(train dataset, held-out dataset or None, stats). Raises DatasetError / ConfigError in one line."""
    from r1.config import ConfigError

    s = run.script
    if s.task == "math":
        from r1.data import load_training_dataset

        if run.script.dry_run and _is_hub_id(s.dataset_name) and _offline():
            notes.append(f"WARNING dataset {s.dataset_name}: hub dataset offline; columns and filters not verified")
            return None, None, {}
        ds, stats = load_training_dataset(
            s.dataset_name,
            s.dataset_split,
            problem_column=s.problem_column,
            answer_column=s.answer_column,
            dataset_config=s.dataset_config,
            min_level=s.min_level,
            max_level=s.max_level,
            dedupe=s.dedupe,
            decontaminate=s.decontaminate,
            limit=s.max_train_samples,
            seed=s.task_seed,
            return_stats=True,
        )
        return ds, None, stats

    from r1.tasks import train_and_heldout

    if s.task == "arithmetic":
        settings: dict[str, Any] = (
            {"level": s.task_level}
            if s.task_level
            else {"ops": s.task_ops or ["+"], "max_operand": s.task_max_operand, "num_operands": s.task_num_operands}
        )
    else:
        settings = {
            "num_numbers": s.countdown_num_numbers,
            "min_number": s.countdown_min_number,
            "max_number": s.countdown_max_number,
            "max_target": s.countdown_max_target,
        }
        if s.task_ops:
            settings["ops"] = s.task_ops
    try:
        train, heldout = train_and_heldout(s.task, s.task_size, s.heldout_size, seed=s.task_seed, **settings)
    except ValueError as e:
        raise ConfigError(f"task {s.task}: {str(e).splitlines()[0]}") from None
    stats = {"source": f"generated:{s.task}", "settings": settings, "seed": s.task_seed, "final": len(train)}
    return train, (heldout if s.heldout_size else None), stats


def check_output_dir(run: Any) -> str | None:
    """The checkpoint to resume from, if any; a fresh run must not silently mix with (or truncate) an earlier
    run's artifacts."""
    from r1.config import ConfigError

    out = Path(run.training.output_dir)
    resume = _resolve_resume(run)
    # `auto` = continue if there is a checkpoint, else start here (e.g. preempted before the first save).
    auto = str(run.training.resume_from_checkpoint).lower() == "auto"
    if resume or auto or run.script.dry_run or not out.exists():
        return resume
    previous = sorted(out.glob("checkpoint-*")) + [p for p in (out / "metrics.jsonl",) if p.exists()]
    if previous and not run.script.overwrite_output_dir:
        raise ConfigError(
            f"output_dir {str(out)!r} holds an earlier run ({previous[-1].name}); continue it with "
            "--resume_from_checkpoint last, start over with --overwrite_output_dir true, or pick another --output_dir"
        )
    return None


def prepare(run: Any) -> Plan:
    """Everything that can fail without weights, in the order a user would fix it."""
    from r1.config import ConfigError
    from r1.rewarding import check_reward_names

    template = check_template(run.script.template)
    try:
        check_reward_names(run.script.reward_funcs)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    resume = check_output_dir(run)
    notes: list[str] = []
    dataset, heldout, stats = build_dataset(run, notes)
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
    model_path = check_model(
        run.model.model_name_or_path,
        dry_run=run.script.dry_run,
        trust_remote_code=run.training.trust_remote_code,
        notes=notes,
    )
    return Plan(template, dataset, heldout, model_path=model_path, resume=resume, data_stats=stats, notes=notes)


def print_dry_run(run: Any, plan: Plan) -> None:
    for line in run.summary_lines() + [f"note: {n}" for n in plan.notes]:
        print(line)
    if plan.dataset is not None:
        first = plan.dataset[0]
        print(f"data: {len(plan.dataset)} problems ({plan.data_stats.get('source')}), columns {plan.dataset.column_names}")
        preview = plan.template.render(str(first["problem"]), None)
        print("first prompt (without the model's chat template): " + preview.replace("\n", "\\n")[:1200])
    if plan.heldout is not None:
        print(f"held-out: {len(plan.heldout)} problems, avg@{run.script.heldout_num_samples} at T={run.script.heldout_temperature} and greedy")
    warned = sum(n.startswith("WARNING") for n in plan.notes)
    tail = f" ({warned} warning(s) above: not verifiable offline)" if warned else ""
    print(f"dry run OK: configuration, template, rewards, data and model name are valid{tail}")


# ------------------------------------------------------------------------------------------------ training


def _last_checkpoint(output_dir: str) -> str | None:
    from r1.guards import last_complete_checkpoint  # skips a checkpoint-N left incomplete by a kill mid-save

    return last_complete_checkpoint(output_dir)


def _resolve_resume(run: Any) -> str | None:
    from r1.config import ConfigError

    value = run.training.resume_from_checkpoint
    if value is None or str(value).lower() in ("", "false", "none", "no"):
        return None
    if str(value).lower() in ("last", "auto", "true", "yes"):
        found = _last_checkpoint(run.training.output_dir)
        if found is None and str(value).lower() != "auto":
            raise ConfigError(f"--resume_from_checkpoint {value}: no checkpoint-N folder in {run.training.output_dir}")
        return found
    if not Path(value).is_dir():
        raise ConfigError(f"checkpoint {value!r} does not exist; pass a checkpoint-N folder or 'last'")
    return str(value)


def heldout_eval(model: Any, tokenizer: Any, plan: Plan, run: Any, tag: str) -> dict[str, float]:
    """avg@n at the configured temperature and greedy accuracy on the held-out problems (eval.runner)."""
    from eval.runner import evaluate

    s = run.script
    problems = [{"id": i, "problem": r["problem"], "answer": r["answer"]} for i, r in enumerate(plan.heldout)]
    max_new = s.heldout_max_new_tokens or run.training.max_completion_length
    was_training = model.training
    model.eval()
    try:
        sampled = evaluate(
            model, tokenizer, problems, s.template, num_samples=s.heldout_num_samples,
            temperature=s.heldout_temperature, top_p=1.0, max_new_tokens=max_new, seed=run.training.seed,
            batch_size=64, benchmark=f"heldout-{tag}", progress=False,
        )
        greedy = evaluate(
            model, tokenizer, problems, s.template, num_samples=1, temperature=0.0, top_p=1.0,
            max_new_tokens=max_new, seed=run.training.seed, batch_size=64, benchmark=f"heldout-{tag}-greedy",
            progress=False,
        )
    finally:
        model.train(was_training)
    n = s.heldout_num_samples
    return {
        "accuracy": float(sampled[f"avg@{n}"]),
        "format_rate": float(sampled["format_rate"]),
        "greedy": float(greedy["avg@1"]),
        "greedy_format_rate": float(greedy["format_rate"]),
    }


def _render_prompts(dataset: Any, template: Any, tokenizer: Any) -> Any:
    return dataset.map(lambda row: {"prompt": template.render(str(row["problem"]), tokenizer)}, desc="rendering prompts")


def _clear_previous_run(output_dir: Path) -> None:
    from r1.callbacks import CURVES_FILE, METRICS_FILE, SAMPLES_FILE, SUMMARY_FILE

    for p in output_dir.glob("checkpoint-*"):
        shutil.rmtree(p, ignore_errors=True)
    for name in (METRICS_FILE, SAMPLES_FILE, CURVES_FILE, SUMMARY_FILE):
        (output_dir / name).unlink(missing_ok=True)


def train(run: Any, plan: Plan) -> int:
    import yaml
    from accelerate import PartialState

    from r1.artifacts import atomic_write_text
    from r1.config import CONFIG_FILE_NAME
    from r1.models import load_model, load_tokenizer
    from r1.rewarding import build_reward_funcs
    from r1.trainer import R1ZeroTrainer

    t, s = run.training, run.script
    state = PartialState()
    out = Path(t.output_dir)
    resume = plan.resume
    if state.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        if s.overwrite_output_dir and not resume:
            _clear_previous_run(out)
        header = "# Resolved r1-zero run config: reusable as --config; `python -m eval --model` reads `template`.\n"
        atomic_write_text(out / CONFIG_FILE_NAME, header + yaml.safe_dump(run.to_yaml_dict(), sort_keys=True))
    for line in run.summary_lines():
        logger.info(line)

    tokenizer = load_tokenizer(plan.model_path, trust_remote_code=t.trust_remote_code)
    dataset = _render_prompts(plan.dataset, plan.template, tokenizer)
    reward_funcs = build_reward_funcs(
        s.reward_funcs,
        prefill=plan.template.prefill,
        max_completion_length=t.max_completion_length,
        overlong_buffer_len=t.overlong_buffer_len,
    )
    model = load_model(plan.model_path, dtype=run.model.dtype, trust_remote_code=t.trust_remote_code)
    if run.model.attn_implementation:
        model.set_attn_implementation(run.model.attn_implementation)

    extra: dict[str, Any] = {"template": s.template, "model": run.model.model_name_or_path, "data": plan.data_stats}
    if plan.heldout is not None and not resume:
        if state.is_main_process:
            before = heldout_eval(model, tokenizer, plan, run, "before")
            extra.update(heldout_accuracy_before=before["accuracy"], heldout_greedy_before=before["greedy"],
                         heldout_format_before=before["format_rate"])
            print(f"held-out before training: avg@{s.heldout_num_samples} {before['accuracy']:.3f}, "
                  f"greedy {before['greedy']:.3f}, format {before['format_rate']:.3f}", flush=True)
        state.wait_for_everyone()

    trainer = R1ZeroTrainer(
        model=model,
        reward_funcs=reward_funcs,
        args=t,
        train_dataset=dataset,
        processing_class=tokenizer,
        template=plan.template,
    )
    artifacts = trainer.artifacts
    artifacts.summary_extra.update(extra)

    def _on_sigterm(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous_handler = signal.signal(signal.SIGTERM, _on_sigterm)
    start = time.time()
    try:
        trainer.train(resume_from_checkpoint=resume)
    except BaseException as e:
        status = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
        artifacts.write_summary(status, error=f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}")
        raise
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    train_seconds = time.time() - start

    trainer.save_model(str(out))  # model + tokenizer (processing_class)
    if state.is_main_process:
        tokenizer.save_pretrained(str(out))

    if plan.heldout is not None:
        if state.is_main_process:
            after = heldout_eval(trainer.model, tokenizer, plan, run, "after")
            artifacts.summary_extra.update(
                heldout_accuracy_after=after["accuracy"], heldout_greedy_after=after["greedy"],
                heldout_format_after=after["format_rate"],
            )
        state.wait_for_everyone()
    last = artifacts.records[-1] if artifacts.records else {}
    artifacts.summary_extra.update(
        format_rate_final=last.get("format_rate"), train_seconds=round(train_seconds, 1), steps=trainer.state.global_step
    )
    summary = artifacts.write_summary("completed")
    if state.is_main_process:
        _print_result(summary, artifacts, s.heldout_num_samples, out)
    return 0


def _print_result(summary: dict[str, Any], artifacts: Any, n: int, out: Path) -> None:
    lines = [f"trained {summary['steps']} steps in {summary['train_seconds']:.0f} s; model saved to {out}"]
    if "heldout_accuracy_after" in summary and "heldout_accuracy_before" in summary:
        lines.append(
            f"held-out avg@{n}: {summary['heldout_accuracy_before']:.3f} -> {summary['heldout_accuracy_after']:.3f}   "
            f"greedy: {summary['heldout_greedy_before']:.3f} -> {summary['heldout_greedy_after']:.3f}"
        )
    if summary.get("format_rate_final") is not None:
        lines.append(f"format rate (last logged step): {summary['format_rate_final']:.3f}")
    curves = artifacts.plot()
    lines.append(f"curves: {curves}" if curves else "curves: (matplotlib not installed)")
    lines.append(f"summary: {out / 'summary.json'}   metrics: {artifacts.metrics_path}")
    print("\n".join(lines), flush=True)


# ------------------------------------------------------------------------------------------------ entry point


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        level=logging.DEBUG if debug else logging.INFO)
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("R1_DEBUG", "") not in ("", "0")
    from r1.config import ConfigError, parse_args
    from r1.data import DatasetError
    from r1.guards import NonFiniteError
    from r1.models import ModelNotFoundError
    from r1.rewarding import RewardError

    known = (ConfigError, DatasetError, ModelNotFoundError, RewardError, NonFiniteError)
    try:
        has_config = any(a == "--config" or a.startswith("--config=") for a in argv)
        run = parse_args(argv, default_config=None if has_config else str(DEMO_CONFIG))
        if not run.script.dry_run:
            _setup_logging(debug)
        plan = prepare(run)
        if run.script.dry_run:
            print_dry_run(run, plan)
            return 0
        return train(run, plan)
    except known as e:
        if debug:
            raise
        text = str(e).strip().splitlines()
        print(f"error: {text[0] if text else type(e).__name__}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
