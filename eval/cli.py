"""`python -m eval` / `r1-eval`: evaluate a model on math benchmarks with the training rewards' grading.

    python -m eval --model Qwen/Qwen2.5-Math-1.5B --benchmarks aime24,math500 --num-samples 64 --output out/eval

Every input is checked before any weights are loaded; a mistake is one line on stderr and exit code 2 (a traceback
only with --debug). Outputs in --output: samples.jsonl (one line per problem × sample, appended as batches finish),
settings.json (what a resumed run must match), results.json (metrics per benchmark and everything that changes a
number). Rerunning the same command resumes a killed run.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
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
from r1.benchmarks import load_benchmark, resolve_benchmark
from r1.errors import R1Error
from r1.evaluation import check_output_dir, evaluate, problems_sha256, run_settings, validate_settings
from r1.generation import BACKENDS, VLLMGenerator, resolve_backend
from r1.models import DTYPE_NAMES, load_model, load_tokenizer, resolve_model
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
    p.add_argument("--benchmarks", required=True, help="comma list of aime24, aime25, amc23, math500, gsm8k, or .jsonl/.json/.parquet files with problem and answer columns")
    p.add_argument("--num-samples", type=int, default=1, help="samples per problem (n of avg@n, maj@n); DeepSeek-R1 uses 64")
    p.add_argument("--temperature", type=float, default=0.6, help="0 = greedy (default 0.6, the R1 protocol)")
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--max-new-tokens", type=int, default=4096)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=None, help="(problem, sample) pairs per generate call (default 16; 256 with vLLM)")
    p.add_argument("--template", default=None, help=f"prompt template; default: the one recorded in the model folder's {CONFIG_FILE_NAME}, else {DEFAULT_TEMPLATE}")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first K problems of each benchmark")
    p.add_argument("--backend", default="auto", choices=list(BACKENDS), help="auto = vLLM when importable and a GPU is present")
    p.add_argument("--dtype", default="auto", choices=list(DTYPE_NAMES))
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
    for pkg in ("r1-zero", "torch", "transformers", "trl", "math-verify", "sympy", "vllm"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


def _fmt(x: Any) -> str:
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


def _prepare(args: argparse.Namespace) -> dict[str, Any]:
    """Everything that can be checked without weights. Raises one-line errors."""
    if args.num_samples <= 0:
        raise ValueError(f"--num-samples must be >= 1 (got {args.num_samples})")
    if args.limit is not None and args.limit <= 0:
        raise ValueError(f"--limit must be >= 1 (got {args.limit})")
    names = list(dict.fromkeys(b.strip() for b in args.benchmarks.split(",") if b.strip()))
    if not names:
        raise ValueError("--benchmarks is empty; pass e.g. --benchmarks aime24,math500")
    benchmarks = {}
    for name in names:
        bench, source = resolve_benchmark(name, args.data_dir)
        problems = load_benchmark(name, args.data_dir)
        sha = file_sha256(source) if Path(source).is_file() else problems_sha256(problems)
        if bench.name in benchmarks:
            raise ValueError(f"two benchmarks are both named {bench.name!r}; rename one of the files")
        benchmarks[bench.name] = {"source": source, "data_sha256": sha, "problems": problems[: args.limit]}

    template = args.template or recorded_template(args.model) or DEFAULT_TEMPLATE
    get_template(template)  # before resolve_model, which may build a model on first use
    backend = resolve_backend(args.backend)
    model_path = resolve_model(args.model, trust_remote_code=args.trust_remote_code)
    batch_size = args.batch_size or (256 if backend == "vllm" else 16)
    settings = run_settings(
        model=model_path,
        template=template,
        num_samples=args.num_samples,
        temperature=args.temperature,
        top_p=args.top_p,
        max_new_tokens=args.max_new_tokens,
        seed=args.seed,
        backend=backend,
        dtype=args.dtype,
        batch_size=batch_size,
        stop_at_answer=not args.no_stop_at_answer,
    )
    validate_settings(settings)
    for name, b in benchmarks.items():
        check_output_dir(args.output, settings, name, b["data_sha256"], resume=not args.no_resume)
    return {"settings": settings, "benchmarks": benchmarks, "model_path": model_path}


def _load(args: argparse.Namespace, settings: dict[str, Any]) -> tuple[Any, Any]:
    path = settings["model"]
    tokenizer = load_tokenizer(path, trust_remote_code=args.trust_remote_code)
    if settings["backend"] == "vllm":
        stop = get_template(settings["template"]).stop_text if settings["stop_at_answer"] else None
        return VLLMGenerator(path, tokenizer, dtype=args.dtype, trust_remote_code=args.trust_remote_code, stop=stop), tokenizer
    device = "cuda" if torch.cuda.is_available() else None
    model = load_model(path, dtype=args.dtype, trust_remote_code=args.trust_remote_code, device=device)
    return model, tokenizer


def run(args: argparse.Namespace, prep: dict[str, Any], t0: float) -> dict[str, Any]:
    """Load the model and evaluate every benchmark; results.json is rewritten after each one."""
    settings = prep["settings"]
    logger.info("model %s, template %s, backend %s, %d sample(s)/problem", settings["model"], settings["template"], settings["backend"], settings["num_samples"])
    model, tokenizer = _load(args, settings)
    results: dict[str, Any] = {
        "model": args.model,
        "model_path": prep["model_path"],
        "template": settings["template"],
        "model_dtype": str(getattr(model, "dtype", settings["dtype"])).replace("torch.", ""),
        "settings": {**settings, "limit": args.limit},
        "benchmarks": {},
        "versions": versions(),
        "command": sys.argv,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t0)),
    }
    out = Path(args.output)
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
        atomic_write_json(out / "results.json", results)  # after every benchmark: finished work is never lost
    return results


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.debug)
    t0 = time.time()
    try:
        prep = _prepare(args)
    except (R1Error, UnknownNameError, ValueError, OSError) as e:  # bad input (BenchmarkError, SettingsMismatchError, …)
        if args.debug:
            raise
        print("r1-eval: error: " + " ".join(str(e).split()), file=sys.stderr)
        return 2
    try:
        results = run(args, prep, t0)
    except KeyboardInterrupt:
        print(f"r1-eval: interrupted; rerun the same command to resume from {Path(args.output) / 'samples.jsonl'}", file=sys.stderr)
        return 130
    print(markdown_table(results))
    print(f"\nresults: {Path(args.output) / 'results.json'}  samples: {Path(args.output) / 'samples.jsonl'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
