"""Crash-safe file writes shared by training and evaluation.

A GRPO run or an eval can be killed at any moment (SIGKILL, lost node). Every artifact is therefore written so the
previous complete state stays readable: whole files go through write-to-temp + fsync + rename, and JSONL logs are
appended one whole line at a time with flush + fsync. Readers drop a torn trailing line instead of failing.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from r1.errors import DatasetError

# written into every training output_dir: the resolved run config (`python -m eval --model OUTPUT_DIR` reads `template`)
CONFIG_FILE_NAME = "r1_config.yaml"


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace `path` with `data` so a reader sees either the old or the new file, never a mix."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def repair_jsonl(path: str | os.PathLike) -> int:
    """Truncate a torn (unterminated or unparsable) last line left by a kill; returns the bytes removed."""
    path = Path(path)
    if not path.exists():
        return 0
    with open(path, "rb+") as f:
        data = f.read()
        keep = len(data)
        if data and not data.endswith(b"\n"):
            keep = data.rfind(b"\n") + 1
        else:
            # A complete-looking last line can still be garbage if the kill hit mid-write on some filesystems.
            start = data.rfind(b"\n", 0, max(keep - 1, 0)) + 1
            last = data[start:keep].strip()
            if last:
                try:
                    json.loads(last)
                except ValueError:
                    keep = start
        if keep != len(data):
            f.truncate(keep)
            f.flush()
            os.fsync(f.fileno())
        return len(data) - keep


def append_jsonl(path: str | os.PathLike, records: Iterable[dict[str, Any]] | dict[str, Any]) -> None:
    """Append whole JSON lines and make them durable before returning."""
    if isinstance(records, dict):
        records = [records]
    payload = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
    if not payload:
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # backslashreplace: a lone surrogate (possible in decoded model text) is written as a JSON escape, not a crash
    with open(path, "a", encoding="utf-8", errors="backslashreplace") as f:
        f.write(payload)
        f.flush()
        os.fsync(f.fileno())


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict[str, Any]]:
    """Yield the records of a JSONL file, skipping a torn last line (never raising for one)."""
    path = Path(path)
    if not path.exists():
        return
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield json.loads(line)
        except ValueError:
            if i >= len(lines) - 2:  # the torn last line of a killed writer
                return
            raise


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    return list(iter_jsonl(path))


def read_records(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read a .jsonl / .json (a list, or {"data": [...]}) / .parquet file into a list of dicts."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix == ".jsonl":
            rows = []
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except ValueError as e:
                            raise DatasetError(
                                f"{path}: line {lineno} is not valid JSON ({e.msg})"
                            ) from None
            return rows
        if suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(data, dict) and isinstance(data.get("data"), list):
                data = data["data"]
            if not isinstance(data, list):
                raise DatasetError(f'{path}: expected a JSON list of records (or {{"data": [...]}})')
            return data
        if suffix == ".parquet":
            import pyarrow.parquet as pq  # local: only parquet files need pyarrow

            return pq.read_table(path).to_pylist()
    except (OSError, UnicodeDecodeError) as e:
        raise DatasetError(f"cannot read {path}: {e}") from None
    raise DatasetError(f"{path}: unsupported file type {suffix!r}; use .jsonl, .json or .parquet")
