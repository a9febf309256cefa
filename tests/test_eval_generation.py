"""r1.generation: batched generation equals one-at-a-time generation, per-row seeding, EOS, sampler maths."""

from __future__ import annotations

import pytest
import torch

from r1.generation import TransformersGenerator, _PerRowSampler, resolve_backend, sample_seed


@pytest.fixture(scope="module")
def tiny():
    """The tiny model, run on one torch thread: more threads only add contention on a shared 2-core machine."""
    from r1.models import load_model, load_tokenizer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_model("tiny:qwen2", dtype="float32"), load_tokenizer("tiny:qwen2")
    torch.set_num_threads(threads)


PROMPTS = ["What is 2 + 3?", "A considerably longer prompt, so that the batch needs left padding: 7 * 8 = ?", "Hi"]


@pytest.mark.parametrize("arch", ["qwen2", "deepseek-v3"])
def test_batched_greedy_equals_plain_hf_generate_per_prompt(arch, tiny):
    """Left padding + KV cache in one batch must give what an unpadded single-prompt generate gives (also for the
    R1 architecture: MoE + multi-head latent attention)."""
    from r1.models import load_model, load_tokenizer

    model, tok = tiny if arch == "qwen2" else (load_model("tiny:deepseek-v3", dtype="float32"), load_tokenizer("tiny:deepseek-v3"))
    gen = TransformersGenerator(model, tok)
    batched = gen.generate(PROMPTS, [0, 0, 0], temperature=0, top_p=1.0, max_new_tokens=12)
    for prompt, got in zip(PROMPTS, batched, strict=True):
        ids = tok(prompt, return_tensors="pt")
        out = model.generate(**ids, max_new_tokens=12, do_sample=False, eos_token_id=gen.eos_ids, pad_token_id=gen.pad_id)
        new = out[0, ids["input_ids"].shape[1] :].tolist()
        end = next((i for i, t in enumerate(new) if t in gen.eos_ids), len(new))
        assert got.text == tok.decode(new[:end], skip_special_tokens=True)
        assert got.tokens == min(len(new), end + 1)


def test_sampling_depends_only_on_the_row_seed(tiny):
    model, tok = tiny
    gen = TransformersGenerator(model, tok)
    seeds = [sample_seed(0, f"p{i}", 0) for i in range(3)]
    kw = dict(temperature=1.0, top_p=0.9, max_new_tokens=16)
    together = gen.generate(PROMPTS, seeds, **kw)
    alone = [gen.generate([p], [s], **kw)[0] for p, s in zip(PROMPTS, seeds, strict=True)]
    reversed_batch = gen.generate(PROMPTS[::-1], seeds[::-1], **kw)[::-1]
    assert [c.text for c in together] == [c.text for c in alone] == [c.text for c in reversed_batch]
    # the global RNG plays no part, and another seed gives another sample
    torch.manual_seed(123)
    assert gen.generate(PROMPTS[:1], seeds[:1], **kw)[0].text == together[0].text
    other = gen.generate(PROMPTS[:1] * 4, [seeds[0] + k for k in range(1, 5)], **kw)
    assert any(c.text != together[0].text for c in other)


def test_stops_at_eos_and_counts_tokens(tiny):
    model, tok = tiny
    gen = TransformersGenerator(model, tok)
    first = gen.generate(PROMPTS[:1], [0], temperature=0, top_p=1.0, max_new_tokens=8)[0]
    assert first.truncated and first.tokens == 8
    # make the first greedy token an EOS token: generation must stop right there
    ids = tok(PROMPTS[0], return_tensors="pt")
    first_id = model.generate(**ids, max_new_tokens=1, do_sample=False, pad_token_id=gen.pad_id)[0, -1].item()
    gen.eos_ids = [first_id]
    stopped = gen.generate(PROMPTS[:1], [0], temperature=0, top_p=1.0, max_new_tokens=8)[0]
    assert (stopped.tokens, stopped.truncated, stopped.text) == (1, False, "")


def test_restores_model_state(tiny):
    model, tok = tiny
    model.train()
    before = model.generation_config
    TransformersGenerator(model, tok).generate(PROMPTS[:1], [0], temperature=0.7, top_p=0.95, max_new_tokens=2)
    assert model.training and model.generation_config is before
    model.eval()


def test_sampler_follows_temperature_and_top_p():
    # probabilities 0.5, 0.3, 0.15, 0.05: top_p = 0.8 keeps the first two (0.5 + 0.3 reaches 0.8)
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    scores = probs.log().repeat(4000, 1)
    picks = _PerRowSampler(list(range(4000)), temperature=1.0, top_p=0.8)(None, scores).argmax(-1)
    freq = torch.bincount(picks, minlength=4).float() / 4000
    assert freq[2] == 0 and freq[3] == 0
    assert freq[0] == pytest.approx(0.5 / 0.8, abs=0.03)
    full = _PerRowSampler(list(range(4000)), temperature=1.0, top_p=1.0)(None, scores).argmax(-1)
    assert torch.bincount(full, minlength=4).float().div(4000).sub(probs).abs().max() < 0.03
    # temperature 0.5 squares the odds: p ∝ p^2
    sharp = _PerRowSampler(list(range(4000)), temperature=0.5, top_p=1.0)(None, scores).argmax(-1)
    expect = probs**2 / (probs**2).sum()
    assert torch.bincount(sharp, minlength=4).float().div(4000).sub(expect).abs().max() < 0.03


