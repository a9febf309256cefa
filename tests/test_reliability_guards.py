"""r1.guards in process: NaN/inf steps leave weights and optimizer state untouched; epoch-seeded data order equals
TRL's uninterrupted order; checkpoint publishing and discovery ignore half-written folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

TINY = str(Path(__file__).resolve().parent / "configs" / "tiny_qwen2.yaml")


def vowels(completions, **kw):
    """Signal on a random model: the share of vowels varies per completion, so every step updates the weights."""
    return [sum(ch in "aeiou" for ch in c) / max(len(c), 1) for c in completions]


def make_trainer(tmp_path: Path, *extra: str):
    from datasets import Dataset

    from r1.config import parse_args
    from r1.models import load_model, load_tokenizer, resolve_model
    from r1.rewarding import SafeReward
    from r1.trainer import R1ZeroTrainer

    run = parse_args([
        "--config", TINY, "--output_dir", str(tmp_path), "--max_completion_length", "8", "--learning_rate", "1e-3",
        "--reward_funcs", "accuracy", "--reward_weights", "1", "--save_strategy", "no", "--logging_steps", "1", *extra,
    ])
    torch.set_num_threads(1)
    path = resolve_model("tiny:qwen2")
    return R1ZeroTrainer(
        model=load_model(path, dtype="float32"),
        reward_funcs=[SafeReward(vowels, "vowels")],
        args=run.training,
        train_dataset=Dataset.from_dict({"prompt": [f"What is {i} + {i}?" for i in range(8)]}),
        processing_class=load_tokenizer(path),
        artifacts=False,
    )


class Snapshots:
    """Parameters and AdamW state after every optimizer step (HF's on_step_end)."""

    def __init__(self, trainer):
        from transformers import TrainerCallback

        self.params: dict[int, dict[str, torch.Tensor]] = {}
        self.adam: dict[int, dict[str, torch.Tensor]] = {}
        outer = self

        class CB(TrainerCallback):
            def on_train_begin(self, args, state, control, **kw):
                outer.params[0] = outer._params(trainer)

            def on_step_end(self, args, state, control, **kw):
                outer.params[state.global_step] = outer._params(trainer)
                outer.adam[state.global_step] = outer._adam(trainer)

        trainer.add_callback(CB())

    @staticmethod
    def _params(trainer) -> dict[str, torch.Tensor]:
        return {n: p.detach().clone() for n, p in trainer.model.named_parameters()}

    @staticmethod
    def _adam(trainer) -> dict[str, torch.Tensor]:
        out = {}
        names = {id(p): n for n, p in trainer.model.named_parameters()}
        for p, st in trainer.optimizer.state.items():
            if "exp_avg" in st:
                out[names[id(p)]] = torch.cat([st["exp_avg"].flatten(), st["exp_avg_sq"].flatten(),
                                               torch.as_tensor(st["step"], dtype=torch.float32).flatten()])
        return out


def equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_nonfinite_loss_and_grad_norm_skip_the_update(tmp_path):
    trainer = make_trainer(tmp_path, "--max_steps", "4", "--max_consecutive_nonfinite", "3")
    snaps = Snapshots(trainer)

    compute_loss = trainer.compute_loss

    def nan_at_step_2(*a, **k):  # step 2: the loss itself is NaN
        loss = compute_loss(*a, **k)
        return loss * float("nan") if trainer.state.global_step + 1 == 2 else loss

    trainer.compute_loss = nan_at_step_2
    weight = trainer.model.get_input_embeddings().weight  # step 3: finite loss, infinite gradient
    weight.register_hook(lambda g: g * float("inf") if trainer.state.global_step + 1 == 3 else g)

    trainer.train()

    p, adam = snaps.params, snaps.adam
    assert not equal(p[1], p[0])  # a normal step moves the weights...
    assert equal(p[2], p[1]) and equal(adam[2], adam[1])  # ...a NaN-loss step moves nothing, not even Adam's state
    assert equal(p[3], p[2]) and equal(adam[3], adam[2])  # ...nor an inf-gradient one
    assert not equal(p[4], p[3])  # and training goes on
    assert trainer.nonfinite_skipped_total == 2 and trainer.nonfinite_consecutive == 0
    skipped = [h["nonfinite/skipped"] for h in trainer.state.log_history if "nonfinite/skipped" in h]
    assert skipped == [0.0, 1.0, 1.0, 0.0]


def test_nonfinite_streak_raises_one_line(tmp_path):
    from r1.guards import NonFiniteError

    trainer = make_trainer(tmp_path, "--max_steps", "5", "--max_consecutive_nonfinite", "2")
    compute_loss = trainer.compute_loss
    trainer.compute_loss = lambda *a, **k: compute_loss(*a, **k) * float("inf")
    with pytest.raises(NonFiniteError) as e:
        trainer.train()
    assert str(e.value).startswith("step 2: the loss or gradient norm was NaN/inf for 2 consecutive steps")
    assert "\n" not in str(e.value) and "Last checkpoint: none" in str(e.value)


def test_max_consecutive_nonfinite_is_validated():
    from r1.config import ConfigError, parse_args

    with pytest.raises(ConfigError, match="max_consecutive_nonfinite must be >= 0"):
        parse_args(["--config", TINY, "--max_consecutive_nonfinite", "-1"])
    assert parse_args(["--config", TINY]).training.max_consecutive_nonfinite == 5


# ---------------------------------------------------------------------------------------------------- data order


@pytest.mark.parametrize("shuffle", [True, False])
def test_epoch_sampler_draws_what_an_uninterrupted_trl_sampler_draws(shuffle):
    from trl.trainer.utils import RepeatSampler

    from r1.guards import EpochRepeatSampler

    kw = dict(data_source=list(range(11)), mini_repeat_count=4, batch_size=3, repeat_count=2, shuffle=shuffle, seed=7)
    trl_sampler = RepeatSampler(**kw)
    uninterrupted = [list(trl_sampler) for _ in range(4)]  # TRL: one generator, advanced once per epoch
    assert shuffle is False or uninterrupted[0] != uninterrupted[1]
    for epoch in (3, 0, 2, 1):  # a resumed run starts at any epoch with a fresh sampler
        ours = EpochRepeatSampler(**kw)
        ours.set_epoch(epoch)
        assert list(ours) == uninterrupted[epoch]
    # without set_epoch it is TRL's sampler
    assert [list(s) for s in [EpochRepeatSampler(**kw)] for _ in range(2)] == uninterrupted[:2]


def seeded_permutations(n: int, seed: int, epochs: int) -> list[list[int]]:
    """The order of each epoch, computed without TRL or r1: epoch e is the (e+1)-th randperm of a seeded generator."""
    generator = torch.Generator().manual_seed(seed)
    return [torch.randperm(n, generator=generator).tolist() for _ in range(epochs)]


def test_epoch_sampler_order_is_a_fixed_function_of_seed_and_epoch():
    from r1.guards import EpochRepeatSampler

    n, seed = 9, 7
    perms = seeded_permutations(n, seed, 3)
    assert perms[0] != perms[1] != perms[2]
    kw = dict(data_source=list(range(n)), mini_repeat_count=2, batch_size=3, repeat_count=2, shuffle=True, seed=seed)

    def expected(epoch: int) -> list[int]:  # TRL's layout: per chunk of 3, repeat_count times, each index twice
        chunks = [perms[epoch][i : i + 3] for i in range(0, n, 3)]
        return [index for chunk in chunks for _ in range(2) for index in chunk for _ in range(2)]

    for epoch in (2, 1, 0, 1):  # any epoch, in any order, from a fresh sampler (a resumed run)
        sampler = EpochRepeatSampler(**kw)
        sampler.set_epoch(epoch)
        assert list(sampler) == expected(epoch), epoch
        assert list(sampler) == expected(epoch)  # iterating again within the epoch repeats the epoch's order
    sampler = EpochRepeatSampler(**kw)  # one sampler through epochs 0, 1, 2 (an uninterrupted run)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        assert list(sampler) == expected(epoch), epoch


def test_training_across_an_epoch_boundary_draws_the_seeded_orders(tmp_path):
    """In a real training loop (HF calls set_epoch at each epoch start) epoch 1 trains on the prompts in the second
    seeded order, not again in epoch 0's."""
    trainer = make_trainer(tmp_path, "--max_steps", "8", "--per_device_train_batch_size", "8", "--seed", "3")
    seen: list[str] = []
    generate = trainer._generate_and_score_completions

    def recording(inputs):
        seen.extend(x["prompt"] for x in inputs)
        return generate(inputs)

    trainer._generate_and_score_completions = recording
    trainer.train()
    order = [int(p.split()[2]) for p in seen[:: trainer.num_generations]]  # "What is {i} + {i}?" -> i
    perms = seeded_permutations(8, 3, 2)
    assert order == perms[0] + perms[1]  # 2 prompts per step, 4 steps per epoch, 2 epochs


def test_trainer_uses_the_epoch_sampler(tmp_path):
    from r1.guards import EpochRepeatSampler

    trainer = make_trainer(tmp_path, "--max_steps", "1")
    loader = trainer.get_train_dataloader()
    samplers = [getattr(loader, "sampler", None), getattr(getattr(loader, "batch_sampler", None), "sampler", None)]
    assert any(isinstance(s, EpochRepeatSampler) for s in samplers), samplers


# ---------------------------------------------------------------------------------------------------- checkpoints


def fake_checkpoint(path: Path, state: str | None = '{"global_step": 1}') -> Path:
    path.mkdir(parents=True)
    (path / "model.safetensors").write_bytes(b"x")
    if state is not None:
        (path / "trainer_state.json").write_text(state)
    return path


def test_last_complete_checkpoint_skips_half_written_folders(tmp_path, caplog):
    from r1.guards import last_complete_checkpoint

    assert last_complete_checkpoint(tmp_path / "missing") is None
    assert last_complete_checkpoint(tmp_path) is None
    fake_checkpoint(tmp_path / "checkpoint-2")
    fake_checkpoint(tmp_path / "checkpoint-10")
    fake_checkpoint(tmp_path / "checkpoint-12", state=None)  # killed before trainer_state.json
    fake_checkpoint(tmp_path / "checkpoint-14", state='{"global_st')  # torn
    fake_checkpoint(tmp_path / ".r1-staging" / "checkpoint-16")  # staged, never published
    (tmp_path / "checkpoint-18").write_text("not a folder")
    with caplog.at_level("WARNING"):
        assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")  # numeric, not lexical order
    assert "checkpoint-14 is incomplete" in caplog.text and "checkpoint-12 is incomplete" in caplog.text


def test_publish_checkpoint_replaces_atomically(tmp_path):
    from r1.guards import publish_checkpoint

    staged = fake_checkpoint(tmp_path / ".r1-staging" / "checkpoint-4", state=json.dumps({"v": "new"}))
    publish_checkpoint(staged, tmp_path / "checkpoint-4")
    assert json.loads((tmp_path / "checkpoint-4" / "trainer_state.json").read_text()) == {"v": "new"}
    assert not staged.exists()
    # re-saving a step that exists (e.g. a resumed run re-saves checkpoint-4): the new one wins, nothing is left over
    staged = fake_checkpoint(tmp_path / ".r1-staging" / "checkpoint-4", state=json.dumps({"v": "newer"}))
    publish_checkpoint(staged, tmp_path / "checkpoint-4")
    assert json.loads((tmp_path / "checkpoint-4" / "trainer_state.json").read_text()) == {"v": "newer"}
    assert sorted(p.name for p in (tmp_path / ".r1-staging").iterdir()) == []


def test_rotation_keeps_save_total_limit_published_checkpoints(tmp_path):
    trainer = make_trainer(tmp_path, "--max_steps", "3", "--save_strategy", "steps", "--save_steps", "1",
                           "--save_total_limit", "2")
    trainer.train()
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    assert not (tmp_path / ".r1-staging").exists()
    state = json.loads((tmp_path / "checkpoint-3" / "r1_trainer_state.json").read_text())
    assert state["micro_step"] == 3 and state["generation_buffer_saved"] is False
