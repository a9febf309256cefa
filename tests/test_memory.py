"""r1/memory.py: the peak-memory estimate against hand-computed numbers, the engines, and what --dry_run prints."""

from __future__ import annotations

import pytest

from r1.memory import (
    BUILTIN_SHAPES,
    GIB,
    Engine,
    ModelShape,
    Workload,
    estimate,
    launch_engine,
    model_shape,
)

# hidden 8, 2 layers, 2 heads (head_dim 4), 1 KV head (kv_dim 4), MLP 16, vocabulary 32, tied embeddings
TOY = ModelShape(hidden=8, layers=2, heads=2, kv_heads=1, intermediate=16, vocab=32, tied=True)
# per block: q 64 + k 32 + v 32 + o 64 + gate 128 + up 128 + down 128 + 2 norms x 8 = 592; x 2 layers + embeddings
# 256 + final norm 8 = 1448 parameters
FP32 = Workload(micro_batch=2, steps_per_generation=2, prompt_tokens=3, completion_tokens=5, weight_bytes=4,
                bf16=False, gradient_checkpointing=False, beta=0.1)


def test_parameter_count_by_hand_and_of_the_presets():
    assert TOY.params() == 1448
    assert TOY.lora_params(2, ["all-linear"]) == 2 * 2 * (16 + 12 + 12 + 16 + 24 + 24 + 24)  # 512
    assert TOY.lora_params(2, ["q_proj", "v_proj"]) == 2 * 2 * (16 + 12)
    # the published sizes: Qwen2.5-7B 7.62B, Qwen2.5-3B 3.09B, Qwen2.5-Math-1.5B 1.54B, SmolLM2-135M 134.5M
    for name, billions in [("Qwen/Qwen2.5-7B", 7.62), ("Qwen/Qwen2.5-3B", 3.09), ("Qwen/Qwen2.5-Math-1.5B", 1.54),
                           ("embedded:smollm2-135m", 0.1345)]:
        assert BUILTIN_SHAPES[name].params() / 1e9 == pytest.approx(billions, rel=0.01), name


def test_one_process_fp32_by_hand():
    est = estimate(TOY, FP32, Engine("ddp", 1))
    p = est.parts
    assert p["weights"] == p["reference model"] == p["gradients"] == 1448 * 4
    assert p["optimizer"] == 1448 * 2 * 4  # two Adam moments in the weights' dtype
    # 2 sequences x 8 tokens x 2 layers x (8*8 + 4*4 + 4*16 = 144 values) x 4 bytes
    assert p["activations"] == 16 * 2 * 144 * 4
    assert p["logits"] == 16 * 32 * (4 + 4)  # one tile: all 16 tokens x the 32-entry vocabulary
    # 4 generated sequences x 8 tokens x 2 layers x (K and V) x 4 values x 4 bytes + one step's logits
    assert p["rollout KV cache"] == 4 * 8 * 2 * 2 * 4 * 4 + 4 * 32 * (4 + 4)
    assert p["rollout weights"] == p["vLLM (colocated)"] == 0
    resident = 3 * 1448 * 4 - 1448 * 4 + 1448 * 8  # weights + reference + optimizer
    assert est.peak == resident + max(1448 * 4 + 18432 + 4096, 2048) == 51488
    torch_path = estimate(TOY, Workload(**{**FP32.__dict__, "logits_torch_path": True}), Engine("ddp", 1))
    assert torch_path.parts["logits"] == 16 * 32 * (4 + 24)


def test_zero3_bf16_two_processes_by_hand():
    w = Workload(**{**FP32.__dict__, "weight_bytes": 2, "bf16": True})
    p = estimate(TOY, w, Engine("zero3", 2)).parts
    assert p["weights"] == p["reference model"] == p["gradients"] == 1448 * 2 / 2
    assert p["optimizer"] == 1448 * 12 / 2  # fp32 master weights + two fp32 moments, sharded
    assert p["activations"] == 16 * 2 * 144 * 2 and p["logits"] == 16 * 32 * (2 + 4)
    assert p["rollout weights"] == 1448 * 2 / 2  # generation gathers the other half of the weights
    offload = estimate(TOY, w, Engine("zero3", 2, offload_optimizer=True, offload_params=True)).parts
    assert offload["optimizer"] == offload["weights"] == 0 and offload["rollout weights"] == 1448 * 2


def test_lora_checkpointing_and_vllm():
    lora = estimate(TOY, Workload(**{**FP32.__dict__, "use_peft": True, "lora_r": 2}), Engine("ddp", 1)).parts
    assert lora["reference model"] == 0  # the base with the adapter disabled
    assert lora["weights"] == 1448 * 4 + 512 * 4 and lora["gradients"] == 512 * 4 and lora["optimizer"] == 512 * 8
    ckpt = estimate(TOY, Workload(**{**FP32.__dict__, "gradient_checkpointing": True}), Engine("ddp", 1)).parts
    assert ckpt["activations"] == 16 * (2 * 8 + 144) * 4  # layer inputs + one layer recomputed
    vllm = Workload(**{**FP32.__dict__, "use_vllm": True, "vllm_gpu_memory_utilization": 0.25, "gpu_memory_gib": 2.0})
    v = estimate(TOY, vllm, Engine("ddp", 1)).parts
    assert v["vLLM (colocated)"] == 0.5 * GIB and v["rollout KV cache"] == 0
    server = estimate(TOY, Workload(**{**vllm.__dict__, "vllm_mode": "server"}), Engine("ddp", 1)).parts
    assert server["vLLM (colocated)"] == 0


def test_engine_from_the_accelerate_launch():
    assert launch_engine({}) == Engine("ddp", 1)
    env = {"WORLD_SIZE": "8", "ACCELERATE_USE_DEEPSPEED": "true", "ACCELERATE_DEEPSPEED_ZERO_STAGE": "3",
           "ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE": "cpu", "ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE": "cpu"}
    assert launch_engine(env) == Engine("zero3", 8, offload_optimizer=True, offload_params=True)
    assert launch_engine({"WORLD_SIZE": "2", "ACCELERATE_USE_FSDP": "true"}).name == "fsdp"
    assert model_shape("tiny:qwen2").hidden == 128 and model_shape("no-such/model-xyz") is None


def test_dry_run_prints_the_estimate_and_warns_over_the_limit(tmp_path):
    from r1.config import parse_args
    from r1.train import dry_run_lines, prepare

    args = ["--config", "tests/configs/tiny_qwen2.yaml", "--dry_run", "--output_dir", str(tmp_path / "o")]
    run = parse_args(args)
    lines = dry_run_lines(run, prepare(run))
    assert any(x.startswith("estimated peak memory per device (1 process;") for x in lines), lines
    assert any(x.strip().startswith("on 8 devices: ddp") for x in lines)
    assert not any(x.startswith("WARNING") for x in lines)
    run = parse_args([*args, "--gpu_memory_gib", "0.001"])
    (warning,) = [x for x in dry_run_lines(run, prepare(run)) if x.startswith("WARNING")]
    assert "exceeds gpu_memory_gib 0.001" in warning and "--use_peft true" in warning
