"""Training data: loading, column mapping, level filter, dedupe, decontamination and their one-line errors."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from r1.benchmarks import (
    BENCHMARKS,
    BenchmarkError,
    gsm8k_answer,
    integer_answer,
    load_benchmark,
    resolve_benchmark,
)
from r1.data import DatasetError, Decontaminator, load_training_dataset, normalize_text
from r1.hub import OFFLINE_VARIABLES


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def test_level_filter_counts(data_dir: Path) -> None:
    path = data_dir / "math_train.jsonl"
    rows = read_jsonl(path)
    expected = sum(1 for r in rows if r.get("level") is not None and r["level"] >= 3)
    assert expected == 5584  # SOURCES.md: levels 3-5
    ds, stats = load_training_dataset(
        str(path), min_level=3, dedupe=False, decontaminate=False
    )
    assert len(ds) == expected and stats["removed_level"] == len(rows) - expected
    assert set(ds.column_names) >= {"problem", "answer", "level", "type", "id"}
    assert min(ds["level"]) == 3
    low, _ = load_training_dataset(
        str(path), min_level="Level 1", max_level="Level 2", dedupe=False, decontaminate=False
    )
    assert len(low) == sum(1 for r in rows if r.get("level") in (1, 2))


def test_file_found_in_data_dir_and_string_levels(tmp_path: Path) -> None:
    write_jsonl(
        tmp_path / "t.jsonl",
        [{"problem": f"p{i}", "answer": str(i), "level": f"Level {i % 5 + 1}"} for i in range(20)],
    )
    ds, _ = load_training_dataset("t.jsonl", data_dir=tmp_path, min_level=4, decontaminate=False)
    assert sorted(ds["answer"]) == sorted(str(i) for i in range(20) if i % 5 + 1 >= 4)


def test_column_mapping_gsm8k(data_dir: Path, tmp_path: Path) -> None:
    rows = read_jsonl(data_dir / "gsm8k_train.jsonl")[:200]
    # The hub layout: `question`, and `answer` holding the worked solution ending in "#### N".
    hub_like = [{"question": r["problem"], "answer": r["solution"], "gold": r["answer"]} for r in rows]
    path = write_jsonl(tmp_path / "gsm8k_like.jsonl", hub_like)
    ds, _ = load_training_dataset(str(path), problem_column="question", decontaminate=False)
    assert ds["problem"] == [r["problem"] for r in rows]
    assert ds["answer"] == [r["answer"] for r in rows]  # "#### 1,080" -> "1080", as in the normalised file
    assert "gold" in ds.column_names

    # Mapping onto names that already exist keeps the old column under another name.
    ds, _ = load_training_dataset(
        str(data_dir / "gsm8k_train.jsonl"), answer_column="solution", limit=50, decontaminate=False
    )
    assert ds["answer"] == ds["answer_original"]


def test_missing_column_error_names_the_columns(data_dir: Path) -> None:
    with pytest.raises(DatasetError) as e:
        load_training_dataset(str(data_dir / "gsm8k_train.jsonl"), problem_column="question")
    msg = str(e.value)
    assert "\n" not in msg and "'question'" in msg and "problem_column" in msg
    assert "id, problem, answer, solution" in msg
    with pytest.raises(DatasetError, match="answer_column"):
        load_training_dataset(str(data_dir / "gsm8k_train.jsonl"), answer_column="final")
    with pytest.raises(DatasetError, match="no 'level' column"):
        load_training_dataset(str(data_dir / "gsm8k_train.jsonl"), min_level=3)


def test_empty_after_filter_names_the_filter(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as e:
        load_training_dataset(str(data_dir / "math_train.jsonl"), min_level=6)
    assert "level filter" in str(e.value) and "min_level=6" in str(e.value) and "\n" not in str(e.value)
    math500 = read_jsonl(data_dir / "math500.jsonl")[:5]
    path = write_jsonl(tmp_path / "leak.jsonl", math500)
    with pytest.raises(DatasetError, match="decontamination"):
        load_training_dataset(str(path), data_dir=data_dir)
    with pytest.raises(DatasetError, match="empty"):
        load_training_dataset(str(write_jsonl(tmp_path / "empty.jsonl", [])))


@pytest.mark.parametrize("name", ["nope/missing.jsonl", "./missing.parquet", "/tmp/definitely/missing.json"])
def test_missing_path(name: str) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_training_dataset(name)


def test_dedupe_counts(tmp_path: Path) -> None:
    rows = [
        {"problem": "What is $1 + 1$?", "answer": "2"},
        {"problem": "what is  $1+1$ ?", "answer": "2"},  # same after normalisation
        {"problem": "What is $1 - 1$?", "answer": "0"},  # differs by the operator: kept
        {"problem": "What is $2 + 2$?", "answer": "4"},
        {"problem": "What is $2 + 2$?", "answer": "4"},
        {"problem": "", "answer": "4"},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    ds, stats = load_training_dataset(str(path), decontaminate=False)
    assert stats["removed_empty"] == 1 and stats["removed_duplicates"] == 2 and stats["final"] == 3
    assert ds["answer"] == ["2", "0", "4"]
    assert len(load_training_dataset(str(path), dedupe=False, decontaminate=False)[0]) == 5


def test_normalisation_keeps_operators() -> None:
    assert normalize_text(r"Find $\dfrac{1}{2}\,x$ !") == normalize_text(r"find $\frac{1}{2} x$!")
    assert normalize_text("z^4 + z^2 + 1") != normalize_text("z^4 - z^2 + 1")


def test_decontamination_catches_injected_math500(data_dir: Path, tmp_path: Path) -> None:
    math500 = read_jsonl(data_dir / "math500.jsonl")
    # A long problem leaves room to reword around a 13-word window.
    target = max(math500, key=lambda r: len(r["problem"].split()))
    words = target["problem"].split()
    middle = words[len(words) // 2 - 8 : len(words) // 2 + 8]  # 16 consecutive words kept verbatim
    reworded = (
        "Consider this variant of a classic exercise. " + " ".join(middle) + " Justify every step carefully."
    )
    unrelated = read_jsonl(data_dir / "gsm8k_train.jsonl")[
        21:61
    ]  # row 20 is a template twin of a GSM8K test one
    boilerplate = (
        "A bag holds 7 red and 5 blue marbles; two are drawn. The probability both are red is $\\frac{m}{n}$, where $m$ "
        "and $n$ are relatively prime positive integers. Find $m+n$."
    )
    rows = [
        {"problem": target["problem"], "answer": target["answer"], "tag": "verbatim"},
        {"problem": reworded, "answer": target["answer"], "tag": "reworded"},
        {"problem": "  " + target["problem"].upper() + "  ", "answer": target["answer"], "tag": "case"},
        {"problem": boilerplate, "answer": "39", "tag": "boilerplate"},
    ] + [{"problem": r["problem"], "answer": r["answer"], "tag": "clean"} for r in unrelated]
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    ds, stats = load_training_dataset(str(path), data_dir=data_dir, dedupe=False)
    assert sorted(t for t in ds["tag"] if t != "clean") == ["boilerplate"]
    assert ds["tag"].count("clean") == len(unrelated)
    assert stats["removed_contaminated"] == 3
    assert stats["removed_contaminated_exact"] == 2 and stats["removed_contaminated_ngram"] == 1
    assert stats["contaminated_by_benchmark"] == {"math500": 3}
    assert set(stats["decontaminated_against"]) == {"aime24", "aime25", "amc23", "math500", "gsm8k"}

    # The reworded problem shares only the middle window: an n-gram longer than that window lets it through.
    window = len([t for t in normalize_text(" ".join(middle)).split() if t[0].isalnum()])
    assert window >= 13
    longer, _ = load_training_dataset(str(path), data_dir=data_dir, dedupe=False, ngram=window + 1)
    assert "reworded" in longer["tag"] and "verbatim" not in longer["tag"]
    assert "reworded" in load_training_dataset(str(path), data_dir=data_dir, decontaminate=False)[0]["tag"]


def test_decontamination_skips_unavailable_sets_with_warning(
    data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    only = tmp_path / "evals"
    only.mkdir()
    (only / "math500.jsonl").write_bytes((data_dir / "math500.jsonl").read_bytes())
    train = write_jsonl(tmp_path / "train.jsonl", [{"problem": "What is 3 + 4?", "answer": "7"}])
    with caplog.at_level(logging.WARNING, logger="r1.data"):
        ds, stats = load_training_dataset(str(train), data_dir=only)
    assert len(ds) == 1
    assert list(stats["decontaminated_against"]) == ["math500"]
    assert stats["decontamination_skipped"] == ["aime24", "aime25", "amc23", "gsm8k"]
    assert "skipping aime24" in caplog.text


def test_decontaminator_index_is_fast_enough(data_dir: Path) -> None:
    """The 7.5k x 1.9k problem check is a set lookup per n-gram (timing lives in benchmarks/, this checks scale)."""
    index = Decontaminator({"gsm8k": [r["problem"] for r in read_jsonl(data_dir / "gsm8k_test.jsonl")]})
    assert len(index.grams) > 40_000
    assert index.match(read_jsonl(data_dir / "gsm8k_test.jsonl")[10]["problem"]) == ("exact", "gsm8k")


def test_limit_is_seeded(data_dir: Path) -> None:
    path = str(data_dir / "gsm8k_train.jsonl")
    a, _ = load_training_dataset(path, limit=30, seed=1, decontaminate=False)
    b, _ = load_training_dataset(path, limit=30, seed=1, decontaminate=False)
    c, _ = load_training_dataset(path, limit=30, seed=2, decontaminate=False)
    assert a["id"] == b["id"] and a["id"] != c["id"] and len(a) == 30


# ------------------------------------------------------------------------------------------------------------------
# r1.benchmarks: the eval sets decontamination (and the eval CLI) read
# ------------------------------------------------------------------------------------------------------------------


def test_benchmarks_resolve_to_local_files(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = {"aime24": 30, "aime25": 30, "amc23": 40, "math500": 500, "gsm8k": 1319}
    assert set(BENCHMARKS) == set(sizes) | {"humaneval", "mbpp"}  # the code benchmarks: tests/test_eval_code.py
    for name, size in sizes.items():
        bench, source = resolve_benchmark(name, data_dir)
        assert Path(source) == (data_dir / bench.local_file).resolve()
        rows = load_benchmark(name, data_dir)
        assert len(rows) == size and set(rows[0]) == {"id", "problem", "answer"}
        assert all(isinstance(r["answer"], str) and r["answer"] for r in rows)
        assert len({r["id"] for r in rows}) == size
    monkeypatch.setenv("R1_DATA_DIR", str(data_dir))
    assert resolve_benchmark("aime24")[1] == str((data_dir / "aime24.jsonl").resolve())
    assert len(load_benchmark("math500", limit=7)) == 7


def test_benchmark_offline_without_file_names_the_option(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.delenv("R1_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BenchmarkError) as e:
        resolve_benchmark("aime24", tmp_path)
    msg = str(e.value)
    assert "\n" not in msg and "--data-dir" in msg and "R1_DATA_DIR" in msg and "aime24.jsonl" in msg
    with pytest.raises(BenchmarkError, match="--data-dir"):
        load_benchmark("gsm8k")
    # Online, the same name resolves to its hub dataset (nothing is downloaded by resolving).
    for variable in OFFLINE_VARIABLES:  # online means none of them is set (r1.hub.is_offline)
        monkeypatch.delenv(variable, raising=False)
    bench, source = resolve_benchmark("gsm8k", tmp_path)
    assert source == "openai/gsm8k" and bench.hub_config == "main" and bench.split == "test"
    assert resolve_benchmark("math500")[1] == "HuggingFaceH4/MATH-500"


def test_benchmark_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(BenchmarkError) as e:
        resolve_benchmark("aime2024")
    assert "aime24, aime25, amc23, math500, gsm8k" in str(e.value)
    with pytest.raises(BenchmarkError, match="does not exist"):
        load_benchmark(str(tmp_path / "missing.jsonl"))
    no_answer = write_jsonl(tmp_path / "noanswer.jsonl", [{"id": 1, "problem": "2+2?", "solution": "4"}])
    with pytest.raises(BenchmarkError) as e:
        load_benchmark(str(no_answer))
    assert "no 'answer' column" in str(e.value) and "id, problem, solution" in str(e.value)
    with pytest.raises(BenchmarkError, match="empty"):
        load_benchmark(str(write_jsonl(tmp_path / "empty.jsonl", [])))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"problem": "x", "answer": "1"}\n{"problem": \n', encoding="utf-8")
    with pytest.raises(BenchmarkError, match="line 2"):
        load_benchmark(str(bad))


def test_benchmark_files_of_every_format(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"problem": "What is 2+2?", "answer": 4}, {"problem": "What is 3+3?", "answer": "6"}]
    pq.write_table(
        pa.table({"problem": [r["problem"] for r in rows], "answer": ["4", "6"]}), tmp_path / "b.parquet"
    )
    (tmp_path / "b.json").write_text(json.dumps(rows), encoding="utf-8")
    for name in ("b.parquet", "b.json"):
        bench, _ = resolve_benchmark(str(tmp_path / name))
        assert bench.name == "b"
        loaded = load_benchmark(str(tmp_path / name))
        assert [r["answer"] for r in loaded] == ["4", "6"] and [r["id"] for r in loaded] == ["0", "1"]


def test_answer_transforms() -> None:
    assert gsm8k_answer("She makes 9 * 2 = $18.\n#### 1,080") == "1080"
    assert gsm8k_answer("1080") == "1080"  # idempotent: local files hold clean answers
    assert (
        integer_answer(27.0) == "27"
        and integer_answer("025") == "25"
        and integer_answer("\\frac{1}{2}") == "\\frac{1}{2}"
    )


def test_benchmarks_and_data_modules_do_not_import_torch() -> None:
    import subprocess
    import sys

    code = "import sys, r1.benchmarks, r1.data; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])


def test_uncached_hub_dataset_offline_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DatasetError) as e:
        load_training_dataset("r1-zero-tests/not-a-cached-dataset")
    msg = str(e.value)
    assert "\n" not in msg and "r1-zero-tests/not-a-cached-dataset" in msg and "local .jsonl" in msg
