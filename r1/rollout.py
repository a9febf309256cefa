"""Fast GRPO rollouts without vLLM: a lean decode loop that samples exactly what `transformers.generate` samples.

`FastRolloutMixin` (mix it in before `GRPOTrainer`) replaces only the decode loop of TRL's transformers generation
path: TRL still tokenizes, pads, unwraps / gathers the model and masks after EOS; `generate` still prepares the
config, processors, positions and cache; `lean_sample` (passed as `generate(custom_generate=...)`) then runs the
loop. With vLLM installed and a GPU, use TRL's own switch instead: `use_vllm=True` (`vllm_mode="colocate"`, the
default here, shares the training GPUs; `vllm_mode="server"` talks to `trl vllm-serve --model MODEL` started on
other GPUs, with `vllm_server_host` / `vllm_server_port`); the mixin then steps aside.

What the profile says (TRL 1.16, transformers 5.24, torch 2.13 CPU; `benchmarks/grpo_step_bench.py`, tiny Qwen2
0.5M params, library defaults, 8 completions x 512 tokens per step, 1 thread, 2-core machine shared with other jobs):

- A TRL step is 1.0 s: generation 0.57 s (57 %), loss forward + backward + optimizer 0.43 s. Gradient
  checkpointing (on by default) re-runs the forward in backward: 0.33 of 1.36 s of backward under cProfile.
  No old/ref log-prob passes run with the defaults (beta=0, steps_per_generation = gradient_accumulation_steps).
- Inside `generate` (cProfile, 512 tokens): the model forward is 65 %; the rest is per-token bookkeeping:
  `torch.multinomial` 7 %, `torch.cat` of ids / mask / every layer's KV cache 6 % (O(length) copies per token),
  `prepare_inputs_for_generation` + `_update_model_kwargs_for_generation` 9 %, stopping criteria, and
  `LogitsProcessorList` calling `inspect.signature` on every processor every token (~0.2 ms/token when any
  processor is active, e.g. temperature != 1 or min_new_tokens).
- The decode forward of a small model is framework overhead, not arithmetic: ~45 small ops per layer plus
  `nn.Module.__call__`, transformers' forward decorators and a causal mask rebuilt every token (0.73 ms per token
  for the tiny model, of which GEMMs ~0.13 ms and two flash-attention decode calls ~0.10 ms).
  Sampling draws one `exponential_` over the (batch, vocab) probabilities per token (~85 us here); it must stay.
- The loss pass (forward + backward of 8 x ~545 tokens) is GEMM- and flash-attention-bound (torch.profiler: mm 36 %,
  attention backward 19 %), ~0.38 s on both paths; it cannot get faster without changing the numbers. But glibc
  returns the step's large freed blocks to the OS and faults them in again next step: 60-90k minor page faults per
  step (`r1.cpu_memory`).
- SmolLM2-135M on CPU is compute-bound (~130 ms per decode step at batch 8), so the loop overhead is ~3 %.
- Threads: on an oversubscribed CPU, torch's default intra-op threads make every small op wait for a descheduled
  OpenMP thread (a 4 us `cos` takes 1.5 ms): TRL's step went from 1.0 s (1 thread) to 50 s (2 threads). Run small
  models with `OMP_NUM_THREADS=1` / `torch.set_num_threads(1)` on shared CPUs.

So `lean_sample` keeps every arithmetic step of `_sample` (same forward inputs, fp32 copy of the last logits,
processors in order, softmax + the one-sample path of `torch.multinomial` over the whole batch, pad after EOS, same
stop test) and drops the bookkeeping: KV cache appended in place into a preallocated buffer read through views
(`preallocate_cache`), ids / mask / positions preallocated, processors called directly, backbone + head called
directly for plain-head architectures (`PLAIN_HEAD_MODEL_TYPES`), `inference_mode`. For Llama / Mistral / Qwen2 /
Qwen3 layers each decode step after the first runs `r1.decode_step.DirectDecoder` (the layers' ops written out,
q/k/v and gate/up fused into one GEMM each, the padding mask made once); the first decode step of every
generation runs both that and the module forward, and the direct path is kept only if the logits agree bit for bit.
Same tokens and the same random draws as `generate` (tests/test_rollout.py, tests/test_decode_step.py), so the
GRPO losses equal TRL's bit for bit. `recommended_settings()` adds `gradient_checkpointing=False` (same gradients,
no recompute) and, on CPU, `cpu_retain_freed_memory=True`. Measured on the tiny model (3 rounds, 1 thread, load
~0.8): generation 1.95x, whole step 1.66x, peak RSS +13 %; see benchmarks/README.md.

On CUDA (not measured here: no GPU was lent) the "compiled" backend decodes with a static cache and `generate`'s
compiled forward (`torch.compile`, CUDA graphs) on a bf16 copy of the policy refreshed in place each optimizer
step; TRL otherwise decodes in fp32 (master weights, no autocast) with a dynamic cache and compile disabled.
`benchmarks/gpu_check.sh` measures it.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from r1.decode_step import DirectDecoder, unsupported_reason

logger = logging.getLogger(__name__)

# model classes whose direct decode step disagreed with their forward (warned once each)
_DIRECT_MISMATCH_WARNED: set[str] = set()

_KNOWN_MODEL_KWARGS = {"attention_mask", "position_ids", "cache", "logits_to_keep", "use_cache"}

# `*ForCausalLM` classes whose forward is exactly `logits = lm_head(backbone(...).last_hidden_state[:, slice])`
# (no logit scaling or soft-capping): the decode loop calls backbone and head itself and skips the wrapper layers
# (output dataclasses, kwarg plumbing, TRL's fused-head patch), which is the same arithmetic on the same tensors.
PLAIN_HEAD_MODEL_TYPES = frozenset({"llama", "mistral", "qwen2", "qwen3", "deepseek_v3"})


# --------------------------------------------------------------------------------------------------------------
# KV cache whose append is O(1): a preallocated buffer, exposed as views
# --------------------------------------------------------------------------------------------------------------


@functools.cache
def _buffered_layer_class() -> type:
    from transformers.cache_utils import DynamicLayer

    class BufferedLayer(DynamicLayer):
        """A `DynamicLayer` that appends into a preallocated buffer instead of `torch.cat`-ing a new tensor.

        `keys`/`values` are views of the first `seq_len` positions of the buffer, so attention reads exactly the
        values a `DynamicLayer` would hold (same shape, same numbers); only the per-step copy of the whole cache
        (O(length) per token, O(length^2) per completion) is gone. It grows by concatenation past `capacity`.
        """

        def __init__(self, capacity: int):
            super().__init__()
            self.capacity = capacity

        def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
            self.device = key_states.device
            b, h, _, dk = key_states.shape
            self._key_buf = key_states.new_empty(b, h, self.capacity, dk)
            self._value_buf = value_states.new_empty(
                b, value_states.shape[1], self.capacity, value_states.shape[-1]
            )
            self.keys = self._key_buf[..., :0, :]
            self.values = self._value_buf[..., :0, :]
            self.is_initialized = True

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            start, n = self.keys.shape[-2], key_states.shape[-2]
            if start + n > self.capacity or key_states.shape[0] != self._key_buf.shape[0]:
                return super().update(key_states, value_states, *args, **kwargs)
            self._key_buf[..., start : start + n, :].copy_(key_states)
            self._value_buf[..., start : start + n, :].copy_(value_states)
            self.keys = self._key_buf[..., : start + n, :]
            self.values = self._value_buf[..., : start + n, :]
            return self.keys, self.values

        def rewind(self, length: int) -> None:
            """Forget every position from `length` on (the buffer is overwritten by the next update)."""
            self.keys = self._key_buf[..., :length, :]
            self.values = self._value_buf[..., :length, :]

    return BufferedLayer


def preallocate_cache(cache: Any, capacity: int) -> int:
    """Swap the plain, still empty `DynamicLayer`s of a `DynamicCache` for buffered ones; returns how many were swapped.

    Sliding-window, linear-attention and other special layers are left alone.
    """
    from transformers.cache_utils import DynamicLayer

    layers = getattr(cache, "layers", None)
    if not layers:
        return 0
    buffered = _buffered_layer_class()
    swapped = 0
    for i, layer in enumerate(layers):
        if type(layer) is DynamicLayer and not layer.is_initialized:
            layers[i] = buffered(capacity)
            swapped += 1
    return swapped


# --------------------------------------------------------------------------------------------------------------
# The decode loop (a drop-in for `GenerationMixin._sample`, passed to `generate(custom_generate=...)`)
# --------------------------------------------------------------------------------------------------------------


def _needs_synced_gpus(model: nn.Module) -> bool:
    """What `generate` would set `synced_gpus` to: sharded weights (ZeRO-3 / FSDP) across several processes."""
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
    from transformers.integrations.fsdp import is_fsdp_managed_module

    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    return world > 1 and (is_deepspeed_zero3_enabled() or is_fsdp_managed_module(model))


def split_backbone_head(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """(backbone, lm_head) for models in PLAIN_HEAD_MODEL_TYPES, else None (then the full forward is called)."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) not in PLAIN_HEAD_MODEL_TYPES:
        return None
    backbone, head = getattr(model, "model", None), getattr(model, "lm_head", None)
    if not isinstance(backbone, nn.Module) or not isinstance(head, nn.Linear):
        return None
    if any(
        getattr(config, k, None) not in (None, 1, 1.0)
        for k in ("final_logit_softcapping", "logit_scale", "logits_scaling")
    ):
        return None
    return backbone, head


