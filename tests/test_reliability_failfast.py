"""Fail fast, cold: every bad-input case of the training entry point (and an unknown eval benchmark) exits non-zero
within 10 s of a fresh process, before any weights are loaded, with one line on stderr and no traceback.

The messages themselves are tested in process by tests/test_train_failfast.py (`cases`, reused here) and
tests/test_eval_cli.py. Starting a fresh interpreter per case would cost ~12 x 5 s on a shared 2-core machine, so
one process imports what the slowest path needs (torch, transformers, TRL, datasets, the recipe, the eval CLI) and
times that; then each case runs in a child forked from that state, with loading weights made a failure. A cold
process does no more than those imports plus the case, so `imports + case` bounds its time from above.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_train_failfast import TINY, cases, write_jsonl

REPO = Path(__file__).resolve().parents[1]
LIMIT_S = 10.0
INFO_LOG = re.compile(r"^\d\d:\d\d:\d\d INFO ")  # recipes/r1_zero.py's log format

DRIVER = r'''
import json, os, sys, time
T0 = time.perf_counter()
import datasets, torch, transformers, trl  # noqa: F401  (what the slowest path imports)
repo = sys.argv[1]
sys.path.insert(0, repo)
from recipes import r1_zero as recipe
import eval.cli
import r1.config, r1.data, r1.guards, r1.models, r1.rewarding  # noqa: F401
IMPORT_S = time.perf_counter() - T0


def no_weights(*a, **k):
    raise AssertionError("model weights were loaded before the error")


r1.models.load_model = no_weights
transformers.AutoModelForCausalLM.from_pretrained = no_weights
print(json.dumps({"import_s": IMPORT_S}), flush=True)
for line in sys.stdin:
    case = json.loads(line)
    err_path = case["stderr"]
    start = time.perf_counter()
    pid = os.fork()
    if pid == 0:  # child: one case, stderr to a file
        fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 2)
        rc = 99
        try:
            rc = (eval.cli.main if case["entry"] == "eval" else recipe.main)(case["argv"])
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else 1
        except BaseException:
            import traceback
            traceback.print_exc()
            rc = 98
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(rc if isinstance(rc, int) else 97)
    _, status = os.waitpid(pid, 0)
    seconds = time.perf_counter() - start
    print(json.dumps({"name": case["name"], "rc": os.waitstatus_to_exitcode(status), "s": seconds}), flush=True)
'''


def all_cases(tmp: Path) -> list[dict]:
    out = []
    for name, (argv, expected) in cases(tmp).items():
        folder = tmp / name
        folder.mkdir()
        if name == "previous_run_in_output_dir":
            (folder / "metrics.jsonl").write_text('{"step": 1}\n')
        out.append({"name": name, "entry": "train", "expected": expected,
                    "argv": ["--config", TINY, "--output_dir", str(folder), *argv]})
    bad_yaml = tmp / "bad.yaml"
    bad_yaml.write_text(Path(TINY).read_text() + "lerning_rate: 1.0e-5\n")
    no_answer = write_jsonl(tmp / "no_answer.jsonl", [{"problem": "1+1?", "solution": "2"}])
    out += [
        {"name": "unknown_yaml_key", "entry": "train", "expected": "unknown key 'lerning_rate'",
         "argv": ["--config", str(bad_yaml), "--output_dir", str(tmp / "yaml")]},
        {"name": "answer_column_missing", "entry": "train", "expected": "(it has: problem, solution)",
         "argv": ["--config", str(REPO / "tests/configs/tiny_qwen2_math.yaml"), "--output_dir", str(tmp / "noanswer"),
                  "--decontaminate", "false", "--dataset_name", no_answer]},
        {"name": "eval_unknown_benchmark", "entry": "eval", "expected": "unknown benchmark 'aime2024'",
         "argv": ["--model", "tiny:qwen2", "--benchmarks", "aime2024", "--output", str(tmp / "eval")]},
    ]
    return out


def test_every_bad_input_fails_within_10s_of_a_cold_start_in_one_line(tmp_path):
    todo = all_cases(tmp_path)
    driver = tmp_path / "failfast_driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("R1_DEBUG", None)
    for case in todo:
        case["stderr"] = str(tmp_path / f"{case['name']}.stderr")
    stdin = "".join(json.dumps(c) + "\n" for c in todo)
    proc = subprocess.run([sys.executable, str(driver), str(REPO)], input=stdin, capture_output=True, text=True,
                          env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.startswith("{")]
    import_s = lines[0]["import_s"]
    results = {r["name"]: r for r in lines[1:]}
    report = [f"imports {import_s:.2f} s"]
    for case in todo:
        r = results[case["name"]]
        text = Path(case["stderr"]).read_text()
        # Progress notes logged at INFO before the check that failed (e.g. the data filters) may precede it.
        err = [x for x in text.splitlines() if x.strip() and not INFO_LOG.match(x)]
        report.append(f"{case['name']:>28}: rc {r['rc']}, {import_s + r['s']:.2f} s, {err[-1] if err else ''}")
        assert r["rc"] == 2, (case["name"], text)
        assert len(err) == 1 and "Traceback" not in text, (case["name"], text)
        assert "error: " in err[0] and case["expected"] in err[0], (case["name"], err[0])
        assert import_s + r["s"] < LIMIT_S, (case["name"], import_s, r["s"])
    print("\n".join(report))


def test_debug_shows_the_traceback(monkeypatch, capsys):
    from r1.errors import ConfigError
    from recipes import r1_zero as recipe

    with pytest.raises(ConfigError, match="unknown template 'r1zero'"):
        recipe.main(["--config", TINY, "--template", "r1zero", "--debug"])


# ------------------------------------------------------------------------------------------ resume flag UX


def test_resume_flag_values(tmp_path):
    """none: a fresh run refuses an output_dir with an earlier run; last/true: the newest complete checkpoint or
    an error; auto: the newest complete checkpoint, else start (preempted before the first save); PATH: that one."""
    from r1.config import parse_args
    from r1.errors import ConfigError
    from r1.train import check_output_dir

    def resolve(*flag: str) -> str | None:
        return check_output_dir(parse_args(["--config", TINY, "--output_dir", str(out), *flag]))

    out = tmp_path / "run"
    assert resolve() is None and resolve("--resume_from_checkpoint", "auto") is None  # nothing there yet
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 1}\n')  # killed before its first checkpoint
    with pytest.raises(ConfigError, match="holds an earlier run"):
        resolve()
    with pytest.raises(ConfigError, match="no checkpoint-N folder"):
        resolve("--resume_from_checkpoint", "last")
    assert resolve("--resume_from_checkpoint", "auto") is None  # starts over; metrics.jsonl is cut to step 0
    for step, complete in ((2, True), (4, True), (6, False)):
        ckpt = out / f"checkpoint-{step}"
        ckpt.mkdir()
        if complete:
            (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    for flag in ("last", "true", "auto"):
        assert resolve("--resume_from_checkpoint", flag) == str(out / "checkpoint-4")  # 6 is incomplete
    assert resolve("--resume_from_checkpoint", str(out / "checkpoint-2")) == str(out / "checkpoint-2")
    with pytest.raises(ConfigError, match="does not exist"):
        resolve("--resume_from_checkpoint", str(out / "checkpoint-9"))
