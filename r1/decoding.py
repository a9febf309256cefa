"""The lean decode loop: what `transformers.generate` samples, token for token, with less work per token.

Used by training rollouts (`r1.rollout.FastRolloutMixin`) and by evaluation (`r1.generation.TransformersGenerator`),
both through `model.generate(..., custom_generate=lean_sample)`: `generate` still prepares the generation config,
logits processors, stopping criteria, position ids and cache exactly as for its own loop; `lean_sample` then runs
the loop.

What the profile says (TRL 1.16, transformers 5.24, torch 2.13 CPU; `benchmarks/grpo_step_bench.py`, tiny Qwen2,
8 completions x 512 tokens, 1 thread): inside `generate` the model forward is 65 %; the rest is per-token
bookkeeping — `torch.multinomial` 7 %, `torch.cat` of ids / mask / every layer's KV cache 6 % (O(length) copies per
token), `prepare_inputs_for_generation` + `_update_model_kwargs_for_generation` 9 %, stopping criteria, and
`LogitsProcessorList` calling `inspect.signature` on every processor every token. The decode forward of a small model
is framework overhead, not arithmetic (~45 small ops per layer plus `nn.Module.__call__` and a causal mask rebuilt
every token). SmolLM2-135M on CPU is compute-bound (~130 ms per decode step at batch 8), so there the loop overhead
is ~3 %. On an oversubscribed CPU torch's default intra-op threads make every small op wait for a descheduled
OpenMP thread: run small models with `OMP_NUM_THREADS=1` on shared CPUs.

So the loop keeps every arithmetic step of `GenerationMixin._sample` (same forward inputs, fp32 copy of the last
logits, processors in order, softmax + the one-sample path of `torch.multinomial` over the whole batch, pad after
EOS, same stop test) and drops the bookkeeping: the KV cache is appended in place into a preallocated buffer read
through views (`preallocate_cache`), ids / mask / positions are preallocated, processors are called directly,
backbone + head are called directly for plain-head architectures (`PLAIN_HEAD_MODEL_TYPES`), under
`inference_mode`. Each decode step runs one of three paths:

- static: a static (compileable) cache, so `generate` may compile the decode forward; the loop keeps its exact
  per-step inputs (`prepare_inputs_for_generation`) and its compiled call (the CUDA "compiled" rollout backend);
- direct: `r1.decode_step.DirectDecoder` for Llama / Mistral / Qwen2 / Qwen3 layers, from the second decode step
  on, once the first decode step showed it reproduces the module forward bit for bit;
- module: the model's forward (the prefill, the first decode step, and every model the direct step does not cover).

Same tokens and the same random draws as `generate` (tests/test_decoding.py), so GRPO losses equal TRL's bit for bit.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from transformers.cache_utils import DynamicLayer
from transformers.generation.stopping_criteria import EosTokenCriteria, MaxLengthCriteria
from transformers.generation.utils import GENERATION_MODES_MAPPING, GenerationMode
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled
from transformers.integrations.fsdp import is_fsdp_managed_module

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


class BufferedLayer(DynamicLayer):
    """A `DynamicLayer` that appends into a preallocated buffer instead of `torch.cat`-ing a new tensor.

    `keys`/`values` are views of the first `seq_len` positions of the buffer, so attention reads exactly the values
    a `DynamicLayer` would hold (same shape, same numbers); only the per-step copy of the whole cache (O(length) per
    token, O(length^2) per completion) is gone. It grows by concatenation past `capacity`.
    """

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity = capacity

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        b, h, _, dk = key_states.shape
        self._key_buf = key_states.new_empty(b, h, self.capacity, dk)
        self._value_buf = value_states.new_empty(b, value_states.shape[1], self.capacity, value_states.shape[-1])
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


def preallocate_cache(cache: Any, capacity: int) -> int:
    """Swap the plain, still empty `DynamicLayer`s of a `DynamicCache` for buffered ones; returns how many were swapped.

    Sliding-window, linear-attention and other special layers are left alone.
    """
    layers = getattr(cache, "layers", None)
    if not layers:
        return 0
    swapped = 0
    for i, layer in enumerate(layers):
        if type(layer) is DynamicLayer and not layer.is_initialized:
            layers[i] = BufferedLayer(capacity)
            swapped += 1
    return swapped


# --------------------------------------------------------------------------------------------------------------
# Sampling: the one-sample path of torch.multinomial
# --------------------------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------------------------
# When the lean loop applies
# --------------------------------------------------------------------------------------------------------------


def needs_synced_gpus(model: nn.Module) -> bool:
    """What `generate` would set `synced_gpus` to: sharded weights (ZeRO-3 / FSDP) across several processes."""
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    return world > 1 and (is_deepspeed_zero3_enabled() or is_fsdp_managed_module(model))


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


def _transformers_loop_reason(model: nn.Module, generation_config: Any, model_kwargs: dict[str, Any]) -> str | None:
    """Why this call must run transformers' own loop (None = the lean loop handles it)."""
    mode = generation_config.get_generation_mode()
    if mode not in (GenerationMode.SAMPLE, GenerationMode.GREEDY_SEARCH):
        return f"generation mode {mode}"
    if set(model_kwargs) - _KNOWN_MODEL_KWARGS:
        return f"extra model inputs {sorted(set(model_kwargs) - _KNOWN_MODEL_KWARGS)}"
    if generation_config.return_dict_in_generate:
        return "return_dict_in_generate"
    if not model_kwargs.get("use_cache", True) or model_kwargs.get("cache") is None:
        return "no cache"
    if needs_synced_gpus(model):
        return "synced GPUs (sharded weights)"
    return None


