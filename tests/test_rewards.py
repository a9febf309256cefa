"""Answer extraction, format/tag/Countdown rewards, the registry, and properties over arbitrary text."""

from __future__ import annotations

import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import rewards
from rewards import (
    REWARD_FUNCS,
    accuracy_reward,
    completion_text,
    countdown_reward,
    extract_answer,
    format_reward,
    get_reward_funcs,
    tag_count_reward,
)
from rewards.countdown import FORMAT_SCORE

# ------------------------------------------------------------------------------------------- extraction


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>a</think><answer>1</answer> <answer>2</answer>", "2"),  # last answer block
        (
            "<answer>so \\boxed{1} or \\boxed{\\frac{1}{2}}</answer>",
            "\\frac{1}{2}",
        ),  # last box inside the block
        ("<answer>\\boxed{\\frac{a^{2}}{\\{1,2\\}}}</answer>", "\\frac{a^{2}}{\\{1,2\\}}"),  # nested braces
        ("<think>\\boxed{7} <answer>7</answer></think><answer> 8 </answer>", "8"),  # think never counts
        ("<answer>x = 3</answer>", "x = 3"),  # no box: the whole block
        ("work... \\boxed{42}. Done.", "42"),  # no answer block: last box
        ("\\boxed{1} then \\boxed{2", "1"),  # an unclosed box is skipped
        ("<answer>\\boxed{12</answer>", "\\boxed{12"),  # unclosed box in the block: the whole block
        ("The answer is 5", "5"),  # no block, no box: an explicit statement
        ("\\boxed{\\boxed{5}}", "5"),
        ("\\fbox{9}", "9"),
        ("\\boxed {x^{2}}", "x^{2}"),
        ("<answer>1</answer><think>2</think>", ""),  # block before </think>, nothing after: no answer
        ("5", "5"),  # a bare short answer is its own answer
        ("\\frac{1}{2}", "\\frac{1}{2}"),
        ("lorem ipsum 5 dolor", ""),  # a number merely appearing in prose is not an answer
        ("so \\boxed{1}, \\boxed{2}, \\boxed{3}", "1, 2, 3"),  # boxes divided only by separators: one answer
        ("\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 2)}", "(2, 2), (6, 2)"),
        ("$\\boxed{k = 45} \\quad \\boxed{n = 2}$", "k = 45, n = 2"),
        ("\\boxed{5}\n\n\\boxed{5}", "5"),  # a repeated box counts once
        ("\\boxed{5}. Check: \\boxed{6}", "6"),  # prose between boxes: the last one
        ("…so the answer is $19$.", "19"),
        ("work\nFinal Answer: 14916", "14916"),
        ("<think>\\boxed{5}", ""),  # unterminated think is never searched
        ("<think>a</think> The answer is 7 <think>b \\boxed{6}", "7"),
        ("<think>so \\boxed{5}</think>", "5"),  # lenient: a box in closed reasoning when nothing follows
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_completion_text_accepts_strings_and_chat_messages():
    assert completion_text("abc") == "abc"
    assert completion_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]) == "a"
    assert (
        completion_text(
            [{"role": "assistant", "content": [{"type": "text", "text": "x"}, {"type": "text", "text": "y"}]}]
        )
        == "xy"
    )
    assert completion_text(None) == ""
    assert completion_text([]) == ""


def test_extraction_is_linear_on_hostile_text():
    # 100k unclosed boxes and 10k nested braces: a quadratic scan would take minutes
    assert extract_answer("\\boxed{" * 100_000) == ""  # no balanced box, no statement, not a bare answer
    deep = "\\boxed{" + "{" * 10_000 + "1" + "}" * 10_000 + "}"
    assert extract_answer(deep) == "{" * 10_000 + "1" + "}" * 10_000


# ----------------------------------------------------------------------------------------------- format


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>reason</think><answer>4</answer>", 1.0),
        ("\n  <think>\nreason\n</think>\n\n<answer>\n4\n</answer>\n", 1.0),  # newlines anywhere around/inside
        ("<think> a </think> <answer> 4 </answer>", 1.0),
        ("Sure! <think>a</think><answer>4</answer>", 0.0),  # text before
        ("<think>a</think><answer>4</answer> Hope this helps", 0.0),  # text after
        ("<think>a</think> so <answer>4</answer>", 0.0),  # text between
        ("<think>a</think><answer>4</answer><answer>5</answer>", 0.0),  # second block
        ("<think>a</think><think>b</think><answer>4</answer>", 0.0),
        ("<think>a<answer>4</answer></think>", 0.0),  # nested
        ("<think>a <think> b</think><answer>4</answer>", 0.0),
        ("<think>  \n </think><answer>4</answer>", 0.0),  # empty think
        ("<think>a</think><answer> </answer>", 0.0),  # empty answer
        ("<answer>4</answer><think>a</think>", 0.0),  # wrong order
        ("<think>a</think>", 0.0),
        ("", 0.0),
    ],
)
def test_format_reward(text, expected):
    assert format_reward([text]) == [expected]


