"""Batched completion generation for evaluation: a transformers backend (any device) and a vLLM backend (GPU).

Reproducibility contract: the completion of a prompt depends only on the model, the prompt, the sampling settings
and the per-row seed the caller passes — not on which other prompts share its batch, nor on the global RNG. Each row
samples from its own `torch.Generator` (transformers) or its own request seed (vLLM), so a resumed evaluation
regenerates exactly what an uninterrupted one would have. (Float results of a batched forward can still differ in
the last bits between batch shapes; the runner therefore also keeps its batch plan fixed.)
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Protocol

import torch
from transformers import GenerationConfig, LogitsProcessorList

from r1.decoding import StopAfterText, lean_sample, needs_synced_gpus

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "transformers", "vllm")


@dataclass(frozen=True)
class Completion:
    """One generated continuation: text (special tokens removed, EOS excluded), tokens generated (EOS included), and
    whether it hit `max_new_tokens` before EOS."""

    text: str
    tokens: int
    truncated: bool


class Generator(Protocol):
    name: str

    def generate(
        self, prompts: list[str], seeds: list[int], *, temperature: float, top_p: float, max_new_tokens: int
    ) -> list[Completion]: ...


def sample_seed(seed: int, problem_key: str, sample_index: int) -> int:
    """A 63-bit seed for one (problem, sample) pair, independent of batching and of the order of the work."""
    digest = hashlib.sha256(f"{seed}\x00{problem_key}\x00{sample_index}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (2**63 - 1)


# The vLLM releases TRL 1.16 supports (trl.import_utils.is_vllm_available); pyproject's `vllm` extra pins the same.
VLLM_SUPPORTED = ((0, 22, 0), (0, 31, 0))


def installed_vllm_version() -> str | None:
    """The installed vLLM version string, None when vLLM is not installed (no import of vLLM itself)."""
    try:
        return version("vllm")
    except PackageNotFoundError:
        return None


def vllm_version_problem(installed: str | None) -> str | None:
    """One line saying why the installed vLLM cannot be used (None when it can): missing, or outside the range
    that TRL 1.16 supports. `installed` is a version string such as "0.30.1" or "0.10.2+cu128"."""
    lo, hi = VLLM_SUPPORTED
    want = f"{'.'.join(map(str, lo))} to {'.'.join(map(str, hi))}"
    if installed is None:
        return f"vLLM is not installed; pip install 'r1-zero[vllm]' (vLLM {want})"
    m = re.match(r"\s*(\d+)\.(\d+)(?:\.(\d+))?", installed)  # release part only: 0.30.1rc1+cu128 -> 0.30.1
    if m is None or not lo <= (int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)) <= hi:
        return (f"vLLM {installed} is installed but r1-zero (through TRL 1.16) supports vLLM {want}; "
                "pip install 'r1-zero[vllm]' to get a supported version")
    return None


def check_vllm_version(installed: str | None = None) -> str:
    """Raise ValueError with one line unless a supported vLLM is installed; returns its version."""
    installed = installed if installed is not None else installed_vllm_version()
    problem = vllm_version_problem(installed)
    if problem:
        raise ValueError(problem)
    return str(installed)


def vllm_available() -> bool:
    if importlib.util.find_spec("vllm") is None:
        return False
    return torch.cuda.is_available()


def resolve_backend(requested: str) -> str:
    """`auto` → vLLM when a supported version is importable and a GPU is present, else transformers. An explicit
    `vllm` checks the installed version first (one line when it is missing or unsupported)."""
    if requested not in BACKENDS:
        raise ValueError(f"unknown backend {requested!r}; choose one of: {', '.join(BACKENDS)}")
    if requested == "auto":
        if not vllm_available():
            return "transformers"
        problem = vllm_version_problem(installed_vllm_version())
        if problem:
            logger.warning("%s; using the transformers backend", problem)
            return "transformers"
        return "vllm"
    if requested == "vllm":
        try:
            check_vllm_version()
        except ValueError as e:
            raise ValueError(f"--backend vllm: {e}, or use --backend transformers") from None
    return requested


def _eos_ids(model: Any, tokenizer: Any) -> list[int]:
    ids: list[int] = []
    for source in (getattr(getattr(model, "generation_config", None), "eos_token_id", None), tokenizer.eos_token_id):
        for i in source if isinstance(source, (list, tuple)) else [source]:
            if i is not None and int(i) not in ids:
                ids.append(int(i))
    if not ids:
        raise ValueError("the tokenizer and the model's generation config define no EOS token")
    return ids


class _PerRowSampler:
    """Logits processor that samples each row with its own generator (temperature, top-p), then masks every other
    token so the (greedy) decoding step picks exactly the sampled one.

    Sampling is by inverse CDF over the tokens in probability order, with one uniform draw per row and step. Top-p
    looks at the `candidates` most likely tokens first (a top-k is far cheaper than sorting a 150k vocabulary) and
    sorts the whole row only when those do not reach top_p — a per-row decision, so rows stay batch-independent.
    """

    candidates = 1024

    def __init__(self, seeds: list[int], temperature: float, top_p: float):
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.temperature = temperature
        self.top_p = top_p

    def _pick(self, probs: Any, order: Any, u: Any) -> Any:
        """Inverse-CDF draw from `probs` (one row per sample; sorted descending when `order` maps them to tokens)."""
        if self.top_p < 1.0:  # nucleus: keep tokens until their mass reaches top_p (the top token always stays)
            probs = probs * ((probs.cumsum(-1) - probs) < self.top_p)
        cdf = probs.cumsum(-1)
        pick = torch.searchsorted(cdf, u.unsqueeze(-1) * cdf[:, -1:])  # first cdf >= u: a token with mass
        pick = pick.clamp_(max=cdf.shape[-1] - 1)
        return pick if order is None else order.gather(-1, pick)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        logits = scores.float() / self.temperature
        u = torch.stack([torch.rand((), generator=g, dtype=torch.float64) for g in self.generators])
        u = u.to(logits.device, logits.dtype)
        if self.top_p >= 1.0:
            pick = self._pick(torch.softmax(logits, dim=-1), None, u)
        else:
            lse = logits.logsumexp(dim=-1, keepdim=True)
            top, order = logits.topk(min(self.candidates, logits.shape[-1]), dim=-1)
            probs = (top - lse).exp()
            short = probs.sum(-1) < self.top_p  # the nucleus reaches beyond the candidates: sort these rows fully
            pick = torch.empty((logits.shape[0], 1), dtype=torch.long, device=logits.device)
            pick[~short] = self._pick(probs[~short], order[~short], u[~short])
            if short.any():
                full, full_order = logits[short].sort(dim=-1, descending=True)
                pick[short] = self._pick((full - lse[short]).exp(), full_order, u[short])
        out = torch.full_like(scores, float("-inf"))
        return out.scatter_(-1, pick, 0.0)


class TransformersGenerator:
    """Generates with `model.generate`: whole batches, left padding, KV cache, per-row seeded sampling.

    Works on a model already in memory (the training demo) and restores its train/eval mode afterwards. The model's
    own generation_config (repetition penalties, top_k, …) is ignored so numbers depend only on the eval settings.
    The decode loop is `r1.decoding.lean_sample` (the tokens `generate`'s own loop would produce, with less overhead
    per token); `lean=False` runs transformers' loop.
    """

    name = "transformers"

    def __init__(self, model: Any, tokenizer: Any, lean: bool = True, stop: str | None = None):
        self.model = model
        self.tokenizer = tokenizer
        self.lean = lean
        self.stop = stop  # e.g. "</answer>": the completion ends right after it (r1.decoding.StopAfterText)
        self.eos_ids = _eos_ids(model, tokenizer)
        pad = tokenizer.pad_token_id
        self.pad_id = int(pad) if pad is not None else self.eos_ids[0]

    @property
    def lockstep(self) -> bool:
        """Sharded weights (ZeRO-3 / FSDP) over several processes: every `generate` call runs collectives, so all
        ranks must make the same calls (a rank with nothing to do generates a stand-in batch)."""
        return needs_synced_gpus(self.model)

    def _left_pad(self, prompts: list[str]) -> tuple[Any, Any]:
        ids = self.tokenizer(prompts, add_special_tokens=True)["input_ids"]  # as TRL tokenizes text prompts
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, x in enumerate(ids):
            if x:
                input_ids[row, width - len(x) :] = torch.tensor(x)
                mask[row, width - len(x) :] = 1
        return input_ids, mask

    def generate(
        self, prompts: list[str], seeds: list[int], *, temperature: float, top_p: float, max_new_tokens: int
    ) -> list[Completion]:
        if len(prompts) != len(seeds):
            raise ValueError("one seed per prompt")
        if not prompts:
            return []
        input_ids, mask = self._left_pad(prompts)
        device = next(self.model.parameters()).device
        config = GenerationConfig(
            max_new_tokens=max_new_tokens,
            do_sample=False,  # sampling happens in _PerRowSampler; the decoding step then takes its only finite token
            eos_token_id=self.eos_ids,
            pad_token_id=self.pad_id,
            use_cache=True,
        )
        processors = LogitsProcessorList([_PerRowSampler(seeds, temperature, top_p)] if temperature > 0 else [])
        if self.stop:  # after the sampler: a row that just closed the answer gets EOS whatever was drawn
            processors.append(StopAfterText(self.tokenizer, self.stop, self.eos_ids[0]))
        model_config, was_training = self.model.generation_config, self.model.training
        self.model.generation_config = GenerationConfig()  # no inherited penalties / suppressions / top_k
        self.model.eval()
        try:
            # no inference tensors in FSDP's unsharded parameter buffers: training writes to them in place afterwards
            with torch.no_grad() if self.lockstep else torch.inference_mode():
                out = self.model.generate(
                    input_ids=input_ids.to(device),
                    attention_mask=mask.to(device),
                    generation_config=config,
                    logits_processor=processors,
                    custom_generate=lean_sample if self.lean else None,
                )
        finally:
            self.model.generation_config = model_config
            self.model.train(was_training)
        new = out[:, input_ids.shape[1] :].tolist()
        eos = set(self.eos_ids)
        kept, counts, truncated = [], [], []
        for row in new:
            end = next((i for i, t in enumerate(row) if t in eos), None)
            kept.append(row if end is None else row[:end])
            counts.append(len(row) if end is None else end + 1)
            truncated.append(end is None)
        texts = self.tokenizer.batch_decode(kept, skip_special_tokens=True)
        return [Completion(t, n, tr) for t, n, tr in zip(texts, counts, truncated, strict=True)]


class VLLMGenerator:
    """vLLM backend (GPU): one request per (problem, sample) with its own seed; prompts go in as token ids tokenized
    exactly like the transformers backend, so both backends see identical inputs."""

    name = "vllm"
    lockstep = False  # each process has its own engine

    def __init__(self, model_path: str, tokenizer: Any, *, dtype: str = "auto", trust_remote_code: bool = False,
                 stop: str | None = None, tensor_parallel_size: int = 1, max_model_len: int | None = None,
                 gpu_memory_utilization: float = 0.9):
        from vllm import LLM  # lazy: optional dependency, GPU only

        self.tokenizer = tokenizer
        self.stop = stop
        self.llm = LLM(model=model_path, dtype=dtype, trust_remote_code=trust_remote_code,
                       tensor_parallel_size=tensor_parallel_size, max_model_len=max_model_len,
                       gpu_memory_utilization=gpu_memory_utilization)

    def generate(
        self, prompts: list[str], seeds: list[int], *, temperature: float, top_p: float, max_new_tokens: int
    ) -> list[Completion]:
        from vllm import SamplingParams  # lazy: optional dependency, GPU only

        ids = self.tokenizer(prompts, add_special_tokens=True)["input_ids"]
        params = [
            SamplingParams(
                n=1,
                temperature=temperature,
                top_p=top_p if temperature > 0 else 1.0,
                max_tokens=max_new_tokens,
                seed=s,
                skip_special_tokens=True,
                stop=[self.stop] if self.stop else None,
                include_stop_str_in_output=True,  # the completion keeps its closing tag, as with transformers
            )
            for s in seeds
        ]
        outs = self.llm.generate([{"prompt_token_ids": x} for x in ids], params, use_tqdm=False)
        return [
            Completion(o.outputs[0].text, len(o.outputs[0].token_ids), o.outputs[0].finish_reason == "length")
            for o in outs
        ]
