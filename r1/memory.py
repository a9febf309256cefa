"""Estimated peak memory per device of a GRPO run, before anything is loaded (printed by `--dry_run`).

    shape = model_shape("Qwen/Qwen2.5-Math-7B")        # config.json, the HF cache, or BUILTIN_SHAPES offline
    est = estimate(shape, Workload(...), Engine("zero3", num_processes=8))
    est.peak_gib, est.parts                            # bytes per component

The model is counted from its shape (hidden size, layers, heads, KV heads, MLP width, vocabulary), so a 7B preset
is estimated offline in milliseconds. What is counted, per device:

- **weights**: parameters x their dtype (2 bytes bf16, 4 fp32); FSDP upcasts to fp32 under mixed precision
  (accelerate), so 4 there. Sharded over the processes by ZeRO-3 and FSDP; 0 on the GPU with ZeRO-3 parameter offload.
- **reference model** (beta > 0, full fine-tuning): a second copy of the weights, sharded like them. With LoRA the
  reference is the base with the adapter disabled: nothing.
- **gradients**: trainable parameters x the weights' dtype (fp32 for FSDP); sharded by ZeRO-2/3 and FSDP.
- **optimizer**: AdamW keeps two moments per trainable parameter; mixed-precision engines (DeepSpeed with bf16,
  FSDP) keep them in fp32 plus fp32 master weights (12 bytes); DDP / one process keep them in the weights' dtype
  (2 x dtype bytes: HF's AdamW allocates `zeros_like(param)`). Sharded by ZeRO-1/2/3 and FSDP; 0 with optimizer
  offload. LoRA adapters are fp32 (PEFT upcasts them): 4 + 4 + 8 bytes per adapter parameter, no sharding of note.
- **activations** of one micro-batch (`per_device_train_batch_size` sequences of prompt + completion tokens), kept
  for the backward: per token and layer `act_elements_per_layer` = 8h + 4kv + 4i values (two RMSNorms x input and
  normalised output, q/k/v and their rotated copies, the attention output, gate/up/activation/product of the SwiGLU
  MLP; sdpa/flash attention keeps no s x s scores) in the compute dtype; gradient checkpointing keeps only each layer's input (h values) plus one layer recomputed.
- **logits**: TRL 1.16 scores tokens with a fused LM head (`trl.trainer.utils.add_fused_lm_head`): the logits are
  never materialised whole, only one tile of LOGIT_TILE_TOKENS tokens x LOGIT_TILE_VOCAB vocabulary entries at a time
  (forward and recomputed in the backward), in the compute dtype; the Triton kernel (CUDA) folds a tile in registers
  (LOGIT_BYTES_EXTRA = 4 bytes per entry of margin), the torch fallback (CPU) keeps ~6 fp32 copies of it alive in the
  backward (LOGIT_BYTES_TORCH = 24). Without it a 152k vocabulary would make `micro-batch x completion x vocab` logits the largest tensor.
- **rollout KV cache** (transformers generation): the process's generation batch (`per_device_train_batch_size x
  steps_per_generation` sequences) x (prompt + completion) tokens x layers x 2 x kv_heads x head_dim x dtype. ZeRO-3
  gathers the whole model for generation (`ds3_gather_for_generation`, TRL's default): a full copy of the weights
  during the rollout. The compiled fast-rollout backend adds a bf16 copy of fp32 weights (r1/rollout.py). Plus one
  decode step's logits (generation batch x vocabulary, and their fp32 copy for sampling).
- **vLLM** colocated: `vllm_gpu_memory_utilization x gpu_memory_gib` reserved up front (its weights and KV cache live
  there, so the transformers KV cache is not counted); server mode: on other GPUs, 0 here.

Peak = weights + reference + optimizer + vLLM + max(training phase: gradients + activations + logits, rollout
phase: KV cache + gathered / copied weights). Not counted: the CUDA context and allocator fragmentation (~1-3 GiB per
GPU), DeepSpeed's communication buckets, the reward workers (CPU). `benchmarks/memory_check.py` checks the estimate
against measured peaks of real CPU training steps.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

GIB = 1024**3
LOGIT_BYTES_EXTRA = 4  # per logits-tile entry beyond the compute-dtype tile, Triton kernel (CUDA)
LOGIT_BYTES_TORCH = 24  # ... torch fallback (CPU): y, z, log_p, p, grad and one temporary, fp32 (_backward_tile)
LOGIT_TILE_TOKENS = 4096  # trl.kernels.chunked_logprob.TOKEN_CHUNK_SIZE
LOGIT_TILE_VOCAB = 32768  # trl.trainer.utils._CHUNKED_LOGPROB_CHUNK_SIZE
DEFAULT_PROMPT_TOKENS = 512  # when the data cannot be looked at (an offline hub dataset)
CHARS_PER_TOKEN = 3.0  # a conservative tokens-from-characters estimate for the longest rendered prompt


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs of a decoder-only transformer (Llama / Qwen2 family: SwiGLU MLP, GQA attention)."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    intermediate: int
    vocab: int
    tied: bool
    head_dim: int | None = None
    n_params: int | None = None  # exact count when known (safetensors headers); else computed from the shape
    source: str = ""
    dtype_bytes: int = 2  # the checkpoint's dtype (dtype: auto loads it)

    @property
    def dim(self) -> int:
        return self.head_dim or self.hidden // self.heads

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.dim

    def linear_shapes(self) -> dict[str, tuple[int, int]]:
        """(in, out) of every linear layer of one block, by module name."""
        h, q, kv, i = self.hidden, self.heads * self.dim, self.kv_dim, self.intermediate
        return {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h),
                "gate_proj": (h, i), "up_proj": (h, i), "down_proj": (i, h)}

    def params(self) -> int:
        if self.n_params:
            return self.n_params
        block = sum(a * b for a, b in self.linear_shapes().values()) + 2 * self.hidden
        embeddings = self.vocab * self.hidden * (1 if self.tied else 2)
        return self.layers * block + embeddings + self.hidden

    def lora_params(self, r: int, targets: list[str]) -> int:
        """Adapter parameters of rank r on the linear layers named by `targets` (all-linear = every block linear)."""
        chosen = self.linear_shapes() if "all-linear" in targets else {
            k: v for k, v in self.linear_shapes().items() if k in targets}
        return self.layers * sum(r * (a + b) for a, b in chosen.values())


# Shapes of the presets' models, from their published config.json files on the Hugging Face hub (hidden_size,
# num_hidden_layers, num_attention_heads, num_key_value_heads, intermediate_size, vocab_size, tie_word_embeddings),
# so a dry run estimates them offline. Qwen2.5 configs: huggingface.co/Qwen/<name>/blob/main/config.json.
BUILTIN_SHAPES: dict[str, ModelShape] = {
    "Qwen/Qwen2.5-Math-7B": ModelShape(3584, 28, 28, 4, 18944, 152064, False, source="built-in (Qwen2.5-Math-7B config.json)"),
    "Qwen/Qwen2.5-7B": ModelShape(3584, 28, 28, 4, 18944, 152064, False, source="built-in (Qwen2.5-7B config.json)"),
    "Qwen/Qwen2.5-3B": ModelShape(2048, 36, 16, 2, 11008, 151936, True, source="built-in (Qwen2.5-3B config.json)"),
    "Qwen/Qwen2.5-Math-1.5B": ModelShape(1536, 28, 12, 2, 8960, 151936, True, source="built-in (Qwen2.5-Math-1.5B config.json)"),
    "Qwen/Qwen2.5-Coder-1.5B": ModelShape(1536, 28, 12, 2, 8960, 151936, True, source="built-in (Qwen2.5-Coder-1.5B config.json)"),
    # SmolLM2-135M-Instruct (HuggingFaceTB), the embedded demo model
    "embedded:smollm2-135m": ModelShape(576, 30, 9, 3, 1536, 49152, True, source="built-in (SmolLM2-135M config.json)",
                                        dtype_bytes=4),  # converted to float32 (r1.models)
}


def shape_from_config(config: dict[str, Any], source: str, n_params: int | None = None) -> ModelShape:
    """A ModelShape from a config.json mapping (Llama/Qwen2 names; MoE and MLA models are approximated as dense)."""
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    return ModelShape(
        hidden=hidden, layers=int(config["num_hidden_layers"]), heads=heads,
        kv_heads=int(config.get("num_key_value_heads") or heads), intermediate=int(config["intermediate_size"]),
        vocab=int(config["vocab_size"]), tied=bool(config.get("tie_word_embeddings", False)),
        head_dim=config.get("head_dim"), n_params=n_params, source=source,
        dtype_bytes=4 if str(config.get("dtype") or config.get("torch_dtype")) == "float32" else 2,
    )


def safetensors_params(folder: Path) -> int | None:
    """The exact parameter count of a model folder, from its safetensors headers (no weights read)."""
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return None
    total = 0
    for f in files:
        with open(f, "rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            header = json.loads(fh.read(size))
        for name, meta in header.items():
            if name != "__metadata__":
                n = 1
                for d in meta["shape"]:
                    n *= d
                total += n
    return total


def model_shape(name: str, folder: str | None = None) -> ModelShape | None:
    """The shape of model `name`: its folder's config.json (exact parameter count from the safetensors headers),
    else the built-in table, else the Hugging Face cache; None when unknown."""
    if folder and (Path(folder) / "config.json").is_file():
        config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
        return shape_from_config(config, f"{folder}/config.json", safetensors_params(Path(folder)))
    if name in BUILTIN_SHAPES:
        return BUILTIN_SHAPES[name]
    if name.startswith("tiny:"):
        return _tiny_shape(name)
    try:
        from huggingface_hub import try_to_load_from_cache  # local: only for a hub id that is not built in

        cached = try_to_load_from_cache(name, "config.json")
    except Exception:  # noqa: BLE001 - not a hub id, or no cache: unknown shape
        return None
    if isinstance(cached, str):
        return shape_from_config(json.loads(Path(cached).read_text(encoding="utf-8")), "the hub cache's config.json")
    return None


def _tiny_shape(name: str) -> ModelShape | None:
    """The tiny test models' shapes without building them (r1.models._tiny_config)."""
    from r1.models import TINY_VOCAB_SIZE, _tiny_config  # local: models imports transformers; tiny names only

    arch = name.split(":", 1)[1]
    try:
        config = _tiny_config(arch, TINY_VOCAB_SIZE, {"bos": 0, "eos": 1, "pad": 2})
    except AssertionError:
        return None
    return dataclasses.replace(shape_from_config(config.to_dict(), f"r1.models tiny:{arch}"), dtype_bytes=4)


