"""Run guards for `R1ZeroTrainer`: exact resume, atomic checkpoints, non-finite steps.

A GRPO run costs GPU-days, so a kill at any moment must cost nothing but the steps since the last checkpoint, and
one bad step must not poison the weights. `RunGuardsMixin` (inherited by `R1ZeroTrainer`, before `GRPOTrainer`)
adds three things to TRL/HF's training loop, each at the narrowest hook that sees what it needs:

- **Exact resume.** HF restores weights, optimizer, scheduler, RNG states and skips the batches already seen; what
  it misses, this adds: TRL's generation buffer (with `steps_per_generation * num_iterations > 1` a checkpoint can
  fall between the step that generated completions and the steps that train on them; the rest of the buffer and
  TRL's micro-step counter are saved with the checkpoint and restored, instead of generating other completions), and
  the data order after the first epoch (TRL's `RepeatSampler` draws each epoch's permutation from a generator that
  a resumed run re-creates at epoch 0; `EpochRepeatSampler` draws epoch e's permutation as the (e+1)-th of the
  seeded generator, which is what an uninterrupted run draws). Dynamic-sampling refills are seeded by
  (seed, step, round) in the trainer; reward verdicts are pure functions of (completion, answer).
- **Atomic checkpoints.** HF writes `checkpoint-N` in place, so a kill mid-save leaves a folder that looks like the
  newest checkpoint but is not loadable (or, without `trainer_state.json`, silently restarts at step 0 with the new
  weights). Here every checkpoint is written to `output_dir/.r1-staging/checkpoint-N`, fsynced, and renamed into
  place once all processes are done, so `checkpoint-N` exists only when complete; old checkpoints are rotated
  (`save_total_limit`) only after that. `last_complete_checkpoint` skips incomplete folders written by other tools.
- **Non-finite steps.** If a micro-batch loss or the gradient norm is NaN/inf, the gradients are dropped before the
  optimizer step, so the parameters and the optimizer state do not move (the LR schedule and the step counter
  advance: the batch was consumed). The skip is counted (`nonfinite/skipped` per step, `nonfinite_skipped_total` in metrics.jsonl) and after
  `max_consecutive_nonfinite` consecutive skips the run stops with `NonFiniteError`; the last checkpoint, written
  before the streak, holds good weights. The decision is taken on values all processes agree on, so ranks never
  diverge. Under DeepSpeed the engine steps inside `backward`, before the gradient norm is known: there the guard
  counts and stops but cannot skip.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback
from transformers.trainer_utils import rotate_checkpoints
from trl.trainer.utils import RepeatSampler

from r1.errors import NonFiniteError

logger = logging.getLogger(__name__)

STAGING_DIR = ".r1-staging"
STATE_FILE = "r1_trainer_state.json"
BUFFER_FILE = "generation_buffer_rank{rank}.pt"
CHECKPOINT_RE = re.compile(r"^checkpoint-(\d+)$")
# HF writes trainer_state.json last: a checkpoint folder without it (or with a torn one) is incomplete.
COMPLETE_MARKER = "trainer_state.json"


# ----------------------------------------------------------------------------------------------------------------
# Checkpoint folders
# ----------------------------------------------------------------------------------------------------------------


def is_complete_checkpoint(path: str | os.PathLike) -> bool:
    """True if `path` holds a checkpoint whose last-written file (trainer_state.json) is present and parses."""
    marker = Path(path) / COMPLETE_MARKER
    try:
        json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return True


def last_complete_checkpoint(output_dir: str | os.PathLike) -> str | None:
    """The newest complete `checkpoint-N` folder in `output_dir` (None if there is none); incomplete ones, e.g.
    left by a tool that writes in place and was killed mid-save, are skipped with a warning."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = sorted(
        ((int(m.group(1)), p) for p in root.iterdir() if p.is_dir() and (m := CHECKPOINT_RE.match(p.name))),
        reverse=True,
    )
    for _, path in found:
        if is_complete_checkpoint(path):
            return str(path)
        logger.warning("%s is incomplete (no readable %s): skipped", path, COMPLETE_MARKER)
    return None


