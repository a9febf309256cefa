"""LoRA runs (use_peft, tiny Qwen2 on CPU): config errors, the fast rollout path, the saved adapter, resume, eval.

- lora_* without use_peft is a one-line error (the inapplicable-fields rule), as is a bad rank.
- With a PEFT policy the lean decode loop samples what TRL's generate samples (the direct decode step refuses the
  LoRA-wrapped linears and falls back), so the losses are TRL's; beta > 0 uses the base with the adapter disabled.
- A run with a reward that varies: output_dir and checkpoint-N hold the adapter (adapter_config.json naming the base
  as the user did, tiny:qwen2), the tokenizer and r1_config.yaml; a SIGKILL after step 3, then
  `--resume_from_checkpoint last`, repeats step 3 with the first life's numbers; `python -m eval` loads the folder
  (the base with the adapter merged) and sweeps its checkpoints.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import SUBPROCESS_ENV

from r1.config import parse_args
from r1.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]
TINY = str(REPO / "tests/configs/tiny_qwen2.yaml")
ENV = {**SUBPROCESS_ENV, "PYTHONPATH": str(REPO)}
ARGS = ["--config", TINY, "--use_peft", "true", "--lora_r", "8", "--task_size", "16", "--max_steps", "3",
        "--save_steps", "2", "--logging_steps", "1", "--reward_funcs", "test_vowels", "--reward_weights", "1",
        "--learning_rate", "5e-3", "--beta", "0.04", "--max_completion_length", "8", "--sample_log_steps", "0"]
LAUNCHER = r'''
import os, signal, sys
import rewards.registry as registry


def vowels(completions, **kw):
    texts = [c if isinstance(c, str) else c[-1]["content"] for c in completions]
    return [sum(ch in "aeiou" for ch in t) / max(len(t), 1) for t in texts]


registry.REWARD_FUNCS.update(test_vowels=vowels)
import transformers
import r1.trainer as trainer_module

_init = trainer_module.R1ZeroTrainer.__init__


class Kill(transformers.TrainerCallback):
    def on_log(self, args, state, control, logs=None, **kw):  # after metrics.jsonl got the line
        if state.global_step == int(os.environ.get("R1_TEST_KILL_AFTER_STEP", "0")):
            os.kill(os.getpid(), signal.SIGKILL)


def init(self, *a, **k):
    _init(self, *a, **k)
    self.add_callback(Kill())


trainer_module.R1ZeroTrainer.__init__ = init
from recipes.r1_zero import main

sys.exit(main())
'''
KEYS = ("loss", "reward", "reward_std", "kl", "grad_norm", "entropy")


def test_lora_fields_need_use_peft():
    with pytest.raises(ConfigError, match="lora_r is set but does not apply: it only applies with use_peft true"):
        parse_args(["--config", TINY, "--lora_r", "8"])
    with pytest.raises(ConfigError, match="lora_r must be >= 1"):
        parse_args(["--config", TINY, "--use_peft", "true", "--lora_r", "0"])
    run = parse_args(["--config", TINY, "--use_peft", "true", "--lora_target_modules", "q_proj", "v_proj"])
    assert run.model.lora_target_modules == ["q_proj", "v_proj"] and run.model.lora_dropout == 0.0
    assert run.to_yaml_dict()["lora_target_modules"] == ["q_proj", "v_proj"]
    assert "lora_r" not in parse_args(["--config", TINY]).to_yaml_dict()  # not written when it does not apply


def _train_lora(tmp_path, name: str, fast: bool) -> tuple[list[dict], list]:
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback

    from r1.config import R1GRPOConfig
    from r1.models import load_model, load_tokenizer
    from r1.trainer import R1ZeroTrainer

    tokenizer, model = load_tokenizer("tiny:qwen2"), load_model("tiny:qwen2", dtype=torch.float32)
    config = R1GRPOConfig(output_dir=str(tmp_path / name), max_steps=3, per_device_train_batch_size=4,
                          num_generations=4, max_completion_length=12, learning_rate=5e-3, beta=0.04, logging_steps=1,
                          report_to=[], save_strategy="no", seed=0, use_cpu=True, bf16=False, disable_tqdm=True,
                          fast_rollout=fast, sample_log_steps=0, gradient_checkpointing=False)
    records, completions = [], []

    class Logs(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                records.append(logs)

    class Recording(R1ZeroTrainer):
        def _generate_single_turn(self, *args, **kwargs):
            ids, logprobs = super()._generate_single_turn(*args, **kwargs)
            completions.append(ids)
            return ids, logprobs

    def reward(completion_ids, **_):
        return [sum(ids) % 97 / 97 for ids in completion_ids]

    prompts = [f"Question: what is {a} + {a + 7}? Answer:" for a in range(12)]
    trainer = Recording(model=model, processing_class=tokenizer, reward_funcs=[reward], args=config,
                        train_dataset=Dataset.from_dict({"prompt": prompts}), callbacks=[Logs()],
                        peft_config=LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear"))
    assert trainer.ref_model is None  # the reference is the base with the adapter disabled
    trainer.train()
    return records, completions


def test_lora_fast_rollout_equals_trl(tmp_path, caplog, count_direct_steps):
    with caplog.at_level(logging.INFO, logger="r1.rollout"):
        fast_logs, fast_completions = _train_lora(tmp_path, "fast", fast=True)
    assert "fast rollout on: backend exact" in caplog.text
    assert not count_direct_steps, "the direct decode step must refuse LoRA-wrapped linears"
    trl_logs, trl_completions = _train_lora(tmp_path, "trl", fast=False)
    assert fast_completions == trl_completions
    assert len(fast_logs) == len(trl_logs) == 3 and fast_logs[-1]["grad_norm"] > 0
    assert any(r["kl"] > 0 for r in fast_logs[1:])  # the adapter moved away from the base (the reference)
    for fast, ref in zip(fast_logs, trl_logs, strict=True):
        for key in KEYS:
            assert fast[key] == pytest.approx(ref[key], rel=1e-6, abs=1e-8), key


def _run(launcher: Path, out: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(launcher), *ARGS, *args, "--output_dir", str(out)], capture_output=True,
                          text=True, env={**ENV, **(env or {})}, timeout=300, cwd=REPO)


def _rows(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.timeout(600)
def test_lora_run_saves_the_adapter_resumes_and_evaluates(tmp_path):
    launcher, out = tmp_path / "launcher.py", tmp_path / "run"
    launcher.write_text(LAUNCHER)
    proc = _run(launcher, out, env={"R1_TEST_KILL_AFTER_STEP": "3"})
    assert proc.returncode != 0 and sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"], proc.stderr[-3000:]
    first = _rows(out)
    assert [r["step"] for r in first] == [1, 2, 3] and all(r["reward_std"] > 0 for r in first)
    proc = _run(launcher, out, "--resume_from_checkpoint", "last")
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed = _rows(out)
    assert [r["step"] for r in resumed] == [1, 2, 3] and resumed[:2] == first[:2]
    for key in KEYS:
        assert resumed[2][key] == pytest.approx(first[2][key], rel=1e-6, abs=1e-8), (key, resumed[2], first[2])

    for folder in (out, out / "checkpoint-2", out / "checkpoint-3"):
        assert (folder / "adapter_model.safetensors").is_file() and not (folder / "model.safetensors").exists()
        assert json.loads((folder / "adapter_config.json").read_text())["base_model_name_or_path"] == "tiny:qwen2"
    assert (out / "tokenizer_config.json").is_file() and (out / "r1_config.yaml").is_file()
    _check_merged(out)
    _check_eval(out, tmp_path)


def _check_merged(out: Path) -> None:
    """load_model(output_dir) = the base with the adapter merged: the PeftModel's logits, not the base's."""
    from peft import PeftModel

    from r1.models import load_model, resolve_model

    assert resolve_model(str(out)) == str(out.resolve())
    merged = load_model(str(out), dtype=torch.float32)
    peft_model = PeftModel.from_pretrained(load_model("tiny:qwen2", dtype=torch.float32), str(out)).eval()
    base = load_model("tiny:qwen2", dtype=torch.float32)
    ids = torch.arange(3, 40).unsqueeze(0)
    with torch.no_grad():
        got, want, before = merged(ids).logits, peft_model(ids).logits, base(ids).logits
    assert torch.allclose(got, want, atol=1e-5) and not torch.allclose(got, before, atol=1e-3)


def _check_eval(out: Path, tmp_path: Path) -> None:
    from eval.cli import main

    bench = tmp_path / "bench.jsonl"
    bench.write_text("".join(json.dumps({"problem": f"What is {a} + 1?", "answer": str(a + 1)}) + "\n" for a in range(2)))
    common = ["--benchmarks", str(bench), "--max-new-tokens", "8", "--backend", "transformers", "--no-progress"]
    assert main(["--model", str(out), *common, "--output", str(tmp_path / "eval")]) == 0
    assert json.loads((tmp_path / "eval" / "results.json").read_text())["template"] == "r1_zero"  # from r1_config.yaml
    assert main(["--model", str(out), "--checkpoints", "all", *common, "--output", str(tmp_path / "sweep")]) == 0
    assert set(json.loads((tmp_path / "sweep" / "checkpoints.json").read_text())["steps"]) == {"2", "3"}
