"""Prompt templates shared by training and evaluation.

A template turns a problem into the exact prompt text the model continues. Training and `eval` render prompts with
the same code, so a model is always evaluated in the format it was trained on. Templates that pre-fill `<think>`
record it in `prefill`: the model never generates that tag, so the rewards must see it re-attached
(`with_prefill`) or the format reward is stuck at 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from r1.errors import ConfigError
from rewards.registry import UnknownNameError, lookup

R1_ZERO_INSTRUCTION = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
    "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
    "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>."
)

# The code task: R1-Zero's wording, the program in a ```python block inside the answer tags (what `rewards.code`
# extracts); the function name and signature come from the problem (HumanEval's stub, MBPP's shown asserts).
CODE_INSTRUCTION = (
    "A conversation between User and Assistant. The user asks for a Python function, and the Assistant writes it. "
    "The assistant first thinks about the reasoning process in the mind and then provides the user with the "
    "program. The reasoning process and the program are enclosed within <think> </think> and <answer> </answer> "
    "tags, respectively, and the program is one complete ```python code block inside the answer tags that defines "
    "the function with the exact name and arguments the problem uses (include its imports), i.e., "
    "<think> reasoning process here </think> <answer>\n```python\nprogram here\n```\n</answer>."
)

ANSWER_CLOSE = "</answer>"

ONESHOT_EXAMPLE = "Question: What is 2 + 3?\n<think>2 + 3 = 5</think><answer>5</answer>\n"


@dataclass(frozen=True)
class Template:
    """How a problem becomes a prompt. `user` and `system` are format strings with a `{problem}` field."""

    name: str
    description: str
    user: str
    system: str | None = None
    use_chat_template: bool = False
    prefill: str = ""

    @property
    def stop_text(self) -> str | None:
        """`</answer>` when the template asks for the answer inside answer tags: generation may stop right after it
        (`stop_at_answer`); None for templates without the tag (e.g. boxed)."""
        instructions = (self.system or "") + self.user
        return ANSWER_CLOSE if ANSWER_CLOSE in instructions else None

    def render(self, problem: str, tokenizer: Any | None = None) -> str:
        """Return the full prompt text (including the pre-filled assistant prefix) for `problem`."""
        user = self.user.format(problem=problem.strip())
        system = self.system.format(problem=problem.strip()) if self.system else None
        if not self.use_chat_template:
            text = f"{system}\n{user}" if system else user
            return text + self.prefill
        messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
        if tokenizer is not None and getattr(tokenizer, "chat_template", None):
            text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            text = _strip_duplicate_bos(text, tokenizer)
        else:  # tokenizers without a chat template (some base models): a plain, readable fallback
            text = "".join(f"{m['role'].capitalize()}: {m['content']}\n" for m in messages) + "Assistant: "
        return text + self.prefill


def _strip_duplicate_bos(text: str, tokenizer: Any) -> str:
    """Chat templates often emit the BOS token as text; tokenizing would then add a second one."""
    bos = getattr(tokenizer, "bos_token", None)
    if not bos or not text.startswith(bos):
        return text
    ids = tokenizer("x")["input_ids"]
    if ids and ids[0] == tokenizer.bos_token_id:
        return text[len(bos) :]
    return text


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in [
        Template(
            name="r1_zero",
            description="DeepSeek-R1-Zero plain-text User/Assistant template; the assistant turn starts with <think>.",
            user=R1_ZERO_INSTRUCTION + " User: {problem} Assistant: ",
            prefill="<think>",
        ),
        Template(
            name="chat",
            description="The model's chat template with the format instructions as system prompt; <think> pre-filled.",
            system=R1_ZERO_INSTRUCTION,
            user="{problem}",
            use_chat_template=True,
            prefill="<think>",
        ),
        Template(
            name="boxed",
            description="Chat template, 'reason step by step, answer in \\boxed{}' (Qwen2.5-Math style); no tags.",
            user="{problem}\nPlease reason step by step, and put your final answer within \\boxed{{}}.",
            use_chat_template=True,
        ),
        Template(
            name="countdown",
            description="TinyZero's Countdown template (plain text); the assistant turn starts with <think>.",
            user=(
                "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
                "The assistant first thinks about the reasoning process in the mind and then provides the user "
                "with the answer.\nUser: {problem} Show your work in <think> </think> tags. And return the final "
                "equation in <answer> </answer> tags, for example <answer> (1 + 2) / 3 </answer>.\n"
                "Assistant: Let me solve this step by step.\n"
            ),
            prefill="<think>",
        ),
        Template(
            name="code",
            description="Code tasks (HumanEval, MBPP): R1-Zero plain text, the program in a ```python block inside "
            "<answer>; the assistant turn starts with <think>.",
            user=CODE_INSTRUCTION + "\nUser: {problem}\nAssistant: ",
            prefill="<think>",
        ),
        Template(
            name="oneshot",
            description="Chat template; the user turn shows one worked example of the exact tag format; <think> "
            "pre-filled. Lets small instruct models (the offline demo) produce the format from step 0.",
            user=ONESHOT_EXAMPLE + "Question: {problem}",
            use_chat_template=True,
            prefill="<think>",
        ),
    ]
}


def get_template(name: str) -> Template:
    """The template called `name`; ConfigError (one line, closest valid name) for an unknown one."""
    try:
        return TEMPLATES[lookup("template", name, TEMPLATES)]
    except UnknownNameError as e:
        raise ConfigError(str(e)) from None


def with_prefill(completions: list[Any], prefill: str) -> list[Any]:
    """Re-attach a pre-filled assistant prefix to generated completions (plain strings or chat messages)."""
    if not prefill:
        return list(completions)
    out: list[Any] = []
    for c in completions:
        if isinstance(c, str):
            out.append(prefill + c)
        else:
            msgs = [dict(m) for m in c]
            if msgs:
                msgs[-1]["content"] = prefill + str(msgs[-1].get("content", ""))
            out.append(msgs)
    return out
