"""Run artifacts in `output_dir`, written so a killed run loses nothing it had already reported.

- `metrics.jsonl` — one line per logged step: everything TRL logs (rewards per function, KL, entropy, clip ratios,
  completion lengths, loss, grad norm, lr) plus `accuracy`, `format_rate`, `completion_length`, `clipped_ratio`,
  `tokens_per_s`, reflection-word counts, `nonfinite/skipped` (share of steps whose NaN/inf update was skipped), and
  running totals (`tokens_generated_total`, `train_seconds_total`, `reward_errors_total`, `nonfinite_skipped_total`),
  and `alarm/<name>` on the step where a learning-stall alarm fired (`r1.alarms`).
  Lines are appended whole with flush + fsync by the main process only. On (re)start, lines for steps after the
  checkpoint being resumed are dropped first, so a resumed run never logs a step twice, and the totals continue from
  the last kept line.
  Benchmark results of the in-training evaluation (`r1.benchmark_eval`) are `eval/<benchmark>/...` keys on the line
  of their step; a step that is evaluated but not logged (step 0, or off the logging cadence) gets a line of its own
  with only those keys, so there is still one line per step.
- `train_samples.jsonl` — sample completions with their rewards every `sample_log_steps` steps (same resume rule).
- `curves.png` — reward / accuracy / format / length / reflection curves, refreshed at most every `plot_every_s`
  seconds and at the end (matplotlib Agg, atomic replace; skipped if matplotlib is missing).
- `summary.json` — steps, tokens generated, wall time, GPU-hours and estimated cost at `gpu_hour_cost` $/GPU-hour,
  final metrics and status; written atomically at the end, and on failure or interrupt by the entry point.
"""

from __future__ import annotations

import io
import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from r1.alarms import StallAlarms
from r1.artifacts import (
    append_jsonl,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    read_jsonl,
    repair_jsonl,
)

logger = logging.getLogger(__name__)

METRICS_FILE = "metrics.jsonl"
SAMPLES_FILE = "train_samples.jsonl"
CURVES_FILE = "curves.png"
SUMMARY_FILE = "summary.json"

# Short names for the metrics a reader looks for first (TRL's full names are kept too).
ALIASES = {
    "completion_length": "completions/mean_length",
    "clipped_ratio": "completions/clipped_ratio",
}


def _truncate_jsonl(path: Path, max_step: int) -> list[dict[str, Any]]:
    """Keep the records with step <= max_step (and drop a torn last line); returns the kept records."""
    if not path.exists():
        return []
    repair_jsonl(path)
    records = read_jsonl(path)
    kept = [r for r in records if int(r.get("step", 0)) <= max_step]
    if len(kept) != len(records):
        atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept))
        logger.info("%s: dropped %d line(s) logged after step %d (resumed run)", path.name, len(records) - len(kept), max_step)
    return kept


