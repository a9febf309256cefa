"""Accuracy-reward throughput: the rewards library vs. a serial math-verify loop, in one run.

2,000 completions built from MATH-500 answers: for every problem two right completions (the answer boxed, and the
answer in a sentence) and two wrong ones (the answer with its last integer +1, and another problem's answer), with
20 of them replaced by hostile completions (power towers, megabytes of text, nested braces, huge factorials...).

- library: `rewards.accuracy_reward` on all 2,000, from a cold start (worker processes not yet running, no caches).
- serial:  the same extraction and the same math-verify calls (`rewards.mathcheck.verify_pair`, math-verify's own
           signal timeouts) one item after another in this process, on the 1,980 non-hostile items only: a
           serial loop cannot survive the hostile ones (`9^{9^{9^9}}` hangs inside C).
The verdicts of both must be identical on every non-hostile item. Target on 2 cores: library >= 1.8x serial.

    .venv/bin/python benchmarks/rewards_bench.py [--data-dir ../shared/data] [--out benchmarks/results/rewards_bench.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import sys
import time
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import rewards  # noqa: E402
from rewards import verify as verify_mod  # noqa: E402

N_ITEMS = 2000
N_HOSTILE = 20
HOSTILE = [
    r"<think>x</think><answer>\boxed{9^{9^{9^9}}+1}</answer>",
    r"<answer>\boxed{2^{2^{2^{2^{2^{2}}}}}}</answer>",
    "so " * 350_000,
    r"<answer>\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}</answer>",
    "<answer>" + "+".join(["1"] * 20_000) + "</answer>",
    r"<answer>\boxed{12</answer>" + r"\boxed{" * 1000,
    "<answer>\x00\x01\ud800 5 \udfff\x1b[31m\x7f</answer>",
    r"<answer>\boxed{\frac{1}{0}}</answer>",
    r"<answer>\boxed{100000!}</answer>",
    r"<answer>\boxed{10^{10^{10}}}</answer>",
]


def perturb(answer: str) -> str:
    """A wrong answer: +1 on the last integer (zero padding kept), else the answer plus one."""
    ints = list(re.finditer(r"\d+", answer))
    if not ints:
        return answer + "+1"
    m = ints[-1]
    return answer[: m.start()] + str(int(m.group()) + 1).zfill(len(m.group())) + answer[m.end() :]


def build(records: list[dict]) -> tuple[list[str], list[str], list[bool], list[str]]:
    completions, golds, hostile, kinds = [], [], [], []
    for i in range(N_ITEMS):
        rec = records[(i // 4) % len(records)]
        gold = rec["answer"]
        kind = ("right_boxed", "right_sentence", "wrong_perturbed", "wrong_other")[i % 4]
        if kind == "right_boxed":
            text = f"<think>reasoning</think> <answer>\\boxed{{{gold}}}</answer>"
        elif kind == "right_sentence":
            text = f"<think>reasoning</think>\n<answer>The final answer is ${gold}$.</answer>"
        elif kind == "wrong_perturbed":
            text = f"<think>reasoning</think><answer>\\boxed{{{perturb(gold)}}}</answer>"
        else:
            other = records[((i // 4) + 7) % len(records)]["answer"]
            text = f"<think>reasoning</think><answer>{other}</answer>"
        completions.append(text)
        golds.append(gold)
        hostile.append(False)
        kinds.append(kind)
    step = N_ITEMS // N_HOSTILE
    for k in range(N_HOSTILE):
        i = k * step + 3
        completions[i], hostile[i], kinds[i] = HOSTILE[k % len(HOSTILE)], True, "hostile"
    return completions, golds, hostile, kinds


def workers_cpu() -> float:
    """CPU seconds used so far by the live verification processes (fork server and workers)."""
    return sum(verify_mod._cpu_seconds(pid) or 0.0 for pid in verify_mod._POOL.pids())


def machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    info = {"platform": platform.platform(), "cpu": cpu, "cores": cores, "python": platform.python_version()}
    try:  # on a shared machine the scheduler group's priority decides how many cores this run really gets
        info["sched_autogroup"] = Path("/proc/self/autogroup").read_text().strip()
    except OSError:
        pass
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", default=os.environ.get("R1_DATA_DIR", str(REPO.parent / "shared" / "data"))
    )
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "rewards_bench.json"))
    args = parser.parse_args()
    path = Path(args.data_dir) / "math500.jsonl"
    if not path.is_file():
        sys.exit(f"error: {path} not found; pass --data-dir pointing at the folder with math500.jsonl")
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    completions, golds, hostile, kinds = build(records)

    load_before = os.getloadavg()

    # 1. the library, cold: no worker running, no cache
    t0, c0 = time.perf_counter(), time.process_time()
    lib = rewards.accuracy_reward(completions, answer=golds)
    t_lib = time.perf_counter() - t0
    cpu_lib = time.process_time() - c0 + workers_cpu()  # every worker was started by this run
    pool_stats = verify_mod.stats()

    # 2. serial math-verify, same extraction and grading rule, one item at a time (non-hostile items only)
    from rewards import mathcheck  # imports sympy + math-verify into this process (the library never does)

    easy = [i for i in range(N_ITEMS) if not hostile[i]]
    t0, c0 = time.perf_counter(), time.process_time()
    serial = {}
    for i in easy:
        verdict = mathcheck.verify_pair(rewards.extract_answer(completions[i]), golds[i], timeout=5)
        serial[i] = None if verdict is None else float(verdict)
    t_serial = time.perf_counter() - t0
    cpu_serial = time.process_time() - c0

    # 3. the library again with warm workers (verdict cache cleared; workers keep their parsed references)
    verify_mod._cache.clear()
    w0, c0, t0 = workers_cpu(), time.process_time(), time.perf_counter()
    lib_warm = rewards.accuracy_reward(completions, answer=golds)
    t_warm = time.perf_counter() - t0
    cpu_warm = time.process_time() - c0 + workers_cpu() - w0
    load_after = os.getloadavg()

    mismatches = [
        {
            "index": i,
            "kind": kinds[i],
            "gold": golds[i],
            "pred": rewards.extract_answer(completions[i])[:200],
            "library": lib[i],
            "serial": serial[i],
        }
        for i in easy
        if lib[i] != serial[i] or lib_warm[i] != serial[i]
    ]
    hostile_scores = sorted({lib[i] for i in range(N_ITEMS) if hostile[i]}, key=str)
    by_kind = {k: sum(lib[i] == 1.0 for i in range(N_ITEMS) if kinds[i] == k) for k in sorted(set(kinds))}
    counts = {k: kinds.count(k) for k in sorted(set(kinds))}

    rows = [
        ("serial math-verify", len(easy), t_serial, cpu_serial, 1.0),
        ("rewards (cold start)", N_ITEMS, t_lib, cpu_lib, t_serial / t_lib * N_ITEMS / len(easy)),
        ("rewards (warm workers)", N_ITEMS, t_warm, cpu_warm, t_serial / t_warm * N_ITEMS / len(easy)),
    ]
    print(f"{'method':<24} {'items':>6} {'seconds':>8} {'items/s':>8} {'speedup':>8} {'CPU s':>7}")
    for name, n, secs, cpu, speedup in rows:
        print(f"{name:<24} {n:>6} {secs:>8.2f} {n / secs:>8.1f} {speedup:>7.2f}x {cpu:>7.2f}")
    print(
        f"load average before/after: {load_before[0]:.1f} / {load_after[0]:.1f} on {machine()['cores']} cores"
    )
    print(f"scored 1.0 by kind: {by_kind} of {counts}")
    print(f"hostile items: {N_HOSTILE}, their scores: {hostile_scores}; worker stats: {pool_stats}")
    print(f"verdict mismatches vs serial on {len(easy)} non-hostile items: {len(mismatches)}")
    for m in mismatches[:20]:
        print("  ", m)

    result = {
        "benchmark": "rewards_bench",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {p: metadata.version(p) for p in ("math-verify", "sympy", "latex2sympy2_extended")},
        "workers": verify_mod._POOL.size,
        "verify_timeout_s": verify_mod._env_timeout(),
        "items": N_ITEMS,
        "hostile_items": N_HOSTILE,
        "rows": [
            {
                "method": name,
                "items": n,
                "seconds": round(secs, 3),
                "items_per_s": round(n / secs, 1),
                "speedup_vs_serial": round(speedup, 2),
                "cpu_seconds": round(cpu, 2),
            }
            for name, n, secs, cpu, speedup in rows
        ],
        "speedup_note": "per-item throughput ratio; the library also graded the hostile items the serial loop skipped",
        "cpu_note": "CPU seconds of this process plus the verification workers (Linux /proc)",
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "scored_one_by_kind": by_kind,
        "kind_counts": counts,
        "hostile_scores": hostile_scores,
        "worker_stats_cold_run": pool_stats,
        "verdict_mismatches": mismatches,
        "target_speedup": 1.8,
        "meets_target": rows[1][4] >= 1.8 and not mismatches,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
