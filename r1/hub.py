"""Hub or local? One answer for every loader: models, training datasets and benchmarks ask the same questions here.

- `is_offline()`: the user asked for no hub access (any of HF_HUB_OFFLINE, HF_DATASETS_OFFLINE,
  TRANSFORMERS_OFFLINE set to a true value). Loaders then fail in one line instead of waiting on the network.
- `looks_like_path(name)`: a name that can only be meant as a local path (a hub id is `name` or `org/name`).
- `hub_cached(repo_id, kind)`: whether the local Hugging Face cache holds a snapshot (usable offline).
"""

from __future__ import annotations

import os
from pathlib import Path

from huggingface_hub import constants, try_to_load_from_cache

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE")
DATA_FILE_SUFFIXES = (".jsonl", ".json", ".parquet")
_TRUE = {"1", "true", "yes", "on"}


def is_offline() -> bool:
    """True when any of OFFLINE_VARIABLES is set to 1/true/yes/on."""
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in OFFLINE_VARIABLES)


def looks_like_path(name: str) -> bool:
    """True for names that cannot be hub ids: absolute/relative/home paths, backslashes, more than one `/`, a
    trailing `/`, or a data-file suffix (.jsonl/.json/.parquet). Existing files are the caller's first check."""
    name = str(name).strip()
    if name.startswith(("/", "./", "../", "~", ".\\")) or "\\" in name or name in (".", ".."):
        return True
    return name.count("/") > 1 or name.endswith("/") or name.lower().endswith(DATA_FILE_SUFFIXES)


def is_hub_id(name: str) -> bool:
    """A name that will be looked up on the hub: not an existing path and not path-shaped."""
    return not Path(str(name)).expanduser().exists() and not looks_like_path(name)


def hub_cached(repo_id: str, kind: str = "model") -> bool:
    """Whether the Hugging Face cache holds a snapshot of `repo_id` (`kind` = "model" or "dataset")."""
    if kind == "model":
        return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)
    snapshots = Path(constants.HF_HUB_CACHE) / ("datasets--" + repo_id.replace("/", "--")) / "snapshots"
    return snapshots.is_dir() and any(snapshots.iterdir())
