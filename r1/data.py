"""Training data: load, map columns, filter by level, dedupe and decontaminate against the eval benchmarks.

Reported gains mean nothing if the training set contains the test problems, so decontamination is on by default:
a training problem is dropped when its normalised text equals an eval problem or when it shares any word 13-gram
with one (the usual n-gram criterion, e.g. open-r1's decontamination). The eval problems come from the same
benchmark definitions `eval` uses. Every stage logs how many rows it removed and the counts are returned, so a
run records exactly what it trained on. Bad input fails in one line (`DatasetError`) before any model is loaded.

Code tasks (`load_code_dataset`): `problem` and `tests` columns (tests in the `code` reward's format), from MBPP's
split of `mbpp.jsonl` in the data dir (`dataset_name: mbpp`) or any file / hub dataset with those columns; rows with
unusable tests are dropped, then the same dedupe, decontamination (against HumanEval and MBPP test) and limit.
"""

from __future__ import annotations

import logging
import os
import random
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import datasets

from r1.artifacts import read_records
from r1.benchmarks import BENCHMARKS, default_data_dir, gsm8k_answer, integer_answer, load_benchmark
from r1.errors import BenchmarkError, DatasetError, first_line
from r1.hub import DATA_FILE_SUFFIXES, is_offline, looks_like_path
from rewards.code import parse_tests
from rewards.code_data import data_dir as code_data_dir
from rewards.code_data import load_mbpp

logger = logging.getLogger(__name__)

DEFAULT_EVAL_SETS = ("aime24", "aime25", "amc23", "math500", "gsm8k")
CODE_EVAL_SETS = ("humaneval", "mbpp")
MBPP = "mbpp"  # dataset_name of the MBPP file in the data dir (code tasks)

# --------------------------------------------------------------------------------------------------------------
# Text normalisation and n-grams (shared by dedupe and decontamination)
# --------------------------------------------------------------------------------------------------------------

_LATEX_SPACING = re.compile(r"\\(?:[,;:! ]|quad|qquad|left|right|displaystyle|dfrac|tfrac)")
_TOKEN = re.compile(r"[0-9a-z]+|[-+*/=<>^|!%]")  # words, numbers and operators: z^2+1 and z^2-1 must differ


def normalize_text(text: str) -> str:
    """Lowercase, drop LaTeX spacing/sizing commands and punctuation (keeping math operators), one space between tokens.

    `\\dfrac`/`\\tfrac` become plain `frac` so typographic variants of the same problem compare equal.
    """
    text = str(text).lower().replace("\u2212", "-")
    text = _LATEX_SPACING.sub(lambda m: " frac " if "frac" in m.group(0) else " ", text)
    return " ".join(_TOKEN.findall(text))


def word_ngrams(normalized: str, n: int) -> set[int]:
    """Hashes of the word n-grams of an already normalised text (empty when it has fewer than n words).

    Operators are left out: n-grams count words and numbers, as in the usual 13-gram contamination checks.
    """
    words = [w for w in normalized.split() if w[0].isalnum()]
    return {hash(tuple(words[i : i + n])) for i in range(len(words) - n + 1)}


