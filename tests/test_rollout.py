"""The fast rollout path must sample exactly what transformers' `generate` samples, and train exactly like TRL."""

from __future__ import annotations

import logging

import pytest
import torch
from transformers import GenerationConfig

from r1.config import R1GRPOConfig
from r1.decoding import lean_sample, lean_unsupported_reason
from r1.models import load_model, load_tokenizer
from r1.rollout import FastRolloutMixin, recommended_settings, static_generation_config

# Prompts of different lengths, so the batch is left-padded.
PROMPTS = [
    "What is 2 + 3?",
    "Question: what is the sum of 17 and 25? Think step by step.",
    "Solve 7 * 6.",
    "Using the numbers 3, 5, 7 create an equation that equals 22. Show the answer in tags.",
]

SAMPLING = {
    "default": dict(do_sample=True),
    "temperature_top_p_top_k": dict(do_sample=True, temperature=0.7, top_p=0.9, top_k=40),
    "min_p_repetition": dict(do_sample=True, temperature=1.3, min_p=0.05, repetition_penalty=1.2),
    "greedy": dict(do_sample=False),
}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module", params=["tiny:qwen2", "tiny:llama", "tiny:deepseek-v3"])
def model_and_tokenizer(request):
    tokenizer = load_tokenizer(request.param)
    model = load_model(request.param, dtype=torch.float32)
    return model, tokenizer


def _generate_both(model, tokenizer, config: GenerationConfig, seed: int = 0):
    inputs = tokenizer(PROMPTS * 2, return_tensors="pt", padding=True)
    outputs, after = [], []
    for sampler in (None, lean_sample):
        torch.manual_seed(seed)
        with torch.no_grad():
            outputs.append(model.generate(**inputs, generation_config=config, custom_generate=sampler))
        after.append(torch.rand(4))  # the generator must have advanced by exactly as many draws
    return inputs, outputs, after


@pytest.mark.parametrize("sampling", sorted(SAMPLING))
def test_lean_sample_matches_generate(model_and_tokenizer, sampling):
    model, tokenizer = model_and_tokenizer
    # A second "EOS": a token this model often samples, so rows finish at different steps (padding after EOS).
    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    torch.manual_seed(123)
    with torch.no_grad():
        probe = model.generate(
            **inputs, max_new_tokens=8, do_sample=True, pad_token_id=tokenizer.pad_token_id
        )
    frequent = int(torch.bincount(probe[:, inputs["input_ids"].shape[1] :].flatten()).argmax())
    config = GenerationConfig(
        max_new_tokens=24,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=[tokenizer.eos_token_id, frequent],
        **SAMPLING[sampling],
    )
    inputs, (reference, lean), (rng_ref, rng_lean) = _generate_both(model, tokenizer, config)
    assert inputs["attention_mask"][:, 0].min() == 0, "prompts should be left-padded"
    assert torch.equal(reference, lean)
    assert torch.equal(rng_ref, rng_lean)


def test_lean_sample_pads_after_eos(model_and_tokenizer):
    """Rows that hit EOS early get pad tokens afterwards, and the loop stops when every row is done."""
    model, tokenizer = model_and_tokenizer
    inputs = tokenizer(PROMPTS * 2, return_tensors="pt", padding=True)
    prompt_len = inputs["input_ids"].shape[1]
    for seed in range(20):  # find a seed where some, not all, rows stop early on a common token
        torch.manual_seed(seed)
        with torch.no_grad():
            probe = model.generate(
                **inputs, max_new_tokens=12, do_sample=True, pad_token_id=tokenizer.pad_token_id
            )
        eos = int(probe[0, prompt_len + 2])
        config = GenerationConfig(
            max_new_tokens=12, do_sample=True, pad_token_id=tokenizer.pad_token_id, eos_token_id=[eos]
        )
        _, (reference, lean), _ = _generate_both(model, tokenizer, config, seed=seed)
        completions = lean[:, prompt_len:]
        finished = (completions == eos).any(dim=1)
        if finished.any() and not finished.all():
            break
    else:
        pytest.skip("no seed gave a batch with both finished and unfinished rows")
    assert torch.equal(reference, lean)
    for row in completions[finished]:
        first = int((row == eos).nonzero()[0])
        assert (row[first + 1 :] == tokenizer.pad_token_id).all()


def test_static_cache_matches_generate():
    tokenizer = load_tokenizer("tiny:qwen2")
    model = load_model("tiny:qwen2", dtype=torch.float32)
    base = GenerationConfig(
        max_new_tokens=16,
        do_sample=True,
        temperature=0.9,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=[tokenizer.eos_token_id],
    )
    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    config = static_generation_config(base, inputs["input_ids"].shape[1])
    assert config.cache_implementation == "static" and config.max_cache_len % 128 == 0
    config.disable_compile = True  # CPU: eager either way; the decode inputs must still be generate's
    _, (reference, lean), _ = _generate_both(model, tokenizer, config)
    assert torch.equal(reference, lean)