@dataclass(frozen=True)
class Engine:
    """How the training state is spread over `num_processes` devices."""

    name: str = "ddp"  # ddp (also one process), zero1, zero2, zero3, fsdp
    num_processes: int = 1
    offload_optimizer: bool = False
    offload_params: bool = False

    @property
    def stage(self) -> int:
        return {"zero1": 1, "zero2": 2, "zero3": 3}.get(self.name, 0)

    def label(self) -> str:
        offload = [w for w, on in (("optimizer", self.offload_optimizer), ("params", self.offload_params)) if on]
        extra = f" + CPU offload ({', '.join(offload)})" if offload else ""
        name = {"ddp": "DDP", "fsdp": "FSDP"}.get(self.name, f"ZeRO-{self.stage}")
        if self.num_processes == 1 and self.name == "ddp":
            return "1 process"
        return f"{name}{extra}, {self.num_processes} processes"


def launch_engine(env: dict[str, str] | None = None) -> Engine:
    """The engine `accelerate launch` configured for this process (its ACCELERATE_* variables), else one process."""
    env = os.environ if env is None else env
    n = int(env.get("WORLD_SIZE", "1") or 1)
    if env.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        stage = int(env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "2") or 2)
        return Engine(f"zero{stage}" if stage else "ddp", n,
                      env.get("ACCELERATE_DEEPSPEED_OFFLOAD_OPTIMIZER_DEVICE", "none") not in ("none", ""),
                      env.get("ACCELERATE_DEEPSPEED_OFFLOAD_PARAM_DEVICE", "none") not in ("none", ""))
    if env.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return Engine("fsdp", n, offload_params=env.get("FSDP_OFFLOAD_PARAMS", "").lower() == "true")
    return Engine("ddp", n)


