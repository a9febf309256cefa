"""Code-reward throughput: HumanEval canonical solutions through the pooled sandbox vs a naive loop.

The naive loop is what a simple harness does: one `python -c "<program + tests>"` subprocess per program, one at a
time, pass = exit status 0 (no isolation at all). The pooled sandbox runs the same 164 programs with the full
isolation (two processes per program, uid drop, namespaces, seccomp) on `--workers` warm fork servers. Both in
the same run; prints a table and writes benchmarks/results/code_bench.json. Target: >= 20 programs/s on 2 cores.

    .venv/bin/python benchmarks/code_bench.py [--workers 2] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def naive(rows: list[dict]) -> tuple[float, int]:
    passed = 0
    t = time.perf_counter()
    for r in rows:
        src = r["reference_solution"] + "\n\n" + r["tests"][0]
        try:
            proc = subprocess.run([sys.executable, "-I", "-c", src], capture_output=True, timeout=10, env={})
            passed += proc.returncode == 0
        except subprocess.TimeoutExpired:
            pass
    return time.perf_counter() - t, passed


def pooled(rows: list[dict], pool) -> tuple[float, int]:
    from rewards.code import run_programs

    t = time.perf_counter()
    results = run_programs([r["reference_solution"] for r in rows], [r["tests"] for r in rows], pool=pool)
    return time.perf_counter() - t, sum(1 for x in results if x is not None and x.all_passed)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=2, help="timed passes over the 164 programs, per side")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "code_bench.json"))
    args = ap.parse_args()

    from rewards.code_data import load_humaneval
    from rewards.sandbox import SandboxPool

    rows = load_humaneval()
    t = time.perf_counter()
    pool = SandboxPool(workers=args.workers)
    pool.run_many([])  # nothing: the first fork server is up; the others start on first use
    start_s = time.perf_counter() - t
    try:
        cold_s, cold_passed = pooled(rows, pool)  # includes starting the other fork servers
        runs = {"naive": [], "pooled": []}
        for _ in range(args.repeat):
            runs["naive"].append(naive(rows))
            runs["pooled"].append(pooled(rows, pool))
        isolation = {k: v for k, v in pool.isolation.items() if k not in ("uid_c", "uid_t", "sys_path")}
    finally:
        pool.close()

    n = len(rows)
    best = {k: min(s for s, _ in v) for k, v in runs.items()}
    passed = {k: [p for _, p in v] for k, v in runs.items()}
    result = {
        "programs": n,
        "workers": args.workers,
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "naive_s": [round(s, 3) for s, _ in runs["naive"]],
        "pooled_s": [round(s, 3) for s, _ in runs["pooled"]],
        "naive_programs_per_s": round(n / best["naive"], 1),
        "pooled_programs_per_s": round(n / best["pooled"], 1),
        "speedup": round(best["naive"] / best["pooled"], 2),
        "pooled_cold_programs_per_s": round(n / (cold_s + start_s), 1),
        "pool_start_s": round(start_s, 3),
        "passed": {"naive": passed["naive"], "pooled": passed["pooled"], "pooled_cold": cold_passed},
        "isolation": isolation,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    print(f"HumanEval canonical solutions, {n} programs, {args.workers} workers, {result['cpus']} CPUs")
    print(f"| harness | programs/s (best of {args.repeat}) | passed |")
    print("|---|---|---|")
    print(f"| naive: one subprocess per program, no isolation | {result['naive_programs_per_s']} | {passed['naive']} |")
    print(f"| pooled sandbox (warm) | {result['pooled_programs_per_s']} | {passed['pooled']} |")
    print(f"| pooled sandbox, cold (incl. pool start) | {result['pooled_cold_programs_per_s']} | {cold_passed} |")
    print(f"speed-up (warm pooled / naive): {result['speedup']}x")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
