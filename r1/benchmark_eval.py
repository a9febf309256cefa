"""Benchmark evaluation during training: `eval_benchmarks` evaluated before the first step, every `eval_steps` steps
and at the last step, with eval's own runner (`r1.evaluation.evaluate`: the CLI's grader, template and stop rule).

    --eval_benchmarks gsm8k aime24 --eval_steps 50 --eval_limit 200 --eval_num_samples 1 --eval_max_new_tokens 1024

Each evaluation logs `eval/<benchmark>/avg@<n>`, `eval/<benchmark>/format_rate` and `eval/<benchmark>/mean_tokens`
on the metrics.jsonl line of its step (`RunArtifactsCallback.log_eval`), draws a curves.png panel, and keeps its
graded samples in `output_dir/eval/step-N/samples.jsonl`. With several processes every rank generates its share of
the (problem, sample) batches from the unwrapped policy, and rank 0 gathers, grades nothing twice and writes; the
numbers equal a one-process evaluation of the same weights. The evaluation draws no global random numbers (each
sample has its own seed, and the RNG state is restored), so the training run is the same with or without it.
"""

from __future__ import annotations

import logging
import math
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback
from trl.models import unwrap_model_for_generation

from r1.benchmarks import load_benchmarks
from r1.evaluation import evaluate, problems_sha256

logger = logging.getLogger(__name__)

EVAL_DIR = "eval"
TOP_P = 0.95  # the CLI's default: in-training numbers are comparable with `python -m eval`
BATCH_SIZE = 16  # the CLI's transformers default: same batches, so the same floats


def load_eval_benchmarks(names: list[str], data_dir: str | None, limit: int | None) -> dict[str, dict[str, Any]]:
    """name -> {"problems", "source", "data_sha256"}; raises BenchmarkError (one line) before any weights load."""
    out: dict[str, dict[str, Any]] = {}
    for name, (_, source, problems) in load_benchmarks(names, data_dir).items():
        problems = problems[:limit] if limit is not None else problems
        out[name] = {"problems": problems, "source": source, "data_sha256": problems_sha256(problems)}
    return out


class BenchmarkEvalCallback(TrainerCallback):
    """Evaluates `benchmarks` (from `load_eval_benchmarks`) at step 0, every `eval_steps` and at the end."""

    def __init__(self, trainer: Any, benchmarks: dict[str, dict[str, Any]], *, template: str, num_samples: int,
                 temperature: float, max_new_tokens: int, stop_at_answer: bool):
        self.trainer = trainer
        self.benchmarks = benchmarks
        self.template = template
        self.num_samples = num_samples
        self.temperature = temperature
        self.max_new_tokens = max_new_tokens
        self.stop_at_answer = stop_at_answer
        self.history: dict[int, dict[str, float]] = {}  # step -> logged values (this session)

    def every(self, state: Any) -> int | None:
        steps = self.trainer.args.eval_steps
        if not steps:
            return None
        return max(1, math.ceil(state.max_steps * steps)) if steps < 1 else int(steps)  # < 1: a share of max_steps

    def on_train_begin(self, args, state, control, **kwargs):
        if state.global_step == 0:  # a resumed run already has its step-0 line
            self.run(0, merge=False)

    def on_step_end(self, args, state, control, **kwargs):
        every, step = self.every(state), state.global_step
        if (every and step % every == 0) or step >= state.max_steps or control.should_training_stop:
            self.run(step, merge=bool(control.should_log))

    def run(self, step: int, *, merge: bool) -> dict[str, float]:
        """Evaluate every benchmark on the current weights (all ranks) and hand the values to the metrics file."""
        trainer = self.trainer
        out = Path(trainer.args.output_dir) / EVAL_DIR / f"step-{step}"
        if trainer.accelerator.is_main_process and out.exists():
            shutil.rmtree(out)  # an earlier, killed attempt at this step (or an overwritten run): start it over
        values: dict[str, float] = {}
        n = self.num_samples
        devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
        with torch.random.fork_rng(devices=devices), unwrap_model_for_generation(
            trainer.model_wrapped, trainer.accelerator, gather_deepspeed3_params=trainer.args.ds3_gather_for_generation
        ) as model:
            for name, bench in self.benchmarks.items():
                m = evaluate(
                    model, trainer.processing_class, bench["problems"], self.template, num_samples=n,
                    temperature=self.temperature, top_p=TOP_P, max_new_tokens=self.max_new_tokens,
                    seed=int(trainer.args.seed), batch_size=BATCH_SIZE, output_dir=out, benchmark=name,
                    model_id=f"{trainer.args.output_dir}@step-{step}", data_sha256=bench["data_sha256"],
                    progress=False, stop_at_answer=self.stop_at_answer,
                )
                values[f"eval/{name}/avg@{n}"] = float(m[f"avg@{n}"])
                values[f"eval/{name}/format_rate"] = float(m["format_rate"])
                values[f"eval/{name}/mean_tokens"] = float(m["mean_tokens"])
                logger.info("step %d: %s avg@%d %.3f, format %.3f (%d problems)", step, name, n, m[f"avg@{n}"],
                            m["format_rate"], m["num_problems"])
        self.history[step] = values
        if trainer.artifacts is not None:
            trainer.artifacts.log_eval(step, values, merge=merge)
            first, last = min(self.history), max(self.history)
            trainer.artifacts.summary_extra["eval"] = {"first_step": first, "first": self.history[first],
                                                       "last_step": last, "last": self.history[last]}
        return values