class Decontaminator:
    """An index of eval problems: exact normalised texts plus hashed word n-grams, each mapped to its benchmark.

    An n-gram found in `boilerplate_min` or more *different* eval problems is a stock phrase ("... where m and n
    are relatively prime positive integers. Find m+n"), not evidence that a training problem is an eval problem,
    so it is ignored (on MATH train that spares 29 unrelated problems, most "matching" AIME 2024). A real copy
    still shares the eval problem's specific n-grams or its exact text. `boilerplate_min=None` counts every n-gram.
    """

    def __init__(self, eval_sets: dict[str, Iterable[str]], ngram: int = 13, boilerplate_min: int | None = 3):
        if ngram < 1:
            raise DatasetError(f"ngram must be >= 1 (got {ngram})")
        self.ngram = ngram
        self.exact: dict[str, str] = {}
        for name, problems in eval_sets.items():
            for problem in problems:
                self.exact.setdefault(normalize_text(problem), name)
        owners: dict[int, int] = {}  # n-gram -> number of distinct eval problems containing it
        self.grams: dict[int, str] = {}
        for norm, name in self.exact.items():
            for g in word_ngrams(norm, ngram):
                owners[g] = owners.get(g, 0) + 1
                self.grams.setdefault(g, name)
        if boilerplate_min is not None:
            boiler = [g for g, count in owners.items() if count >= boilerplate_min]
            for g in boiler:
                del self.grams[g]
            self.boilerplate_ngrams = len(boiler)
        else:
            self.boilerplate_ngrams = 0

    def match(self, problem: str) -> tuple[str, str] | None:
        """`(kind, benchmark)` for a contaminated problem (kind "exact" or "ngram"), else None."""
        norm = normalize_text(problem)
        if norm in self.exact:
            return "exact", self.exact[norm]
        for g in word_ngrams(norm, self.ngram):
            if g in self.grams:
                return "ngram", self.grams[g]
        return None


def load_eval_problems(
    names: Sequence[str], data_dir: str | os.PathLike | None = None
) -> tuple[dict[str, list[str]], list[str]]:
    """Problems of each eval benchmark that can be loaded; returns (sets, skipped names) and warns for skipped ones."""
    sets: dict[str, list[str]] = {}
    skipped: list[str] = []
    for name in names:
        try:
            sets[name] = [r["problem"] for r in load_benchmark(name, data_dir)]
        except BenchmarkError as e:
            logger.warning("decontamination: skipping %s (%s)", name, e)
            skipped.append(name)
    return sets, skipped


# --------------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------------


def _local_path(dataset_name: str, data_dir: str | os.PathLike | None) -> Path | None:
    """The local file meant by `dataset_name` (as given, or inside data_dir), or None for a hub id."""
    path = Path(dataset_name).expanduser()
    if path.exists():
        return path
    if data_dir is not None and (Path(data_dir).expanduser() / dataset_name).exists():
        return Path(data_dir).expanduser() / dataset_name
    if looks_like_path(dataset_name) or dataset_name.startswith("."):
        where = f" (nor in data_dir {data_dir})" if data_dir is not None else ""
        raise DatasetError(
            f"dataset file {dataset_name!r} does not exist{where}; pass an existing .jsonl/.json/.parquet file or a hub dataset id"
        )
    return None


def _load_raw(
    dataset_name: str, split: str, config: str | None, data_dir: str | os.PathLike | None
) -> tuple[Any, str]:
    path = _local_path(dataset_name, data_dir)
    if path is not None:
        if path.is_dir() or path.suffix.lower() not in DATA_FILE_SUFFIXES:
            raise DatasetError(f"dataset path {str(path)!r} is not a .jsonl/.json/.parquet file")
        records = read_records(path)
        if not records:
            raise DatasetError(f"dataset file {str(path)!r} is empty")
        try:
            return datasets.Dataset.from_list(records), str(path)
        except Exception as e:  # e.g. a column holding ints in some rows and strings in others
            raise DatasetError(
                f"dataset file {str(path)!r} cannot be turned into a table: {first_line(e)}"
            ) from None
    try:
        ds = datasets.load_dataset(dataset_name, config, split=split)
    except Exception as e:
        hint = "; pass a local .jsonl/.parquet file or unset HF_HUB_OFFLINE" if is_offline() else ""
        raise DatasetError(f"cannot load dataset {dataset_name!r} (split {split!r}): {first_line(e)}{hint}") from None
    return ds, dataset_name