def test_sampler_top_k_shortcut_equals_full_sort(monkeypatch):
    """Rows whose nucleus fits in the top candidates and rows that need the full sort sample identically."""
    scores = torch.randn(256, 50, generator=torch.Generator().manual_seed(0)) * 2
    seeds = list(range(256))
    full = _PerRowSampler(seeds, 0.8, 0.9)
    full.candidates = 50
    short = _PerRowSampler(seeds, 0.8, 0.9)
    short.candidates = 4  # most rows need more than 4 tokens for 90% of the mass: the fallback path runs
    for _ in range(3):
        assert torch.equal(full(None, scores).argmax(-1), short(None, scores).argmax(-1))


def test_backend_resolution_without_vllm():
    import importlib.util

    assert resolve_backend("transformers") == "transformers"
    if importlib.util.find_spec("vllm") is None:  # this machine (CPU torch, no vLLM): auto is transformers
        assert resolve_backend("auto") == "transformers"
        with pytest.raises(ValueError, match="pip install 'r1-zero\\[vllm\\]'"):
            resolve_backend("vllm")
    with pytest.raises(ValueError, match="tensorrt"):
        resolve_backend("tensorrt")


@pytest.mark.parametrize(
    ("vllm_installed", "gpu", "expected"),
    [(False, False, "transformers"), (False, True, "transformers"), (True, False, "transformers"), (True, True, "vllm")],
)
def test_auto_backend_is_vllm_only_with_vllm_and_a_gpu(monkeypatch, vllm_installed, gpu, expected):
    import importlib.machinery
    import importlib.util

    import r1.generation

    find_spec = importlib.util.find_spec

    def fake_find_spec(name, *args, **kwargs):
        if name == "vllm":
            return importlib.machinery.ModuleSpec("vllm", None) if vllm_installed else None
        return find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", fake_find_spec)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    # a supported vLLM version when "installed" (where r1.generation checks versions)
    monkeypatch.setattr(r1.generation, "installed_vllm_version", lambda: "0.30.1" if vllm_installed else None,
                        raising=False)
    assert resolve_backend("auto") == expected


def test_vllm_backend_sends_token_ids_and_per_request_seeds(monkeypatch, tiny):
    """vLLM cannot run here; check the calls against a stand-in module with vLLM's API shape."""
    import sys
    import types

    from r1.generation import VLLMGenerator

    calls = {}

    class SamplingParams:
        def __init__(self, **kw):
            self.kw = kw

    class LLM:
        def __init__(self, **kw):
            calls["init"] = kw

        def generate(self, prompts, params, use_tqdm=True):
            calls["prompts"], calls["params"] = prompts, params
            out = types.SimpleNamespace
            return [
                out(outputs=[out(text=f"c{i}", token_ids=[5] * (i + 1), finish_reason="length" if i else "stop")])
                for i in range(len(prompts))
            ]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    _, tok = tiny
    gen = VLLMGenerator("/models/m", tok, dtype="bfloat16")
    got = gen.generate(PROMPTS[:2], [11, 22], temperature=0.6, top_p=0.95, max_new_tokens=7)
    assert calls["init"]["model"] == "/models/m" and calls["init"]["dtype"] == "bfloat16"
    assert calls["prompts"] == [{"prompt_token_ids": tok(p)["input_ids"]} for p in PROMPTS[:2]]
    assert [p.kw["seed"] for p in calls["params"]] == [11, 22]
    assert calls["params"][0].kw | {"seed": 0} == dict(
        n=1, temperature=0.6, top_p=0.95, max_tokens=7, seed=0, skip_special_tokens=True, stop=None,
        include_stop_str_in_output=True,
    )
    assert [(c.text, c.tokens, c.truncated) for c in got] == [("c0", 1, False), ("c1", 2, True)]


def test_vllm_engine_flags_reach_the_engine(monkeypatch, tiny):
    import sys
    import types

    from r1.generation import VLLMGenerator

    seen = {}
    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=lambda **kw: seen.update(kw)))
    VLLMGenerator("/m", tiny[1], tensor_parallel_size=4, max_model_len=8192, gpu_memory_utilization=0.5)
    assert seen["tensor_parallel_size"] == 4 and seen["max_model_len"] == 8192 and seen["gpu_memory_utilization"] == 0.5


@pytest.mark.parametrize(
    "installed, ok",
    [("0.22.0", True), ("0.30.1rc1+cu128", True), ("0.31.0", True), ("0.10.2", False), ("0.21.9", False),
     ("0.31.1", False), ("1.0.0", False), ("dev", False), (None, False)],
)
def test_vllm_version_check_is_trls_range_in_one_line(installed, ok):
    from r1.generation import check_vllm_version, vllm_version_problem

    problem = vllm_version_problem(installed)
    assert (problem is None) == ok
    if ok:
        assert check_vllm_version(installed) == installed
        return
    assert "\n" not in problem and "pip install 'r1-zero[vllm]'" in problem
    assert ("not installed" in problem) if installed is None else (f"vLLM {installed} is installed" in problem
                                                                  and "0.22.0 to 0.31.0" in problem)
    with pytest.raises(ValueError, match="r1-zero"):
        check_vllm_version(installed or "")


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_lean_decode_loop_gives_what_transformers_loop_gives(tiny, temperature):
    model, tok = tiny
    seeds = [sample_seed(1, f"p{i}", 0) for i in range(len(PROMPTS))]
    kw = dict(temperature=temperature, top_p=0.9, max_new_tokens=24)
    lean = TransformersGenerator(model, tok).generate(PROMPTS, seeds, **kw)
    plain = TransformersGenerator(model, tok, lean=False).generate(PROMPTS, seeds, **kw)
    assert lean == plain
