"""Turn a completion into the final-answer string that gets graded, and a reference into the value it states.

Training rewards and `eval` both call `extract_answer`, so a model is graded the same way everywhere. Every function
here is linear in the input length (a 1 MB completion costs milliseconds) and never raises.

Answer policies (`ANSWER_POLICIES`), chosen per call with `policy=` (`accuracy_reward(..., answer_policy=...)`):

- `"strict"` (the R1-Zero preset): only the last `<answer>…</answer>` block that comes after a closing `</think>`
  counts. No `</think>`, no answer block after it, or a block that sits inside a `<think>` never closed: no answer
  ("", graded 0.0). Inside the block the box rule below applies, else the whole block content is the answer.
- `"lenient"` (the default; evaluation of base models): the first of
  1. the last `<answer>…</answer>` block after the last `</think>` (inside it: the box rule, else its content);
  2. the final `\\boxed{}` answer after `</think>` (or in the whole text when there is no `</think>`), unless a
     "final answer" statement with a value comes after that box ("… = \\boxed{255} … Final Answer: The final answer
     is $10,455$.": the statement);
  3. an explicit statement in the text after `</think>`: the last "the answer is X", "Final Answer: X",
     "Answer: X" or GSM8K's "#### X" (X: the math right after it, else the rest of that sentence); else a final
     sentence that concludes with the result ("Therefore, the total is $19$.": `concluded_answer`); else a text
     that is exactly one math span (`$\\frac{1}{3}.$`: its content, without the sentence punctuation in it);
  4. after a closed `</think>`, a reply of at most 400 characters whose closing sentence ends with "is/are/= X"
     or with a math span, without a conclusion word ("</think> The smallest such integer is $7$."); the same for
     a whole text that is one short sentence (at most 250 characters, not a question or a supposition: "The
     identity matrix is $…$."), while two sentences without a conclusion word still are no answer;
  5. the text after `</think>` when it is itself a short bare answer (one line, at most 80 characters, no tags,
     at most one plain word, or a number followed by unit words: "5", "x = 3", "\\frac{1}{2}", "18 dollars");
  6. the final `\\boxed{}` answer inside the closed reasoning (a model that boxed its result and stopped).
  Anything else is no answer (""): a number merely appearing somewhere in untagged text earns nothing.

Under both policies text inside an unterminated `<think>` (one never closed, e.g. a truncated completion) is never
searched: a `\\boxed{5}` written only while still thinking earns nothing. The reply ends at the first chat-template
token after it began (`<|im_start|>`, `<|im_end|>`, `<|endoftext|>`, …): an imagined next turn is never searched.

The box rule (`final_boxed`): the last balanced `\\boxed{…}`/`\\fbox{…}` (unclosed boxes are skipped; nested boxes
give the outer one; `\\boxed{\\boxed{5}}` is `5`), joined with the boxes right before it when only separators stand
between them (spaces, commas, semicolons, `$`, `\\quad`, `\\qquad`, `\\,`, `\\\\`, "and", `\\text{and}`, …):
`\\boxed{1}, \\boxed{2}, \\boxed{3}` is the one answer `1, 2, 3`; `\\boxed{k = 45} \\quad \\boxed{n = 2}` is
`k = 45, n = 2`; a part label joins too (`\\boxed{3} \\text{ for part (a) and } \\boxed{1}`). Boxes in separate math
spans join only with a comma, semicolon or "and" between them: `$$\\boxed{20}$$ \\boxed{143}` is a re-written
answer (`143`), `$\\boxed{1}$ and $\\boxed{2}$` a set. Identical joined boxes count once. "or" does not join:
`\\boxed{1} or \\boxed{2}` is a change of mind (the last box counts), not a set. A box separated by prose
("…so \\boxed{5}. Checking: \\boxed{6}") is a new answer: only the last one counts.

References (`reference_answer`): a reference that is a whole solution rather than a value is graded as the value it
states: its final box (same box rule), else what follows GSM8K's last "####", else (only for a multi-sentence
prose solution) its explicit answer statement, else its last math (`$…$`, `\\[…\\]`, `\\(…\\)`), right-hand
side of its last `=`, else the number its final sentence states (after its last `=`, else its last number). A plain
reference ("5", "\\text{(C)}", "18 dollars") is unchanged.
"""

