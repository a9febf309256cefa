"""The direct decode step, the one-sample draw and the CPU allocator setting: faster, and not one bit different."""

from __future__ import annotations

import logging
import sys

import pytest
import torch
from torch import nn
from transformers import GenerationConfig

import r1.decoding as decoding
from r1.decode_step import DirectDecoder, unsupported_reason
from r1.models import load_model, load_tokenizer

PROMPTS = ["What is 2 + 3?", "Question: what is the sum of 17 and 25? Think step by step.", "Solve 7 * 6."]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _generate(model, tokenizer, sampler, seed=0, new_tokens=20):
    inputs = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    config = GenerationConfig(max_new_tokens=new_tokens, do_sample=True, pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(seed)
    with torch.no_grad():
        return model.generate(**inputs, generation_config=config, custom_generate=sampler)


@pytest.mark.parametrize("name", ["tiny:qwen2", "tiny:llama"])
def test_direct_decode_runs_and_matches_generate(name, count_direct_steps, caplog):
    tokenizer, model = load_tokenizer(name), load_model(name, dtype=torch.float32)
    reference = _generate(model, tokenizer, None)
    with caplog.at_level(logging.WARNING, logger="r1.decoding"):
        lean = _generate(model, tokenizer, decoding.lean_sample)
    assert torch.equal(reference, lean)
    # step 0 is the prefill (module forward); step 1 runs both ways; every later step is direct only
    assert len(count_direct_steps) == 20 - 1
    assert count_direct_steps == [None] + ["slice"] * 18, "left-padded prompts: the padding mask is made once"
    assert "differs" not in caplog.text


def test_unfused_projections_for_large_models_match_too(monkeypatch, count_direct_steps, caplog):
    """Above FUSE_BELOW_PARAMS q/k/v and gate/up stay separate GEMMs (no transient copy of the weights)."""
    import r1.decode_step

    monkeypatch.setattr(r1.decode_step, "FUSE_BELOW_PARAMS", 0)
    tokenizer, model = load_tokenizer("tiny:qwen2"), load_model("tiny:qwen2", dtype=torch.float32)
    with caplog.at_level(logging.WARNING, logger="r1.decoding"):
        assert torch.equal(_generate(model, tokenizer, None), _generate(model, tokenizer, decoding.lean_sample))
    assert len(count_direct_steps) == 20 - 1 and "differs" not in caplog.text


def test_direct_decode_is_not_used_for_other_architectures(count_direct_steps):
    tokenizer, model = load_tokenizer("tiny:deepseek-v3"), load_model("tiny:deepseek-v3", dtype=torch.float32)
    assert "DeepseekV3DecoderLayer" in unsupported_reason(model.model, model.lm_head)
    assert torch.equal(_generate(model, tokenizer, None), _generate(model, tokenizer, decoding.lean_sample))
    assert count_direct_steps == []


def test_a_direct_step_that_disagrees_is_dropped(monkeypatch, count_direct_steps, caplog):
    """If the written-out layer ever stops matching the model (a new transformers, a patched kernel), the check on
    the first decode step catches it and the module forward takes over: same tokens, one warning."""
    tokenizer, model = load_tokenizer("tiny:qwen2"), load_model("tiny:qwen2", dtype=torch.float32)
    reference = _generate(model, tokenizer, None)
    original = DirectDecoder._layer
    monkeypatch.setattr(DirectDecoder, "_layer", lambda self, *a: original(self, *a) * (1 + 1e-6))
    monkeypatch.setattr(decoding, "_DIRECT_MISMATCH_WARNED", set())
    with caplog.at_level(logging.WARNING, logger="r1.decoding"):
        lean = _generate(model, tokenizer, decoding.lean_sample)
    assert torch.equal(reference, lean)
    assert len(count_direct_steps) == 1  # only the verification call
    assert "differs from Qwen2ForCausalLM's forward" in caplog.text


def test_a_direct_step_that_raises_is_dropped(monkeypatch, caplog):
    tokenizer, model = load_tokenizer("tiny:llama"), load_model("tiny:llama", dtype=torch.float32)
    reference = _generate(model, tokenizer, None)

    def broken(self, *args):
        raise RuntimeError("shape mismatch in a model variant")

    monkeypatch.setattr(DirectDecoder, "_layer", broken)
    monkeypatch.setattr(decoding, "_DIRECT_MISMATCH_WARNED", set())
    with caplog.at_level(logging.WARNING, logger="r1.decoding"):
        assert torch.equal(reference, _generate(model, tokenizer, decoding.lean_sample))
    assert "RuntimeError: shape mismatch" in caplog.text


def test_unsupported_reasons():
    model = load_model("tiny:qwen2", dtype=torch.float32)
    assert unsupported_reason(model.model, model.lm_head) is None
    handle = model.model.layers[0].mlp.register_forward_hook(lambda *a: None)
    assert "hooks" in unsupported_reason(model.model, model.lm_head)
    handle.remove()
    model.model.layers[0].mlp._hf_hook = object()  # what accelerate's device_map / offload hooks leave behind
    assert "hooks" in unsupported_reason(model.model, model.lm_head)
    del model.model.layers[0].mlp._hf_hook

    class LoraLinear(nn.Linear):  # any subclass may compute something else (LoRA, quantised layers)
        pass

    attn = model.model.layers[1].self_attn
    plain = attn.q_proj
    attn.q_proj = LoraLinear(plain.in_features, plain.out_features)
    assert "nn.Linear" in unsupported_reason(model.model, model.lm_head)
    attn.q_proj = plain
    model.train()
    for layer in model.model.layers:
        layer.self_attn.attention_dropout = 0.1
    assert "dropout" in unsupported_reason(model.model, model.lm_head)
    model.eval()
    assert unsupported_reason(model.model, model.lm_head) is None
    model.config._attn_implementation = "flash_attention_2"
    assert "attention implementation" in unsupported_reason(model.model, model.lm_head)


def test_sample_one_draws_what_multinomial_draws():
    for seed in range(50):
        probs = torch.softmax(torch.randn(8, 705) * (seed % 5), dim=-1)
        torch.manual_seed(seed)
        expected, expected_next = torch.multinomial(probs, 1).squeeze(1), torch.rand(3)
        torch.manual_seed(seed)
        got, got_next = decoding.sample_one(probs), torch.rand(3)
        assert torch.equal(expected, got) and torch.equal(expected_next, got_next)
    with pytest.raises(RuntimeError, match="nan"):
        decoding.sample_one(torch.softmax(torch.tensor([[0.0, float("nan")]]), dim=-1))


_FAULTS_SCRIPT = """
import ctypes, resource, sys
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
if sys.argv[1] == "retain":
    from r1.cpu_memory import retain_freed_memory
    assert retain_freed_memory()
size = 12 << 20

def step():  # like a training step: several large activations alive together, then all freed
    blocks = [libc.malloc(size) for _ in range(3)]
    for block in blocks:
        ctypes.memset(block, 1, size)
    for block in blocks:
        libc.free(block)

step(), step()  # the heap grows to its working size
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_retained_memory_is_reused_without_page_faults():
    """In a fresh process (a clean heap), glibc by default trims the freed top of the heap after every step and
    faults the same 36 MiB in again next step; with freed memory retained, later steps do not fault at all. (The
    GRPO benchmark measures what that is worth: 60-90k faults per tiny-model step become ~8k.)"""
    import subprocess
    from pathlib import Path

    def faults(mode: str) -> int:
        out = subprocess.run(
            [sys.executable, "-c", _FAULTS_SCRIPT, mode],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        return int(out.stdout.strip().splitlines()[-1])

    default, retained = faults("default"), faults("retain")
    assert default > 10 * 3 * (12 << 20) // 4096 // 2, f"only {default} faults by default: the test shows nothing"
    assert retained < 100, (default, retained)