def split_backbone_head(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """(backbone, lm_head) for models in PLAIN_HEAD_MODEL_TYPES, else None (then the full forward is called)."""
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) not in PLAIN_HEAD_MODEL_TYPES:
        return None
    backbone, head = getattr(model, "model", None), getattr(model, "lm_head", None)
    if not isinstance(backbone, nn.Module) or not isinstance(head, nn.Linear):
        return None
    if any(getattr(config, k, None) not in (None, 1, 1.0) for k in ("final_logit_softcapping", "logit_scale", "logits_scaling")):
        return None
    return backbone, head


# --------------------------------------------------------------------------------------------------------------
# The decode loop (a drop-in for `GenerationMixin._sample`, passed to `generate(custom_generate=...)`)
# --------------------------------------------------------------------------------------------------------------


def lean_sample(
    model: nn.Module,
    input_ids: torch.LongTensor,
    logits_processor: Any,
    stopping_criteria: Any,
    generation_config: Any,
    **model_kwargs: Any,
) -> torch.LongTensor:
    """Sampling / greedy decoding with the same arithmetic and random draws as `GenerationMixin._sample`.

    Per step: the forward with the same inputs, the fp32 copy of the last logits, the processors in their order,
    `softmax` + the draw of `torch.multinomial` (`sample_one`) over the full batch (or `argmax`), padding of finished
    rows, the same stop test — and nothing else. Anything it does not handle (synced GPUs, streamers, scores/dict
    outputs, extra model inputs) runs `_sample`.
    """
    reason = _transformers_loop_reason(model, generation_config, model_kwargs)
    if reason is not None:
        logger.debug("lean_sample: transformers' own loop (%s)", reason)
        mode = generation_config.get_generation_mode()
        return getattr(type(model), GENERATION_MODES_MAPPING[mode])(
            model,
            input_ids,
            logits_processor=logits_processor,
            stopping_criteria=stopping_criteria,
            generation_config=generation_config,
            synced_gpus=needs_synced_gpus(model),
            **model_kwargs,
        )
    loop = _DecodeLoop(model, input_ids, logits_processor, stopping_criteria, generation_config, model_kwargs)
    with loop.grad_mode, _decode_context(model):
        return loop.run()


@contextlib.contextmanager
def _decode_context(model: nn.Module) -> Iterator[None]:
    """`generate`'s decode-time tweaks (e.g. the MoE experts kernel switch on GPU), when this transformers has them."""
    optimize = getattr(model, "_optimize_model_for_decode", None)
    with optimize() if optimize is not None else contextlib.nullcontext():
        yield


