"""GRPO training, R1-Zero style: a base model, rule-based rewards, no value network.

    accelerate launch recipes/r1_zero.py --config recipes/configs/NAME.yaml [--field value ...]
    accelerate launch recipes/r1_zero.py                  # the offline demo (recipes/configs/demo.yaml)
    python recipes/r1_zero.py --config ... --dry_run      # validate and print the resolved settings, no weights
    r1-train --config ...                                 # the same, installed as a console script

Parse (r1.config) -> prepare: template, rewards, data and model name, checked before any weights load (r1.train)
-> dry run, or train: R1ZeroTrainer (r1.trainer) writes checkpoints, metrics.jsonl, curves.png and summary.json in
output_dir, then the model, its tokenizer and r1_config.yaml (so `python -m eval --model OUTPUT_DIR` uses the same
template). A mistake is one line on stderr and exit code 2; `--debug` shows the traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

if __package__ in (None, ""):  # `python recipes/r1_zero.py` from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from r1.config import parse_args  # noqa: E402 - after the path fix above
from r1.errors import R1Error, first_line  # noqa: E402
from r1.train import dry_run_lines, prepare, train  # noqa: E402
from rewards.registry import UnknownNameError  # noqa: E402

DEMO_CONFIG = Path(__file__).resolve().parent / "configs" / "demo.yaml"


def setup_logging(debug: bool) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        level=logging.DEBUG if debug else logging.INFO)
    for noisy in ("httpx", "urllib3", "filelock", "datasets", "fsspec"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv or os.environ.get("R1_DEBUG", "") not in ("", "0")
    try:
        run = parse_args(argv, default_config=str(DEMO_CONFIG))
        if not run.script.dry_run:
            setup_logging(debug)
        plan = prepare(run)
        if run.script.dry_run:
            print("\n".join(dry_run_lines(run, plan)))
            return 0
        print("\n".join(train(run, plan)), flush=True)
        return 0
    except (R1Error, UnknownNameError) as e:
        if debug:
            raise
        print(f"error: {first_line(e)}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())
