"""r1-zero's trainer library. The names most programs need, importable from `r1` directly:

    from r1 import R1GRPOConfig, R1ZeroTrainer, evaluate, load_model, load_tokenizer

Attributes load their module on first use, so `import r1.errors` (or `r1.hub`) stays light. The module map is in
docs/architecture.md.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "parse_args": "r1.config",
    "R1GRPOConfig": "r1.config",
    "prepare": "r1.train",
    "train": "r1.train",
    "R1ZeroTrainer": "r1.trainer",
    "evaluate": "r1.evaluation",
    "load_benchmark": "r1.benchmarks",
    "load_training_dataset": "r1.data",
    "load_model": "r1.models",
    "load_tokenizer": "r1.models",
    "resolve_model": "r1.models",
    "get_template": "r1.templates",
    "lean_sample": "r1.decoding",
    "R1Error": "r1.errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'r1' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
