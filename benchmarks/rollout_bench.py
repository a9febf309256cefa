"""Raw rollout speed: completion tokens/s of each available generation backend at several batch sizes.

Backends (each one skipped when it cannot run here):
- `hf_dynamic`  — `model.generate` with the default dynamic cache (what TRL's transformers path runs);
- `hf_static`   — `model.generate(cache_implementation="static")`, compiled decode on CUDA;
- `lean_exact`  — `generate(custom_generate=r1.decoding.lean_sample)`, dynamic cache (the same tokens as `hf_dynamic`);
- `lean_static` — `lean_sample` with a static cache and the compiled decode forward (r1's "compiled" backend);
- `vllm`        — `vllm.LLM.generate` (CUDA and vLLM installed).

Every row generates exactly `--new-tokens` tokens (`min_new_tokens` / `ignore_eos`), sampled at temperature 1.0,
from `--prompt-tokens`-token prompts; the first call of each (backend, batch) is a warm-up (compilation, CUDA graph
capture) and is not timed.

    python benchmarks/rollout_bench.py --size tiny                      # CPU, batches 8,32
    python benchmarks/rollout_bench.py --size 0.5b --batches 64,256,1024   # GPU, Qwen2.5-0.5B shape, bf16

Writes benchmarks/results/rollout_<size>_<device>.json (machine, versions, date, load) and prints a table.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from grpo_step_bench import SIZES, load_average, machine_info, materialise_model, versions  # noqa: E402

BACKENDS = ("hf_dynamic", "hf_static", "lean_exact", "lean_static", "vllm")
DEFAULTS = {  # per device: batches, new tokens, prompt tokens, dtype
    "cpu": dict(batches="8,32", new_tokens=64, prompt_tokens=64, dtype="float32"),
    "cuda": dict(batches="64,256,1024", new_tokens=256, prompt_tokens=64, dtype="bfloat16"),
}


def prompt_batch(batch: int, prompt_tokens: int, vocab: int, device: str) -> dict[str, Any]:
    """Seeded random prompt ids of one length (no padding: a GRPO group shares its prompt length)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(10, min(vocab, 700), (batch, prompt_tokens), generator=gen)
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids).to(device)}


def time_call(fn: Any, device: str, repeats: int) -> list[float]:
    import torch

    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return times


def hf_backends(model: Any, tokenizer: Any, args: argparse.Namespace) -> dict[str, Any]:
    """name -> function(inputs) for the transformers-based backends."""
    import torch
    from transformers import GenerationConfig

    from r1.decoding import lean_sample
    from r1.rollout import static_generation_config

    base = GenerationConfig(
        max_new_tokens=args.new_tokens,
        min_new_tokens=args.new_tokens,
        do_sample=True,
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=[tokenizer.eos_token_id],
    )
    static = static_generation_config(base, args.prompt_tokens)
    eager_static = copy.deepcopy(static)
    if args.device != "cuda":
        eager_static.disable_compile = True

    def run(config: GenerationConfig, sampler: Any = None) -> Any:
        def call(inputs: dict[str, Any]) -> Any:
            with torch.no_grad():
                return model.generate(**inputs, generation_config=config, custom_generate=sampler)

        return call

    return {
        "hf_dynamic": run(base),
        "hf_static": run(eager_static),
        "lean_exact": run(base, lean_sample),
        "lean_static": run(eager_static, lean_sample),
    }


def vllm_backend(model_path: str, args: argparse.Namespace) -> Any:
    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        return None
    llm = LLM(model=model_path, dtype=args.dtype, gpu_memory_utilization=0.6, seed=0, enforce_eager=False)
    params = SamplingParams(
        temperature=1.0, max_tokens=args.new_tokens, min_tokens=args.new_tokens, ignore_eos=True
    )

    def call(inputs: dict[str, Any]) -> Any:
        prompts = [{"prompt_token_ids": row.tolist()} for row in inputs["input_ids"].cpu()]
        return llm.generate(prompts, params, use_tqdm=False)

    return call


