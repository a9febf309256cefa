"""Eval generation speed: the batched transformers backend vs a naive one-prompt-at-a-time `generate` loop.

Same model, same prompts, same max_new_tokens, in one run; prints a table and the speed-up, and writes
benchmarks/results/eval_bench.json. Target: >= 2x on 2 CPU cores. The batched backend decodes with
`r1.decoding.lean_sample`; it is also timed with transformers' own decode loop (`lean=False`, same completions).

    .venv/bin/python benchmarks/eval_bench.py [--models tiny:qwen2,embedded:smollm2-135m] [--problems 16]

On a machine shared with other jobs, set OMP_NUM_THREADS=1: oversubscribed torch threads make every number (both
columns) erratic, e.g. 1.3 s instead of 0.1 s per SmolLM2 token.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def naive_generate(model, tokenizer, prompts: list[str], max_new_tokens: int, eos_ids: list[int]) -> int:
    """Baseline: one `model.generate` call per prompt (what a simple eval loop does). Returns tokens generated."""
    import torch

    tokens = 0
    for p in prompts:
        ids = tokenizer(p, return_tensors="pt")
        with torch.inference_mode():
            out = model.generate(
                **ids, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eos_ids, pad_token_id=eos_ids[0]
            )
        new = out[0, ids["input_ids"].shape[1] :].tolist()
        end = next((i for i, t in enumerate(new) if t in eos_ids), None)
        tokens += len(new) if end is None else end + 1
    return tokens


def bench_model(name: str, prompts_text: list[str], template: str, max_new_tokens: int, batch_size: int) -> dict:
    import torch

    from r1.generation import TransformersGenerator
    from r1.models import load_model, load_tokenizer
    from r1.templates import get_template

    tokenizer = load_tokenizer(name)
    model = load_model(name, dtype="float32").eval()
    tmpl = get_template(template)
    prompts = [tmpl.render(p, tokenizer) for p in prompts_text]
    gen = TransformersGenerator(model, tokenizer)
    n_params = sum(p.numel() for p in model.parameters())

    gen.generate(prompts[:2], [0, 1], temperature=0, top_p=1.0, max_new_tokens=4)  # warm-up (allocations, kernels)

    t = time.perf_counter()
    naive_tokens = naive_generate(model, tokenizer, prompts, max_new_tokens, gen.eos_ids)
    naive_s = time.perf_counter() - t

    def batched(generator: TransformersGenerator) -> tuple[float, int, list[str]]:
        t, tokens, texts = time.perf_counter(), 0, []
        for s in range(0, len(prompts), batch_size):
            chunk = prompts[s : s + batch_size]
            out = generator.generate(
                chunk, list(range(len(chunk))), temperature=0, top_p=1.0, max_new_tokens=max_new_tokens
            )
            tokens += sum(c.tokens for c in out)
            texts += [c.text for c in out]
        return time.perf_counter() - t, tokens, texts

    batched_s, batched_tokens, lean_texts = batched(gen)
    loop_s, loop_tokens, loop_texts = batched(TransformersGenerator(model, tokenizer, lean=False))

    return {
        "model": name,
        "parameters": n_params,
        "prompts": len(prompts),
        "max_new_tokens": max_new_tokens,
        "batch_size": batch_size,
        "naive_seconds": naive_s,
        "naive_tokens": naive_tokens,
        "naive_tokens_per_s": naive_tokens / naive_s,
        "batched_seconds": batched_s,
        "batched_tokens": batched_tokens,
        "batched_tokens_per_s": batched_tokens / batched_s,
        "batched_transformers_loop_seconds": loop_s,
        "batched_transformers_loop_tokens_per_s": loop_tokens / loop_s,
        "lean_same_completions": lean_texts == loop_texts,
        "lean_speedup_wall": loop_s / batched_s,
        "speedup_wall": naive_s / batched_s,
        "speedup_tokens_per_s": (batched_tokens / batched_s) / (naive_tokens / naive_s),
        "threads": torch.get_num_threads(),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="tiny:qwen2,embedded:smollm2-135m")
    ap.add_argument("--benchmark", default="gsm8k")
    ap.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--problems", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--template", default="r1_zero")
    ap.add_argument("--output", default=str(ROOT / "benchmarks" / "results" / "eval_bench.json"))
    args = ap.parse_args()

    import torch
    import transformers

    from r1.benchmarks import load_benchmark

    problems = [p["problem"] for p in load_benchmark(args.benchmark, args.data_dir, limit=args.problems)]
    rows = [bench_model(m.strip(), problems, args.template, args.max_new_tokens, args.batch_size) for m in args.models.split(",")]

    print(f"\n{len(problems)} {args.benchmark} prompts, greedy, max_new_tokens={args.max_new_tokens}, batch {args.batch_size}\n")
    print("| model | params | naive s | batched, transformers loop s | batched (lean loop) s | batched tok/s | "
          "speed-up vs naive | lean vs transformers loop |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        same = "same completions" if r["lean_same_completions"] else "COMPLETIONS DIFFER"
        print(
            f"| {r['model']} | {r['parameters'] / 1e6:.2f}M | {r['naive_seconds']:.1f} | "
            f"{r['batched_transformers_loop_seconds']:.1f} | {r['batched_seconds']:.1f} | "
            f"{r['batched_tokens_per_s']:.0f} | {r['speedup_wall']:.1f}x | {r['lean_speedup_wall']:.2f}x, {same} |"
        )
    result = {
        "benchmark": "eval generation: batched transformers backend vs one-prompt-at-a-time generate",
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "torch_threads": torch.get_num_threads(),
            "load_average_1_5_15": os.getloadavg(),  # other jobs on a shared machine slow both columns
        },
        "versions": {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__},
        "settings": {"data": args.benchmark, "problems": len(problems), "template": args.template, "decoding": "greedy"},
        "results": rows,
        "target": ">= 2x speed-up (wall) on 2 CPU cores",
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