def lean_sample(
    model: nn.Module,
    input_ids: torch.LongTensor,
    logits_processor: Any,
    stopping_criteria: Any,
    generation_config: Any,
    **model_kwargs: Any,
) -> torch.LongTensor:
    """Sampling / greedy decoding with the same arithmetic and random draws as `GenerationMixin._sample`.

    Called by `model.generate(..., custom_generate=lean_sample)`, so `generate` has already resolved the generation
    config, special tokens, lengths, logits processors, stopping criteria, position ids and the cache exactly as it
    does for its own loop. Per step this does what `_sample` does — the forward with the same inputs (through
    `DirectDecoder` where it applies and agrees), the fp32 copy of the last logits, the processors in their order,
    `softmax` + the draw of `torch.multinomial` (`sample_one`) over the full batch (or `argmax`), padding of finished
    rows, the same stop test — and nothing else: no per-step kwargs rebuilding, no `torch.cat` of the ids, mask and KV
    cache (preallocated buffers, read through views), no output bookkeeping.
    Anything it does not handle (synced GPUs, streamers, scores/dict outputs, extra model inputs) runs `_sample`.
    """
    from transformers.generation.stopping_criteria import EosTokenCriteria, MaxLengthCriteria
    from transformers.generation.utils import GENERATION_MODES_MAPPING, GenerationMode

    mode = generation_config.get_generation_mode()
    extra_kwargs = set(model_kwargs) - _KNOWN_MODEL_KWARGS
    if (
        mode not in (GenerationMode.SAMPLE, GenerationMode.GREEDY_SEARCH)
        or extra_kwargs
        or generation_config.return_dict_in_generate
        or not model_kwargs.get("use_cache", True)
        or model_kwargs.get("cache") is None
        or _needs_synced_gpus(model)
    ):
        logger.debug("lean_sample: %s with inputs %s runs transformers' own loop", mode, sorted(model_kwargs))
        return getattr(type(model), GENERATION_MODES_MAPPING[mode])(
            model,
            input_ids,
            logits_processor=logits_processor,
            stopping_criteria=stopping_criteria,
            generation_config=generation_config,
            synced_gpus=_needs_synced_gpus(model),
            **model_kwargs,
        )

    max_length, eos, other_criteria = None, None, []
    for criterion in stopping_criteria:
        if isinstance(criterion, MaxLengthCriteria):
            max_length = criterion.max_length if max_length is None else min(max_length, criterion.max_length)
        elif isinstance(criterion, EosTokenCriteria):
            eos = criterion.eos_token_id
        else:
            other_criteria.append(criterion)
    has_eos_stopping_criteria = any(hasattr(c, "eos_token_id") for c in stopping_criteria)
    pad_token_id = generation_config._pad_token_tensor
    if pad_token_id is not None:
        pad_token_id = pad_token_id.to(input_ids.device)
    do_sample = generation_config.do_sample

    processors = list(logits_processor)
    if any(len(inspect.signature(p.__call__).parameters) > 2 for p in processors):
        # a processor that wants extra kwargs: let the list dispatch them (and raise, as `generate` would)
        processors = [logits_processor]

    batch_size, prompt_len = input_ids.shape
    if max_length is None:
        max_length = prompt_len + (generation_config.max_new_tokens or 0)
    capacity = max(max_length, prompt_len + 1)
    cache = model_kwargs["cache"]
    attention_mask = model_kwargs.get("attention_mask")
    position_ids = model_kwargs.get("position_ids")
    logits_to_keep = model_kwargs.get("logits_to_keep")
    split = split_backbone_head(model) if isinstance(logits_to_keep, int) else None
    step_kwargs = {"use_cache": True}
    if split is None and logits_to_keep is not None:
        step_kwargs["logits_to_keep"] = logits_to_keep
    keep = (
        slice(-logits_to_keep, None)
        if isinstance(logits_to_keep, int) and logits_to_keep > 0
        else slice(None)
    )

    def forward(**inputs: Any) -> tuple[torch.Tensor, Any]:
        if split is None:
            outputs = model(**inputs, **step_kwargs, return_dict=True)
            return outputs.logits, getattr(outputs, "cache", None)
        backbone, head = split
        outputs = backbone(**inputs, **step_kwargs)
        return head(outputs.last_hidden_state[:, keep, :]), getattr(outputs, "cache", None)

    # A static (compileable) cache means `generate` may compile the decode forward: keep its exact per-step inputs
    # (`prepare_inputs_for_generation` builds the fixed-shape 4D mask) and its compiled call; skip the rest.
    static = bool(getattr(cache, "is_compileable", False)) and type(cache).__name__ != "DynamicCache"
    compiled_forward = None
    if static and model._valid_auto_compile_criteria(model_kwargs, generation_config):
        compiled_forward = model.get_compiled_call(generation_config.compile_config)
    grad_mode = torch.no_grad() if compiled_forward is not None else torch.inference_mode()

    with grad_mode, _decode_context(model):
        direct = None
        if not static and preallocate_cache(cache, capacity) == len(getattr(cache, "layers", ())) and split:
            reason = unsupported_reason(*split)
            if reason is None:
                direct = DirectDecoder(*split, keep)
            else:
                logger.debug("lean_sample: module forward per decode step (%s)", reason)
        ids = input_ids.new_empty(batch_size, capacity)
        ids[:, :prompt_len] = input_ids
        mask_buf = None
        if attention_mask is not None:
            mask_buf = attention_mask.new_ones(batch_size, capacity)
            mask_buf[:, :prompt_len] = attention_mask
        unfinished = torch.ones(batch_size, dtype=torch.bool, device=input_ids.device)
        length = prompt_len
        step_ids = input_ids.clone(memory_format=torch.contiguous_format)
        step_positions = position_ids
        # the position of decode step t is the last prompt position + 1 + t, as `generate` counts
        decode_positions = None
        if position_ids is not None:
            offsets = torch.arange(
                1, capacity - prompt_len + 1, device=position_ids.device, dtype=position_ids.dtype
            )
            decode_positions = position_ids[..., -1:] + offsets
            positions_buf = torch.cat([position_ids, decode_positions], dim=-1)
        step = 0
        while True:
            if static:
                model_inputs = model.prepare_inputs_for_generation(
                    ids[:, :length],
                    next_sequence_length=prompt_len if step == 0 else 1,
                    cache=cache,
                    attention_mask=mask_buf[:, :length] if mask_buf is not None else None,
                    **({"position_ids": positions_buf[..., :length]} if position_ids is not None else {}),
                    **{k: v for k, v in model_kwargs.items() if k in ("use_cache", "logits_to_keep")},
                    is_first_iteration=step == 0,
                )
                call = compiled_forward if (compiled_forward is not None and step > 0) else model
                logits = call(**model_inputs, return_dict=True).logits
            elif direct is not None and step > 1:
                logits = direct(step_ids, step_positions, mask_buf, length, cache)
            else:
                verify = direct is not None and step == 1
                if verify:  # the first decode step runs both ways: the direct step must reproduce the forward exactly
                    try:
                        direct_logits = direct(step_ids, step_positions, mask_buf, length, cache)
                    except Exception as e:  # noqa: BLE001 - an unforeseen model variant: the module forward it is
                        direct_logits = e
                    for layer in cache.layers:
                        layer.rewind(length - 1)
                logits, new_cache = forward(
                    input_ids=step_ids,
                    cache=cache,
                    **({"position_ids": step_positions} if step_positions is not None else {}),
                    **({"attention_mask": mask_buf[:, :length]} if mask_buf is not None else {}),
                )
                cache = new_cache if new_cache is not None else cache
                if verify and not (isinstance(direct_logits, torch.Tensor) and torch.equal(direct_logits, logits)):
                    if type(model).__name__ not in _DIRECT_MISMATCH_WARNED:
                        _DIRECT_MISMATCH_WARNED.add(type(model).__name__)
                        logger.warning(
                            "lean_sample: the direct decode step differs from %s's forward%s; using the module forward",
                            type(model).__name__,
                            f" ({type(direct_logits).__name__}: {direct_logits})"
                            if isinstance(direct_logits, Exception)
                            else "",
                        )
                    direct = None
            next_token_logits = logits[:, -1].to(copy=True, dtype=torch.float32, device=input_ids.device)
            del logits
            scores = next_token_logits
            # what LogitsProcessorList does, minus its per-step inspect.signature()
            for processor in processors:
                scores = processor(ids[:, :length], scores)
            if do_sample:
                probs = nn.functional.softmax(scores, dim=-1)
                next_tokens = sample_one(probs)
            else:
                next_tokens = torch.argmax(scores, dim=-1)
            if has_eos_stopping_criteria:
                next_tokens = torch.where(unfinished, next_tokens, pad_token_id)
            ids[:, length] = next_tokens
            length += 1

            if length >= capacity:  # MaxLengthCriteria: every row is done
                break
            if eos is not None:
                unfinished = unfinished & ~torch.isin(next_tokens, eos)
            for criterion in other_criteria:
                unfinished = unfinished & ~criterion(ids[:, :length], scores)
            if not unfinished.any():
                break
            step_ids = next_tokens[:, None]
            if decode_positions is not None:
                step_positions = decode_positions[..., step : step + 1]
            step += 1
    return ids[:, :length].clone()


