"""GRPO step speed: TRL 1.16 `GRPOTrainer` with library defaults vs r1-zero's settings + fast rollouts, in one run.

Both paths train the same model shape on the same prompts with the same seed, the same number of completions per
step and the same number of completion tokens (EOS is suppressed with `min_new_tokens`, so every completion is
exactly `max_completion_length` tokens). The reward is a seeded hash of the completion ids, so it costs nothing and
does not depend on the text. Each (path, round) runs in its own subprocess (clean peak-memory numbers, no shared
thread pools); rounds alternate the order of the paths so that a machine whose load drifts penalises both alike.

    python benchmarks/grpo_step_bench.py --size tiny            # CPU, tiny Qwen2 (r1.models "tiny:qwen2")
    python benchmarks/grpo_step_bench.py --size smollm2         # CPU, SmolLM2-135M (embedded:smollm2-135m)
    python benchmarks/grpo_step_bench.py --size 0.5b            # GPU, Qwen2.5-0.5B shape, random weights

Prints completion tokens/s, seconds/step and peak memory (RSS on CPU, torch.cuda.max_memory_allocated on GPU) for
both paths and the ratios, checks that the per-step loss / reward / grad-norm of the two paths agree (they must:
the fast path samples the same tokens), and writes benchmarks/results/grpo_step_<size>_<device>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# Per size: model, completions per optimizer step (= per_device_train_batch_size x gradient_accumulation_steps),
# generations per prompt, completion length, prompt length (approximate, tokens), default device, steps.
SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(
        model="tiny:qwen2",
        per_device=8,
        grad_accum=1,
        num_generations=8,
        completion_len=512,
        prompt_words=12,
        device="cpu",
        steps=6,
    ),
    "smollm2": dict(
        model="embedded:smollm2-135m",
        per_device=8,
        grad_accum=1,
        num_generations=8,
        completion_len=64,
        prompt_words=12,
        device="cpu",
        steps=3,
    ),
    "0.5b": dict(
        model="qwen2.5-0.5b-shape",
        per_device=8,
        grad_accum=8,
        num_generations=8,
        completion_len=256,
        prompt_words=40,
        device="cuda",
        steps=6,
    ),
}
PATHS = ("trl_defaults", "r1")

# Qwen2.5-0.5B's architecture (config.json of Qwen/Qwen2.5-0.5B), built with random weights: no download.
QWEN25_05B = dict(
    vocab_size=151936,
    hidden_size=896,
    intermediate_size=4864,
    num_hidden_layers=24,
    num_attention_heads=14,
    num_key_value_heads=2,
    max_position_embeddings=32768,
    rope_theta=1000000.0,
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
    hidden_act="silu",
)


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------------------
# Model and data (shared by both paths)
# ----------------------------------------------------------------------------------------------------------------


def materialise_model(size: str, workdir: Path) -> str:
    """A local model folder for `size`; the 0.5B shape is initialised once (seeded) and saved, so both paths load the
    same weights."""
    spec = SIZES[size]
    if spec["model"] != "qwen2.5-0.5b-shape":
        from r1.models import resolve_model

        return resolve_model(spec["model"])
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    from r1.models import load_tokenizer

    out = workdir / "qwen2.5-0.5b-shape"
    if (out / "config.json").is_file():
        return str(out)
    # The tokenizer only encodes the prompts; any id the model samples decodes (ids it does not know -> "").
    tokenizer = load_tokenizer("tiny:qwen2")
    config = Qwen2Config(
        **QWEN25_05B,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    return str(out)


def make_prompts(n: int, words: int) -> list[str]:
    import random

    rng = random.Random(0)
    filler = "please think step by step and check each part of the work before you answer".split()
    prompts = []
    for _ in range(n):
        a, b = rng.randint(0, 999), rng.randint(0, 999)
        pad = " ".join(rng.choice(filler) for _ in range(words))
        prompts.append(f"Question: {pad}. What is {a} + {b}? Answer:")
    return prompts


def hash_reward(completion_ids: list[list[int]], **_: Any) -> list[float]:
    """A deterministic, seeded pseudo-random reward of the completion tokens: free to compute, varies within groups."""
    import zlib

    return [(zlib.crc32(bytes(str(ids), "ascii")) % 1000) / 1000.0 for ids in completion_ids]


# ----------------------------------------------------------------------------------------------------------------
# Worker: one path, one round, in its own process
# ----------------------------------------------------------------------------------------------------------------


def trainer_class(path: str) -> type:
    if path == "trl_defaults":
        from trl import GRPOTrainer

        return GRPOTrainer
    from r1.trainer import R1ZeroTrainer  # FastRolloutMixin + RunGuardsMixin + GRPOTrainer

    return R1ZeroTrainer


def run_worker(args: argparse.Namespace) -> dict[str, Any]:
    import resource

    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import GRPOConfig

    from r1.config import R1GRPOConfig
    from r1.models import load_model, load_tokenizer
    from r1.rollout import recommended_settings

    spec = SIZES[args.size]
    device = args.device
    if args.threads:
        torch.set_num_threads(args.threads)
    model_path = args.model_path
    tokenizer = load_tokenizer(model_path)
    model = load_model(model_path, dtype=torch.float32)
    per_step = spec["per_device"] * spec["grad_accum"]
    prompts = make_prompts(per_step // spec["num_generations"] * (args.steps + 2), spec["prompt_words"])
    dataset = Dataset.from_dict({"prompt": prompts})

    fields: dict[str, Any] = dict(
        output_dir=tempfile.mkdtemp(prefix="grpo_bench_"),
        max_steps=args.steps,
        per_device_train_batch_size=spec["per_device"],
        gradient_accumulation_steps=spec["grad_accum"],
        num_generations=spec["num_generations"],
        max_completion_length=spec["completion_len"],
        generation_kwargs={"min_new_tokens": spec["completion_len"]},  # fixed token count on both paths
        logging_steps=1,
        report_to=[],
        save_strategy="no",
        seed=0,
        disable_tqdm=True,
        use_cpu=device == "cpu",
    )
    if device == "cpu":
        fields["bf16"] = False  # TRL defaults to bf16=True, which needs an accelerator
    cls = trainer_class(args.path)
    if args.path == "r1":
        n_params = sum(p.numel() for p in model.parameters())
        fields.update(recommended_settings(device=device, n_params=n_params))
    config_fields = {k: v for k, v in fields.items() if k != "output_dir"}
    if args.path == "r1":
        fields["sample_log_steps"] = 0  # no sample dumps inside the timed steps
        config = R1GRPOConfig(**fields)
    else:
        config = GRPOConfig(**fields)

    class Recorder(TrainerCallback):
        def __init__(self) -> None:
            self.step_start = self.cpu_start = 0.0
            self.step_times: list[float] = []
            self.cpu_times: list[float] = []
            self.logs: list[dict[str, float]] = []

        def on_step_begin(self, *a: Any, **k: Any) -> None:
            if device == "cuda":
                torch.cuda.synchronize()
            self.step_start = time.perf_counter()
            self.cpu_start = time.process_time()

        def on_step_end(self, *a: Any, **k: Any) -> None:
            if device == "cuda":
                torch.cuda.synchronize()
            self.step_times.append(time.perf_counter() - self.step_start)
            self.cpu_times.append(time.process_time() - self.cpu_start)

        def on_log(
            self, _args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **k: Any
        ) -> None:
            if logs and "loss" in logs:
                self.logs.append(
                    {
                        key: float(logs[key])
                        for key in (
                            "loss",
                            "reward",
                            "reward_std",
                            "grad_norm",
                            "entropy",
                            "completions/mean_length",
                        )
                        if key in logs
                    }
                )

    gen_times: list[float] = []
    gen_cpu_times: list[float] = []
    gen_tokens: list[int] = []

    class Timed(cls):  # type: ignore[misc, valid-type]
        def _generate_single_turn(self, *a: Any, **k: Any):  # noqa: ANN202
            if device == "cuda":
                torch.cuda.synchronize()
            t, c = time.perf_counter(), time.process_time()
            completion_ids, logprobs = super()._generate_single_turn(*a, **k)
            if device == "cuda":
                torch.cuda.synchronize()
            gen_times.append(time.perf_counter() - t)
            gen_cpu_times.append(time.process_time() - c)
            gen_tokens.append(sum(len(c) for c in completion_ids))
            return completion_ids, logprobs

    extra = {"artifacts": False} if args.path == "r1" else {}
    recorder = Recorder()
    trainer = Timed(
        model=model,
        processing_class=tokenizer,
        reward_funcs=[hash_reward],
        args=config,
        train_dataset=dataset,
        callbacks=[recorder],
        **extra,
    )
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.runcall(trainer.train)
        profiler.dump_stats(str(Path(args.profile) / f"{args.path}.prof"))
    else:
        trainer.train()
    peak = (
        torch.cuda.max_memory_allocated()
        if device == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return {
        "trainer": cls.__name__,
        "config": config_fields,
        "step_times": recorder.step_times,
        "cpu_times": recorder.cpu_times,
        "gen_times": gen_times,
        "gen_cpu_times": gen_cpu_times,
        "gen_tokens": gen_tokens,
        "logs": recorder.logs,
        "peak_memory_bytes": int(peak),
        "completions_per_step": per_step,
    }


# ----------------------------------------------------------------------------------------------------------------
# Orchestrator
# ----------------------------------------------------------------------------------------------------------------


def machine_info(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "processor": platform.processor(),
        "cpu_count": os.cpu_count(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    if device == "cuda":
        import torch

        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for name in ("torch", "transformers", "trl", "accelerate"):
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = "missing"
    return out


def summarise(runs: list[dict[str, Any]], warmup: int) -> dict[str, Any]:
    """Median over the measured steps (first `warmup` steps of every run dropped) of all rounds."""
    steps = [t for r in runs for t in r["step_times"][warmup:]]
    gens = [t for r in runs for t in r["gen_times"][warmup:]]
    toks = [n for r in runs for n in r["gen_tokens"][warmup:]]
    cpu = [t for r in runs for t in r["cpu_times"][warmup:]]
    gen_cpu = [t for r in runs for t in r["gen_cpu_times"][warmup:]]
    s_step = statistics.median(steps)
    tokens_per_step = statistics.median(toks)
    return {
        "trainer": runs[0]["trainer"],
        "config": runs[0]["config"],
        "s_per_step": s_step,
        "s_per_step_all": steps,
        "generation_s_per_step": statistics.median(gens),
        "completion_tokens_per_step": tokens_per_step,
        "completion_tokens_per_s": tokens_per_step / s_step,
        "generation_tokens_per_s": tokens_per_step / statistics.median(gens),
        "cpu_s_per_step": statistics.median(cpu),
        "generation_cpu_s_per_step": statistics.median(gen_cpu),
        "peak_memory_bytes": max(r["peak_memory_bytes"] for r in runs),
    }


def compare_logs(a: list[dict[str, float]], b: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {"steps_compared": min(len(a), len(b))}
    for key in ("loss", "reward", "reward_std", "grad_norm", "entropy"):
        diffs = [abs(x[key] - y[key]) for x, y in zip(a, b, strict=False) if key in x and key in y]
        if diffs:
            out[f"{key}_max_abs_diff"] = max(diffs)
    return out


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=None, help="default: the size's device")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default: per size)")
    parser.add_argument("--warmup", type=int, default=1, help="steps dropped from each run's timings")
    parser.add_argument("--rounds", type=int, default=2, help="runs per path, alternating the order")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch's default)")
    parser.add_argument(
        "--out", default=None, help="JSON path (default benchmarks/results/grpo_step_<size>_<device>.json)"
    )
    parser.add_argument(
        "--profile", default=None, help="directory: write a cProfile of each path's first run there"
    )
    parser.add_argument("--worker", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--model-path", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    spec = SIZES[args.size]
    args.device = args.device or spec["device"]
    args.steps = args.steps or spec["steps"]
    if args.steps <= args.warmup:
        parser.error(f"--steps ({args.steps}) must exceed --warmup ({args.warmup})")

    if args.worker:  # child process
        args.path = args.worker
        result = run_worker(args)
        Path(args.result).write_text(json.dumps(result))
        return 0

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            print(
                f"--size {args.size} needs a CUDA GPU (none found); use --size tiny on CPU", file=sys.stderr
            )
            return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    workdir = Path(tempfile.mkdtemp(prefix="grpo_bench_models_"))
    model_path = materialise_model(args.size, workdir)
    out = (
        Path(args.out)
        if args.out
        else REPO / "benchmarks" / "results" / f"grpo_step_{args.size}_{args.device}.json"
    )
    load_before = load_average()
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in PATHS}
    for rnd in range(args.rounds):
        order = PATHS if rnd % 2 == 0 else tuple(reversed(PATHS))
        for path in order:
            result_file = workdir / f"{path}_{rnd}.json"
            cmd = [
                sys.executable,
                __file__,
                "--worker",
                path,
                "--size",
                args.size,
                "--device",
                args.device,
                "--steps",
                str(args.steps),
                "--threads",
                str(args.threads),
                "--model-path",
                model_path,
                "--result",
                str(result_file),
            ]
            if args.profile and rnd == 0:
                Path(args.profile).mkdir(parents=True, exist_ok=True)
                cmd += ["--profile", str(Path(args.profile).resolve())]
            log(f"round {rnd + 1}/{args.rounds}: {path} ...")
            t = time.time()
            proc = subprocess.run(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            if proc.returncode != 0:
                log(proc.stdout[-4000:])
                log(f"{path} failed (exit {proc.returncode})")
                return 1
            runs[path].append(json.loads(result_file.read_text()))
            # Keep what was measured so far, in case a time limit cuts the run short.
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(
                json.dumps({"partial": True, "size": args.size, "device": args.device, "runs": runs}) + "\n"
            )
            log(f"  done in {time.time() - t:.0f}s")
    load_after = load_average()

    summary = {p: summarise(runs[p], args.warmup) for p in PATHS}
    base, fast = summary["trl_defaults"], summary["r1"]
    ratio = {
        "completion_tokens_per_s": fast["completion_tokens_per_s"] / base["completion_tokens_per_s"],
        "s_per_step": base["s_per_step"] / fast["s_per_step"],
        "generation_tokens_per_s": fast["generation_tokens_per_s"] / base["generation_tokens_per_s"],
        "peak_memory": fast["peak_memory_bytes"] / base["peak_memory_bytes"],
        "cpu_s_per_step": base["cpu_s_per_step"] / fast["cpu_s_per_step"],
    }
    equality = compare_logs(runs["trl_defaults"][0]["logs"], runs["r1"][0]["logs"])
    report = {
        "benchmark": "grpo_step",
        "size": args.size,
        "device": args.device,
        "date": started,
        "machine": machine_info(args.device),
        "versions": versions(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "steps_per_run": args.steps,
        "warmup_steps_dropped": args.warmup,
        "rounds": args.rounds,
        "threads": args.threads or None,
        "results": summary,
        "ratio_r1_over_trl": ratio,
        "per_step_agreement_round1": equality,
        "per_step_logs_round1": {p: runs[p][0]["logs"] for p in PATHS},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")

    mem_unit = "GPU max allocated" if args.device == "cuda" else "peak RSS"
    print(
        f"\nGRPO step, size {args.size} on {args.device} ({spec['per_device'] * spec['grad_accum']} completions x "
        f"{spec['completion_len']} tokens per step; load {load_before} -> {load_after})"
    )
    print(
        f"{'path':14s} {'tokens/s':>10s} {'s/step':>8s} {'gen tok/s':>10s} {'cpu s/step':>10s} "
        f"{mem_unit + ' (MiB)':>22s}"
    )
    for p in PATHS:
        s = summary[p]
        print(
            f"{p:14s} {s['completion_tokens_per_s']:10.0f} {s['s_per_step']:8.3f} {s['generation_tokens_per_s']:10.0f} "
            f"{s['cpu_s_per_step']:10.3f} {s['peak_memory_bytes'] / 2**20:22.0f}"
        )
    print(
        f"{'ratio':14s} {ratio['completion_tokens_per_s']:9.2f}x {ratio['s_per_step']:7.2f}x "
        f"{ratio['generation_tokens_per_s']:9.2f}x {ratio['cpu_s_per_step']:9.2f}x {ratio['peak_memory']:21.2f}x"
    )
    print("per-step agreement (round 1): " + ", ".join(f"{k}={v:.3g}" for k, v in equality.items()))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