from __future__ import annotations

import re
from typing import Any

ANSWER_POLICIES = ("lenient", "strict")
DEFAULT_POLICY = "lenient"

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
# Backslash pairs are consumed first so that `\\{` is a line break followed by a real brace, while `\{` is a literal.
_BRACE_TOKEN_RE = re.compile(r"\\\\|\\[{}]|[{}]")
_THINK_OPEN, _THINK_CLOSE = "<think>", "</think>"
_ANSWER_OPEN, _ANSWER_CLOSE = "<answer>", "</answer>"

# What may stand between boxes that together form one answer.
_BOX_SEPARATOR_RE = re.compile(
    r"(?:\s|[,;&$]|\\[,;:! ]|\\q?quad\b|\\\\|\\[()\[\]]"
    r"|\\(?:text|textrm|mathrm|textbf|mbox)\s*\{\s*(?:(?:for|in)\s+part\s+\(?[a-z0-9]{1,3}\)?\s*)?(?:and|,|;)?\s*\}"
    r"|\band\b|\bAND\b)*",
)
# Boxes in separate math spans ("$$\\boxed{20}$$ \\boxed{143}") join only with an explicit joiner between them.
_GAP_DELIM_RE = re.compile(r"\$|\\[()\[\]]")
_GAP_JOINER_RE = re.compile(r"[,;&]|\band\b|\bAND\b")
# End of the model's turn: what follows a chat-template token is an imagined next turn, not the reply.
_TURN_END_RE = re.compile(r"<\|(?:im_start|im_end|endoftext|eot_id|end_of_turn|start_header_id)\|>")
# Explicit statements of the final answer in prose. The last one in the text counts.
_STATEMENT_RE = re.compile(
    r"(?:\banswer(?:\s+to\s+[^.\n$:]{1,60}?)?\s*(?:\*\*)?\s*(?:\bis\b\s*:?|:|=)|####)\s*(?:\*\*)?\s*"
    r"(?:(?:therefore|thus|then|simply|just|exactly|equal\s+to)\b\s*:?\s*)*",
    re.IGNORECASE,
)
_TAG_RE = re.compile(r"</?(?:think|answer)>")
# A final sentence that concludes with the result: "Therefore, the total is $19$." / "So the sum is 42 apples."
_CONCLUSION_CUE = (
    r"(?:so|thus|therefore|hence|in\s+conclusion|in\s+total|altogether|finally|overall"
    r"|we\s+(?:find|found|conclude|get|obtain)(?:\s+that)?)\b,?"
)
# Inline math (`$…$`, `\(…\)`) never spans a line break; display math (`\[…\]`) may.
_MATH_SPAN = r"\$\$(?:(?!\$\$).){1,200}\$\$|\$[^$\n]{1,200}\$|\\\((?:(?!\\\))[^\n]){1,200}\\\)|\\\[(?:(?!\\\]).){1,200}\\\]"
_IS = r"(?:\b(?:is|are|equals|equal\s+to|be)\b|=)"
# "… $x \geq 5$ is the solution." / "… is our answer.": the math before such a tail is the result
_ANSWER_TAIL = r"(?:\s+(?:is|are|was)\s+(?:the|our|my)\s+(?:(?:final|only)\s+)?(?:answer|solution|result)s?)?"
_NUMBER_UNIT = (
    r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?"
    r"(?:\s*\\?%|\s*[€£¥]|[A-Za-z]{1,3}[²³]|(?:\s+[A-Za-z]+){0,3})"
)
_NOT_COUNTED = r"(?!\s+(?:more|left|remaining|other|still)\b)"
_CONCLUSION_BRANCHES = (
    # … ends with its only math span (and maybe "is the answer"): "Therefore, the total is $19$."
    r"[^.\n$]{0,200}?(?P<math>" + _MATH_SPAN + r")" + _ANSWER_TAIL,
    # … is/= <math>, with other math before it: "So the pair $(x, y)$ that solves it is $(7, 6)$."
    r"[^.\n]{0,200}?" + _IS + r"\s*:?\s*(?P<lastmath>" + _MATH_SPAN + r")",
    # … is/=/'s/by <number> [unit words or sign]: "So the sum is 42 apples." / "… went up by 44%."
    r"[^.\n]{0,200}?(?:"
    + _IS
    + r"|(?<=\w)'s\b|\bby\b(?=\s*\d[\d,.]*\s*\\?%))\s*:?\s*(?P<number>"
    + _NUMBER_UNIT
    + r")",
    # there are <count> <noun phrase>: "Therefore, there are 12 sequences that meet the conditions."
    r"[^.\n]{0,200}?\bthere\s+(?:are|is|were|was|will\s+be)\s+(?P<count>\d[\d,]*)"
    + _NOT_COUNTED
    + r"(?:\s+[A-Za-z'-]+){1,12}",
)
_CONCLUSION_BODY = r"(?:" + "|".join(_CONCLUSION_BRANCHES) + r")\s*(?:\*\*)?\s*[.!]?\s*$"
# Closing pleasantries after the result ("… is 12. I hope it is correct.") are not part of the final sentence.
_UNIT_SYMBOL_RE = re.compile(r"(?:\s*[€£¥]|(?<=\d)[A-Za-z]{1,3}[²³])$")
_PLEASANTRY_RE = re.compile(r"(?:\s*I\s+hope\s+(?:it|this|that)\s+is\s+correct\s*[.!]?)+\s*$", re.IGNORECASE)
# A sentence starts after . ! ? : or a line break, or at a capitalised cue word after a space or math
# ("… = 2/3 Therefore, the probability is 2/3." / "…$$ Therefore, …": a model that left out the full stop).
_CONCLUSION_RE = re.compile(
    r"(?:^|(?<=[.!?:\n])|(?<=[\s$])(?=(?-i:So|Thus|Therefore|Hence)\b))\s*(?:\*\*)?"
    + _CONCLUSION_CUE
    + _CONCLUSION_BODY,
    re.IGNORECASE | re.DOTALL,
)
# After </think> the text is the model's reply: its closing sentence needs no conclusion word when the reply is short.
_CLOSING_RE = re.compile(r"(?:^|(?<=[.!?:\n]))\s*(?:\*\*)?" + _CONCLUSION_BODY, re.IGNORECASE | re.DOTALL)
_MAX_REPLY = 400
_MAX_SENTENCE = 250
_NOT_A_RESULT_RE = re.compile(
    r"\s*(?:what|how|which|who|why|find|compute|calculate|determine|evaluate|solve|let|suppose|assume|if)\b",
    re.IGNORECASE,
)
_MATH_OPEN = {"$$": "$$", "$": "$", "\\[": "\\]", "\\(": "\\)"}
_SENTENCE_END_RE = re.compile(r"\n|\.(?=\s|$)|(?<=[^\d\s])\.(?=[A-Z])")
_PLAIN_WORD_RE = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{2,}")
_LATEX_CMD_RE = re.compile(r"\\(?:text|textbf|textrm|mbox|mathrm|operatorname)\s*\{[^{}]*\}|\\[A-Za-z]+")
_LEADING_NUMBER_RE = re.compile(r"\s*[-+]?\$?\s*\d[\d,.]*\s*(?:\\?%)?\s*(?:[A-Za-z][A-Za-z ]*)?\.?")
_MATH_WORDS = frozenset("sin cos tan cot sec csc log ln exp sqrt mod pmod pi".split())
_MAX_BARE = 80
_MAX_STATED = 200
_SINGLE_MATH_RE = re.compile(r"\s*(?:\$\$(.+?)\$\$|\$([^$]+)\$|\\\[(.+?)\\\]|\\\((.+?)\\\))\s*", re.DOTALL)
_FINAL_STATEMENT_RE = re.compile(r"\bfinal\s+answer\b", re.IGNORECASE)
_LAST_MATH_RE = re.compile(r"\$\$(.+?)\$\$|(?<![\\$])\$(.+?)(?<!\\)\$|\\\[(.+?)\\\]|\\\((.+?)\\\)", re.DOTALL)


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


