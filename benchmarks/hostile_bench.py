"""Hostile batches with warm workers: seconds per batch of 14, before (a git revision) and after (this tree).

Three batches of 14 completions, all graded against the reference "5" (every verdict must be 0.0):
- `tests`: the hostile list of tests/test_rewards_verify.py (power towers, 1 MB of text, 10k braces, ...);
- `costly`: answers that parse but are costly to verify (an integral or an infinite sum over a power tower, a huge
  binomial, a multinomial expansion, ...) mixed with the worst of the `tests` list;
- `costly_2`: 14 more such answers (nested functions, towers of e and pi, huge powers under roots and trig, ...).
Each tree runs in its own subprocess: workers are started and warmed first (start-up is not measured), then each
batch is graded `--repeats` times with the verdict cache cleared before every run; the median is reported.
The baseline tree is `git show REV:rewards/...` written to a temporary folder (no checkout).

    .venv/bin/python benchmarks/hostile_bench.py [--baseline-rev REV] [--out benchmarks/results/hostile_bench.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.rewards_bench import machine  # noqa: E402

sys.path.insert(0, str(REPO / "tests"))
from test_rewards_verify import HOSTILE  # noqa: E402

TESTS_BATCH = HOSTILE  # the list the tests grade, not a copy of it
COSTLY_BATCH = [
    r"<think>x</think><answer>\boxed{\int_0^1 x^{x^{x^x}} dx}</answer>",
    r"<think>x</think><answer>\boxed{\sum_{n=1}^\infty n^{n^{n^n}}}</answer>",
    r"<think>x</think><answer>\int_0^\infty e^{-x^{x}} \, dx</answer>",
    r"<think>x</think><answer>\boxed{\int_0^{\infty} \sin(x^{x}) dx}</answer>",
    r"<think>x</think><answer>\boxed{\sum_{k=1}^{100000} k^{k}}</answer>",
    r"<think>x</think><answer>\boxed{\binom{1000000}{500000}}</answer>",
    r"<think>x</think><answer>\boxed{(x+y+z)^{100}}</answer>",
    r"<think>x</think><answer>\boxed{\Gamma(1000000)}</answer>",
    r"<think>x</think><answer>\boxed{9^{9^{9^9}}+1}</answer>",
    "lorem ipsum " * 90_000,
    r"<answer>\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}</answer>",
    "<answer>" + "+".join(["1"] * 20_000) + "</answer>",
    r"<answer>\boxed{100000!}</answer>",
    r"<answer>\boxed{(10^{9})!}</answer>",
]
# More answers that parse but are costly (each took 2 s to time out, or more, before the screens)
COSTLY_BATCH_2 = [
    r"<think>x</think><answer>\boxed{\tan(\tan(\tan(\tan(\tan(1)))))}</answer>",
    r"<think>x</think><answer>\boxed{\cos(\sin(\cos(\sin(\cos(\sin(1))))))}</answer>",
    r"<think>x</think><answer>\boxed{e^{e^{e^{e^{e}}}}}</answer>",
    r"<think>x</think><answer>\boxed{\sin(10^{99999})}</answer>",
    r"<think>x</think><answer>\boxed{\sqrt{10^{99999}+1}-10^{49999.5}}</answer>",
    r"<think>x</think><answer>\boxed{\left(1+\frac{1}{10^{100}}\right)^{10^{100}}}</answer>",
    r"<think>x</think><answer>\boxed{\lim_{n\to\infty} (1+1/n)^{n^{n^{n}}}}</answer>",
    r"<think>x</think><answer>\boxed{\prod_{n=1}^{\infty} (1+n^{-n^n})}</answer>",
    r"<think>x</think><answer>\boxed{\frac{d}{dx} x^{x^{x^{x}}}}</answer>",
    r"<think>x</think><answer>\boxed{\iint_{[0,1]^2} x^{y^{x^y}} \, dA}</answer>",
    r"<think>x</think><answer>\boxed{\int_0^1 x^{x^{x^x}} dx}</answer>",
    r"<think>x</think><answer>\boxed{\sum_{n=1}^\infty n^{n^{n^n}}}</answer>",
    r"<think>x</think><answer>\boxed{(a+b+c+d)^{50}}</answer>",
    r"<think>x</think><answer>\boxed{\pi^{\pi^{\pi^{\pi}}}}</answer>",
]
BATCHES = {"tests": TESTS_BATCH, "costly": COSTLY_BATCH, "costly_2": COSTLY_BATCH_2}

_CHILD = r"""
import json, statistics, sys, time
sys.path.insert(0, sys.argv[1])
batches = json.loads(sys.stdin.read())
import rewards
from rewards import verify as verify_mod
end = time.monotonic() + 120
while time.monotonic() < end:  # warm: every worker ready (readiness is noticed while a batch runs)
    fresh = [f"{time.monotonic_ns()}{k}/1" for k in range(8)]
    verify_mod.verify_batch(fresh, fresh)
    ws = verify_mod._POOL._workers
    if len(ws) >= verify_mod._POOL.size and all(w.ready for w in ws):
        break
    time.sleep(0.1)