@dataclass(frozen=True)
class Workload:
    """The run's settings that decide memory (from R1GRPOConfig / ModelArguments)."""

    micro_batch: int
    steps_per_generation: int
    prompt_tokens: int
    completion_tokens: int
    weight_bytes: int = 2  # the loaded dtype: 2 (bf16/fp16) or 4 (fp32)
    bf16: bool = True  # mixed precision (bf16 / fp16 training)
    gradient_checkpointing: bool = True
    beta: float = 0.0
    use_peft: bool = False
    lora_r: int = 16
    lora_targets: list[str] = field(default_factory=lambda: ["all-linear"])
    use_vllm: bool = False
    vllm_mode: str = "colocate"
    vllm_gpu_memory_utilization: float = 0.3
    rollout_copy_bytes: int = 0  # the compiled fast-rollout backend's copy (bytes per parameter), 0 when none
    ds3_gather_for_generation: bool = True
    gpu_memory_gib: float = 80.0
    logits_torch_path: bool = False  # the fused LM head without Triton (CPU): more fp32 temporaries per tile


@dataclass
class Estimate:
    parts: dict[str, float]  # bytes per device, by component
    peak: float
    shape: ModelShape
    engine: Engine
    n_params: int
    trainable: int

    @property
    def peak_gib(self) -> float:
        return self.peak / GIB