class RunArtifactsCallback(TrainerCallback):
    """Writes the run artifacts for an `R1ZeroTrainer` (which it reads counters and samples from)."""

    def __init__(self, trainer: Any):
        self.trainer = trainer
        self.output_dir = Path(trainer.args.output_dir)
        self.plot_every_s = float(trainer.args.plot_every_s)
        self.gpu_hour_cost = float(trainer.args.gpu_hour_cost)
        self.summary_extra: dict[str, Any] = {}
        self.alarms = StallAlarms(trainer.args)
        self.records: list[dict[str, Any]] = []  # the logged training steps
        self.eval_records: list[dict[str, Any]] = []  # lines holding only benchmark results (see log_eval)
        self.pending_eval: dict[str, Any] = {}  # benchmark results for the step about to be logged
        self._base_tokens = 0
        self._base_seconds = 0.0
        self._base_reward_errors = 0
        self._session_start: float | None = None
        self._last_log_time: float | None = None
        self._last_log_tokens = 0
        self._last_plot = 0.0
        self._plot_warned = False

    # ----------------------------------------------------------------- helpers

    @property
    def is_main(self) -> bool:
        return bool(self.trainer.accelerator.is_main_process)

    @property
    def metrics_path(self) -> Path:
        return self.output_dir / METRICS_FILE

    @property
    def curves_path(self) -> Path:
        return self.output_dir / CURVES_FILE

    def session_seconds(self) -> float:
        return 0.0 if self._session_start is None else time.time() - self._session_start

    def train_seconds_total(self) -> float:
        """Training seconds of the whole run, resumed sessions included (the time cap reads this clock)."""
        return self._base_seconds + self.session_seconds()

    def tokens_total(self) -> int:
        return self._base_tokens + int(self.trainer.completion_tokens_total)

    def reward_errors_total(self) -> int:
        return self._base_reward_errors + int(self.trainer.reward_errors_total)

    # ----------------------------------------------------------------- TrainerCallback hooks

    def on_train_begin(self, args, state, control, **kwargs):
        self._session_start = self._last_log_time = time.time()
        self._last_log_tokens = 0
        if not self.is_main:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        kept = _truncate_jsonl(self.metrics_path, state.global_step)
        self.eval_records = [r for r in kept if _eval_only(r)]
        self.records = [r for r in kept if not _eval_only(r)]
        _truncate_jsonl(self.output_dir / SAMPLES_FILE, state.global_step)
        if self.records:
            last = self.records[-1]
            self._base_tokens = int(last.get("tokens_generated_total", 0))
            self._base_seconds = float(last.get("train_seconds_total", 0.0))
            self._base_reward_errors = int(last.get("reward_errors_total", 0))
            self.alarms.replay(self.records)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = dict(logs or {})
        if not self.is_main or "train_runtime" in logs or any(k.startswith("eval_") for k in logs):
            return
        now = time.time()
        tokens = self.tokens_total()
        dt = max(now - (self._last_log_time or now), 1e-9)
        record: dict[str, Any] = {"step": int(state.global_step)}
        for k, v in logs.items():
            record[k] = None if isinstance(v, float) and not math.isfinite(v) else v
        for short, long in ALIASES.items():
            if long in logs:
                record[short] = logs[long]
        words = self.trainer.reflection_words
        counts = self.trainer.reflection_counts
        record["reflection/count"] = int(sum(counts.values()))
        record.update({f"reflection/{w}": int(counts.get(w, 0)) for w in words})
        counts.clear()
        record["tokens_per_s"] = (tokens - self._base_tokens - self._last_log_tokens) / dt
        record["tokens_generated_total"] = tokens
        record["train_seconds_total"] = self.train_seconds_total()
        record["reward_errors_total"] = self.reward_errors_total()
        record["nonfinite_skipped_total"] = int(self.trainer.nonfinite_skipped_total)
        record["time"] = now
        record.update(self.pending_eval)
        self.pending_eval.clear()
        record.update({f"alarm/{name}": message for name, message in self.alarms.check(record).items()})
        self._last_log_time, self._last_log_tokens = now, tokens - self._base_tokens
        append_jsonl(self.metrics_path, record)
        self.records.append(record)
        if now - self._last_plot >= self.plot_every_s:
            self.plot()

    def log_eval(self, step: int, values: dict[str, Any], *, merge: bool) -> None:
        """Benchmark results for `step`: merged into that step's line when it is about to be logged (`merge`),
        else appended now as a line of their own."""
        if merge:
            self.pending_eval.update(values)
            return
        if not self.is_main:
            return
        record = {"step": int(step), **values, "time": time.time()}
        append_jsonl(self.metrics_path, record)
        self.eval_records.append(record)

    def on_step_end(self, args, state, control, **kwargs):
        samples = self.trainer.pending_samples
        if samples and self.is_main:
            append_jsonl(self.output_dir / SAMPLES_FILE, samples)
        samples.clear()

    def on_train_end(self, args, state, control, **kwargs):
        if self.is_main:
            self.plot()
            self.write_summary("completed")

    # ----------------------------------------------------------------- artifacts

    def plot(self) -> Path | None:
        """Refresh curves.png from the logged records; returns its path (None if nothing was drawn)."""
        self._last_plot = time.time()
        if not self.is_main or not (self.records or self.eval_records):
            return None
        try:
            data = render_curves(sorted(self.records + self.eval_records, key=lambda r: int(r["step"])))
        except ImportError:
            if not self._plot_warned:
                logger.warning("matplotlib is not installed: no %s (pip install 'r1-zero[plots]')", CURVES_FILE)
                self._plot_warned = True
            return None
        atomic_write_bytes(self.curves_path, data)
        return self.curves_path

    def write_summary(self, status: str, error: str | None = None) -> dict[str, Any]:
        """Write summary.json atomically (main process only) and return it."""
        state = self.trainer.state
        args = self.trainer.args
        seconds = self.train_seconds_total()
        n_proc = int(self.trainer.accelerator.num_processes)
        on_gpu = self.trainer.accelerator.device.type == "cuda"
        device_hours = seconds * n_proc / 3600.0
        gpu_hours = device_hours if on_gpu else 0.0
        last = self.records[-1] if self.records else {}
        summary: dict[str, Any] = {
            "status": status,
            "steps": int(state.global_step),
            "max_steps": int(state.max_steps or args.max_steps),
            "tokens_generated": self.tokens_total(),
            "train_seconds": round(seconds, 3),
            "num_processes": n_proc,
            "device": self.trainer.accelerator.device.type,
            "device_hours": round(device_hours, 6),
            "gpu_hours": round(gpu_hours, 6),
            "gpu_hour_cost": self.gpu_hour_cost,
            "estimated_cost_usd": round(gpu_hours * self.gpu_hour_cost, 4),
            "reward_errors_total": self.reward_errors_total(),
            "nonfinite_skipped_total": int(self.trainer.nonfinite_skipped_total),
            "alarms": sorted(self.alarms.fired),
            "final": {k: last.get(k) for k in ("reward", "accuracy", "format_rate", "completion_length", "kl", "entropy", "reflection/per_completion") if k in last},
            "metrics_file": str(self.metrics_path),
            "curves_file": str(self.curves_path) if self.curves_path.exists() else None,
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        if error:
            summary["error"] = error
        summary.update(self.summary_extra)
        if self.is_main:
            atomic_write_json(self.output_dir / SUMMARY_FILE, summary)
        return summary


def _eval_only(record: dict[str, Any]) -> bool:
    """A metrics line with only benchmark results (no training step was logged with it)."""
    return any(k.startswith("eval/") for k in record) and all(
        k in ("step", "time") or k.startswith("eval/") for k in record
    )


def _series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    xs, ys = [], []
    for r in records:
        v = r.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
            xs.append(int(r["step"]))
            ys.append(float(v))
    return xs, ys


def _running_mean(ys: list[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, y in enumerate(ys):
        total += y
        if i >= window:
            total -= ys[i - window]
        out.append(total / min(i + 1, window))
    return out


def render_curves(records: list[dict[str, Any]]) -> bytes:
    """PNG bytes of the training curves (raises ImportError without matplotlib)."""
    import matplotlib  # local: matplotlib is optional (the `plots` extra); no curves without it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # local, optional: see above

    seen = {k for r in records for k in r}
    reward_keys = sorted(k for k in seen if k.startswith("rewards/") and k.endswith("/mean"))
    eval_keys = sorted(k for k in seen if k.startswith("eval/") and "/avg@" in k)
    panels = [
        ("reward", ["reward", *reward_keys]),
        ("accuracy / format rate", ["accuracy", "format_rate"]),
        ("completion length (tokens)", ["completion_length", "completions/mean_terminated_length"]),
        ("reflection words per completion / KL", ["reflection/per_completion", "kl"]),
    ]
    if eval_keys:  # in-training benchmark evaluation (r1.benchmark_eval): one point per evaluated step
        panels.append(("benchmarks (avg@n)", eval_keys))
    fig, axes = plt.subplots(2, 3 if eval_keys else 2, figsize=(16 if eval_keys else 11, 7), dpi=90)
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    for ax, (title, keys) in zip(list(axes.flat)[: len(panels)], panels, strict=True):
        for key in keys:
            xs, ys = _series(records, key)
            if not xs:
                continue
            if len(xs) >= 10 and not key.startswith("eval/"):  # per-step values are noisy (few prompts per step): raw faint, running mean bold
                (line,) = ax.plot(xs, ys, alpha=0.3, linewidth=1)
                ax.plot(xs, _running_mean(ys, 5), color=line.get_color(), label=f"{key} (5-step mean)")
            else:
                ax.plot(xs, ys, marker=".", label=key)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
