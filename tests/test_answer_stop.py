"""The answer boundary: generation ends right after `</answer>`, in the lean loop and in transformers' loop alike."""

from __future__ import annotations

import pytest
import torch
from transformers import GenerationConfig, LogitsProcessorList

from r1.config import parse_args
from r1.decoding import StopAfterText, lean_sample
from r1.errors import ConfigError
from r1.generation import TransformersGenerator
from r1.models import load_model, load_tokenizer
from r1.templates import TEMPLATES

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class Script:
    """Forces row r to write `scripts[r]` as its first completion tokens, then leaves the model free."""

    def __init__(self, scripts: list[list[int]], prompt_len: int):
        self.scripts, self.prompt_len = scripts, prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        k = input_ids.shape[1] - self.prompt_len
        for r, script in enumerate(self.scripts):
            if k < len(script):
                scores[r] = float("-inf")
                scores[r, script[k]] = 0.0
        return scores


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny:qwen2", dtype=torch.float32), load_tokenizer("tiny:qwen2")


def _generate(model, tok, prompts, scripts, *, lean: bool, stop: bool, stop_strings: bool = False, do_sample=True):
    batch = tok(prompts, return_tensors="pt", padding=True)
    width = batch["input_ids"].shape[1]
    processors = [Script(scripts, width)] + ([StopAfterText(tok, "</answer>", tok.eos_token_id)] if stop else [])
    config = GenerationConfig(max_new_tokens=24, do_sample=do_sample, eos_token_id=tok.eos_token_id,
                              pad_token_id=tok.pad_token_id)
    extra = {"stop_strings": ["</answer>"], "tokenizer": tok} if stop_strings else {}
    torch.manual_seed(0)
    out = model.generate(**batch, generation_config=config, logits_processor=LogitsProcessorList(processors),
                         custom_generate=lean_sample if lean else None, **extra)
    return out[:, width:].tolist()


def test_the_stop_is_the_same_in_the_lean_loop_and_in_transformers_loop(tiny):
    model, tok = tiny
    closes = tok("<think>2+2</think><answer>4</answer>", add_special_tokens=False)["input_ids"]
    answered = tok("<think>so</think><answer>5</answer>", add_special_tokens=False)["input_ids"]
    runs_on = answered + tok("\nUser: next", add_special_tokens=False)["input_ids"]
    never = tok("<think>hmm", add_special_tokens=False)["input_ids"]
    prompts = ["What is 2 + 2?", "What is 2 + 3? Think.", "What is 7 * 6?"]
    scripts = [closes, runs_on, never]
    for do_sample in (True, False):
        lean = _generate(model, tok, prompts, scripts, lean=True, stop=True, do_sample=do_sample)
        loop = _generate(model, tok, prompts, scripts, lean=False, stop=True, do_sample=do_sample)
        assert lean == loop
        # rows 0 and 1: exactly their text up to </answer>, then EOS (terminated, not truncated)
        for row, script in ((0, closes), (1, runs_on)):
            end = len(closes) if row == 0 else len(answered)
            assert lean[row][:end] == script[:end] and lean[row][end] == tok.eos_token_id, tok.decode(lean[row])
            assert tok.decode(lean[row][:end]).endswith("</answer>")
        # row 2 never closes the answer: identical to a run without the stop
        free = _generate(model, tok, prompts, scripts, lean=True, stop=False, do_sample=do_sample)
        assert lean[2] == free[2]
        # transformers' own stop strings (what TRL would use) agree up to the stop
        strings = _generate(model, tok, prompts, scripts, lean=False, stop=False, stop_strings=True, do_sample=do_sample)
        for row, end in ((0, len(closes)), (1, len(answered))):
            assert strings[row][:end] == lean[row][:end]


def test_templates_with_answer_tags_stop_and_the_boxed_one_does_not():
    assert {n: t.stop_text for n, t in TEMPLATES.items()} == {
        "r1_zero": "</answer>", "chat": "</answer>", "boxed": None, "countdown": "</answer>", "oneshot": "</answer>",
        "code": "</answer>"}


def test_eval_generator_ends_completions_at_the_answer(tiny):
    model, tok = tiny
    closes = tok("<answer>4</answer>", add_special_tokens=False)["input_ids"]
    gen = TransformersGenerator(model, tok, stop="</answer>")
    script = Script([closes, closes], 0)

    original = model.generate

    def scripted(*args, **kwargs):  # the script starts right after each prompt
        script.prompt_len = kwargs["input_ids"].shape[1]
        kwargs["logits_processor"] = LogitsProcessorList([script, *kwargs["logits_processor"]])
        return original(*args, **kwargs)

    model.generate = scripted
    try:
        out = gen.generate(["What is 2 + 2?", "And 1 + 3?"], [1, 2], temperature=1.0, top_p=1.0, max_new_tokens=20)
    finally:
        del model.generate
    assert [c.text for c in out] == ["<answer>4</answer>"] * 2
    assert all(not c.truncated and c.tokens == len(closes) + 1 for c in out)  # the EOS counts, nothing after it


def test_stop_at_answer_is_a_config_field_that_must_apply():
    tiny = "tests/configs/tiny_qwen2.yaml"
    run = parse_args(["--config", tiny])
    assert run.training.stop_at_answer is True and run.to_yaml_dict()["stop_at_answer"] is True
    assert parse_args(["--config", tiny, "--stop_at_answer", "false"]).to_yaml_dict()["stop_at_answer"] is False
    with pytest.raises(ConfigError, match="stop_at_answer is set but does not apply"):
        parse_args(["--config", tiny, "--template", "boxed", "--stop_at_answer", "true"])
    assert "stop_at_answer" not in parse_args(["--config", tiny, "--template", "boxed"]).to_yaml_dict()


def test_vllm_rollouts_say_that_they_do_not_stop_at_the_answer(monkeypatch):
    """With use_vllm the stop does not apply to rollouts: said, not silent."""
    import r1.config

    monkeypatch.setattr(r1.config, "installed_vllm_version", lambda: "0.30.1")
    run = parse_args(["--config", "tests/configs/tiny_qwen2.yaml", "--use_vllm", "true"])
    assert any("vLLM rollouts are not stopped at </answer>" in n for n in run.notes)
    assert any("vLLM rollouts" in line for line in run.summary_lines())
