"""GRPO maths: the advantages and losses our presets produce equal hand computations; dynamic sampling filters.

The trainer is built on the tiny random Qwen2 with each preset's algorithm fields (loss type, beta, reward scaling,
clip range) and fed a hand-made batch: fixed completions, fixed rewards, and crafted old/reference log-probs so that
clipping (including DAPO's clip-higher) and the k3 KL term are exercised. The hand computation uses log-probs from
an independent forward pass of the same model.
"""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from r1.config import parse_args
from r1.models import load_model, load_tokenizer, resolve_model
from r1.rewarding import SafeReward
from r1.trainer import R1ZeroTrainer, concat_batches, group_keep_mask, num_rows, select_rows

REPO = Path(__file__).resolve().parents[1]
PRESETS = {
    "grpo": REPO / "recipes/configs/r1_zero_qwen2.5_math_7b.yaml",
    "dr_grpo": REPO / "recipes/configs/dr_grpo_qwen2.5_math_1.5b.yaml",
    "dapo": REPO / "recipes/configs/dapo_qwen2.5_7b.yaml",
}
G = 4
REWARDS = [1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 2.0, 0.0]  # two groups of G completions
MAX_LEN = 6


def tiny_args(preset: Path, tmp_path: Path, *extra: str):
    run = parse_args(
        [
            "--config", str(preset),
            "--model_name_or_path", "tiny:qwen2",
            "--num_generations", str(G),
            "--per_device_train_batch_size", str(2 * G),
            "--gradient_accumulation_steps", "1",
            "--max_completion_length", str(MAX_LEN),
            "--reward_funcs", "accuracy",
            "--reward_weights", "1.0",
            "--overlong_buffer_len", "0",
            "--dynamic_sampling", "false",
            "--bf16", "false",
            "--gradient_checkpointing", "false",
            "--report_to", "none",
            "--output_dir", str(tmp_path / "out"),
            *extra,
        ]
    )
    return run.training


@pytest.fixture(scope="module")
def tiny():
    path = resolve_model("tiny:qwen2")
    return path, load_tokenizer(path)


def make_trainer(args, tiny, reward_fn, prompts, name: str = "crafted"):
    from datasets import Dataset

    path, tokenizer = tiny
    model = load_model(path, dtype="float32")
    trainer = R1ZeroTrainer(
        model=model,
        reward_funcs=[SafeReward(reward_fn, name)],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=tokenizer,
        artifacts=False,
    )
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # set by the training loop; we call the loss directly
    return trainer


def fixed_completions(tokenizer) -> list[list[int]]:
    """Eight completions of lengths 1..6; half end with EOS (terminated), the others are cut."""
    words = tokenizer.encode("7 + 1 = 8 so the answer is 8", add_special_tokens=False)
    eos = tokenizer.eos_token_id
    out = []
    for i in range(2 * G):
        n = 1 + i % MAX_LEN
        ids = (words * 2)[:n]
        if i % 2 == 0:
            ids = ids[: n - 1] + [eos] if n > 1 else [eos]
        out.append(ids)
    return out


def hand_logps(model, batch, temperature: float) -> torch.Tensor:
    """Per-token log-probs of the completion tokens from a plain forward pass (no TRL code)."""
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], dim=1)
    mask = torch.cat([batch["prompt_mask"], batch["completion_mask"]], dim=1)
    T = batch["completion_ids"].shape[1]
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits[:, -T - 1 : -1].float() / temperature
    return torch.log_softmax(logits, dim=-1).gather(-1, batch["completion_ids"].unsqueeze(-1)).squeeze(-1)


def hand_advantages(rewards: list[float], scale: str) -> torch.Tensor:
    out = []
    for g in range(0, len(rewards), G):
        group = rewards[g : g + G]
        mean = sum(group) / G
        std = math.sqrt(sum((r - mean) ** 2 for r in group) / (G - 1))  # Bessel, as GRPO implementations do
        out += [(r - mean) / (std + 1e-4) if scale == "group" else r - mean for r in group]
    return torch.tensor(out)