def write_report(
    args: argparse.Namespace,
    results: dict[str, dict[str, Any]],
    skipped: dict[str, str],
    n_params: int,
    started: str,
    load_before: Any,
    out: Path,
) -> dict[str, Any]:
    """Write the JSON (after every batch size, so a run cut short by a time limit keeps what it measured)."""
    import torch

    load_after = load_average()
    report = {
        "benchmark": "rollout",
        "size": args.size,
        "device": args.device,
        "dtype": args.dtype,
        "parameters": n_params,
        "date": started,
        "machine": machine_info(args.device),
        "versions": versions(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "threads": args.threads or torch.get_num_threads(),
        "prompt_tokens": args.prompt_tokens,
        "new_tokens": args.new_tokens,
        "repeats": args.repeats,
        "results": results,
        "skipped": skipped,
    }
    base = results.get("hf_dynamic", {})
    report["ratio_over_hf_dynamic"] = {
        name: {
            b: r[b]["tokens_per_s"] / base[b]["tokens_per_s"]
            for b in r
            if "tokens_per_s" in r[b] and "tokens_per_s" in base.get(b, {})
        }
        for name, r in results.items()
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: the size's device")
    parser.add_argument("--batches", default=None, help="comma-separated batch sizes (default: per device)")
    parser.add_argument("--new-tokens", type=int, default=None)
    parser.add_argument("--prompt-tokens", type=int, default=None)
    parser.add_argument(
        "--dtype", default=None, help="model dtype (default: bfloat16 on CUDA, float32 on CPU)"
    )
    parser.add_argument(
        "--backends", default=",".join(BACKENDS), help="comma-separated subset of " + ", ".join(BACKENDS)
    )
    parser.add_argument(
        "--repeats", type=int, default=2, help="timed calls per (backend, batch), after a warm-up"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    import torch

    args.device = args.device or SIZES[args.size]["device"]
    defaults = DEFAULTS[args.device]
    batches = [int(b) for b in (args.batches or defaults["batches"]).split(",")]
    args.new_tokens = args.new_tokens or defaults["new_tokens"]
    args.prompt_tokens = args.prompt_tokens or defaults["prompt_tokens"]
    args.dtype = args.dtype or defaults["dtype"]
    chosen = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = sorted(set(chosen) - set(BACKENDS))
    if unknown:
        parser.error(f"unknown backends {unknown}; choose from {', '.join(BACKENDS)}")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA GPU found; use --device cpu (e.g. --size tiny)", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)

    from r1.models import load_model, load_tokenizer

    model_path = materialise_model(args.size, Path(tempfile.mkdtemp(prefix="rollout_bench_")))
    tokenizer = load_tokenizer(model_path)
    model = load_model(model_path, dtype=args.dtype, device=args.device).eval()
    n_params = sum(p.numel() for p in model.parameters())
    load_before = load_average()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")

    out = (
        Path(args.out)
        if args.out
        else REPO / "benchmarks" / "results" / f"rollout_{args.size}_{args.device}.json"
    )
    calls = hf_backends(model, tokenizer, args)
    if "vllm" in chosen and args.device == "cuda":
        vllm_call = vllm_backend(model_path, args)
        if vllm_call is not None:
            calls["vllm"] = vllm_call
    results: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    runnable = []
    for name in chosen:
        if name in calls:
            runnable.append(name)
            results[name] = {}
        else:
            skipped[name] = "vLLM not importable" if args.device == "cuda" else "needs CUDA"
    for batch in batches:
        inputs = prompt_batch(batch, args.prompt_tokens, model.config.vocab_size, args.device)
        wall: dict[str, list[float]] = {name: [] for name in runnable}
        cpu: dict[str, list[float]] = {name: [] for name in runnable}
        peak: dict[str, int] = {}
        failed: dict[str, str] = {}
        # Warm-up (compilation, graph capture, allocator), then the timed calls round-robin over the backends, so
        # that load drifting on a shared machine hits every backend alike.
        for rep in range(args.repeats + 1):
            for name in runnable:
                if name in failed:
                    continue
                try:
                    if args.device == "cuda":
                        torch.cuda.synchronize()
                        if rep == 0:
                            torch.cuda.reset_peak_memory_stats()
                    torch.manual_seed(rep)
                    t, c = time.perf_counter(), time.process_time()
                    calls[name](inputs)
                    if args.device == "cuda":
                        torch.cuda.synchronize()
                        peak[name] = max(peak.get(name, 0), torch.cuda.max_memory_allocated())
                    if rep > 0:
                        wall[name].append(time.perf_counter() - t)
                        cpu[name].append(time.process_time() - c)
                except Exception as e:  # noqa: BLE001 - one backend failing (e.g. OOM) must not lose the others
                    failed[name] = f"{type(e).__name__}: {e}"[:300]
                    print(f"{name} batch {batch}: {failed[name][:200]}", file=sys.stderr)
                    if args.device == "cuda":
                        torch.cuda.empty_cache()
        tokens = batch * args.new_tokens
        for name in runnable:
            if name in failed:
                results[name][str(batch)] = {"error": failed[name]}
                continue
            entry = {
                "seconds": wall[name],
                "cpu_seconds": cpu[name],
                "tokens_per_s": tokens / min(wall[name]),
                "median_tokens_per_s": tokens / statistics.median(wall[name]),
                "tokens_per_cpu_s": tokens / statistics.median(cpu[name]),
            }
            if name in peak:
                entry["max_memory_allocated_bytes"] = peak[name]
            results[name][str(batch)] = entry
            print(
                f"{name:12s} batch {batch:5d}: {entry['tokens_per_s']:10.0f} tokens/s",
                file=sys.stderr,
                flush=True,
            )
    report = write_report(args, results, skipped, n_params, started, load_before, out)

    print(
        f"\nrollout, size {args.size} ({n_params / 1e6:.1f}M params, {args.dtype}) on {args.device}: "
        f"{args.prompt_tokens}-token prompts, {args.new_tokens} new tokens; load {load_before} -> "
        f"{report['load_average_after']}"
    )
    print(
        f"{'backend':12s} "
        + " ".join(f"{'batch ' + str(b):>16s}" for b in batches)
        + "   (best-of-repeats wall-clock tokens/s, x hf_dynamic)"
    )
    for name, r in results.items():
        cells = []
        for b in batches:
            cell = r.get(str(b), {})
            if "tokens_per_s" in cell:
                ratio = report["ratio_over_hf_dynamic"][name].get(str(b))
                cells.append(
                    f"{cell['tokens_per_s']:9.0f} ({ratio:4.2f}x)"
                    if ratio
                    else f"{cell['tokens_per_s']:16.0f}"
                )
            else:
                cells.append(f"{'error':>16s}")
        print(f"{name:12s} " + " ".join(f"{c:>16s}" for c in cells))
    for name, why in skipped.items():
        print(f"{name:12s} skipped: {why}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