def test_beam_search_is_left_to_transformers():
    tokenizer = load_tokenizer("tiny:qwen2")
    model = load_model("tiny:qwen2", dtype=torch.float32)
    config = GenerationConfig(
        max_new_tokens=8,
        num_beams=2,
        do_sample=False,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=[tokenizer.eos_token_id],
    )
    assert lean_unsupported_reason(config) == "beam search"
    _, (reference, lean), _ = _generate_both(model, tokenizer, config)
    assert torch.equal(reference, lean)


def test_recommended_settings_keep_the_algorithm():
    small = recommended_settings(device="cpu", n_params=10_000_000)
    assert small == {"fast_rollout": True, "gradient_checkpointing": False, "cpu_retain_freed_memory": True}
    assert "gradient_checkpointing" not in recommended_settings(device="cuda", n_params=7_000_000_000)


# ----------------------------------------------------------------------------------------------------------------
# GRPO: the fast path trains exactly like TRL's
# ----------------------------------------------------------------------------------------------------------------


def _hash_reward(completion_ids, **_):
    import zlib

    return [(zlib.crc32(bytes(str(ids), "ascii")) % 997) / 997.0 for ids in completion_ids]


def _frequent_tokens(model, tokenizer, k: int) -> list[int]:
    inputs = tokenizer(["Question: what is 3 + 4? Answer:"] * 16, return_tensors="pt")
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        torch.manual_seed(0)
        out = model.generate(**inputs, max_new_tokens=24, do_sample=True, pad_token_id=tokenizer.pad_token_id)
    return torch.bincount(out[:, inputs["input_ids"].shape[1] :].flatten()).topk(k).indices.tolist()