def act_elements_per_layer(shape: ModelShape) -> int:
    """Values kept per token per layer for the backward (see the module doc)."""
    return 8 * shape.hidden + 4 * shape.kv_dim + 4 * shape.intermediate


def _state_bytes(shape: ModelShape, w: Workload, e: Engine) -> dict[str, float]:
    """weights, reference, gradients, optimizer per device."""
    n = shape.params()
    p = max(e.num_processes, 1)
    fsdp = e.name == "fsdp"
    param_bytes = 4 if (fsdp and w.bf16) else w.weight_bytes  # accelerate upcasts FSDP parameters under mixed precision
    shard_weights = p if (e.stage == 3 or fsdp) else 1
    weights = 0.0 if (e.offload_params and shard_weights > 1) else n * param_bytes / shard_weights
    reference = 0.0 if (w.use_peft or w.beta == 0) else n * w.weight_bytes / shard_weights
    if w.use_peft:
        t = shape.lora_params(w.lora_r, w.lora_targets)
        return {"weights": weights + 4 * t, "reference model": reference, "gradients": 4.0 * t,
                "optimizer": 0.0 if e.offload_optimizer else 8.0 * t}
    if e.stage > 0:  # DeepSpeed: fp32 moments, plus fp32 master weights when the weights are 16-bit
        per_param = 8 if w.weight_bytes == 4 else 12
    elif fsdp:  # fp32 parameters (upcast) are their own master weights
        per_param = 8
    else:  # DDP / one process: torch AdamW moments in the parameters' dtype
        per_param = 2 * w.weight_bytes
    grads = n * param_bytes / (p if (e.stage >= 2 or fsdp) else 1)
    optimizer = 0.0 if e.offload_optimizer else n * per_param / (p if (e.stage >= 1 or fsdp) else 1)
    return {"weights": weights, "reference model": reference, "gradients": grads, "optimizer": optimizer}


def estimate(shape: ModelShape, w: Workload, e: Engine) -> Estimate:
    """Peak bytes per device of one GRPO step (see the module doc for each part)."""
    n = shape.params()
    parts = _state_bytes(shape, w, e)
    act_bytes = 2 if (w.bf16 or w.weight_bytes < 4) else 4  # bf16 autocast or 16-bit weights, else fp32
    tokens = w.micro_batch * (w.prompt_tokens + w.completion_tokens)
    if w.gradient_checkpointing:
        act = tokens * (shape.layers * shape.hidden + act_elements_per_layer(shape)) * act_bytes
    else:
        act = tokens * shape.layers * act_elements_per_layer(shape) * act_bytes
    parts["activations"] = float(act)
    tile = min(tokens, LOGIT_TILE_TOKENS) * min(shape.vocab, LOGIT_TILE_VOCAB)
    parts["logits"] = float(tile * (act_bytes + (LOGIT_BYTES_TORCH if w.logits_torch_path else LOGIT_BYTES_EXTRA)))
    colocated = w.use_vllm and w.vllm_mode == "colocate"
    if w.use_vllm:
        parts["rollout KV cache"] = 0.0
        parts["rollout weights"] = 0.0
        parts["vLLM (colocated)"] = w.vllm_gpu_memory_utilization * w.gpu_memory_gib * GIB if colocated else 0.0
    else:
        gen = w.micro_batch * w.steps_per_generation
        kv_bytes = w.rollout_copy_bytes or w.weight_bytes
        parts["rollout KV cache"] = float(gen * (w.prompt_tokens + w.completion_tokens) * shape.layers * 2
                                          * shape.kv_dim * kv_bytes + gen * shape.vocab * (kv_bytes + 4))
        gathered = n * w.weight_bytes * (1 - 1 / max(e.num_processes, 1)) if (
            e.stage == 3 and w.ds3_gather_for_generation) else 0.0
        if e.stage == 3 and e.offload_params and w.ds3_gather_for_generation:
            gathered = n * w.weight_bytes
        parts["rollout weights"] = gathered + n * w.rollout_copy_bytes
        parts["vLLM (colocated)"] = 0.0
    train_phase = parts["gradients"] + parts["activations"] + parts["logits"]
    rollout_phase = parts["rollout KV cache"] + parts["rollout weights"]
    resident = parts["weights"] + parts["reference model"] + parts["optimizer"] + parts["vLLM (colocated)"]
    trainable = shape.lora_params(w.lora_r, w.lora_targets) if w.use_peft else n
    return Estimate(parts, resident + max(train_phase, rollout_phase), shape, e, n, trainable)