def without_open_think(text: str) -> str:
    """`text` cut before a `<think>` that is never closed (a truncated completion's reasoning is never searched)."""
    last_open = text.rfind(_THINK_OPEN)
    if last_open >= 0 and text.find(_THINK_CLOSE, last_open) < 0:
        return text[:last_open]
    return text


def last_answer_block(text: str) -> str | None:
    """Content of the last `<answer>…</answer>` block outside `<think>`, or None when there is none.

    Everything before the last `</think>` is reasoning, so an answer block written while thinking never counts;
    neither does one inside a `<think>` that is never closed. The block is the last `</answer>` and the last
    `<answer>` before it (a stray nested opener is not included).
    """
    text = without_open_think(text)
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


def _unwrap_box(content: str) -> str:
    while True:  # \boxed{\boxed{5}} -> 5
        inner = content.strip()
        box = _BOX_RE.match(inner)
        if not box or _brace_matches(inner).get(box.end() - 1) != len(inner) - 1:
            return content
        content = inner[box.end() : -1]


def _top_level_boxes(text: str) -> list[tuple[int, int, int]]:
    """(start of `\\boxed`, open brace, close brace) of every balanced box not inside another one, in order."""
    if "\\boxed" not in text and "\\fbox" not in text:
        return []
    match_of = _brace_matches(text)
    boxes = []
    for box in _BOX_RE.finditer(text):
        open_brace = box.end() - 1
        close_brace = match_of.get(open_brace)
        if close_brace is not None:
            boxes.append((box.start(), open_brace, close_brace))
    top: list[tuple[int, int, int]] = []
    for b in boxes:  # spans of balanced braces nest properly: a box starting after the last kept one's end is new
        if not top or b[0] > top[-1][2]:
            top.append(b)
    return top


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{…}` (or `\\fbox{…}`) whose braces balance, or None.

    "Last" means the box that closes last, so nested boxes give the outer one, and a content that is itself exactly
    one box is unwrapped. Unclosed boxes (a truncated completion) are skipped. One pass over the braces: linear time.
    """
    top = _top_level_boxes(text)
    if not top:
        return None
    _, open_brace, close_brace = top[-1]
    return _unwrap_box(text[open_brace + 1 : close_brace])


def final_boxed(text: str) -> str | None:
    """The final boxed answer (the box rule of the module docstring): the last box, joined with the boxes before it
    that only separators divide from it. None when there is no balanced box."""
    top = _top_level_boxes(text)
    if not top:
        return None
    group = [top[-1]]
    for prev in reversed(top[:-1]):
        gap = text[prev[2] + 1 : group[0][0]].rstrip("\\")  # a doubled `\\boxed` leaves a stray backslash
        if _BOX_SEPARATOR_RE.fullmatch(gap) is None:
            break
        if _GAP_DELIM_RE.search(gap) and not _GAP_JOINER_RE.search(gap):
            break  # "$$\\boxed{20}$$ \\boxed{143}": a new math span with a box in it is a new answer
        group.insert(0, prev)
    parts: list[str] = []
    for _, open_brace, close_brace in group:
        part = _unwrap_box(text[open_brace + 1 : close_brace]).strip()
        if part and part not in parts:
            parts.append(part)
    if len(parts) <= 1:
        return parts[0] if parts else _unwrap_box(text[group[-1][1] + 1 : group[-1][2]])
    return ", ".join(parts)


def _math_after(text: str, start: int) -> str | None:
    """The math that opens at `start` (`$…$`, `$$…$$`, `\\[…\\]`, `\\(…\\)`), or None when none opens there."""
    for opener in ("$$", "$", "\\[", "\\("):
        if text.startswith(opener, start):
            closer = _MATH_OPEN[opener]
            end = text.find(closer, start + len(opener))
            if end < 0 or end - start > 4 * _MAX_STATED:
                return None
            return text[start + len(opener) : end]
    return None


def stated_answer(text: str) -> str | None:
    """The value of the last explicit answer statement ("the answer is X", "Final Answer: X", "#### X"), or None.

    X is the math right after the statement when it opens with `$`/`\\[`/`\\(` (or a box), else the rest of the
    sentence (up to a line break or a full stop that ends the sentence), without trailing punctuation/markdown.
    """
    if "####" not in text and "answer" not in text.lower():  # a plain scan is 10x faster than the regex on 1 MB
        return None
    last = None
    for m in _STATEMENT_RE.finditer(text):
        last = m
    if last is None:
        return None
    start = last.end()
    while start < len(text) and text[start] in " \t\n*:":
        start += 1
    rest = text[start : start + 4 * _MAX_STATED]
    boxed = final_boxed(rest) if rest.lstrip("$\\[( ").startswith(("\\boxed", "boxed", "\\fbox")) else None
    if boxed is not None:
        return boxed.strip() or None
    math = _math_after(text, start)
    if math is not None:
        value = math.strip()
    else:
        end = _SENTENCE_END_RE.search(rest)
        value = (rest[: end.start()] if end else rest).strip()
    value = value.strip().rstrip(".,;:!").strip().strip("*").strip()
    if not value or len(value) > _MAX_STATED:
        return None
    return value


def concluded_answer(text: str, cue: bool = True) -> str | None:
    """The result a text's final sentence concludes with ("Therefore, the total is $19$."), or None.

    Only the very end of the text counts (closing pleasantries such as "I hope it is correct." aside), and only a
    sentence that opens with a conclusion word (so, thus, therefore, hence, in conclusion, in total, altogether,
    finally, overall, we find/get/obtain/conclude (that); a capitalised So/Thus/Therefore/Hence starts a sentence
    even without a full stop before it) and ends with its only math span (`$…$`, `$$…$$`, `\\(…\\)`, `\\[…\\]`:
    "Thus $x = 4$.", also followed by "is the/our answer|solution"), with "is/are/equals/= <math>" ("So the pair
    $(x, y)$ that solves it is $(7, 6)$."), with "is/are/equals/=/'s N" or "by N%", N a number or a fraction a/b
    with at most three unit words or a unit sign ("In total, the cost is 42 dollars.", "… is 30m²"), or with
    "there are N <noun phrase>" ("Therefore, there are 12 sequences that meet the conditions."). With `cue=False` (a short reply after `</think>`) the
    conclusion word is not needed: "</think> The smallest such integer is $7$."
    """
    tail = _PLEASANTRY_RE.sub("", text[-800:])
    m = (_CONCLUSION_RE if cue else _CLOSING_RE).search(tail)
    if m is None:
        return None
    value = next(
        m.group(g) for g in ("math", "lastmath", "number", "count") if m.group(g) is not None
    ).strip()
    if m.group("number") is not None:
        value = _UNIT_SYMBOL_RE.sub("", value)  # "1,000.99€", "12m²": the number
    for opener, closer in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if value.startswith(opener) and value.endswith(closer) and len(value) > len(opener) + len(closer):
            value = value[len(opener) : -len(closer)]
            break
    return _without_sentence_end(value) or None


def _one_sentence(text: str) -> bool:
    """A text that is a single short sentence ("The identity matrix is $…$."): nothing in it but the statement
    of its result. Two sentences ("I tried 6 and it failed. The smallest such integer is 7.") are not."""
    text = text.strip()
    if (
        not text
        or len(text) > _MAX_SENTENCE
        or _TAG_RE.search(text)
        or "?" in text
        or _NOT_A_RESULT_RE.match(text)
    ):
        return False  # a question or a supposition is not a result
    prose = _LAST_MATH_RE.sub(" M ", text).strip().rstrip(".!").strip()
    return _SENTENCE_END_RE.search(prose) is None


def _without_sentence_end(value: str) -> str:
    """`value` without the sentence punctuation after it; an ellipsis ("1, 2, 3, ...") is part of the answer."""
    value = value.strip()
    if value.endswith(("..", "\\dots", "\\ldots", "\\cdots", "…")):
        return value
    return value.rstrip(".,;").strip()


def is_bare_answer(text: str) -> bool:
    """Text that is itself an answer: one short line, no tags, at most one plain word or a number with unit words."""
    text = text.strip()
    if not text or len(text) > _MAX_BARE or "\n" in text or _TAG_RE.search(text):
        return False
    if _LEADING_NUMBER_RE.fullmatch(text):
        return True  # "18", "18 dollars", "$18.50", "12.5%"
    bare = _LATEX_CMD_RE.sub(" ", text)
    words = [w for w in _PLAIN_WORD_RE.findall(bare) if w.lower() not in _MATH_WORDS]
    return len(words) <= 1


def extract_answer(text: Any, policy: str = DEFAULT_POLICY) -> str:
    """The final answer of a completion under an answer policy (see the module docstring); "" when it has none.

    The result is stripped of surrounding whitespace. An unknown policy raises ValueError.
    """
    if policy not in ANSWER_POLICIES:
        raise ValueError(f"unknown answer policy {policy!r}; known policies: {', '.join(ANSWER_POLICIES)}")
    if not isinstance(text, str):
        text = completion_text(text)
    try:
        visible = without_open_think(_own_turn(text))
        think_end = visible.rfind(_THINK_CLOSE)
        post = visible[think_end + len(_THINK_CLOSE) :] if think_end >= 0 else visible
        block = last_answer_block(visible)
        if policy == "strict":
            if think_end < 0 or block is None:
                return ""
            return _block_answer(block)
        if block is not None:
            return _block_answer(block)
        for found in (
            _final_box_or_statement(post),
            stated_answer(post),
            concluded_answer(post),
            single_math(post),
        ):
            if found is not None and found.strip():
                return found.strip()
        if (think_end >= 0 and len(post.strip()) <= _MAX_REPLY) or _one_sentence(post):
            closing = concluded_answer(post, cue=False)
            if closing is not None:
                return closing
        if is_bare_answer(post):
            return post.strip()
        if think_end >= 0:
            boxed = final_boxed(visible[:think_end])
            if boxed is not None:
                return boxed.strip()
        return ""
    except Exception:  # defensive: extraction must never take training down
        return ""


def _own_turn(text: str) -> str:
    """`text` cut at the first chat-template token after the reply began ("… is 2/3. <|im_start|>user …")."""
    if "<|" not in text:
        return text
    for m in _TURN_END_RE.finditer(text):
        if text[: m.start()].strip():
            return text[: m.start()]
    return text


def single_math(text: str) -> str | None:
    """The content of a text that is exactly one math span (`$…$`, `$$…$$`, `\\[…\\]`, `\\(…\\)`), without the
    sentence punctuation written inside it (`$\\frac{1}{3}.$` is `\\frac{1}{3}`); else None."""
    m = _SINGLE_MATH_RE.fullmatch(text)
    if m is None:
        return None
    inner = next(g for g in m.groups() if g is not None)
    if "$" in inner or len(inner) > 4000 or any(d in inner for d in ("\\[", "\\]", "\\(", "\\)")):
        return None
    return _without_sentence_end(inner) or None


def _final_box_or_statement(text: str) -> str | None:
    """The final box, unless a "final answer" statement with a value comes after it ("… = \\boxed{255} …
    Final Answer: The final answer is $10,455$."): the model's last word on its answer counts."""
    top = _top_level_boxes(text)
    if not top:
        return None
    after = text[top[-1][2] + 1 :]
    if _FINAL_STATEMENT_RE.search(after):
        stated = stated_answer(after)
        if stated is not None and (any(c.isdigit() for c in stated) or "\\" in stated):
            return stated
    return final_boxed(text)


def _block_answer(block: str) -> str:
    boxed = final_boxed(block)
    return (boxed if boxed is not None else block).strip()


def _plain_words(text: str) -> int:
    bare = _LATEX_CMD_RE.sub(" ", _LAST_MATH_RE.sub(" ", text))
    return sum(1 for w in _PLAIN_WORD_RE.findall(bare) if w.lower() not in _MATH_WORDS)


def reference_answer(reference: str) -> str:
    """The value a reference states (see the module docstring); a plain reference is returned unchanged."""
    try:
        if not isinstance(reference, str) or not reference or len(reference) > 20_000:
            return reference
        if "\\boxed" in reference or "\\fbox" in reference:
            boxed = final_boxed(reference)
            if boxed is not None and boxed.strip():
                return boxed.strip()
        if "####" in reference:
            tail = reference[reference.rfind("####") + 4 :].strip()
            if tail:
                return tail.splitlines()[0].strip()
        if _is_solution(reference):
            stated = stated_answer(reference)
            if stated is not None:
                return stated
            for last in (_last_stated_math(reference), _last_stated_number(reference)):
                if last is not None:
                    return last
        return reference
    except Exception:
        return reference


def _is_solution(text: str) -> bool:
    """A worked solution, not a value: several sentences or lines of prose."""
    text = text.strip()
    if len(text) < 40 or _plain_words(text) < 5:
        return False
    return "\n" in text or len(_SENTENCE_END_RE.findall(text)) >= 1


_CURRENCY_RE = re.compile(r"(?<![\\\w$])\$\d[\d,]*(?:\.\d+)?(?![\d$])")  # $18.00, not $19$
_CALCULATOR_RE = re.compile(r"<<[^<>]*>>")  # GSM8K's calculator annotations: <<48/2=24>>
_NUMBER_RE = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


def _last_stated_number(text: str) -> str | None:
    """The result stated by a solution's final sentence that holds a number: the first number after its last
    `=`, else its last number (GSM8K-style solutions without `####`)."""
    text = _CALCULATOR_RE.sub("", text)
    for sentence in reversed(_SENTENCE_END_RE.split(text)):
        if not any(ch.isdigit() for ch in sentence):
            continue
        eq = sentence.rfind("=")
        after = _NUMBER_RE.search(sentence, eq + 1) if eq >= 0 else None
        if after is not None:
            return after.group()
        numbers = _NUMBER_RE.findall(sentence)
        return numbers[-1] if numbers else None
    return None


def _last_stated_math(text: str) -> str | None:
    """The last math of a solution, right-hand side of its last `=`. None where `$` marks money ("$18.00")."""
    if _CURRENCY_RE.search(text):
        return None
    last = None
    for m in _LAST_MATH_RE.finditer(text):
        last = m
    if last is None:
        return None
    math = next(g for g in last.groups() if g is not None).strip()
    if _plain_words(math) >= 2:
        return None  # "$2 per egg and $18": dollar signs, not math
    depth, cut = 0, -1
    for i, ch in enumerate(math):  # the last top-level "=" (not inside braces/brackets)
        if ch in "{([":
            depth += 1
        elif ch in "})]":
            depth -= 1
        elif ch == "=" and depth == 0 and math[i - 1 : i] not in ("<", ">", "!", "\\"):
            cut = i
    value = math[cut + 1 :].strip() if cut >= 0 else math
    value = value.rstrip(".,;").strip()
    return value or None
