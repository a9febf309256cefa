"""The memory estimate (r1/memory.py) against measured peaks of real training steps on CPU, and the presets' table.

    python benchmarks/memory_check.py            # measure (tiny:qwen2, embedded:smollm2-135m), print, write JSON
    python benchmarks/memory_check.py --presets  # only the presets' estimates on 1 and 8 GPUs of 80 GB

Measured: each case runs in a fresh Python process that imports everything (torch, TRL, r1), records ru_maxrss
(the baseline: the loaded interpreter), then trains a few GRPO steps in-process through r1.train (one process, CPU,
fp32) and records ru_maxrss again. The difference is the run's peak (weights, reference model, gradients, Adam
state, activations, rollout cache, allocator slack). The estimate is computed for the same run (one process, the
rendered prompts' real token length). Results: benchmarks/results/memory_check.json, memory_presets.json.
`--cpu_retain_freed_memory false`: glibc then returns large freed blocks, so RSS follows the live tensors more closely.

Reading the numbers: RSS is an allocator's high-water mark, not the sum of live tensors. A probe of the SmolLM2 LoRA
run (RSS at each phase) showed the live memory after the loss forward = activations + one logits tile of the estimate
within 1 % (4957 vs 4913 MiB); the rest of the measured peak comes in the backward (activation gradients, the fused
head's recomputed tile next to the forward's freed-but-retained one) and is not modelled. On a GPU the caching
allocator behaves differently; this CPU check bounds the model terms, it does not calibrate a GPU's slack.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
sys.path.insert(0, str(REPO))

CASES = {
    "tiny:qwen2 full beta 0.04": ["--config", "tests/configs/tiny_qwen2.yaml", "--beta", "0.04",
                                     "--per_device_train_batch_size", "16", "--max_completion_length", "64"],
    "tiny:qwen2 LoRA r16": ["--config", "tests/configs/tiny_qwen2.yaml", "--use_peft", "true",
                              "--per_device_train_batch_size", "16", "--max_completion_length", "64", "--beta", "0.04"],
    "smollm2-135m demo settings": ["--config", "recipes/configs/demo.yaml", "--heldout_size", "0",
                                     "--max_train_seconds", "100000"],
    "smollm2-135m LoRA r16": ["--config", "recipes/configs/demo.yaml", "--heldout_size", "0", "--use_peft", "true",
                                "--max_train_seconds", "100000"],
}
COMMON = ["--max_steps", "2", "--save_strategy", "no", "--cpu_retain_freed_memory", "false", "--sample_log_steps", "0", "--logging_steps", "1",
          "--overwrite_output_dir", "true", "--plot_every_s", "100000"]

CHILD = r"""
import json, resource, sys
import torch, trl, transformers, datasets, peft, matplotlib.pyplot  # the baseline includes the libraries
import r1.trainer  # and the trainer's own imports (accelerate, deepspeed when installed)
from r1.config import parse_args
from r1.train import prepare, train
import r1.memory as memory
from r1.memory import Engine, estimate, model_shape, workload

run = parse_args(sys.argv[1:])
plan = prepare(run)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
# the real prompt length: the longest rendered prompt in tokens (the dry run guesses it from characters)
from r1.models import load_tokenizer
tok = load_tokenizer(plan.model_path)
longest = max(len(tok(plan.template.render(str(p), tok))["input_ids"]) for p in plan.dataset["problem"])
train(run, plan)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
shape = model_shape(run.model.model_name_or_path, plan.model_path)
import dataclasses
w = dataclasses.replace(workload(run, longest, shape), logits_torch_path=True)  # CPU: TRL's torch fallback
est = estimate(shape, w, Engine("ddp", 1))
print("RESULT " + json.dumps({"baseline": base, "peak": peak, "measured": peak - base, "estimate": est.peak,
                              "parts": est.parts, "prompt_tokens": longest, "params": est.n_params}))