def parse_level(value: Any) -> int | None:
    """MATH levels come as 3, "3" or "Level 3"; unknown ("Level ?", None) → None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    m = re.search(r"-?\d+", str(value))
    return int(m.group(0)) if m else None


def _clean_answer(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return gsm8k_answer(value) if "####" in value else value.strip()
    return integer_answer(value)


def load_training_dataset(
    dataset_name: str,
    split: str = "train",
    *,
    problem_column: str = "problem",
    answer_column: str = "answer",
    dataset_config: str | None = None,
    data_dir: str | os.PathLike | None = None,
    min_level: int | str | None = None,
    max_level: int | str | None = None,
    dedupe: bool = True,
    decontaminate: bool = True,
    decontaminate_against: Sequence[str] = DEFAULT_EVAL_SETS,
    ngram: int = 13,
    limit: int | None = None,
    seed: int = 0,
) -> tuple[Any, dict[str, Any]]:
    """Load a training set with `problem` and `answer` columns (other columns kept); returns (dataset, stats).

    `dataset_name` is a hub id or a local .jsonl/.json/.parquet file (also looked up inside `data_dir`, which
    defaults to `$R1_DATA_DIR` and is where the eval sets for decontamination are found). Stages, each logged
    with its count: drop rows with an empty problem/answer → level filter → exact-duplicate removal →
    decontamination → `limit` (a seeded random subset). The stats dict holds every stage's count for the run record.
    """
    data_dir = default_data_dir(data_dir)
    levels = (parse_level(min_level) if min_level is not None else None,
              parse_level(max_level) if max_level is not None else None)
    _check_options(limit, decontaminate, decontaminate_against)
    ds, source = _load_raw(dataset_name, split, dataset_config, data_dir)
    _check_columns(ds, source, problem_column, answer_column, levels)
    ds = _map_columns(ds, problem_column, answer_column)
    stats: dict[str, Any] = {"source": source, "split": split, "loaded": len(ds)}
    if len(ds) == 0:
        raise DatasetError(f"dataset {source!r} (split {split!r}) is empty")
    problems = [str(p) if p is not None else "" for p in ds["problem"]]
    keep = _drop_empty(problems, list(ds["answer"]), source, stats)
    if levels != (None, None):
        keep = _filter_levels(keep, list(ds["level"]), levels, source, stats)
    return _finish(ds, keep, problems, stats, dedupe=dedupe, decontaminate=decontaminate, ngram=ngram, limit=limit,
                   seed=seed, against=decontaminate_against, data_dir=data_dir)


def _finish(ds: Any, keep: list[int], problems: list[str], stats: dict[str, Any], *, dedupe: bool, decontaminate: bool,
            ngram: int, limit: int | None, seed: int, against: Sequence[str], data_dir: Path | None) -> tuple[Any, dict]:
    """The stages every training set goes through last: dedupe, decontamination, the seeded `limit` subset."""
    source = stats["source"]
    if dedupe:
        keep = _dedupe(keep, problems, stats)
    if decontaminate:
        keep = _decontaminate(keep, problems, list(against), data_dir, ngram, source, stats)
    if limit is not None and limit < len(keep):
        before, keep = len(keep), sorted(random.Random(seed).sample(keep, limit))
        stats["removed_limit"] = before - len(keep)
        _log_stage(f"limit={limit} (seed {seed})", before, len(keep))
    ds = ds.select(keep)
    stats["final"] = len(ds)
    logger.info("training data %s: %d of %d problems kept", source, len(ds), stats["loaded"])
    return ds, stats


def load_code_dataset(
    dataset_name: str = MBPP,
    split: str = "train",
    *,
    problem_column: str = "problem",
    dataset_config: str | None = None,
    data_dir: str | os.PathLike | None = None,
    dedupe: bool = True,
    decontaminate: bool = True,
    decontaminate_against: Sequence[str] = CODE_EVAL_SETS,
    ngram: int = 13,
    limit: int | None = None,
    seed: int = 0,
) -> tuple[Any, dict[str, Any]]:
    """A code training set with `problem` and `tests` columns (+ `id`, `entry_point` for MBPP); returns (dataset,
    stats). `dataset_name` "mbpp": MBPP's `split` (train = task ids 601-974) of mbpp.jsonl in `data_dir` (default
    $R1_DATA_DIR, else ../shared/data); else a hub id or local file whose `tests` column holds a list of assert
    snippets or one HumanEval-style `check` program per row. Stages: unusable tests / empty problems →
    dedupe → decontamination → limit, as in `load_training_dataset`."""
    data_dir = code_data_dir(default_data_dir(data_dir))  # MBPP and the eval sets: one folder
    _check_options(limit, decontaminate, decontaminate_against)
    if dataset_name.strip().lower() == MBPP:
        ds, source = _load_mbpp(split, data_dir)
    else:
        ds, source = _load_raw(dataset_name, split, dataset_config, data_dir)
        for option, col in (("problem_column", problem_column), ("the tests column", "tests")):
            if col not in ds.column_names:
                raise DatasetError(f"dataset {source!r} has no column {col!r} (it has: {', '.join(ds.column_names)}); "
                                   f"a code task needs problem and tests columns (set {option})")
        ds = _map_columns(ds, problem_column, None)
    stats: dict[str, Any] = {"source": source, "split": split, "loaded": len(ds)}
    problems = [str(p) if p is not None else "" for p in ds["problem"]]
    tests = list(ds["tests"])
    keep = [i for i in range(len(ds)) if problems[i].strip() and parse_tests(tests[i]) is not None]
    stats["removed_unusable_tests"] = len(ds) - len(keep)
    _log_stage("empty problem / unusable tests", len(ds), len(keep))
    _require(keep, source, "dropping rows with an empty problem or unusable tests",
             "tests must be assert snippets or a HumanEval-style check(...) program")
    return _finish(ds, keep, problems, stats, dedupe=dedupe, decontaminate=decontaminate, ngram=ngram, limit=limit,
                   seed=seed, against=decontaminate_against, data_dir=data_dir)


def _load_mbpp(split: str, folder: Path) -> tuple[Any, str]:
    try:
        rows = load_mbpp(split, folder)
    except (OSError, ValueError) as e:
        raise DatasetError(f"dataset mbpp: {first_line(e)}") from None
    columns = ("id", "problem", "tests", "entry_point")
    return datasets.Dataset.from_list([{c: r[c] for c in columns} for r in rows]), str(folder / "mbpp.jsonl")


def _check_options(limit: int | None, decontaminate: bool, against: Sequence[str]) -> None:
    if limit is not None and limit < 1:
        raise DatasetError(f"limit must be a positive number of problems (got {limit})")
    unknown = [n for n in against if n not in BENCHMARKS and not str(n).lower().endswith(DATA_FILE_SUFFIXES)]
    if decontaminate and unknown:
        raise DatasetError(
            f"unknown benchmark(s) in decontaminate_against: {', '.join(unknown)}; choose from "
            f"{', '.join(BENCHMARKS)} or .jsonl/.parquet paths"
        )


def _check_columns(ds: Any, source: str, problem_column: str, answer_column: str, levels: tuple) -> None:
    columns = list(ds.column_names)
    for option, col in (("problem_column", problem_column), ("answer_column", answer_column)):
        if col not in columns:
            raise DatasetError(
                f"dataset {source!r} has no column {col!r} (it has: {', '.join(columns)}); set {option} to the right one"
            )
    if levels != (None, None) and "level" not in columns:
        raise DatasetError(
            f"min_level/max_level set but dataset {source!r} has no 'level' column (it has: {', '.join(columns)}); "
            "drop the level filter"
        )


def _drop_empty(problems: list[str], answers: list[Any], source: str, stats: dict[str, Any]) -> list[int]:
    keep = [i for i in range(len(problems)) if problems[i].strip() and answers[i] is not None and str(answers[i]).strip()]
    stats["removed_empty"] = len(problems) - len(keep)
    _log_stage("empty problem/answer", len(problems), len(keep))
    _require(keep, source, "dropping rows with an empty problem or answer", "check the problem_column/answer_column mapping")
    return keep


def _filter_levels(keep: list[int], levels: list[Any], bounds: tuple, source: str, stats: dict[str, Any]) -> list[int]:
    lo, hi = bounds
    before = len(keep)
    keep = [i for i in keep if _level_ok(parse_level(levels[i]), lo, hi)]
    stats["removed_level"] = before - len(keep)
    stage = f"the level filter (min_level={lo}, max_level={hi})"
    _log_stage(stage, before, len(keep))
    _require(keep, source, stage, "relax min_level/max_level")
    return keep


def _dedupe(keep: list[int], problems: list[str], stats: dict[str, Any]) -> list[int]:
    seen: set[str] = set()
    kept = []
    for i in keep:
        key = normalize_text(problems[i])
        if key not in seen:
            seen.add(key)
            kept.append(i)
    stats["removed_duplicates"] = len(keep) - len(kept)
    _log_stage("exact-duplicate removal", len(keep), len(kept))
    return kept


def _decontaminate(
    keep: list[int], problems: list[str], against: list[str], data_dir: Path | None, ngram: int, source: str,
    stats: dict[str, Any],
) -> list[int]:
    eval_sets, skipped = load_eval_problems(against, data_dir)
    stats.update(decontaminated_against={k: len(v) for k, v in eval_sets.items()}, decontamination_skipped=skipped,
                 ngram=ngram)
    if not eval_sets:
        logger.warning("decontamination: no eval set available (pass data_dir or set R1_DATA_DIR); data NOT decontaminated")
    index = Decontaminator(eval_sets, ngram)
    stats["boilerplate_ngrams_ignored"] = index.boilerplate_ngrams
    kept: list[int] = []
    by_kind = {"exact": 0, "ngram": 0}
    by_bench: dict[str, int] = {}
    for i in keep:
        hit = index.match(problems[i])
        if hit is None:
            kept.append(i)
        else:
            by_kind[hit[0]] += 1
            by_bench[hit[1]] = by_bench.get(hit[1], 0) + 1
    stats.update(removed_contaminated=len(keep) - len(kept), removed_contaminated_exact=by_kind["exact"],
                 removed_contaminated_ngram=by_kind["ngram"], contaminated_by_benchmark=by_bench)
    _log_stage(f"decontamination ({ngram}-gram / exact vs {', '.join(eval_sets) or 'nothing'})", len(keep), len(kept))
    _require(kept, source, "decontamination (every problem overlaps an eval set)", "check that the training file is not an eval set")
    return kept


def _map_columns(ds: Any, problem_column: str, answer_column: str | None) -> Any:
    """Rename the chosen columns to `problem`/`answer` (a clashing column is kept as `<name>_original`); no answer
    column (None) for code tasks."""
    for target, col in (("problem", problem_column), ("answer", answer_column)):
        if col == target or col is None:
            continue
        if target in ds.column_names:
            ds = ds.rename_column(target, f"{target}_original")
        ds = ds.rename_column(col, target)
    if answer_column is None:
        return ds
    if not all(isinstance(a, str) and "####" not in a for a in ds["answer"]):
        ds = ds.map(lambda row: {"answer": _clean_answer(row["answer"])}, desc="answer → reference string")
    return ds


def _level_ok(level: int | None, lo: int | None, hi: int | None) -> bool:
    if level is None:
        return False
    return (lo is None or level >= lo) and (hi is None or level <= hi)


def _log_stage(stage: str, before: int, after: int) -> None:
    logger.info("%s: removed %d of %d (%d left)", stage, before - after, before, after)


def _require(keep: list[int], source: str, stage: str, fix: str) -> None:
    if not keep:
        raise DatasetError(f"dataset {source!r} is empty after {stage}; {fix}")