def _train(trainer_cls, tmp_path, name: str, steps: int = 3, **overrides):
    from datasets import Dataset
    from transformers import TrainerCallback

    tokenizer = load_tokenizer("tiny:qwen2")
    model = load_model("tiny:qwen2", dtype=torch.float32)
    # Two tokens this random model samples often also end a completion (TRL stops and masks on every id of the
    # model's generation config), so completions of different lengths and EOS masking are exercised.
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, *_frequent_tokens(model, tokenizer, 2)]
    prompts = [f"Question: what is {a} + {a + 7}? Answer:" + " please" * (a % 3) for a in range(20)]
    fields = dict(
        output_dir=str(tmp_path / name),
        max_steps=steps,
        per_device_train_batch_size=4,
        num_generations=4,
        gradient_accumulation_steps=2,
        max_completion_length=24,
        temperature=0.9,
        top_p=0.95,
        learning_rate=1e-3,
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        seed=0,
        use_cpu=True,
        bf16=False,
        disable_tqdm=True,
    )
    fields.update(overrides)
    config = R1GRPOConfig(**fields)

    records, completions = [], []

    class Logs(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                records.append(logs)

    class Recording(trainer_cls):
        def _generate_single_turn(self, *args, **kwargs):
            ids, logprobs = super()._generate_single_turn(*args, **kwargs)
            completions.append(ids)
            return ids, logprobs

    trainer = Recording(
        model=model,
        processing_class=tokenizer,
        reward_funcs=[_hash_reward],
        args=config,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        callbacks=[Logs()],
    )
    trainer.train()
    return trainer, records, completions


def test_grpo_fast_path_equals_trl(tmp_path, caplog, count_direct_steps):
    from trl import GRPOTrainer

    class FastTrainer(FastRolloutMixin, GRPOTrainer):
        pass

    with caplog.at_level(logging.INFO, logger="r1.rollout"):
        _, fast_logs, fast_completions = _train(FastTrainer, tmp_path, "fast", gradient_checkpointing=False)
    assert "fast rollout on: backend exact" in caplog.text
    assert "differs" not in caplog.text and len(count_direct_steps) > 3 * 10, "decode steps should run the direct path"
    _, trl_logs, trl_completions = _train(GRPOTrainer, tmp_path, "trl")

    assert fast_completions == trl_completions
    assert any(len(c) < 24 for batch in trl_completions for c in batch), "some completions should end on EOS"
    assert len(fast_logs) == len(trl_logs) == 3
    for fast, ref in zip(fast_logs, trl_logs, strict=True):
        for key in ("loss", "reward", "reward_std", "grad_norm", "entropy"):
            assert fast[key] == pytest.approx(ref[key], rel=1e-6, abs=1e-8), key


def test_grpo_compiled_backend_replica_tracks_the_policy(tmp_path):
    """The "compiled" backend generates with a low-precision copy that is refreshed after each optimizer step."""
    from trl import GRPOTrainer

    class FastTrainer(FastRolloutMixin, GRPOTrainer):
        pass

    trainer, logs, completions = _train(
        FastTrainer,
        tmp_path,
        "compiled",
        steps=2,
        gradient_checkpointing=False,
        fast_rollout_backend="compiled",
        fast_rollout_dtype="bfloat16",
    )
    replica = trainer._r1_rollout_replica
    assert next(replica.parameters()).dtype == torch.bfloat16
    assert trainer._r1_rollout_replica_step == 1  # synced before the second step's generation
    assert len(logs) == 2 and all(0 < len(c) <= 24 for batch in completions for c in batch)
    policy = dict(trainer.model.named_parameters())

    def stale() -> int:
        return sum(
            not torch.equal(p, policy[n].detach().to(torch.bfloat16)) for n, p in replica.named_parameters()
        )

    # It holds the weights after step 1; the policy has taken another step since. A new step refreshes in place.
    assert stale() > 0
    assert trainer._rollout_replica(trainer.model, torch.bfloat16) is replica
    assert stale() == 0


@pytest.fixture
def count_lean_decoding(monkeypatch):
    """Calls of the lean decode loop during the test: through r1.rollout's `lean_sample` and `_DecodeLoop.run`."""
    import functools

    import r1.decoding
    import r1.rollout

    calls: list[str] = []

    @functools.wraps(lean_sample)
    def counting_lean_sample(*args, **kwargs):
        calls.append("lean_sample")
        return lean_sample(*args, **kwargs)

    run = r1.decoding._DecodeLoop.run

    def counting_run(self):
        calls.append("decode_loop")
        return run(self)

    monkeypatch.setattr(r1.rollout, "lean_sample", counting_lean_sample)
    monkeypatch.setattr(r1.decoding._DecodeLoop, "run", counting_run)
    return calls


def test_fast_rollout_can_be_switched_off(tmp_path, caplog, count_lean_decoding, count_direct_steps):
    from trl import GRPOTrainer

    class FastTrainer(FastRolloutMixin, GRPOTrainer):
        pass

    _, on_logs, _ = _train(FastTrainer, tmp_path, "on", steps=1)
    assert "lean_sample" in count_lean_decoding and "decode_loop" in count_lean_decoding  # the counters are live
    count_lean_decoding.clear()
    count_direct_steps.clear()
    caplog.clear()  # an earlier test may have set the root logger to INFO: the "on" run's line is not this run's

    with caplog.at_level(logging.INFO, logger="r1.rollout"):
        _, off_logs, off_completions = _train(FastTrainer, tmp_path, "off", steps=1, fast_rollout=False)
    assert "fast rollout off: disabled" in caplog.text and "fast rollout on" not in caplog.text
    assert count_lean_decoding == [] and count_direct_steps == [], "fast_rollout=False must not run r1's decode loop"

    _, trl_logs, trl_completions = _train(GRPOTrainer, tmp_path, "trl", steps=1)
    assert off_completions == trl_completions
    for off, ref in zip(off_logs, trl_logs, strict=True):
        for key in ("loss", "reward", "reward_std", "grad_norm", "entropy"):
            assert off[key] == ref[key], key
    assert len(off_logs) == len(on_logs) == 1


def test_compiled_backend_failure_falls_back_to_exact(tmp_path, caplog, monkeypatch):
    """The compiled backend is only exercised on GPUs; if it breaks, the run continues on the exact backend."""
    from trl import GRPOTrainer

    import r1.rollout

    def broken(*args, **kwargs):
        raise RuntimeError("simulated compile failure")

    monkeypatch.setattr(r1.rollout, "static_generation_config", broken)

    class FastTrainer(FastRolloutMixin, GRPOTrainer):
        pass

    with caplog.at_level(logging.INFO, logger="r1.rollout"):
        trainer, logs, _ = _train(FastTrainer, tmp_path, "fallback", steps=2, fast_rollout_backend="compiled")
    assert "compiled backend failed (RuntimeError: simulated compile failure)" in caplog.text
    assert "backend exact" in caplog.text
    assert len(logs) == 2 and trainer._r1_compiled_failed


def test_auto_backend_on_cpu_says_the_rollout_dtype_is_not_used(caplog):
    """`fast_rollout_backend: auto` is the exact backend off CUDA, which samples in the policy's dtype: a
    fast_rollout_dtype the user set is named as unused, not silently ignored."""
    from types import SimpleNamespace

    if torch.cuda.is_available():
        pytest.skip("auto is the compiled backend on CUDA")
    trainer = SimpleNamespace(args=SimpleNamespace(fast_rollout_backend="auto", fast_rollout_dtype="bfloat16", bf16=False))
    trainer._log_rollout_path = lambda message: FastRolloutMixin._log_rollout_path(trainer, message)
    with caplog.at_level(logging.INFO, logger="r1.rollout"):
        assert FastRolloutMixin._resolve_backend(trainer, torch.nn.Linear(2, 2)) == ("exact", torch.float32)
        trainer.args.fast_rollout_dtype = "float32"  # the policy's own dtype: nothing to say
        trainer._fast_rollout_logged = None
        FastRolloutMixin._resolve_backend(trainer, torch.nn.Linear(2, 2))
    assert caplog.text.count("fast_rollout_dtype bfloat16 applies to the compiled backend") == 1
    assert "fast_rollout_dtype float32" not in caplog.text