# log-ratio offsets: ratios 0.61, 0.78, 0.90, 1.0, 1.246 (inside DAPO's 1.28, outside GRPO's 1.2), 1.35
OFFSETS = torch.tensor([-0.5, -0.25, -0.1, 0.0, 0.22, 0.3])


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "dapo"])
def test_advantages_and_loss_match_hand_computation(name, tiny, tmp_path):
    args = tiny_args(PRESETS[name], tmp_path)
    expected = {
        "grpo": ("grpo", "group", 0.001, 0.2, 0.2),
        "dr_grpo": ("dr_grpo", "none", 0.0, 0.2, 0.2),
        "dapo": ("dapo", "group", 0.0, 0.2, 0.28),
    }[name]
    assert (args.loss_type, args.scale_rewards, args.beta, args.epsilon, args.epsilon_high) == expected

    prompts = ["What is 7 + 1?", "What is 3 + 4?"]
    trainer = make_trainer(args, tiny, lambda completions, **kw: REWARDS[: len(completions)], prompts)
    completions = fixed_completions(tiny[1])
    trainer._generate_single_turn = lambda prompt_ids, images, mm, n: (completions, None)
    batch = trainer._generate_and_score_completions([{"prompt": p} for p in prompts for _ in range(G)])

    adv = hand_advantages(REWARDS, args.scale_rewards)
    torch.testing.assert_close(batch["advantages"].float(), adv, rtol=1e-5, atol=1e-6)

    logps = hand_logps(trainer.model, batch, args.temperature)
    mask = batch["completion_mask"].float()
    assert mask.sum() == sum(len(c) for c in completions)
    rows, cols = torch.meshgrid(torch.arange(logps.shape[0]), torch.arange(logps.shape[1]), indexing="ij")
    offsets = OFFSETS[(rows + cols) % len(OFFSETS)]
    old = logps - offsets
    ref = logps + 0.3 * torch.sin(torch.arange(logps.numel(), dtype=torch.float32)).view_as(logps)
    inputs = {**batch, "old_per_token_logps": old}
    if args.beta:
        inputs["ref_per_token_logps"] = ref
    loss = trainer._compute_loss(trainer.model, inputs)

    A = adv.unsqueeze(1)
    ratio = torch.exp(logps - old)
    clipped = ratio.clamp(1 - args.epsilon, 1 + args.epsilon_high)
    per_token = -torch.minimum(ratio * A, clipped * A)
    if args.beta:
        per_token = per_token + args.beta * (torch.exp(ref - logps) - (ref - logps) - 1)
    if name == "grpo":  # mean over each completion's tokens, then over completions
        want = ((per_token * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
    elif name == "dr_grpo":  # constant normaliser: completions x max_completion_length
        want = (per_token * mask).sum() / (mask.shape[0] * MAX_LEN)
    else:  # token-level: all tokens of the batch
        want = (per_token * mask).sum() / mask.sum()
    assert abs(want.item()) > 1e-3  # the crafted batch must produce a real loss
    torch.testing.assert_close(loss.detach().float(), want.float(), rtol=1e-4, atol=1e-6)
    if name == "dapo":  # clip-higher matters here: the same batch under GRPO's symmetric clip gives another value
        symmetric = -torch.minimum(ratio * A, ratio.clamp(0.8, 1.2) * A)
        assert abs(((symmetric * mask).sum() / mask.sum()).item() - want.item()) > 1e-4


# ----------------------------------------------------------------------------------------------- dynamic sampling


def test_group_keep_mask_drops_exactly_zero_variance_groups():
    nan = float("nan")
    values = torch.tensor([1, 1, 1, 1, 0, 1, 0, 1, nan, nan, nan, 1, 2, 2, nan, 2, 0, 0, 0, 1e-3])
    keep = group_keep_mask(values, 4)
    assert keep.tolist() == [False] * 4 + [True] * 4 + [False] * 8 + [True] * 4


def test_group_keep_mask_keeps_a_group_whose_scorable_rewards_vary_despite_nan():
    """An unscorable completion (NaN: a reward returned None) does not cost its group the others' signal: a group is
    dropped only when its finite rewards are all equal (or fewer than two are finite)."""
    nan = float("nan")
    groups = [
        ([nan, 0, 1, 1], True),  # one NaN, the rest vary: kept
        ([0, nan, nan, 1], True),  # two finite values that differ: kept
        ([1, nan, 1, 1], False),  # the finite values are all equal: dropped
        ([nan, nan, nan, 0], False),  # one finite value: dropped
        ([nan, nan, nan, nan], False),
        ([float("inf"), 0, 0, 0], False),  # inf is not scorable either
        ([float("inf"), 0, 1, 0], True),
    ]
    keep = group_keep_mask(torch.tensor([v for g, _ in groups for v in g]), 4)
    assert keep.view(-1, 4).all(dim=1).tolist() == [k for _, k in groups]
    assert keep.view(-1, 4).any(dim=1).tolist() == [k for _, k in groups]  # whole groups, never single rows


def test_group_metric_reads_the_named_reward_with_its_nans():
    """DAPO filters on `accuracy`, whose unscorable completions are None -> NaN; `reward` is the weighted sum over the
    scorable rewards (NaN only when no reward scored the completion)."""
    nan = float("nan")
    rpf = torch.tensor([[nan, 1.0], [1.0, 0.0], [0.0, nan], [nan, nan]])
    fake = SimpleNamespace(
        _last_rewards_per_func=rpf, reward_func_names=["accuracy", "format"], reward_weights=torch.tensor([1.0, 0.5])
    )
    accuracy = R1ZeroTrainer._group_metric(SimpleNamespace(**vars(fake), dynamic_sampling_metric="accuracy"))
    assert accuracy[1:3].tolist() == [1.0, 0.0] and accuracy[0].isnan() and accuracy[3].isnan()
    reward = R1ZeroTrainer._group_metric(SimpleNamespace(**vars(fake), dynamic_sampling_metric="reward"))
    assert reward[:3].tolist() == [0.5, 1.0, 0.0] and reward[3].isnan()
    assert group_keep_mask(accuracy, 4).tolist() == [True] * 4  # finite accuracies 1, 0 vary


def _unscorable_first(prompts, completions, **kw):
    # like _const_or_vary, but the first completion of every group could not be scored (None -> NaN)
    return [None if i % G == 0 else (1.0 if "const" in p else float(i % 2)) for i, p in enumerate(prompts)]


def test_dynamic_sampling_on_accuracy_keeps_groups_with_an_unscorable_completion(tiny, tmp_path):
    """The DAPO preset filters on accuracy. A "vary" group scores [None, 1, 0, 1]: its scorable rewards vary, so it
    trains; a "const" group scores [None, 1, 1, 1] and is dropped."""
    args = tiny_args(
        PRESETS["dapo"], tmp_path, "--dynamic_sampling", "true", "--dynamic_sampling_metric", "accuracy",
        "--dynamic_sampling_max_rounds", "8", "--max_completion_length", "3",
    )
    prompts = [f"{kind} {k}: What is {k} + 1?" for k in range(6) for kind in ("const", "vary")]
    trainer = make_trainer(args, tiny, _unscorable_first, prompts, name="accuracy")
    assert trainer.dynamic_sampling_metric == "accuracy"
    out = trainer._generate_and_score_completions([{"prompt": prompts[0]}] * G + [{"prompt": prompts[1]}] * G)

    assert num_rows(out) == 2 * G
    texts = tiny[1].batch_decode(out["prompt_ids"], skip_special_tokens=True)
    assert all("vary" in t for t in texts), texts  # the vary groups were kept despite their NaN
    m = trainer._metrics["train"]
    assert m["dynamic_sampling/filler_frac"][-1] == 0.0  # kept groups filled the batch: no masked filler rows
    assert out["completion_mask"].sum(1).min() > 0
    assert 0 < m["dynamic_sampling/kept_group_frac"][-1] < 1


def _toy_batch(prompt_lens, completion_lens, pad=0, start=0):
    n = len(prompt_lens)
    P, C = max(prompt_lens), max(completion_lens)
    b = {
        "prompt_ids": torch.full((n, P), pad),
        "prompt_mask": torch.zeros(n, P, dtype=torch.long),
        "completion_ids": torch.full((n, C), pad),
        "completion_mask": torch.zeros(n, C, dtype=torch.long),
        "old_per_token_logps": torch.zeros(n, C),
        "advantages": torch.arange(start, start + n, dtype=torch.float32),
        "num_items_in_batch": torch.tensor(float(sum(completion_lens))),
    }
    for i, (p, c) in enumerate(zip(prompt_lens, completion_lens, strict=True)):
        b["prompt_ids"][i, P - p :] = torch.arange(1, p + 1) + 100 * (start + i)
        b["prompt_mask"][i, P - p :] = 1
        b["completion_ids"][i, :c] = torch.arange(1, c + 1) + 100 * (start + i)
        b["completion_mask"][i, :c] = 1
        b["old_per_token_logps"][i, :c] = -0.5 - start - i
    return b


def test_select_and_concat_repad_prompts_left_and_completions_right():
    a = _toy_batch([2, 3], [4, 1], start=0)
    b = _toy_batch([5, 1], [2, 6], start=2)
    merged = concat_batches([select_rows(a, torch.tensor([True, True])), select_rows(b, [0, 1])], pad_token_id=0)
    assert num_rows(merged) == 4 and "num_items_in_batch" not in merged
    assert merged["prompt_ids"].shape == (4, 5) and merged["completion_ids"].shape == (4, 6)
    for i, (p, c) in enumerate([(2, 4), (3, 1), (5, 2), (1, 6)]):
        assert merged["prompt_mask"][i].tolist() == [0] * (5 - p) + [1] * p  # left padded
        assert merged["prompt_ids"][i, 5 - p :].tolist() == (torch.arange(1, p + 1) + 100 * i).tolist()
        assert merged["completion_mask"][i].tolist() == [1] * c + [0] * (6 - c)  # right padded
        assert merged["completion_ids"][i, :c].tolist() == (torch.arange(1, c + 1) + 100 * i).tolist()
        assert merged["old_per_token_logps"][i, :c].tolist() == [-0.5 - i] * c
    assert merged["advantages"].tolist() == [0.0, 1.0, 2.0, 3.0]
    dropped = select_rows(merged, torch.tensor([False, True, False, True]))
    assert dropped["advantages"].tolist() == [1.0, 3.0]


def _const_or_vary(prompts, completions, **kw):
    # "const" prompts: every completion gets 1.0 (zero variance); "vary" prompts: 0/1 alternating
    return [1.0 if "const" in p else float(i % 2) for i, p in enumerate(prompts)]


def test_dynamic_sampling_drops_zero_variance_groups_and_refills(tiny, tmp_path):
    args = tiny_args(
        PRESETS["dapo"], tmp_path, "--dynamic_sampling", "true", "--dynamic_sampling_metric", "reward", "--dynamic_sampling_max_rounds", "8",
        "--max_completion_length", "3",
    )
    prompts = [f"{kind} {k}: What is {k} + 1?" for k in range(6) for kind in ("const", "vary")]
    trainer = make_trainer(args, tiny, _const_or_vary, prompts)
    first = [{"prompt": prompts[0]}] * G + [{"prompt": prompts[1]}] * G  # one const group, one vary group
    out = trainer._generate_and_score_completions(first)

    assert num_rows(out) == 2 * G  # still a full batch
    texts = tiny[1].batch_decode(out["prompt_ids"], skip_special_tokens=True)
    assert all("vary" in t for t in texts), texts  # every const (zero-variance) group was dropped
    assert out["completion_mask"].sum(1).min() > 0  # no masked filler rows were needed
    assert out["num_items_in_batch"].item() == out["completion_mask"].sum().item()
    m = trainer._metrics["train"]
    assert m["dynamic_sampling/rounds"][-1] >= 1
    assert m["dynamic_sampling/filler_frac"][-1] == 0.0
    assert 0 < m["dynamic_sampling/kept_group_frac"][-1] < 1


def test_dynamic_sampling_masks_filler_when_no_group_has_signal(tiny, tmp_path):
    args = tiny_args(
        PRESETS["dapo"], tmp_path, "--dynamic_sampling", "true", "--dynamic_sampling_metric", "reward", "--dynamic_sampling_max_rounds", "1",
        "--max_completion_length", "3",
    )
    prompts = [f"const {k}" for k in range(4)]
    trainer = make_trainer(args, tiny, _const_or_vary, prompts)
    out = trainer._generate_and_score_completions([{"prompt": prompts[0]}] * G + [{"prompt": prompts[1]}] * G)
    assert num_rows(out) == 2 * G
    assert out["completion_mask"].sum().item() == 0 and out["num_items_in_batch"].item() == 0
    assert trainer._metrics["train"]["dynamic_sampling/filler_frac"][-1] == 1.0
    assert trainer._metrics["train"]["dynamic_sampling/rounds"][-1] == 1.0