def _exponential_race(probs: torch.Tensor) -> torch.Tensor:
    """argmax(p / E) with E ~ Exp(1) drawn over the whole tensor: the one-sample path of ATen's CPU multinomial."""
    draws = torch.empty_like(probs).exponential_(1)
    return torch.argmax(probs / draws, dim=-1)


@functools.cache
def _exponential_race_is_multinomial() -> bool:
    """Whether `_exponential_race` draws exactly what `torch.multinomial(probs, 1)` draws with this torch (checked once
    per process on a private copy of the RNG state, so the caller's random stream is untouched)."""
    with torch.random.fork_rng(devices=[]):
        for seed in range(8):
            probs = torch.softmax(torch.randn(4, 97, generator=torch.Generator().manual_seed(seed)) * seed, dim=-1)
            torch.manual_seed(seed)
            expected, expected_next = torch.multinomial(probs, 1).squeeze(1), torch.rand(2)
            torch.manual_seed(seed)
            got, got_next = _exponential_race(probs), torch.rand(2)
            if not (torch.equal(expected, got) and torch.equal(expected_next, got_next)):
                return False
    return True


def sample_one(probs: torch.Tensor) -> torch.Tensor:
    """`torch.multinomial(probs, 1).squeeze(1)` without its validity checks (three reductions, two host syncs) per call
    on CPU; one reduction is enough: the minimum of a softmax is NaN or negative exactly when multinomial refuses it."""
    if probs.device.type != "cpu" or not _exponential_race_is_multinomial():
        return torch.multinomial(probs, num_samples=1).squeeze(1)
    if not bool(probs.min() >= 0):
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    return _exponential_race(probs)


