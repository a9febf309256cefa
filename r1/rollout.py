"""Fast GRPO rollouts without vLLM: `FastRolloutMixin` makes TRL's transformers generation path decode with
`r1.decoding.lean_sample` (the tokens `generate` would sample, with less overhead per token).

Mix it in before `GRPOTrainer`. It replaces only the decode loop: TRL still tokenizes, pads, unwraps / gathers the
model and masks after EOS; `generate` still prepares the config, processors, positions and cache. With vLLM
installed and a GPU, use TRL's own switch instead: `use_vllm=True` (`vllm_mode="colocate"` shares the training
GPUs; `vllm_mode="server"` talks to `trl vllm-serve --model MODEL` started on other GPUs); the mixin then steps aside.

Backends (`fast_rollout_backend`): "exact" decodes on the policy itself with a dynamic cache (the same tokens as
TRL on a fixed seed); "compiled" (CUDA, not measured here: no GPU was lent) decodes with a static cache and
`generate`'s compiled forward (`torch.compile`, CUDA graphs) on a bf16 copy of the policy refreshed in place each
optimizer step; "auto" = compiled on CUDA, exact elsewhere. TRL otherwise decodes in fp32 (master weights, no
autocast) with a dynamic cache and compile disabled. `benchmarks/gpu_check.sh` measures it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from transformers import AutoModelForCausalLM, LogitsProcessorList
from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

from r1.decoding import StopAfterText, lean_sample, lean_unsupported_reason, needs_synced_gpus
from r1.models import parse_dtype

logger = logging.getLogger(__name__)


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
    Reads its options from the training arguments (`r1.config.R1GRPOConfig`, their only home):

    - `fast_rollout`: off = TRL's path exactly.
    - `fast_rollout_backend`: "exact" = `lean_sample` on the policy itself with a dynamic cache (the same tokens
      as TRL on a fixed seed); "compiled" = `lean_sample` with a static cache and `generate`'s compiled decode
      forward, on a copy of the weights in `fast_rollout_dtype`, refreshed after every optimizer step (same
      distribution, not the same draws); "auto" = "compiled" on CUDA, "exact" elsewhere.
    - `fast_rollout_dtype`: "auto" = bfloat16 on CUDA when training in bf16 (TRL keeps fp32 master weights and
      generates in fp32 otherwise), else the policy's dtype; or a dtype name.
    """

    def _fast_rollout_reason(self, images: Any, multimodal_fields: Any, has_tool_images: bool) -> str | None:
        """None when the fast path applies; otherwise why not (logged once)."""
        if not self.args.fast_rollout:
            return "disabled (fast_rollout=False)"
        if getattr(self, "use_vllm", False):
            return "vLLM generates"
        if getattr(self, "use_transformers_continuous_batching", False):
            return "continuous batching"
        if images is not None or multimodal_fields or has_tool_images or getattr(self, "_is_vlm", False):
            return "multimodal inputs"
        return lean_unsupported_reason(getattr(self, "generation_config", None))

    def _log_rollout_path(self, message: str) -> None:
        if getattr(self, "_fast_rollout_logged", None) != message:
            logger.info(message)
            self._fast_rollout_logged = message

    def _resolve_backend(self, model: nn.Module) -> tuple[str, torch.dtype]:
        backend = self.args.fast_rollout_backend
        on_cuda = next(model.parameters()).device.type == "cuda"
        if backend == "auto":
            backend = "compiled" if on_cuda else "exact"
        if getattr(self, "_r1_compiled_failed", False):
            backend = "exact"
        policy_dtype = next(model.parameters()).dtype
        dtype_name = self.args.fast_rollout_dtype
        if backend == "exact":
            if dtype_name != "auto" and parse_dtype(dtype_name) != policy_dtype:
                self._log_rollout_path(f"fast rollout: the exact backend samples in the policy's {policy_dtype} "
                                       f"(fast_rollout_dtype {dtype_name} applies to the compiled backend, on CUDA)")
            return backend, policy_dtype
        if dtype_name == "auto":
            dtype = torch.bfloat16 if (on_cuda and self.args.bf16) else policy_dtype
        else:
            dtype = parse_dtype(dtype_name)
        sharded = getattr(self, "is_fsdp_enabled", False) or needs_synced_gpus(model) or is_deepspeed_zero3_enabled()
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

    def _stop_processors(self) -> list[Any]:
        """A fresh `StopAfterText` for the template's `</answer>` when `stop_at_answer` applies (one per generate call:
        it remembers the prompt length)."""
        template = getattr(self, "template", None)
        stop = template.stop_text if template is not None else None
        if not (self.args.stop_at_answer and stop):
            return []
        tokenizer = self.processing_class
        return [StopAfterText(tokenizer, stop, tokenizer.eos_token_id)]

    def _patched(self, generate: Any, **extra: Any) -> Any:
        """`generate` with the stop processors added and `extra` keyword arguments (e.g. `custom_generate`)."""

        def patched(*args: Any, **kwargs: Any) -> Any:
            stops = self._stop_processors()
            if stops:
                kwargs["logits_processor"] = LogitsProcessorList([*(kwargs.get("logits_processor") or []), *stops])
            return generate(*args, **extra, **kwargs)

        return patched

    def _generate_single_turn(
        self, prompt_ids, images, multimodal_fields, num_generations, has_tool_images=False
    ):
        model = self.accelerator.unwrap_model(self.model_wrapped)
        reason = self._fast_rollout_reason(images, multimodal_fields, has_tool_images)
        if reason is not None:
            self._log_rollout_path(f"fast rollout off: {reason}; using TRL's generation path")
            with patched_generate(model, self._patched(model.generate)):  # TRL's loop, same stop rule
                return super()._generate_single_turn(
                    prompt_ids, images, multimodal_fields, num_generations, has_tool_images=has_tool_images
                )
        backend, dtype = self._resolve_backend(model)
        if backend == "exact":
            generate = self._patched(model.generate, custom_generate=lean_sample)
        else:
            replica = self._rollout_replica(model, dtype)
            replica_generate = self._patched(replica.generate, custom_generate=lean_sample)

            def generate(*args: Any, **kwargs: Any) -> Any:
                input_ids = kwargs.get("input_ids", args[0] if args else None)
                kwargs["generation_config"] = static_generation_config(
                    kwargs.get("generation_config") or replica.generation_config, input_ids.shape[-1]
                )
                return replica_generate(*args, **kwargs)

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