def test_format_reward_chat_messages_and_unknown_kwargs():
    chat = [{"role": "assistant", "content": "<think>a</think><answer>1</answer>"}]
    out = format_reward(
        [chat, "nope"], prompts=["p", "p"], completion_ids=[[1], [2]], trainer_state=None, level=[1, 2]
    )
    assert out == [1.0, 0.0]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<think>a</think><answer>1</answer>", 1.0),
        ("<think>a</think>", 0.5),
        ("<think>a</think><think>b</think><answer>1</answer>", 0.5),  # duplicated tags earn nothing
        ("<answer>1</answer> trailing", 0.5),
        ("plain", 0.0),
    ],
)
def test_tag_count_reward(text, expected):
    assert tag_count_reward([text]) == [expected]


# -------------------------------------------------------------------------------------------- countdown


def _cd(answer: str) -> str:
    return f"<think>try things</think><answer>{answer}</answer>"


@pytest.mark.parametrize(
    "answer, target, nums, expected",
    [
        ("(3 + 5) * 2", 16, [3, 5, 2], 1.0),
        ("2*(5+3)", 16, [2, 3, 5], 1.0),  # order of nums does not matter
        ("6 / (1 - 3 / 4)", 24, [1, 3, 4, 6], 1.0),  # exact fractions: 6/(1/4) is exactly 24
        ("(3 + 5) * 2 = 16", 16, [3, 5, 2], 1.0),  # "= target" is allowed
        ("\\boxed{(3 \\times 5) + 2}", 17, [3, 5, 2], 1.0),  # LaTeX operators, boxed
        ("(3 + 5) * 2 = 17", 16, [3, 5, 2], FORMAT_SCORE),  # a false right-hand side
        ("3 * 3 + 5 + 2", 16, [3, 5, 2], FORMAT_SCORE),  # 3 used twice
        ("5 * 3 + 1", 16, [3, 5, 1, 2], FORMAT_SCORE),  # 2 not used
        ("(3 + 5) * 2", 17, [3, 5, 2], FORMAT_SCORE),  # wrong value
        ("-3 + 5 * 2 + 9", 16, [3, 5, 2, 9], FORMAT_SCORE),  # unary minus is rejected (documented)
        ("2 ** 3 + 5 + 3", 16, [2, 3, 5, 3], FORMAT_SCORE),  # no powers
        ("3.0 + 5 * 2 + 3", 16, [3, 5, 2, 3], FORMAT_SCORE),  # integers only
        ("5 / (3 - 3) + 2", 16, [5, 3, 3, 2], FORMAT_SCORE),  # division by zero is just wrong
        ("__import__('os').system('echo hacked')", 16, [3, 5, 2], FORMAT_SCORE),  # never evaluated
        ("(lambda: 16)()", 16, [3, 5, 2], FORMAT_SCORE),
        ("[3, 5, 2][0] * 5 + 1", 16, [3, 5, 2], FORMAT_SCORE),
        ("(" * 5000 + "3" + ")" * 5000, 3, [3], FORMAT_SCORE),  # parser attack
        ("", 16, [3, 5, 2], FORMAT_SCORE),
    ],
)
def test_countdown_reward(answer, target, nums, expected):
    assert countdown_reward([_cd(answer)], target=[target], nums=[nums]) == [expected]


def test_countdown_without_answer_block_scores_zero():
    assert countdown_reward(["(3 + 5) * 2"], target=[16], nums=[[3, 5, 2]]) == [0.0]
    # an answer block inside <think> does not count
    assert countdown_reward(["<think><answer>(3+5)*2</answer></think>"], target=[16], nums=[[3, 5, 2]]) == [
        0.0
    ]


def test_countdown_column_forms_and_unusable_references():
    chat = [{"role": "assistant", "content": _cd("(3 + 5) * 2")}]
    out = countdown_reward(
        [chat, _cd("(3 + 5) * 2"), _cd("1 + 1"), _cd("1 + 1")],
        target=[16, "16", None, 2],
        nums=[[3, 5, 2], "[3, 5, 2]", [1, 1], "not a list"],
        prompts=["p"] * 4,
        completion_ids=[[0]] * 4,
    )
    assert out == [1.0, 1.0, None, None]


# --------------------------------------------------------------------------------------------- registry


