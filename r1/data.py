"""Training data: load, map columns, filter by level, dedupe and decontaminate against the eval benchmarks.

Reported gains mean nothing if the training set contains the test problems, so decontamination is on by default:
a training problem is dropped when its normalised text equals an eval problem or when it shares any word 13-gram
with one (the usual n-gram criterion, e.g. open-r1's decontamination). The eval problems come from the same
benchmark definitions `eval` uses. Every stage logs how many rows it removed and the counts are returned, so a
run records exactly what it trained on. Bad input fails in one line (`DatasetError`) before any model is loaded.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from eval.benchmarks import (
    BENCHMARKS,
    FILE_SUFFIXES,
    BenchmarkError,
    gsm8k_answer,
    integer_answer,
    load_benchmark,
)

logger = logging.getLogger(__name__)

DEFAULT_EVAL_SETS = ("aime24", "aime25", "amc23", "math500", "gsm8k")
_TRUE = {"1", "true", "yes", "on"}


class DatasetError(ValueError):
    """Bad training-data input; the message is one line saying what is wrong and how to fix it."""


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


def _is_offline() -> bool:
    return any(
        os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
    )


def _local_path(dataset_name: str, data_dir: str | os.PathLike | None) -> Path | None:
    """The local file meant by `dataset_name` (as given, or inside data_dir), or None for a hub id."""
    path = Path(dataset_name).expanduser()
    if path.exists():
        return path
    if data_dir is not None and (Path(data_dir).expanduser() / dataset_name).exists():
        return Path(data_dir).expanduser() / dataset_name
    looks_local = dataset_name.lower().endswith(FILE_SUFFIXES) or dataset_name.startswith(("/", ".", "~"))
    if looks_local or dataset_name.count("/") > 1:
        where = f" (nor in data_dir {data_dir})" if data_dir is not None else ""
        raise DatasetError(
            f"dataset file {dataset_name!r} does not exist{where}; pass an existing .jsonl/.json/.parquet file or a hub dataset id"
        )
    return None


def _load_raw(
    dataset_name: str, split: str, config: str | None, data_dir: str | os.PathLike | None
) -> tuple[Any, str]:
    import datasets

    path = _local_path(dataset_name, data_dir)
    if path is not None:
        if path.is_dir() or path.suffix.lower() not in FILE_SUFFIXES:
            raise DatasetError(f"dataset path {str(path)!r} is not a .jsonl/.json/.parquet file")
        from eval.benchmarks import read_records

        try:
            records = read_records(path)
        except BenchmarkError as e:
            raise DatasetError(str(e)) from None
        if not records:
            raise DatasetError(f"dataset file {str(path)!r} is empty")
        try:
            return datasets.Dataset.from_list(records), str(path)
        except Exception as e:  # e.g. a column holding ints in some rows and strings in others
            raise DatasetError(
                f"dataset file {str(path)!r} cannot be turned into a table: {str(e).splitlines()[0]}"
            ) from None
    try:
        ds = datasets.load_dataset(dataset_name, config, split=split)
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        hint = "; pass a local .jsonl/.parquet file or unset HF_HUB_OFFLINE" if _is_offline() else ""
        raise DatasetError(f"cannot load dataset {dataset_name!r} (split {split!r}): {first}{hint}") from None
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
    return_stats: bool = False,
) -> Any:
    """Load a training set with `problem` and `answer` columns (other columns kept).

    `dataset_name` is a hub id or a local .jsonl/.json/.parquet file (also looked up inside `data_dir`, which
    defaults to `$R1_DATA_DIR` and is where the eval sets for decontamination are found). Stages, each logged
    with its count: drop rows with an empty problem/answer → level filter → exact-duplicate removal →
    decontamination → `limit` (a seeded random subset). Returns the `datasets.Dataset`, or `(dataset, stats)`
    with `return_stats=True`; the stats dict holds every stage's count for the run record.
    """
    if data_dir is None and os.environ.get("R1_DATA_DIR"):
        data_dir = os.environ["R1_DATA_DIR"]
    min_level = parse_level(min_level) if min_level is not None else None
    max_level = parse_level(max_level) if max_level is not None else None
    if limit is not None and limit < 1:
        raise DatasetError(f"limit must be a positive number of problems (got {limit})")
    unknown = [
        n for n in decontaminate_against if n not in BENCHMARKS and not str(n).lower().endswith(FILE_SUFFIXES)
    ]
    if decontaminate and unknown:
        raise DatasetError(
            f"unknown benchmark(s) in decontaminate_against: {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)} or .jsonl/.parquet paths"
        )

    ds, source = _load_raw(dataset_name, split, dataset_config, data_dir)
    columns = list(ds.column_names)
    for option, col in (("problem_column", problem_column), ("answer_column", answer_column)):
        if col not in columns:
            raise DatasetError(
                f"dataset {source!r} has no column {col!r} (it has: {', '.join(columns)}); set {option} to the right one"
            )
    if (min_level is not None or max_level is not None) and "level" not in columns:
        raise DatasetError(
            f"min_level/max_level set but dataset {source!r} has no 'level' column (it has: {', '.join(columns)}); drop the level filter"
        )
    ds = _map_columns(ds, problem_column, answer_column)

    stats: dict[str, Any] = {"source": source, "split": split, "loaded": len(ds)}
    if len(ds) == 0:
        raise DatasetError(f"dataset {source!r} (split {split!r}) is empty")
    problems = [str(p) if p is not None else "" for p in ds["problem"]]
    answers = list(ds["answer"])
    keep = [
        i
        for i in range(len(ds))
        if problems[i].strip() and answers[i] is not None and str(answers[i]).strip()
    ]
    stats["removed_empty"] = len(ds) - len(keep)
    _log_stage("empty problem/answer", len(ds), len(keep))
    _require(
        keep,
        source,
        "dropping rows with an empty problem or answer",
        "check the problem_column/answer_column mapping",
    )

    if min_level is not None or max_level is not None:
        levels = list(ds["level"])
        before = len(keep)
        keep = [i for i in keep if _level_ok(parse_level(levels[i]), min_level, max_level)]
        stats["removed_level"] = before - len(keep)
        _log_stage(f"level filter (min_level={min_level}, max_level={max_level})", before, len(keep))
        _require(
            keep,
            source,
            f"the level filter (min_level={min_level}, max_level={max_level})",
            "relax min_level/max_level",
        )

    if dedupe:
        before, seen, kept = len(keep), set(), []
        for i in keep:
            key = normalize_text(problems[i])
            if key not in seen:
                seen.add(key)
                kept.append(i)
        keep = kept
        stats["removed_duplicates"] = before - len(keep)
        _log_stage("exact-duplicate removal", before, len(keep))

    if decontaminate:
        eval_sets, skipped = load_eval_problems(list(decontaminate_against), data_dir)
        stats["decontaminated_against"] = {k: len(v) for k, v in eval_sets.items()}
        stats["decontamination_skipped"] = skipped
        stats["ngram"] = ngram
        if not eval_sets:
            logger.warning(
                "decontamination: no eval set available (pass data_dir or set R1_DATA_DIR); data NOT decontaminated"
            )
        index = Decontaminator(eval_sets, ngram)
        stats["boilerplate_ngrams_ignored"] = index.boilerplate_ngrams
        before, kept = len(keep), []
        by_kind = {"exact": 0, "ngram": 0}
        by_bench: dict[str, int] = {}
        for i in keep:
            hit = index.match(problems[i])
            if hit is None:
                kept.append(i)
            else:
                by_kind[hit[0]] += 1
                by_bench[hit[1]] = by_bench.get(hit[1], 0) + 1
        keep = kept
        stats.update(
            removed_contaminated=before - len(keep),
            removed_contaminated_exact=by_kind["exact"],
            removed_contaminated_ngram=by_kind["ngram"],
            contaminated_by_benchmark=by_bench,
        )
        _log_stage(
            f"decontamination ({ngram}-gram / exact vs {', '.join(eval_sets) or 'nothing'})",
            before,
            len(keep),
        )
        _require(
            keep,
            source,
            "decontamination (every problem overlaps an eval set)",
            "check that the training file is not an eval set",
        )

    if limit is not None and limit < len(keep):
        import random

        before = len(keep)
        keep = sorted(random.Random(seed).sample(keep, limit))
        stats["removed_limit"] = before - len(keep)
        _log_stage(f"limit={limit} (seed {seed})", before, len(keep))

    ds = ds.select(keep)
    stats["final"] = len(ds)
    logger.info("training data %s: %d of %d problems kept", source, len(ds), stats["loaded"])
    return (ds, stats) if return_stats else ds


def _map_columns(ds: Any, problem_column: str, answer_column: str) -> Any:
    """Rename the chosen columns to `problem`/`answer` (a clashing column is kept as `<name>_original`)."""
    for target, col in (("problem", problem_column), ("answer", answer_column)):
        if col == target:
            continue
        if target in ds.column_names:
            ds = ds.rename_column(target, f"{target}_original")
        ds = ds.rename_column(col, target)
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
