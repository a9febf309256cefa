"""r1.templates: every template puts the problem into the prompt, ends with its prefill, and errors are one line."""

from __future__ import annotations

import copy

import pytest

from r1.errors import ConfigError
from r1.templates import TEMPLATES, get_template, with_prefill

# Distinctive: no template's own text contains any of it, so finding it in a prompt means the problem got there.
PROBLEM = "Zorblax has 417 quibbles and gives away 38; how many quibbles remain?"


@pytest.fixture(scope="module")
def chat_tokenizer():
    from r1.models import load_tokenizer

    tokenizer = load_tokenizer("tiny:qwen2")
    assert tokenizer.chat_template  # the tiny Qwen2 tokenizer carries Qwen's chat template
    return tokenizer


@pytest.fixture(scope="module")
def plain_tokenizer(chat_tokenizer):
    """A base-model tokenizer without a chat template: chat templates fall back to plain text."""
    tokenizer = copy.deepcopy(chat_tokenizer)
    tokenizer.chat_template = None
    return tokenizer


@pytest.mark.parametrize("name", sorted(TEMPLATES))
@pytest.mark.parametrize("tokenizer", [None, "plain_tokenizer", "chat_tokenizer"])
def test_every_template_puts_the_problem_into_the_prompt(name, tokenizer, request):
    template = TEMPLATES[name]
    tok = request.getfixturevalue(tokenizer) if tokenizer else None
    prompt = template.render(f"  {PROBLEM}\n", tok)  # surrounding whitespace is stripped, the problem is not
    assert PROBLEM not in template.user and PROBLEM not in (template.system or "")
    assert prompt.count(PROBLEM) == 1, prompt
    assert prompt.endswith(template.prefill)
    # the problem comes before the assistant turn starts, never after it (the model continues the prompt's end)
    assert prompt.index(PROBLEM) < len(prompt) - len(template.prefill)
    if tokenizer == "chat_tokenizer" and template.use_chat_template:
        user_turn = prompt[prompt.index("<|im_start|>user") : prompt.index("<|im_start|>assistant")]
        assert PROBLEM in user_turn


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_the_problem_survives_tokenization(name, chat_tokenizer):
    """What the model sees is token ids: decoding the prompt's ids gives the problem back."""
    prompt = TEMPLATES[name].render(PROBLEM, chat_tokenizer)
    ids = chat_tokenizer(prompt)["input_ids"]
    assert PROBLEM in chat_tokenizer.decode(ids)


def test_different_problems_give_different_prompts(chat_tokenizer):
    for template in TEMPLATES.values():
        a, b = template.render("What is 1 + 1?", chat_tokenizer), template.render("What is 2 + 2?", chat_tokenizer)
        assert a != b and a.replace("1 + 1", "2 + 2") == b


def test_r1_zero_prompt_is_exactly_the_paper_layout():
    prompt = get_template("r1_zero").render(PROBLEM)
    assert prompt.endswith(f" User: {PROBLEM} Assistant: <think>")
    assert prompt.startswith("A conversation between User and Assistant.")


def test_unknown_template_is_one_line_with_the_closest_name():
    with pytest.raises(ConfigError) as e:
        get_template("r1_zer")
    assert "\n" not in str(e.value) and "r1_zero" in str(e.value)


def test_with_prefill_reattaches_to_text_and_chat_completions():
    assert with_prefill(["a</think>"], "<think>") == ["<think>a</think>"]
    chat = [[{"role": "assistant", "content": "a</think>"}]]
    assert with_prefill(chat, "<think>") == [[{"role": "assistant", "content": "<think>a</think>"}]]
    assert chat[0][0]["content"] == "a</think>"  # the caller's messages are not modified
    assert with_prefill(["x"], "") == ["x"]