def test_registry_names_and_errors():
    assert set(REWARD_FUNCS) == {"accuracy", "format", "tag_count", "countdown", "code"}  # code: rewards.code
    assert get_reward_funcs(["accuracy", "format"]) == [accuracy_reward, format_reward]
    assert get_reward_funcs("accuracy, tag_count") == [accuracy_reward, tag_count_reward]
    assert get_reward_funcs(["Countdown_reward"]) == [countdown_reward]
    with pytest.raises(ValueError) as err:
        get_reward_funcs(["accuracy", "bleu"])
    assert "'bleu'" in str(err.value) and "accuracy, format, tag_count, countdown" in str(err.value)
    with pytest.raises(ValueError):
        get_reward_funcs([])


def test_public_api():
    for name in (
        "ANSWER_POLICIES",
        "reference_answer",
        "completion_text",
        "extract_answer",
        "verify_batch",
        "answers_equal",
        "accuracy_reward",
        "format_reward",
        "tag_count_reward",
        "countdown_reward",
        "REWARD_FUNCS",
        "get_reward_funcs",
    ):
        assert hasattr(rewards, name), name


def test_import_pulls_in_no_torch_transformers_or_sympy():
    """Importing (and using) rewards in the trainer process loads no torch/transformers, and never sympy."""
    code = (
        "import sys, rewards\n"
        "print(rewards.accuracy_reward(['<answer>1/2</answer>'], answer=['0.5']))\n"
        "print(sorted(m for m in ('torch', 'transformers', 'sympy', 'math_verify') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["[1.0]", "[]"]


# ------------------------------------------------------------------------------------------- properties

_PIECES = list("<>/{}\\ab1 \n") + ["<think>", "</think>", "<answer>", "</answer>", "\\boxed{", "^", "!", "9"]
_TAGGY = st.lists(st.sampled_from(_PIECES), max_size=30).map("".join)
_TEXT = st.one_of(st.text(max_size=200), _TAGGY)


@settings(max_examples=200, deadline=None)
@given(st.lists(_TEXT, max_size=8))
def test_format_tag_countdown_totals(texts):
    for fn, allowed in ((format_reward, {0.0, 1.0}), (tag_count_reward, {0.0, 0.25, 0.5, 0.75, 1.0})):
        out = fn(texts)
        assert len(out) == len(texts) and all(isinstance(x, float) and x in allowed for x in out)
    out = countdown_reward(texts, target=[24] * len(texts), nums=[[1, 2, 3, 4]] * len(texts))
    assert len(out) == len(texts) and all(x in (0.0, FORMAT_SCORE, 1.0) for x in out)


@settings(max_examples=200, deadline=None)
@given(_TEXT)
def test_extract_answer_is_a_substring(text):
    for policy in rewards.ANSWER_POLICIES:
        answer = extract_answer(text, policy=policy)
        # a substring, or boxes joined into one answer: then every joined part is a substring
        assert answer in text or all(part in text for part in answer.split(", ")), (policy, answer)


@pytest.mark.parametrize(
    "text, strict, lenient",
    [
        ("<think>a</think><answer>5</answer>", "5", "5"),
        ("<think>a</think>\n<answer>\\boxed{5}</answer>", "5", "5"),
        ("<think>a</think> \\boxed{5}", "", "5"),  # no answer block: strict gives nothing
        ("\\boxed{5}", "", "5"),  # untagged
        ("The answer is 5", "", "5"),
        ("<answer>5</answer>", "", "5"),  # no </think> before the block
        ("<think>a <answer>5</answer>", "", ""),  # the block is inside an unterminated think
        ("<think>a</think><think>b <answer>5</answer>", "", ""),
        ("<think>a</think><answer>5</answer><think>b <answer>6</answer>", "5", "5"),
        ("<think>a</think><answer>5", "", ""),  # unclosed answer block, no box
    ],
)
def test_answer_policies(text, strict, lenient):
    assert extract_answer(text, policy="strict") == strict
    assert extract_answer(text, policy="lenient") == lenient
    assert extract_answer(text) == lenient  # lenient is the default


def test_unknown_answer_policy_raises():
    with pytest.raises(ValueError, match="lenient, strict"):
        extract_answer("5", policy="loose")
    with pytest.raises(ValueError, match="answer_policy"):
        accuracy_reward(["5"], answer=["5"], answer_policy="loose")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        st.tuples(_TEXT, st.sampled_from(["5", "\\frac{1}{2}", "x=3", "\\text{east}", "(1,2]", ""])),
        max_size=6,
    )
)
def test_accuracy_reward_is_total(pairs):
    completions = [c for c, _ in pairs]
    golds = [g for _, g in pairs]
    out = accuracy_reward(completions, answer=golds, prompts=["p"] * len(pairs))
    assert len(out) == len(pairs)
    for score, gold in zip(out, golds, strict=True):
        assert (score is None) if gold == "" else score in (0.0, 1.0)