@contextlib.contextmanager
def _decode_context(model: nn.Module) -> Iterator[None]:
    """`generate`'s decode-time tweaks (e.g. the MoE experts kernel switch on GPU), when this transformers has them."""
    optimize = getattr(model, "_optimize_model_for_decode", None)
    with optimize() if optimize is not None else contextlib.nullcontext():
        yield


# --------------------------------------------------------------------------------------------------------------
# GRPOTrainer mixin
# --------------------------------------------------------------------------------------------------------------


def lean_unsupported_reason(generation_config: Any) -> str | None:
    """Why `lean_sample` cannot stand in for `generate`'s loop with this config (None = it can)."""
    if generation_config is None:
        return "no generation config"
    if getattr(generation_config, "num_beams", 1) not in (None, 1):
        return "beam search"
    if getattr(generation_config, "num_return_sequences", 1) not in (None, 1):
        return "num_return_sequences > 1"
    if getattr(generation_config, "guidance_scale", None) not in (None, 1):
        return "classifier-free guidance"
    if getattr(generation_config, "stop_strings", None):
        return "stop strings"
    if getattr(generation_config, "prefill_chunk_size", None):
        return "chunked prefill"
    if getattr(generation_config, "cache_implementation", None) not in (None, "dynamic", "static"):
        return f"cache_implementation={generation_config.cache_implementation!r}"
    if getattr(generation_config, "use_cache", True) is False:
        return "use_cache=False"
    if getattr(generation_config, "penalty_alpha", None) or getattr(generation_config, "dola_layers", None):
        return "contrastive / DoLa decoding"
    return None