"""


def measure(name: str, args: list[str], out: Path) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", CHILD, *args, *COMMON, "--output_dir", str(out)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=1800)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{name} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return {"case": name, "args": args, **json.loads(lines[-1][len("RESULT "):])}


def presets() -> list[dict]:
    """Every preset's estimate on 1 GPU and 8 GPUs of 80 GB (built-in shapes; the data guessed offline)."""
    from r1.config import parse_args
    from r1.memory import BUILTIN_SHAPES, Engine, engine_named, estimate, workload

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    engines = {"r1_zero_qwen2.5_math_7b": "zero3", "dapo_qwen2.5_7b": "zero3", "dr_grpo_qwen2.5_math_1.5b": "zero2",
               "code_qwen2.5_coder_1.5b": "zero2", "countdown_qwen2.5_3b": "ddp", "demo": "ddp"}
    prompt = {"countdown_qwen2.5_3b": 160, "demo": 200}  # generated tasks: short prompts; else DEFAULT_PROMPT_TOKENS
    rows = []
    for preset, launch in engines.items():
        run = parse_args(["--config", f"recipes/configs/{preset}.yaml", "--dry_run"])
        shape = BUILTIN_SHAPES[run.model.model_name_or_path]
        w = workload(run, prompt.get(preset, 512), shape)
        lora = parse_args(["--config", f"recipes/configs/{preset}.yaml", "--dry_run", "--use_peft", "true"])
        wl = workload(lora, prompt.get(preset, 512), shape)
        row = {"preset": preset, "model": run.model.model_name_or_path, "launch_engine": launch,
               "prompt_tokens": w.prompt_tokens, "completion_tokens": w.completion_tokens,
               "1 GPU": estimate(shape, w, Engine("ddp", 1)).peak_gib,
               f"8 GPUs {launch}": estimate(shape, w, engine_named(launch, 8)).peak_gib,
               "8 GPUs zero3": estimate(shape, w, engine_named("zero3", 8)).peak_gib,
               "8 GPUs zero3+offload": estimate(shape, w, engine_named("zero3+offload", 8)).peak_gib,
               "1 GPU LoRA": estimate(shape, wl, Engine("ddp", 1)).peak_gib,
               "parts_1gpu": estimate(shape, w, Engine("ddp", 1)).parts}
        rows.append(row)
    return rows


def presets_table(rows: list[dict]) -> str:
    lines = ["| preset | model | 1 GPU | 8 GPUs, its engine | 8 GPUs ZeRO-3 | 8 GPUs ZeRO-3 + offload | 1 GPU LoRA r16 |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        def cell(v: float) -> str:
            return f"**{v:.1f}**" if v > 80 else f"{v:.1f}"
        lines.append(f"| {r['preset']} | {r['model']} | {cell(r['1 GPU'])} | {cell(r['8 GPUs ' + r['launch_engine']])} "
                     f"({r['launch_engine']}) | {cell(r['8 GPUs zero3'])} | {cell(r['8 GPUs zero3+offload'])} | "
                     f"{cell(r['1 GPU LoRA'])} |")
    return "\n".join(lines) + "\n\nGiB per device, estimated (r1/memory.py); **bold** = over 80 GB."


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--presets", action="store_true", help="only the presets' table (no measurement)")
    ap.add_argument("--cases", default=None, help="comma list of case names to measure (default: all)")
    args = ap.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = presets()
    (RESULTS / "memory_presets.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(presets_table(rows))
    if args.presets:
        return
    import tempfile

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, case_args in CASES.items():
            if args.cases and name not in args.cases.split(","):
                continue
            r = measure(name, case_args, Path(tmp) / "run")
            r["ratio"] = r["estimate"] / r["measured"]
            results.append(r)
            print(f"{name}: measured {r['measured'] / 2**20:.1f} MiB, estimate {r['estimate'] / 2**20:.1f} MiB "
                  f"(x{r['ratio']:.2f})", flush=True)
    (RESULTS / "memory_check.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n| run (1 process, CPU, fp32, 2 steps) | parameters | measured peak - baseline | estimate | estimate / measured |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['case']} | {r['params'] / 1e6:.2f}M | {r['measured'] / 2**20:.0f} MiB | "
              f"{r['estimate'] / 2**20:.0f} MiB | {r['ratio']:.2f} |")


if __name__ == "__main__":
    main()
