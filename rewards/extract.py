"""Turn a completion into the final-answer string that gets graded.

Training rewards and `eval` both call `extract_answer`, so a model is graded the same way everywhere. Every function
here is linear in the input length (a 1 MB completion costs milliseconds) and never raises.
"""

from __future__ import annotations

import re
from typing import Any

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
# Backslash pairs are consumed first so that `\\{` is a line break followed by a real brace, while `\{` is a literal.
_BRACE_TOKEN_RE = re.compile(r"\\\\|\\[{}]|[{}]")
_THINK_CLOSE = "</think>"
_ANSWER_OPEN, _ANSWER_CLOSE = "<answer>", "</answer>"


def completion_text(completion: Any) -> str:
    """A completion as plain text: a string as is, a chat-message list as its last message's content."""
    try:
        if completion is None:
            return ""
        if isinstance(completion, str):
            return completion
        if isinstance(completion, dict):
            return _content_text(completion.get("content", ""))
        if isinstance(completion, (list, tuple)):
            if not completion:
                return ""
            return completion_text(completion[-1])
        return str(completion)
    except Exception:  # an object whose __str__ raises: grade it as empty rather than crash training
        return ""


def _content_text(content: Any) -> str:
    """Chat content may be a string or a list of typed parts ({"type": "text", "text": ...})."""
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        parts = [p.get("text", "") if isinstance(p, dict) else p for p in content]
        return "".join(p for p in parts if isinstance(p, str))
    return "" if content is None else str(content)


def last_answer_block(text: str) -> str | None:
    """Content of the last `<answer>…</answer>` block outside `<think>`, or None when there is none.

    Everything before the last `</think>` is reasoning, so an answer block written while thinking never counts.
    The block is the last `</answer>` and the last `<answer>` before it (a stray nested opener is not included).
    """
    think_end = text.rfind(_THINK_CLOSE)
    region_start = think_end + len(_THINK_CLOSE) if think_end >= 0 else 0
    close = text.rfind(_ANSWER_CLOSE, region_start)
    if close < 0:
        return None
    open_ = text.rfind(_ANSWER_OPEN, region_start, close)
    if open_ < 0:
        return None
    return text[open_ + len(_ANSWER_OPEN) : close]


def _brace_matches(text: str) -> dict[int, int]:
    """Map the index of every balanced "{" to the index of its "}" (escaped `\\{`/`\\}` are not braces)."""
    match_of: dict[int, int] = {}
    stack: list[int] = []
    for tok in _BRACE_TOKEN_RE.finditer(text):
        t = tok.group()
        if t == "{":
            stack.append(tok.start())
        elif t == "}" and stack:
            match_of[stack.pop()] = tok.start()
    return match_of


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{…}` (or `\\fbox{…}`) whose braces balance, or None.

    "Last" means the box that closes last, so nested boxes give the outer one, and a content that is itself exactly
    one box is unwrapped. Unclosed boxes (a truncated completion) are skipped. One pass over the braces: linear time.
    """
    if "\\boxed" not in text and "\\fbox" not in text:
        return None
    match_of = _brace_matches(text)
    best: tuple[int, int] | None = None  # (open brace index, close brace index)
    for box in _BOX_RE.finditer(text):
        open_brace = box.end() - 1
        close_brace = match_of.get(open_brace)
        if close_brace is not None and (best is None or close_brace > best[1]):
            best = (open_brace, close_brace)
    if best is None:
        return None
    content = text[best[0] + 1 : best[1]]
    while True:  # \boxed{\boxed{5}} -> 5
        inner = content.strip()
        box = _BOX_RE.match(inner)
        if not box or _brace_matches(inner).get(box.end() - 1) != len(inner) - 1:
            return content
        content = inner[box.end() : -1]


def extract_answer(text: str) -> str:
    """The final answer of a completion, by the documented rule order.

    1. the last `<answer>…</answer>` block (outside `<think>`): inside it the last balanced `\\boxed{…}` if there is
       one, else the whole block content;
    2. otherwise the last balanced `\\boxed{…}` anywhere in the completion;
    3. otherwise the whole completion.
    The result is stripped of surrounding whitespace.
    """
    if not isinstance(text, str):
        text = completion_text(text)
    try:
        block = last_answer_block(text)
        if block is not None:
            boxed = last_boxed(block)
            return (boxed if boxed is not None else block).strip()
        boxed = last_boxed(text)
        return (boxed if boxed is not None else text).strip()
    except Exception:  # defensive: extraction must never take training down
        return ""