@contextlib.contextmanager
def patched_generate(model: nn.Module, generate: Any) -> Iterator[nn.Module]:
    """Within the block `model.generate` is `generate` (an instance attribute, removed on exit), so TRL's own
    generation code — padding, unwrapping, ZeRO-3 gathering, EOS masking — runs unchanged around our decode loop."""
    had_own = "generate" in vars(model)
    original = vars(model).get("generate")
    model.generate = generate
    try:
        yield model
    finally:
        if had_own:
            model.generate = original
        else:
            del model.generate


BACKENDS = ("auto", "exact", "compiled")
# Static cache lengths are rounded up to a multiple of this, so prompt-length changes rarely recompile.
STATIC_CACHE_BUCKET = 128


def static_generation_config(generation_config: Any, prompt_len: int) -> Any:
    """A copy of `generation_config` that decodes with a static cache (sized to a bucket) and lets `generate` compile."""
    cfg = copy.deepcopy(generation_config)
    cfg.cache_implementation = "static"
    cfg.disable_compile = False
    need = prompt_len + (cfg.max_new_tokens or 0)
    cfg.max_cache_len = -(-need // STATIC_CACHE_BUCKET) * STATIC_CACHE_BUCKET
    return cfg


class FastRolloutMixin:
    """Mix into a `GRPOTrainer` subclass, before it: `class R1ZeroTrainer(FastRolloutMixin, GRPOTrainer)`.

    Overrides only `_generate_single_turn`, and only on the plain transformers path (no vLLM, no continuous
    batching, no images or tool images, sampling or greedy decoding); everything else goes to TRL unchanged.
    Read from the training arguments when present, else these class defaults:

    - `fast_rollout` (True): off = TRL's path exactly.
    - `fast_rollout_backend`: "exact" = `lean_sample` on the policy itself with a dynamic cache (the same tokens
      as TRL on a fixed seed); "compiled" = `lean_sample` with a static cache and `generate`'s compiled decode
      forward, on a copy of the weights in `fast_rollout_dtype`, refreshed after every optimizer step (same
      distribution, not the same draws); "auto" (default) = "compiled" on CUDA, "exact" elsewhere.
    - `fast_rollout_dtype`: "auto" = bfloat16 on CUDA when training in bf16 (TRL keeps fp32 master weights and
      generates in fp32 otherwise), else the policy's dtype; or a dtype name.
    """

    fast_rollout: bool = True
    fast_rollout_backend: str = "auto"
    fast_rollout_dtype: str = "auto"

    def _fast_rollout_option(self, name: str) -> Any:
        return getattr(self.args, name, getattr(type(self), name))

    def _fast_rollout_reason(self, images: Any, multimodal_fields: Any, has_tool_images: bool) -> str | None:
        """None when the fast path applies; otherwise why not (logged once)."""
        if not self._fast_rollout_option("fast_rollout"):
            return "disabled (fast_rollout=False)"
        if getattr(self, "use_vllm", False):
            return "vLLM generates"
        if getattr(self, "use_transformers_continuous_batching", False):
            return "continuous batching"
        if images is not None or multimodal_fields or has_tool_images or getattr(self, "_is_vlm", False):
            return "multimodal inputs"
        backend = self._fast_rollout_option("fast_rollout_backend")
        if backend not in BACKENDS:
            raise ValueError(f"fast_rollout_backend must be one of {', '.join(BACKENDS)} (got {backend!r})")
        return lean_unsupported_reason(getattr(self, "generation_config", None))

    def _log_rollout_path(self, message: str) -> None:
        if getattr(self, "_fast_rollout_logged", None) != message:
            logger.info(message)
            self._fast_rollout_logged = message

    def _resolve_backend(self, model: nn.Module) -> tuple[str, torch.dtype]:
        backend = self._fast_rollout_option("fast_rollout_backend")
        on_cuda = next(model.parameters()).device.type == "cuda"
        if backend == "auto":
            backend = "compiled" if on_cuda else "exact"
        if getattr(self, "_r1_compiled_failed", False):
            backend = "exact"
        policy_dtype = next(model.parameters()).dtype
        dtype_name = self._fast_rollout_option("fast_rollout_dtype")
        if backend == "exact":
            return backend, policy_dtype
        if dtype_name == "auto":
            dtype = torch.bfloat16 if (on_cuda and getattr(self.args, "bf16", False)) else policy_dtype
        else:
            from r1.models import _DTYPE_ALIASES

            dtype = getattr(torch, _DTYPE_ALIASES.get(dtype_name, dtype_name), None)
            if not isinstance(dtype, torch.dtype):
                raise ValueError(
                    f"fast_rollout_dtype {dtype_name!r} is not a dtype; use auto, bfloat16, float32, ..."
                )
        sharded = getattr(self, "is_fsdp_enabled", False) or _needs_synced_gpus(model)
        try:
            from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

            sharded = sharded or is_deepspeed_zero3_enabled()
        except ImportError:
            pass
        if sharded or hasattr(model, "peft_config"):
            self._log_rollout_path("fast rollout: sharded or PEFT policy, using the exact backend")
            return "exact", policy_dtype
        return backend, dtype

    def _rollout_replica(self, model: nn.Module, dtype: torch.dtype) -> nn.Module:
        """The policy itself, or a copy in `dtype` whose weights are refreshed once per optimizer step (in place, so
        compiled / CUDA-graph decode keeps pointing at the same tensors)."""
        if next(model.parameters()).dtype == dtype:
            return model
        replica = getattr(self, "_r1_rollout_replica", None)
        if replica is None or next(replica.parameters()).dtype != dtype:
            from transformers import AutoModelForCausalLM

            device = next(model.parameters()).device
            with torch.device(device):
                replica = AutoModelForCausalLM.from_config(
                    model.config, dtype=dtype, attn_implementation=model.config._attn_implementation
                )
            replica.generation_config = copy.deepcopy(model.generation_config)
            replica.eval().requires_grad_(False)
            self._r1_rollout_replica, self._r1_rollout_replica_step = replica, None
            logger.info(
                "fast rollout: generating with a %s copy of the policy", str(dtype).replace("torch.", "")
            )
        step = self.state.global_step
        if self._r1_rollout_replica_step != step:
            targets = dict(replica.named_parameters())
            with torch.no_grad():
                for name, param in model.named_parameters():
                    targets[name].copy_(param)
            self._r1_rollout_replica_step = step
        return replica

    def _generate_single_turn(
        self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False
    ):
        reason = self._fast_rollout_reason(images, multimodal_fields, has_tool_images)
        if reason is not None:
            self._log_rollout_path(f"fast rollout off: {reason}; using TRL's generation path")
            return super()._generate_single_turn(
                prompt_ids, images, multimodal_fields, num_generations, has_tool_images=has_tool_images
            )
        model = self.accelerator.unwrap_model(self.model_wrapped)
        backend, dtype = self._resolve_backend(model)
        if backend == "exact":
            original = model.generate

            def generate(*args: Any, **kwargs: Any) -> Any:
                return original(*args, custom_generate=lean_sample, **kwargs)

        else:
            replica = self._rollout_replica(model, dtype)

            def generate(*args: Any, **kwargs: Any) -> Any:
                input_ids = kwargs.get("input_ids", args[0] if args else None)
                kwargs["generation_config"] = static_generation_config(
                    kwargs.get("generation_config") or replica.generation_config, input_ids.shape[-1]
                )
                return replica.generate(*args, custom_generate=lean_sample, **kwargs)

        self._log_rollout_path(f"fast rollout on: backend {backend}, {str(dtype).replace('torch.', '')}")
        try:
            with patched_generate(model, generate):
                return super()._generate_single_turn(
                    prompt_ids, images, multimodal_fields, num_generations, has_tool_images=has_tool_images
                )
        except Exception as e:  # noqa: BLE001 - a compile/static-cache failure must not end the run
            if backend == "exact":
                raise
            logger.warning(
                "fast rollout: the compiled backend failed (%s: %s); using the exact backend from now on",
                type(e).__name__,
                str(e)[:300],
            )
            self._r1_compiled_failed = True
            self._r1_rollout_replica = None
            return FastRolloutMixin._generate_single_turn(
                self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=has_tool_images
            )


# --------------------------------------------------------------------------------------------------------------
# Recommended training settings
# --------------------------------------------------------------------------------------------------------------

# Below this many parameters the activations of a GRPO micro-batch are small next to the weights and optimizer
# state, so recomputing them (gradient checkpointing) costs time and saves little memory.
NO_CHECKPOINTING_BELOW_PARAMS = 2_000_000_000


def recommended_settings(device: str = "cpu", n_params: int | None = None) -> dict[str, Any]:
    """`GRPOConfig` fields that make a step faster without changing what it computes (same loss on a fixed seed).

    - `gradient_checkpointing=False` for models under ~2B parameters: TRL turns checkpointing on by default, which
      re-runs every layer's forward in the backward pass; checkpointing changes memory, not the gradients.
    - `fast_rollout=True`: `FastRolloutMixin`'s lean decode loop (same tokens as `generate`).
    - `cpu_retain_freed_memory=True` on CPU: no page faults on every step's reallocations (`r1.cpu_memory`).
    Algorithm fields (batch sizes, lengths, temperature, `steps_per_generation`) are deliberately not touched: they
    change what is trained. When vLLM is installed and a GPU is present, prefer `use_vllm=True` (see module doc).
    """
    settings: dict[str, Any] = {"fast_rollout": True}
    if n_params is None or n_params < NO_CHECKPOINTING_BELOW_PARAMS:
        settings["gradient_checkpointing"] = False
    if device == "cpu":
        settings["cpu_retain_freed_memory"] = True
    return settings