repeats = int(sys.argv[2])
out = {}
for name, batch in batches.items():
    times, verdicts = [], None
    for _ in range(repeats):
        verify_mod._cache.clear()
        verify_mod._usable_golds.clear()
        t0 = time.perf_counter()
        verdicts = rewards.accuracy_reward(batch, answer=["5"] * len(batch))
        times.append(time.perf_counter() - t0)
    out[name] = {"seconds": [round(t, 3) for t in times], "median_s": round(statistics.median(times), 3),
                 "verdicts": verdicts, "stats": verify_mod.stats()}
print("RESULT " + json.dumps(out))
"""


def baseline_tree(rev: str, into: Path) -> Path:
    """The rewards package at `rev`, written under `into` (git show, no checkout)."""
    names = subprocess.run(
        ["git", "ls-tree", "--name-only", rev, "rewards/"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.split()
    (into / "rewards").mkdir(parents=True)
    for name in names:
        blob = subprocess.run(["git", "show", f"{rev}:{name}"], cwd=REPO, capture_output=True, check=True).stdout
        (into / name).write_bytes(blob)
    return into


def run_tree(root: Path, repeats: int) -> dict:
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root), str(repeats)],
        input=json.dumps(BATCHES),
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=1800,
    )
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if line is None:
        raise SystemExit(f"benchmark child failed:\n{proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT ") :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default="e5a5a65", help="git revision graded as 'before'")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "hostile_bench.json"))
    args = parser.parse_args()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        before = run_tree(baseline_tree(args.baseline_rev, Path(tmp)), args.repeats)
    after = run_tree(REPO, args.repeats)
    load_after = os.getloadavg()
    rows = []
    for name in BATCHES:
        rows.append(
            {
                "batch": name,
                "items": len(BATCHES[name]),
                "before_median_s": before[name]["median_s"],
                "after_median_s": after[name]["median_s"],
                "before_runs_s": before[name]["seconds"],
                "after_runs_s": after[name]["seconds"],
                "before_verdicts": before[name]["verdicts"],
                "after_verdicts": after[name]["verdicts"],
                "verdicts_unchanged": before[name]["verdicts"] == after[name]["verdicts"],
            }
        )
        print(
            f"{name:<8} {len(BATCHES[name])} items  before {before[name]['median_s']:6.2f} s  "
            f"after {after[name]['median_s']:6.2f} s  verdicts unchanged: {rows[-1]['verdicts_unchanged']}"
        )
    print(f"load average before/after: {load_before[0]:.1f} / {load_after[0]:.1f}")
    result = {
        "benchmark": "hostile_bench",
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "baseline_rev": args.baseline_rev,
        "repeats": args.repeats,
        "note": "warm workers, verdict cache cleared before every run; median of the runs",
        "load_average_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "rows": rows,
        "target_s": 3.0,
        "meets_target": all(r["after_median_s"] <= 3.0 and r["verdicts_unchanged"] for r in rows),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
