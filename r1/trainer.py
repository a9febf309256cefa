"""`R1ZeroTrainer`: TRL's `GRPOTrainer` plus what an R1-Zero run needs.

TRL does the heavy lifting (generation, log-probs, the GRPO / Dr. GRPO / DAPO losses, distribution); this subclass
adds, without touching TRL's generation path:

- **DAPO dynamic sampling** (`dynamic_sampling=True`): groups whose rewards are all equal carry no gradient, so they
  are dropped and the batch is refilled with freshly generated groups before the update. Every process runs the same
  number of refill rounds (decided on gathered counts), so collectives stay in lockstep. Refill prompts are drawn
  with a seed that is a function of (seed, step, round), so a resumed run draws the same refills. If the batch is
  still short after `dynamic_sampling_max_rounds`, the remaining slots are filled with dropped rows whose loss mask
  is zeroed (they contribute nothing) and `dynamic_sampling/filler_frac` says how many.
  The row filtering and re-padding are pure functions below (`group_keep_mask`, `select_rows`, `concat_batches`).
- **R1-Zero metrics** computed where the decoded completions are available (`_calculate_rewards`): accuracy, format
  rate, reflection-word counts (the "aha moment" signal), completions and tokens per round (gathered over
  processes), reward-function failures; plus a sample of completions every `sample_log_steps` steps for
  `r1.callbacks.RunArtifactsCallback`, which writes them with the metrics to `output_dir`.
- **Reward safety**: rewards come wrapped in `r1.rewarding.SafeReward`; a batch nobody could score stops the run.
- **Run guards** (`r1.guards.RunGuardsMixin`): exact resume (generation buffer, data order), atomic checkpoints,
  NaN/inf steps skipped and counted, the run stopped after `max_consecutive_nonfinite` in a row.

Rollouts go through `r1.rollout.FastRolloutMixin` (`fast_rollout`, on by default): it replaces only the decode loop of
TRL's transformers path and samples the same tokens; nothing here depends on how the completions were produced.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

import torch
from datasets import IterableDataset
from trl import GRPOTrainer

from r1.callbacks import RunArtifactsCallback
from r1.config import R1GRPOConfig
from r1.cpu_memory import retain_freed_memory
from r1.guards import RunGuardsMixin, TimeLimitCallback
from r1.rewarding import SafeReward, check_scored
from r1.rollout import FastRolloutMixin
from r1.templates import Template, with_prefill
from rewards import completion_text, format_reward

logger = logging.getLogger(__name__)

PROMPT_KEYS = ("prompt_ids", "prompt_mask")  # left-padded
COMPLETION_KEYS = (  # right-padded along the completion length
    "completion_ids",
    "completion_mask",
    "old_per_token_logps",
    "ref_per_token_logps",
    "sampling_per_token_logps",
    "tool_mask",
    "importance_sampling_ratio",
)
PAD_VALUES = {"prompt_mask": 0, "completion_mask": 0, "tool_mask": 1, "importance_sampling_ratio": 1.0}
ACCURACY_REWARDS = ("accuracy", "countdown")  # the reward whose value 1.0 means "correct"


# ----------------------------------------------------------------------------------------------------------------
# Dynamic sampling: pure functions on TRL's batch dicts
# ----------------------------------------------------------------------------------------------------------------


def group_keep_mask(values: torch.Tensor, num_generations: int, tol: float = 1e-6) -> torch.Tensor:
    """Per-row bool mask keeping the groups (consecutive runs of `num_generations` rows) whose finite values vary.

    A group whose rewards are all equal has zero advantage everywhere, so it carries no policy gradient. NaN
    (unscorable) values are ignored; a group with fewer than two finite values is dropped.
    """
    if values.numel() % num_generations:
        raise ValueError(f"{values.numel()} rewards do not split into groups of {num_generations}")
    g = values.detach().float().view(-1, num_generations)
    finite = torch.isfinite(g)
    hi = torch.where(finite, g, torch.full_like(g, -torch.inf)).max(dim=1).values
    lo = torch.where(finite, g, torch.full_like(g, torch.inf)).min(dim=1).values
    keep = (finite.sum(dim=1) >= 2) & ((hi - lo) > tol)
    return keep.repeat_interleave(num_generations)


def num_rows(batch: dict[str, Any]) -> int:
    return int(batch["prompt_ids"].shape[0])


def select_rows(batch: dict[str, Any], rows: torch.Tensor | Sequence[int]) -> dict[str, Any]:
    """The rows `rows` (bool mask or indices) of every per-row tensor; scalars (num_items_in_batch) are kept."""
    n = num_rows(batch)
    index = torch.as_tensor(rows)
    if index.dtype == torch.bool:
        if index.numel() != n:
            raise ValueError(f"mask has {index.numel()} entries for {n} rows")
        index = index.nonzero(as_tuple=True)[0]
    index = index.to(dtype=torch.long)
    out: dict[str, Any] = {}
    for key, value in batch.items():
        if isinstance(value, torch.Tensor) and value.dim() >= 1 and value.shape[0] == n:
            out[key] = value[index.to(value.device)]
        elif value is None or (isinstance(value, torch.Tensor) and value.dim() == 0):
            out[key] = value
        else:
            raise NotImplementedError(f"dynamic sampling cannot select rows of {key!r} (shape {getattr(value, 'shape', None)})")
    return out


def _pad_to(t: torch.Tensor, width: int, value: float, left: bool) -> torch.Tensor:
    extra = width - t.shape[1]
    if extra <= 0:
        return t
    pad = torch.full((t.shape[0], extra, *t.shape[2:]), value, dtype=t.dtype, device=t.device)
    return torch.cat([pad, t] if left else [t, pad], dim=1)


def concat_batches(batches: Sequence[dict[str, Any]], pad_token_id: int) -> dict[str, Any]:
    """Stack batches row-wise: prompt tensors re-left-padded, completion tensors re-right-padded to the widest.

    Scalars (`num_items_in_batch`) are dropped: they depend on the final rows, so the caller recomputes them.
    """
    batches = [b for b in batches if num_rows(b) > 0] or list(batches[:1])
    keys = list(batches[0])
    for b in batches[1:]:
        if set(b) != set(keys):
            raise ValueError(f"cannot merge batches with different keys: {sorted(set(b) ^ set(keys))}")
    out: dict[str, Any] = {}
    for key in keys:
        values = [b[key] for b in batches]
        if values[0] is None or (isinstance(values[0], torch.Tensor) and values[0].dim() == 0):
            continue
        if key in PROMPT_KEYS or key in COMPLETION_KEYS:
            left = key in PROMPT_KEYS
            default = pad_token_id if key.endswith("_ids") else 0.0
            value = PAD_VALUES.get(key, default)
            width = max(v.shape[1] for v in values)
            out[key] = torch.cat([_pad_to(v, width, value, left) for v in values], dim=0)
        elif values[0].dim() == 1:
            out[key] = torch.cat(values, dim=0)
        else:
            raise NotImplementedError(f"dynamic sampling cannot merge {key!r} (shape {tuple(values[0].shape)})")
    return out


def loss_mask(batch: dict[str, Any]) -> torch.Tensor:
    mask = batch["completion_mask"]
    return mask * batch["tool_mask"] if batch.get("tool_mask") is not None else mask


# ----------------------------------------------------------------------------------------------------------------
# Reflection words
# ----------------------------------------------------------------------------------------------------------------


def reflection_patterns(words: Sequence[str]) -> list[re.Pattern[str]]:
    return [re.compile(r"(?<![A-Za-z])" + re.escape(w.lower()) + r"(?![A-Za-z])") for w in words]


def count_reflections(texts: Sequence[str], patterns: Sequence[re.Pattern[str]]) -> list[list[int]]:
    """Occurrences of each reflection word (case-insensitive, whole words) in each text: [text][word]."""
    return [[len(p.findall(t.lower())) for p in patterns] for t in texts]


# ----------------------------------------------------------------------------------------------------------------
# The trainer
# ----------------------------------------------------------------------------------------------------------------


class R1ZeroTrainer(FastRolloutMixin, RunGuardsMixin, GRPOTrainer):
    """GRPOTrainer with dynamic sampling, R1-Zero metrics and run artifacts (see the module docstring), plus
    `r1.rollout.FastRolloutMixin` (lean decode loop: same tokens as TRL's `generate`, less overhead) and
    `r1.guards.RunGuardsMixin`: exact resume, atomic checkpoints, non-finite step guard.

    `template` (a `r1.templates.Template`) tells the metrics which prefix the model never generated. Pass
    `artifacts=False` to skip `RunArtifactsCallback` (e.g. in unit tests of the loss).
    """

    def __init__(self, *args: Any, template: Template | None = None, artifacts: bool = True, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.template = template
        a = self.args
        if not isinstance(a, R1GRPOConfig):
            raise TypeError(f"R1ZeroTrainer needs r1.config.R1GRPOConfig arguments (got {type(a).__name__})")
        self.dynamic_sampling = a.dynamic_sampling
        self.dynamic_sampling_max_rounds = a.dynamic_sampling_max_rounds
        self.dynamic_sampling_metric = a.dynamic_sampling_metric
        self.sample_log_steps = a.sample_log_steps
        self.sample_log_count = a.sample_log_count
        self.reflection_words = list(a.reflection_words)
        self._reflection_patterns = reflection_patterns(self.reflection_words)
        prompt_text = "" if template is None else template.user + (template.system or "")
        self._uses_tags = template is None or "<answer>" in prompt_text
        self._last_rewards_per_func: torch.Tensor | None = None
        self.completion_tokens_total = 0  # generated in this session (all processes); the callback adds resumed totals
        self.reward_errors_total = 0
        self.pending_samples: list[dict[str, Any]] = []
        self.reflection_counts: dict[str, int] = {}  # since the last log; drained by the artifacts callback
        if self.dynamic_sampling:
            if isinstance(self.train_dataset, IterableDataset):
                raise ValueError("dynamic_sampling needs a map-style dataset (refill prompts are drawn by index)")
            if self.dynamic_sampling_metric != "reward" and self.dynamic_sampling_metric not in self.reward_func_names:
                raise ValueError(
                    f"dynamic_sampling_metric {self.dynamic_sampling_metric!r} is not one of the reward functions "
                    f"({', '.join(self.reward_func_names)}) nor 'reward'"
                )
        if a.cpu_retain_freed_memory and self.accelerator.device.type == "cpu":
            retain_freed_memory()
        self.artifacts = None
        if artifacts:
            self.artifacts = RunArtifactsCallback(self)
            self.add_callback(self.artifacts)
            if a.max_train_seconds:
                self.add_callback(TimeLimitCallback(self, a.max_train_seconds, self.artifacts.train_seconds_total))

    # ------------------------------------------------------------------ rewards and R1-Zero metrics

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        for f in self.reward_funcs:
            if isinstance(f, SafeReward):
                f.batch_errors = 0
        rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        mode = "train" if self.model.training else "eval"
        self._log_reward_health(rewards_per_func, mode)
        check_scored(rewards_per_func, self.reward_func_names, self.state.global_step + 1)
        self._last_rewards_per_func = rewards_per_func  # gathered (all processes): dynamic sampling reads it
        texts, fmt = self._log_completion_stats(completions, completion_ids_list, mode)
        if mode == "train":
            self._maybe_keep_samples(inputs, prompts, texts, rewards_per_func, fmt)
        return rewards_per_func

    def _log_reward_health(self, rewards_per_func: torch.Tensor, mode: str) -> None:
        """Per reward function: samples that raised (`errors`), share scored None (`none_frac`); and accuracy."""
        errors = torch.tensor(
            [float(f.batch_errors) if isinstance(f, SafeReward) else 0.0 for f in self.reward_funcs],
            device=self.accelerator.device,
        )
        errors = self.accelerator.gather(errors).view(-1, len(self.reward_funcs)).sum(dim=0)
        none_frac = torch.isnan(rewards_per_func).float().mean(dim=0).tolist()
        m = self._metrics[mode]
        for name, e, nf in zip(self.reward_func_names, errors.tolist(), none_frac, strict=True):
            m[f"rewards/{name}/errors"].append(e)
            m[f"rewards/{name}/none_frac"].append(nf)
        self.reward_errors_total += int(errors.sum().item())
        # Accuracy: share of scored completions the accuracy-type reward counts as fully correct.
        for name in ACCURACY_REWARDS:
            if name in self.reward_func_names:
                col = rewards_per_func[:, self.reward_func_names.index(name)]
                ok = col[~torch.isnan(col)]
                if ok.numel():
                    m["accuracy"].append((ok >= 1.0 - 1e-6).float().mean().item())
                break

    def _log_completion_stats(self, completions, completion_ids_list, mode: str) -> tuple[list[str], list[float]]:
        """Completions and tokens per round, format rate and reflection words, summed over all processes."""
        prefill = self.template.prefill if self.template is not None else ""
        texts = [completion_text(c) for c in with_prefill(list(completions), prefill)]
        fmt = self._format_scores(texts)
        counts = count_reflections(texts, self._reflection_patterns)
        # One gather for everything: [completions, tokens, formatted, any-reflection, per-word counts...]
        local = torch.tensor(
            [
                float(len(texts)),
                float(sum(len(ids) for ids in completion_ids_list)),
                float(sum(fmt)),
                float(sum(1 for c in counts if any(c))),
                *[float(sum(c[j] for c in counts)) for j in range(len(self.reflection_words))],
            ],
            device=self.accelerator.device,
        )
        per_rank = self.accelerator.gather(local).view(-1, local.numel())
        total = per_rank.sum(dim=0).tolist()
        n = max(total[0], 1.0)
        m = self._metrics[mode]
        m["completions/count"].append(total[0])
        m["completions/ranks_contributing"].append(float((per_rank[:, 0] > 0).sum().item()))
        m["completions/tokens"].append(total[1])
        if self._uses_tags:
            m["format_rate"].append(total[2] / n)
        m["reflection/frac_completions"].append(total[3] / n)
        m["reflection/per_completion"].append(sum(total[4:]) / n)
        if mode == "train":  # per-word totals go to metrics.jsonl only (summed over the logging window)
            for word, c in zip(self.reflection_words, total[4:], strict=True):
                self.reflection_counts[word] = self.reflection_counts.get(word, 0) + int(c)
            self.completion_tokens_total += int(total[1])
        return texts, fmt

    def _format_scores(self, texts: list[str]) -> list[float]:
        if not self._uses_tags:
            return [0.0] * len(texts)
        try:
            return [float(r or 0.0) for r in format_reward(completions=texts)]
        except Exception as e:  # metrics must never stop training
            logger.warning("format rate not computed: %s", e)
            return [0.0] * len(texts)

    def _maybe_keep_samples(self, inputs, prompts, texts, rewards_per_func, fmt) -> None:
        step = self.state.global_step + 1  # the optimizer step these completions will train
        if not self.sample_log_steps or not self.accelerator.is_main_process:
            return
        if (step - 1) % self.sample_log_steps or any(s["step"] == step for s in self.pending_samples):
            return
        local = rewards_per_func[self.accelerator.process_index * len(texts) :][: len(texts)].tolist()
        for i in range(min(self.sample_log_count, len(texts))):
            row = inputs[i]
            self.pending_samples.append(
                {
                    "step": step,
                    "prompt": completion_text(prompts[i]),
                    "completion": texts[i],
                    "answer": row.get("answer"),
                    "rewards": {n: (None if v != v else v) for n, v in zip(self.reward_func_names, local[i], strict=True)},
                    "format": fmt[i],
                }
            )

    # ------------------------------------------------------------------ dynamic sampling

    def _generate_and_score_completions(self, inputs):
        batch = super()._generate_and_score_completions(inputs)
        if not (self.dynamic_sampling and self.model.training):
            return batch
        return self._dynamic_sampling(inputs, batch)

    def _group_metric(self) -> torch.Tensor:
        rpf = self._last_rewards_per_func
        if self.dynamic_sampling_metric != "reward":
            return rpf[:, self.reward_func_names.index(self.dynamic_sampling_metric)]
        weights = self.reward_weights.to(rpf.device)
        values = (rpf * weights.unsqueeze(0)).nansum(dim=1)
        values[torch.isnan(rpf).all(dim=1)] = torch.nan
        return values

    def _dynamic_sampling(self, inputs: list[dict[str, Any]], first: dict[str, Any]) -> dict[str, Any]:
        G = self.num_generations
        need = len(inputs)
        rank = self.accelerator.process_index
        kept, dropped = [], []
        groups_seen = groups_kept = 0
        batch, rounds = first, 0
        while True:
            keep_global = group_keep_mask(self._group_metric(), G)
            keep_local = keep_global[rank * need : (rank + 1) * need].cpu()
            kept.append(select_rows(batch, keep_local))
            dropped.append(select_rows(batch, ~keep_local))
            groups_seen += keep_global.numel() // G
            groups_kept += int(keep_global.sum().item()) // G
            have = sum(num_rows(b) for b in kept)
            fewest = int(self.accelerator.gather(torch.tensor([have], device=self.accelerator.device)).min().item())
            if fewest >= need or rounds >= self.dynamic_sampling_max_rounds:
                break
            rounds += 1
            batch = super()._generate_and_score_completions(self._refill_inputs(rounds, need))

        pad_id = self._tokenizer.pad_token_id
        merged = concat_batches(kept, pad_id) if have else None
        filler = 0
        if have < need:  # still short: pad with dropped rows that train nothing
            filler = need - have
            extra = select_rows(concat_batches(dropped, pad_id), torch.arange(filler))
            extra["completion_mask"] = torch.zeros_like(extra["completion_mask"])
            merged = extra if merged is None else concat_batches([merged, extra], pad_id)
        merged = select_rows(merged, torch.arange(need))
        merged["num_items_in_batch"] = self.accelerator.gather(loss_mask(merged).sum()).sum()

        mode = "train"
        filler_all = self.accelerator.gather(torch.tensor([float(filler)], device=self.accelerator.device)).sum().item()
        self._metrics[mode]["dynamic_sampling/kept_group_frac"].append(groups_kept / max(groups_seen, 1))
        self._metrics[mode]["dynamic_sampling/rounds"].append(float(rounds))
        self._metrics[mode]["dynamic_sampling/filler_frac"].append(filler_all / (need * self.accelerator.num_processes))
        if filler:
            logger.warning(
                "dynamic sampling: %d of %d rows still without signal after %d refill rounds; they are masked out",
                filler, need, rounds,
            )
        return merged

    def _refill_inputs(self, round_idx: int, need: int) -> list[dict[str, Any]]:
        """This process's share of a fresh generation batch: prompts drawn with a seed fixed by (seed, step, round)
        so every process draws the same global batch and a resumed run draws the same refills."""
        G = self.num_generations
        n_prompts = self.args.generation_batch_size // G
        dataset = self.train_dataset
        gen = torch.Generator().manual_seed(
            (int(self.args.seed) * 1_000_003 + int(self.state.global_step) * 1_009 + round_idx) % (2**63 - 1)
        )
        if len(dataset) >= n_prompts:
            prompt_idx = torch.randperm(len(dataset), generator=gen)[:n_prompts]
        else:
            prompt_idx = torch.randint(len(dataset), (n_prompts,), generator=gen)
        rows = prompt_idx.repeat_interleave(G).tolist()
        rank = self.accelerator.process_index
        return [dataset[int(i)] for i in rows[rank * need : (rank + 1) * need]]