def table_lines(est: Estimate, limit_gib: float | None = None) -> list[str]:
    """The estimate as aligned lines: one per component (GiB), then the peak (with the phase rule)."""
    lines = [f"estimated peak memory per device ({est.engine.label()}; {est.n_params / 1e9:.3g}B parameters, "
             f"{est.trainable / 1e6:.4g}M trainable; shape from {est.shape.source}):"]
    for name, value in est.parts.items():
        lines.append(f"  {name:<18} {value / GIB:9.2f} GiB")
    over = f"  > {limit_gib:g} GiB" if limit_gib is not None and est.peak_gib > limit_gib else ""
    lines.append(f"  {'peak':<18} {est.peak_gib:9.2f} GiB  (resident + max(training phase, rollout phase)){over}")
    return lines


# ----------------------------------------------------------------------------------------------------------------
# A run's estimate (what --dry_run prints)
# ----------------------------------------------------------------------------------------------------------------

DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
ENGINES_AT_SCALE = ("ddp", "zero2", "zero3", "zero3+offload", "fsdp")


def prompt_tokens(dataset: Any, template: Any) -> int:
    """The longest rendered prompt of the training set in tokens (characters / CHARS_PER_TOKEN, no tokenizer in a
    dry run), or DEFAULT_PROMPT_TOKENS when the data is not at hand."""
    if dataset is None or len(dataset) == 0:
        return DEFAULT_PROMPT_TOKENS
    longest = max(dataset["problem"], key=lambda p: len(str(p)))
    return int(len(template.render(str(longest), None)) / CHARS_PER_TOKEN) + 1


def workload(run: Any, prompt_len: int, shape: ModelShape) -> Workload:
    """The memory-relevant settings of a parsed run (r1.config.RunConfig)."""
    t, m = run.training, run.model
    weight_bytes = DTYPE_BYTES.get(m.dtype, shape.dtype_bytes)
    compiled = t.fast_rollout and not t.use_vllm and t.fast_rollout_backend in ("auto", "compiled") and not m.use_peft
    copy = 2 if (compiled and t.bf16 and weight_bytes == 4 and t.fast_rollout_dtype == "auto") else 0
    return Workload(
        micro_batch=t.per_device_train_batch_size, steps_per_generation=t.steps_per_generation,
        prompt_tokens=prompt_len, completion_tokens=t.max_completion_length, weight_bytes=weight_bytes,
        bf16=bool(t.bf16 or t.fp16), gradient_checkpointing=bool(t.gradient_checkpointing), beta=t.beta,
        use_peft=m.use_peft, lora_r=m.lora_r, lora_targets=list(m.lora_target_modules or []), use_vllm=t.use_vllm,
        vllm_mode=t.vllm_mode, vllm_gpu_memory_utilization=t.vllm_gpu_memory_utilization, rollout_copy_bytes=copy,
        ds3_gather_for_generation=t.ds3_gather_for_generation, gpu_memory_gib=t.gpu_memory_gib,
    )


def engine_named(name: str, num_processes: int) -> Engine:
    if name == "zero3+offload":
        return Engine("zero3", num_processes, offload_optimizer=True, offload_params=True)
    return Engine(name, num_processes)


def dry_run_memory_lines(run: Any, model_path: str | None, dataset: Any, template: Any,
                         engine: Engine | None = None, at_scale: int = 8) -> list[str]:
    """The estimate for this launch, a WARNING when its peak exceeds gpu_memory_gib, and, for a one-process
    dry run, the peak under each engine on `at_scale` devices."""
    name = run.model.model_name_or_path
    shape = model_shape(name, model_path)
    if shape is None:
        return [f"memory: no estimate (the shape of {name} is unknown offline; pass a local folder or cache it)"]
    w = workload(run, prompt_tokens(dataset, template), shape)
    est = estimate(shape, w, engine or launch_engine())
    limit = run.training.gpu_memory_gib
    lines = table_lines(est, limit)
    if est.engine.num_processes == 1 and at_scale > 1:
        peaks = {e: estimate(shape, w, engine_named(e, at_scale)).peak_gib for e in ENGINES_AT_SCALE}
        lines.append(f"  on {at_scale} devices: " + ", ".join(f"{e} {v:.1f} GiB" for e, v in peaks.items()))
    if est.peak_gib > limit:
        lines.append(f"WARNING estimated peak memory {est.peak_gib:.1f} GiB per device exceeds gpu_memory_gib "
                     f"{limit:g}: shard it (recipes/accelerate/zero3.yaml, zero3_offload.yaml), train LoRA "
                     "(--use_peft true), or lower per_device_train_batch_size / max_completion_length "
                     "(with gradient_accumulation_steps to keep the batch)")
    return lines
