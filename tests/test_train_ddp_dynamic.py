"""Dynamic sampling under DDP: two processes refill in lockstep (same number of rounds, no hang) and every row
they train on comes from a group with reward variance.

The test launches this file as the training script with torchrun (`accelerate launch --multi_gpu`, gloo on CPU);
the `__main__` block is the worker, with a reward defined here ("const" prompts: all 1.0, "vary": 0/1).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.timeout(600)
def test_dynamic_sampling_in_lockstep_over_two_processes(tmp_path):
    import torch

    if torch.cuda.device_count() == 1:
        pytest.skip("one GPU: torchrun would put both processes on it")
    from conftest import free_port  # local: this file is also the launched training script

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(free_port()), __file__, str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=540, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    for rep in reports:
        assert rep["rows"] == [4, 4]  # full local batch every step
        assert rep["const_rows"] == 0  # zero-variance groups never reach the loss
    assert reports[0]["rounds"] == reports[1]["rounds"] and max(reports[0]["rounds"]) >= 1
    assert reports[0]["kept"] == reports[1]["kept"]


def _const_or_vary(prompts, completions, **kw):
    return [1.0 if "const" in p else float(i % 2) for i, p in enumerate(prompts)]


def _worker(out: Path) -> None:
    from datasets import Dataset

    from r1.config import parse_args
    from r1.distributed import end_process_group
    from r1.models import load_model, load_tokenizer, resolve_model
    from r1.rewarding import SafeReward
    from r1.trainer import R1ZeroTrainer

    run = parse_args([
        "--config", str(REPO / "tests/configs/tiny_qwen2.yaml"), "--output_dir", str(out / "run"),
        "--num_generations", "4", "--per_device_train_batch_size", "4", "--max_completion_length", "3",
        "--loss_type", "dapo", "--dynamic_sampling", "true", "--dynamic_sampling_max_rounds", "8",
        "--reward_funcs", "accuracy", "--reward_weights", "1", "--save_strategy", "no", "--max_steps", "2",
    ])
    path = resolve_model("tiny:qwen2")
    prompts = [f"{kind} {k}: What is {k} + 1?" for k in range(8) for kind in ("const", "vary")]
    trainer = R1ZeroTrainer(
        model=load_model(path, dtype="float32"),
        reward_funcs=[SafeReward(_const_or_vary, "crafted")],
        args=run.training,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=load_tokenizer(path),
        artifacts=False,
    )
    tok = trainer.processing_class
    seen = {"rows": [], "const_rows": 0}
    original = trainer._dynamic_sampling

    def spy(inputs, first):
        batch = original(inputs, first)
        seen["rows"].append(int(batch["prompt_ids"].shape[0]))
        texts = tok.batch_decode(batch["prompt_ids"], skip_special_tokens=True)
        seen["const_rows"] += sum("const" in t for t in texts)
        return batch

    trainer._dynamic_sampling = spy
    trainer.train()
    history = trainer.state.log_history  # the logged (gathered, averaged) metrics, the same on every rank
    seen["rounds"] = [h["dynamic_sampling/rounds"] for h in history if "dynamic_sampling/rounds" in h]
    seen["kept"] = [h["dynamic_sampling/kept_group_frac"] for h in history if "dynamic_sampling/kept_group_frac" in h]
    (out / f"rank{trainer.accelerator.process_index}.json").write_text(json.dumps(seen))
    end_process_group()  # as r1.train does: without it gloo can abort a rank at exit (SIGABRT, 1 run in ~15 here)


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