def _fsync_tree(root: Path) -> None:
    """Flush every file and folder under `root` to disk (a lost machine must not keep a renamed empty file)."""
    for dirpath, _, filenames in os.walk(root):
        for name in filenames:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(dirpath))


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some filesystems do not open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def publish_checkpoint(staged: str | os.PathLike, final: str | os.PathLike) -> None:
    """Move a fully written checkpoint folder into place in one rename (after flushing it to disk). An existing
    folder of the same name (a run re-saving a step) is moved aside first and deleted after."""
    staged, final = Path(staged), Path(final)
    _fsync_tree(staged)
    old = None
    if final.exists():
        old = staged.parent / f"{final.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
    os.replace(staged, final)
    _fsync_dir(final.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# ----------------------------------------------------------------------------------------------------------------
# Data order
# ----------------------------------------------------------------------------------------------------------------


class EpochRepeatSampler(RepeatSampler):
    """TRL's `RepeatSampler` whose permutation is a function of (seed, epoch), so a resumed run draws the same order.

    TRL's sampler advances one generator per epoch; epoch e of an uninterrupted run therefore uses the (e+1)-th
    permutation of a generator seeded with `seed`. This sampler draws exactly that permutation once `set_epoch(e)`
    was called (HF/accelerate call it at every epoch start, also on resume); before that it behaves like TRL's.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.epoch: int | None = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __iter__(self):
        if not self.shuffle or self.epoch is None or self.seed is None:
            yield from super().__iter__()
            return
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(self.epoch + 1):
            order = torch.randperm(self.num_samples, generator=generator)
        chunks = [order[i : i + self.batch_size].tolist() for i in range(0, self.num_samples, self.batch_size)]
        for chunk in chunks:
            if len(chunk) != self.batch_size:
                continue
            for _ in range(self.repeat_count):
                for index in chunk:
                    for _ in range(self.mini_repeat_count):
                        yield index


# ----------------------------------------------------------------------------------------------------------------
# The mixin
# ----------------------------------------------------------------------------------------------------------------


class RunGuardsMixin:
    """Exact resume, atomic checkpoints and the non-finite step guard for a `GRPOTrainer` subclass (see the module
    docstring). Reads `max_consecutive_nonfinite` from the config (default 5; 0 = skip but never stop)."""

    _staging_root: str | None = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.max_consecutive_nonfinite = int(self.args.max_consecutive_nonfinite)
        self.nonfinite_consecutive = 0
        self.nonfinite_skipped_total = 0
        self._nonfinite_loss = False

    # ------------------------------------------------------------------ data order

    def _get_train_sampler(self, dataset: Any = None) -> Any:
        sampler = super()._get_train_sampler(dataset)
        if type(sampler) is RepeatSampler:
            sampler = EpochRepeatSampler(
                data_source=sampler.data_source,
                mini_repeat_count=sampler.mini_repeat_count,
                batch_size=sampler.batch_size,
                repeat_count=sampler.repeat_count,
                shuffle=sampler.shuffle,
                seed=sampler.seed,
            )
        return sampler

    # ------------------------------------------------------------------ atomic checkpoints

    def _get_output_dir(self, trial: Any) -> str:
        return self._staging_root or super()._get_output_dir(trial)

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        run_dir = super()._get_output_dir(trial)
        name = f"checkpoint-{self.state.global_step}"
        staging_root = os.path.join(run_dir, STAGING_DIR)
        staged = os.path.join(staging_root, name)
        if self.args.should_save and os.path.exists(staged):
            shutil.rmtree(staged)  # left by a save that was killed
        self.accelerator.wait_for_everyone()
        self._staging_root = staging_root
        try:
            super()._save_checkpoint(model, trial)  # everything HF and TRL save, into the staging folder
            self._save_resume_state(staged)
        finally:
            self._staging_root = None
        self.accelerator.wait_for_everyone()  # every process has written its part
        if self.args.should_save:
            publish_checkpoint(staged, os.path.join(run_dir, name))
            with contextlib.suppress(OSError):
                os.rmdir(staging_root)  # only if empty
            rotate_checkpoints(
                output_dir=run_dir,
                save_total_limit=self.args.save_total_limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )
        self.accelerator.wait_for_everyone()

    # ------------------------------------------------------------------ exact resume

    def _generate_every(self) -> int:
        return int(self.args.steps_per_generation) * int(getattr(self, "num_iterations", 1))

    def _save_resume_state(self, checkpoint_dir: str) -> None:
        """TRL's micro-step counter and, mid-buffer, this process's remaining generations; guard counters."""
        os.makedirs(checkpoint_dir, exist_ok=True)
        step = int(getattr(self, "_step", 0))
        buffered = getattr(self, "_buffered_inputs", None)
        mid_buffer = step % self._generate_every() != 0 and buffered is not None
        if mid_buffer:
            path = os.path.join(checkpoint_dir, BUFFER_FILE.format(rank=self.accelerator.process_index))
            torch.save(buffered, path)
        if self.args.should_save:
            state = {
                "micro_step": step,
                "generation_buffer_saved": mid_buffer,
                "nonfinite_consecutive": self.nonfinite_consecutive,
                "nonfinite_skipped_total": self.nonfinite_skipped_total,
            }
            with open(os.path.join(checkpoint_dir, STATE_FILE), "w", encoding="utf-8") as f:
                json.dump(state, f, indent=2)

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        super()._load_optimizer_and_scheduler(checkpoint)
        if checkpoint is not None:
            self._load_resume_state(checkpoint)

    def _load_resume_state(self, checkpoint: str) -> None:
        path = os.path.join(checkpoint, STATE_FILE)
        if not os.path.isfile(path):
            if self.state.global_step * self.args.gradient_accumulation_steps % self._generate_every():
                logger.warning(
                    "%s has no %s (not written by r1-zero): the generations buffered at the checkpoint are lost and "
                    "the next step generates new ones, so this resume is not exact", checkpoint, STATE_FILE,
                )
            return
        with open(path, encoding="utf-8") as f:
            state = json.load(f)
        self.nonfinite_consecutive = int(state.get("nonfinite_consecutive", 0))
        self.nonfinite_skipped_total = int(state.get("nonfinite_skipped_total", 0))
        self._step = int(state.get("micro_step", 0))
        if not state.get("generation_buffer_saved"):
            return
        buffer_path = os.path.join(checkpoint, BUFFER_FILE.format(rank=self.accelerator.process_index))
        if not os.path.isfile(buffer_path):
            logger.warning(
                "%s: no generation buffer for process %d (was the run launched with another number of processes?); "
                "the next step generates new completions, so this resume is not exact",
                checkpoint, self.accelerator.process_index,
            )
            self._step = 0
            return
        device = self.accelerator.device  # under DDP on CPU this is `cpu:N`, which torch.load cannot map to
        location = "cpu" if device.type == "cpu" else device
        self._buffered_inputs = torch.load(buffer_path, map_location=location, weights_only=True)

    # ------------------------------------------------------------------ non-finite steps

    def training_step(self, model: Any, inputs: Any, num_items_in_batch: Any = None) -> torch.Tensor:
        loss = super().training_step(model, inputs, num_items_in_batch)
        if not bool(torch.isfinite(loss).all()):  # HF's loop syncs on the loss value anyway
            self._nonfinite_loss = True
        return loss

    def _get_grad_norm(self, model: Any, grad_norm: Any = None) -> Any:
        """Called once per optimizer step, after clipping and before `optimizer.step()`: the place to drop a step."""
        grad_norm = super()._get_grad_norm(model, grad_norm=grad_norm)
        # With fp16 loss scaling an inf gradient is routine (the scale was too high): GradScaler skips that step
        # itself and lowers the scale, so only a non-finite loss counts there.
        scaled = getattr(self.accelerator, "scaler", None) is not None
        bad = self._nonfinite_loss or (not scaled and not math.isfinite(float(grad_norm)))
        self._nonfinite_loss = False
        if self.accelerator.num_processes > 1:  # every process must take the same decision
            flag = torch.tensor([float(bad)], device=self.accelerator.device)
            bad = bool(self.accelerator.reduce(flag, reduction="sum").item() > 0)
        mode = "train"
        self._metrics[mode]["nonfinite/skipped"].append(float(bad))
        if bad:
            model.zero_grad(set_to_none=True)  # parameters without gradients are left alone by the optimizer
            self.nonfinite_consecutive += 1
            self.nonfinite_skipped_total += 1
            step = self.state.global_step + 1
            logger.warning(
                "step %d: non-finite loss or gradient norm (grad norm %s); optimizer step skipped (%d in a row)",
                step, float(grad_norm), self.nonfinite_consecutive,
            )
            limit = self.max_consecutive_nonfinite
            if limit and self.nonfinite_consecutive >= limit:
                last = last_complete_checkpoint(self.args.output_dir)
                raise NonFiniteError(
                    f"step {step}: the loss or gradient norm was NaN/inf for {self.nonfinite_consecutive} consecutive "
                    f"steps (max_consecutive_nonfinite={limit}); those updates were skipped and the run stopped. "
                    f"Last checkpoint: {last or 'none'}. Lower learning_rate, check for fp16/bf16 overflow or bad "
                    "rewards, then resume with --resume_from_checkpoint last"
                )
        else:
            self.nonfinite_consecutive = 0
        return grad_norm


class TimeLimitCallback(TrainerCallback):
    """Stops training (and saves, when saving is on) before a step that would end past `max_train_seconds`.

    `elapsed` is the run's training clock (resumed sessions included). The next step is assumed to take as long as
    the last one. The main process decides and every process follows, so all stop at the same step.
    """

    def __init__(self, trainer: Any, limit: float, elapsed: Any):
        self.trainer, self.limit, self.elapsed = trainer, float(limit), elapsed
        self._at_last_step: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._at_last_step = self.elapsed()

    def on_step_end(self, args, state, control, **kwargs):
        now = self.elapsed()
        last_step = now - (self._at_last_step if self._at_last_step is not None else now)
        self._at_last_step = now
        acc = self.trainer.accelerator
        flag = torch.tensor([float(now + last_step >= self.limit)], device=acc.device)
        if acc.num_processes > 1:
            flag = acc.gather(flag)[:1]  # rank 0's clock decides
        if bool(flag.item()):
            logger.warning("max_train_seconds=%s reached at step %d: stopping (and saving)", self.limit, state.global_step)
            control.should_training_stop = True
            control.should_save = args.save_strategy != "no"