class _StopRules:
    """`generate`'s stopping criteria taken apart: the length limit and EOS are tested inline, the rest called."""

    def __init__(self, stopping_criteria: Any, generation_config: Any, prompt_len: int, device: torch.device):
        self.max_length, self.eos, self.other = None, None, []
        for criterion in stopping_criteria:
            if isinstance(criterion, MaxLengthCriteria):
                self.max_length = criterion.max_length if self.max_length is None else min(self.max_length, criterion.max_length)
            elif isinstance(criterion, EosTokenCriteria):
                self.eos = criterion.eos_token_id
            else:
                self.other.append(criterion)
        if self.max_length is None:
            self.max_length = prompt_len + (generation_config.max_new_tokens or 0)
        self.pad_finished = any(hasattr(c, "eos_token_id") for c in stopping_criteria)
        pad = generation_config._pad_token_tensor
        self.pad_token_id = pad.to(device) if pad is not None else None

    def still_running(self, unfinished: torch.Tensor, tokens: torch.Tensor, ids: torch.Tensor, scores: torch.Tensor):
        if self.eos is not None:
            unfinished = unfinished & ~torch.isin(tokens, self.eos)
        for criterion in self.other:
            unfinished = unfinished & ~criterion(ids, scores)
        return unfinished


class _DecodeLoop:
    """State of one `lean_sample` call: preallocated ids / mask / positions, the cache, and the decode path."""

    def __init__(self, model, input_ids, logits_processor, stopping_criteria, generation_config, model_kwargs):
        self.model, self.model_kwargs = model, model_kwargs
        self.do_sample = generation_config.do_sample
        self.batch_size, self.prompt_len = input_ids.shape
        self.device = input_ids.device
        self.stop = _StopRules(stopping_criteria, generation_config, self.prompt_len, self.device)
        self.processors = list(logits_processor)
        if any(len(inspect.signature(p.__call__).parameters) > 2 for p in self.processors):
            # a processor that wants extra kwargs: let the list dispatch them (and raise, as `generate` would)
            self.processors = [logits_processor]
        self.capacity = max(self.stop.max_length, self.prompt_len + 1)
        self.cache = model_kwargs["cache"]
        logits_to_keep = model_kwargs.get("logits_to_keep")
        self.split = split_backbone_head(model) if isinstance(logits_to_keep, int) else None
        self.step_kwargs: dict[str, Any] = {"use_cache": True}
        if self.split is None and logits_to_keep is not None:
            self.step_kwargs["logits_to_keep"] = logits_to_keep
        keep_last = isinstance(logits_to_keep, int) and logits_to_keep > 0
        self.keep = slice(-logits_to_keep, None) if keep_last else slice(None)
        self._init_static(generation_config)
        self._init_buffers(input_ids, model_kwargs.get("attention_mask"), model_kwargs.get("position_ids"))
        self.direct = self._direct_decoder()

    def _init_static(self, generation_config: Any) -> None:
        # A static (compileable) cache means `generate` may compile the decode forward: keep its exact per-step
        # inputs (`prepare_inputs_for_generation` builds the fixed-shape 4D mask) and its compiled call.
        self.static = bool(getattr(self.cache, "is_compileable", False)) and type(self.cache).__name__ != "DynamicCache"
        self.compiled_forward = None
        if self.static and self.model._valid_auto_compile_criteria(self.model_kwargs, generation_config):
            self.compiled_forward = self.model.get_compiled_call(generation_config.compile_config)
        self.grad_mode = torch.no_grad() if self.compiled_forward is not None else torch.inference_mode()

    def _init_buffers(self, input_ids: torch.Tensor, attention_mask: Any, position_ids: Any) -> None:
        b, p, cap = self.batch_size, self.prompt_len, self.capacity
        self.ids = input_ids.new_empty(b, cap)
        self.ids[:, :p] = input_ids
        self.mask_buf = None
        if attention_mask is not None:
            self.mask_buf = attention_mask.new_ones(b, cap)
            self.mask_buf[:, :p] = attention_mask
        self.step_ids = input_ids.clone(memory_format=torch.contiguous_format)
        self.step_positions = position_ids
        self.decode_positions = self.positions_buf = None
        if position_ids is not None:  # decode step t sits at the last prompt position + 1 + t, as `generate` counts
            offsets = torch.arange(1, cap - p + 1, device=position_ids.device, dtype=position_ids.dtype)
            self.decode_positions = position_ids[..., -1:] + offsets
            self.positions_buf = torch.cat([position_ids, self.decode_positions], dim=-1)

    def _direct_decoder(self) -> DirectDecoder | None:
        if self.static:
            return None
        all_buffered = preallocate_cache(self.cache, self.capacity) == len(getattr(self.cache, "layers", ()))
        if not all_buffered or not self.split:
            return None
        reason = unsupported_reason(*self.split)
        if reason is not None:
            logger.debug("lean_sample: module forward per decode step (%s)", reason)
            return None
        return DirectDecoder(*self.split, self.keep)

    def run(self) -> torch.LongTensor:
        unfinished = torch.ones(self.batch_size, dtype=torch.bool, device=self.device)
        length, step = self.prompt_len, 0
        while True:
            logits = self._logits(step, length)
            scores = logits[:, -1].to(copy=True, dtype=torch.float32, device=self.device)
            del logits
            for processor in self.processors:  # what LogitsProcessorList does, minus its per-step inspect.signature()
                scores = processor(self.ids[:, :length], scores)
            tokens = sample_one(nn.functional.softmax(scores, dim=-1)) if self.do_sample else torch.argmax(scores, dim=-1)
            if self.stop.pad_finished:
                tokens = torch.where(unfinished, tokens, self.stop.pad_token_id)
            self.ids[:, length] = tokens
            length += 1
            if length >= self.capacity:  # MaxLengthCriteria: every row is done
                break
            unfinished = self.stop.still_running(unfinished, tokens, self.ids[:, :length], scores)
            if not unfinished.any():
                break
            self.step_ids = tokens[:, None]
            if self.decode_positions is not None:
                self.step_positions = self.decode_positions[..., step : step + 1]
            step += 1
        return self.ids[:, :length].clone()

    def _logits(self, step: int, length: int) -> torch.Tensor:
        if self.static:
            return self._static_logits(step, length)
        if self.direct is not None and step > 1:
            return self.direct(self.step_ids, self.step_positions, self.mask_buf, length, self.cache)
        if self.direct is not None and step == 1:
            return self._verified_logits(length)
        return self._module_logits(length)

    def _static_logits(self, step: int, length: int) -> torch.Tensor:
        inputs = self.model.prepare_inputs_for_generation(
            self.ids[:, :length],
            next_sequence_length=self.prompt_len if step == 0 else 1,
            cache=self.cache,
            attention_mask=self.mask_buf[:, :length] if self.mask_buf is not None else None,
            **({"position_ids": self.positions_buf[..., :length]} if self.positions_buf is not None else {}),
            **{k: v for k, v in self.model_kwargs.items() if k in ("use_cache", "logits_to_keep")},
            is_first_iteration=step == 0,
        )
        call = self.compiled_forward if (self.compiled_forward is not None and step > 0) else self.model
        return call(**inputs, return_dict=True).logits

    def _module_logits(self, length: int) -> torch.Tensor:
        inputs: dict[str, Any] = {"input_ids": self.step_ids, "cache": self.cache}
        if self.step_positions is not None:
            inputs["position_ids"] = self.step_positions
        if self.mask_buf is not None:
            inputs["attention_mask"] = self.mask_buf[:, :length]
        if self.split is None:
            outputs = self.model(**inputs, **self.step_kwargs, return_dict=True)
            logits = outputs.logits
        else:
            backbone, head = self.split
            outputs = backbone(**inputs, **self.step_kwargs)
            logits = head(outputs.last_hidden_state[:, self.keep, :])
        new_cache = getattr(outputs, "cache", None)
        self.cache = new_cache if new_cache is not None else self.cache
        return logits

    def _verified_logits(self, length: int) -> torch.Tensor:
        """The first decode step runs both ways: the direct step is kept only if it reproduces the forward exactly."""
        try:
            direct_logits = self.direct(self.step_ids, self.step_positions, self.mask_buf, length, self.cache)
        except Exception as e:  # noqa: BLE001 - an unforeseen model variant: the module forward it is
            direct_logits = e
        for layer in self.cache.layers:
            layer.rewind(length - 1)
        logits = self._module_logits(length)
        if not (isinstance(direct_logits, torch.Tensor) and torch.equal(direct_logits, logits)):
            name = type(self.model).__name__
            if name not in _DIRECT_MISMATCH_WARNED:
                _DIRECT_MISMATCH_WARNED.add(name)
                detail = f" ({type(direct_logits).__name__}: {direct_logits})" if isinstance(direct_logits, Exception) else ""
                logger.warning("lean_sample: the direct decode step differs from %s's forward%s; using the module forward", name, detail)
            self.direct = None
        return logits


# --------------------------------------------------------------------------------------------------------------
# The answer boundary: end a completion right after `</answer>`
# --------------------------------------------------------------------------------------------------------------


_CONTAINING: dict[tuple[int, int, str], torch.Tensor] = {}


def _tokens_containing(tokenizer: Any, char: str) -> torch.Tensor:
    """A bool per token id: its text contains `char` (special tokens never do). Cached per tokenizer."""
    key = (id(tokenizer), len(tokenizer), char)
    if key not in _CONTAINING:
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        special = set(tokenizer.all_special_ids)
        _CONTAINING[key] = torch.tensor([
            i not in special and p is not None and char in tokenizer.convert_tokens_to_string([p])
            for i, p in enumerate(pieces)
        ])
    return _CONTAINING[key]


class StopAfterText:
    """A logits processor that ends a row with EOS right after its text ends in `stop` (e.g. `</answer>`).

    Base models keep writing after the closing answer tag (a new "turn", a second answer that the reward would read
    instead of the first); Oat-Zero stops generation there. As a logits processor the stop runs inside any decode
    loop — `lean_sample` and transformers' own — and leaves a completion that *terminated* (it ends in EOS, so TRL
    counts it as finished, not truncated, and masks nothing after it). For a row whose newest token completes `stop`,
    every logit but EOS becomes -inf, so sampling and argmax both pick EOS (the random draws are the same either way).

    Only rows whose newest token contains the last character of `stop` are decoded (the last `window` tokens), so the
    check costs nothing on most steps.
    """

    def __init__(self, tokenizer: Any, stop: str, eos_token_id: int, prompt_len: int | None = None, window: int = 16):
        self.tokenizer, self.stop, self.eos, self.window = tokenizer, stop, int(eos_token_id), window
        self.prompt_len = prompt_len  # only text after it counts; None = decided on the first call
        self.candidates = _tokens_containing(tokenizer, stop[-1])

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self.prompt_len is None:
            self.prompt_len = input_ids.shape[1]
        if input_ids.shape[1] <= self.prompt_len:
            return scores
        newest = input_ids[:, -1].cpu()
        maybe = self.candidates[newest.clamp(max=len(self.candidates) - 1)].nonzero().flatten().tolist()
        rows = [r for r in maybe if self.ends_in_stop(input_ids[r, self.prompt_len :].tolist())]
        if rows:
            scores[rows] = float("-inf")
            scores[rows, self.eos] = 0.0
        return scores

    def ends_in_stop(self, completion: list[int]) -> bool:
        """Whether the newest token completes `stop` (its text holds one more `stop` than the text before it)."""
        tail = completion[-self.window :]
        text = self.tokenizer.decode(tail, skip_special_tokens=False)
        before = self.tokenizer.decode(tail[:-1], skip_special_tokens=False)
        return text.count(self.stop) > before.count(self.stop)
