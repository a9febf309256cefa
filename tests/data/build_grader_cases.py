"""Build tests/data/grader_cases.jsonl: the accuracy grader's regression set (run from the repository root).

    .venv/bin/python tests/data/build_grader_cases.py [--data-dir ../shared/data]

Each line: {"completion", "gold", "expected", "policy", "source", "why"}. `expected` is what a careful grader says
(a wrong 1.0 is worse than a wrong 0.0), written down by hand for the hand cases and taken from the data sets'
own solutions for the sampled cases (a solution's stated result equals its record's answer). The file is committed;
this script documents where every case came from and re-creates it (sampling is deterministic).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OUT = Path(__file__).resolve().parent / "grader_cases.jsonl"

T = "<think>Let me work it out step by step.</think>\n"  # an R1-Zero reasoning block


def tagged(answer: str) -> str:
    return f"{T}<answer>{answer}</answer>"


# (completion, gold, expected, policy, source, why)
HAND: list[tuple[str, str, bool, str, str, str]] = [
    # ---- several boxes that together are one answer (issue 11)
    ("The solutions are $\\boxed{1}, \\boxed{2}, \\boxed{3}$.", "\\{1,2,3\\}", True, "lenient", "issue", "multi-box set"),
    ("So the pairs are $\\boxed{(2, 2)} \\quad \\text{and} \\quad \\boxed{(6, 2)}$", "(2, 2), (6, 2)", True, "lenient", "issue", "multi-box tuples"),
    ("Hence $\\boxed{k = 45} \\quad \\boxed{n = 2}$", "k=45, n=2", True, "lenient", "issue", "multi-box assignments"),
    ("Hence $\\boxed{k = 45} \\quad \\boxed{n = 2}$", "45, 2", True, "lenient", "issue", "multi-box assignments vs values"),
    ("$\\boxed{3}$ and $\\boxed{-1}$", "-1, 3", True, "lenient", "model", "two roots boxed separately"),
    ("x = \\boxed{2}, \\boxed{-2}", "\\pm 2", True, "lenient", "model", "boxed roots vs pm"),
    (tagged("\\boxed{1}, \\boxed{2}, \\boxed{3}"), "1,2,3", True, "strict", "model", "multi-box inside the answer block"),
    ("$\\boxed{1}, \\boxed{2}, \\boxed{3}$", "3", False, "lenient", "hard negative", "a set is not its last element"),
    ("$\\boxed{1}, \\boxed{2}$", "\\{1,2,3\\}", False, "lenient", "hard negative", "a missing element"),
    ("$\\boxed{5}$, $\\boxed{6}$", "6", False, "lenient", "hard negative", "two boxed values are not one of them (hedge)"),
    ("$\\boxed{5}$\n\n$\\boxed{5}$", "5", True, "lenient", "model", "a repeated box counts once"),
    ("First \\boxed{12}. Then doubling gives \\boxed{24}.", "24", True, "lenient", "model", "prose between boxes: last box"),
    ("First \\boxed{12}. Then doubling gives \\boxed{24}.", "12, 24", False, "lenient", "hard negative", "boxes divided by prose are not a set"),
    # ---- thousands separators and decimal commas (issue 11)
    ("The total is $\\boxed{1 000}$.", "1000", True, "lenient", "issue", "space thousands"),
    ("The total is $\\boxed{1\\,000}$.", "1000", True, "lenient", "issue", "thin-space macro thousands"),
    ("The total is $\\boxed{1\\ 000\\ 000}$.", "1000000", True, "lenient", "issue", "control-space thousands"),
    ("The total is \\boxed{1\u2009000}.", "1000", True, "lenient", "issue", "U+2009 thin space thousands"),
    ("The total is \\boxed{12\u202f345}.", "12345", True, "lenient", "issue", "U+202F narrow no-break space"),
    ("The total is \\boxed{1~000}.", "1000", True, "lenient", "issue", "tilde thousands"),
    ("The total is \\boxed{1{,}000}.", "1000", True, "lenient", "model", "{,} thousands"),
    ("The total is \\boxed{1,000}.", "1000", True, "lenient", "model", "comma thousands"),
    ("\\boxed{1000,99}", "1000.99", True, "lenient", "issue", "unambiguous decimal comma"),
    ("\\boxed{1 000,99}", "1000.99", True, "lenient", "issue", "space thousands and decimal comma"),
    ("\\boxed{1 000}", "100", False, "lenient", "hard negative", "thousands are not dropped digits"),
    ("\\boxed{1000,99}", "1000", False, "lenient", "hard negative", "decimal comma keeps the fraction"),
    ("\\boxed{1,5}", "1.5", False, "lenient", "hard negative", "1,5 is ambiguous: a two-element set"),
    ("\\boxed{1,5}", "\\{1, 5\\}", True, "lenient", "model", "1,5 as a set"),
    ("\\boxed{x^2 100}", "x^{2100}", False, "lenient", "hard negative", "no thousands grouping after an exponent"),
    # ---- prose endings without tag or box (issue 11)
    ("We add the parts: 12 + 7 = 19, so the answer is $19$.", "19", True, "lenient", "issue", "answer is $X$"),
    ("Multiplying out gives the count.\nFinal Answer: 14916", "14916", True, "lenient", "issue", "Final Answer: X"),
    ("Final Answer: The final answer is $\\frac{7}{2}$. I hope it is correct.", "3.5", True, "lenient", "model", "Minerva format"),
    ("**Answer:** $x = 3$", "3", True, "lenient", "model", "markdown answer line"),
    ("After simplifying, the answer is: 42.", "42", True, "lenient", "model", "answer is: X"),
    ("The answer to the question is 18 dollars.", "18", True, "lenient", "model", "answer with units"),
    ("So the answer is therefore 7.", "7", True, "lenient", "model", "filler word after the cue"),
    ("Summing the series step by step. Therefore, the total is $19$.", "19", True, "lenient", "model", "concluding sentence"),
    ("Each box holds 6. In total, there are 42 apples.", "42", True, "lenient", "model", "concluding sentence with units"),
    ("Thus the probability is \\(\\frac{1}{6}\\).", "\\frac16", True, "lenient", "model", "concluding \\(...\\)"),
    ("The answer is 5. Wait, recompute: it is 6.", "6", False, "lenient", "hard negative", "the last explicit statement says 5"),
    ("So the answer is $19$.", "20", False, "lenient", "hard negative", "stated value is wrong"),
    ("Final Answer: 14916", "14917", False, "lenient", "hard negative", "stated value is wrong"),
    ("I computed 3, 4 and 5 along the way and I am not sure.", "5", False, "lenient", "hack", "a number merely appearing"),
    ("lorem ipsum 5 dolor sit amet", "5", False, "lenient", "hack", "a number merely appearing"),
    ("The numbers 7 and 19 appear here but I did not finish", "19", False, "lenient", "hack", "no statement"),
    ("We have 180 + 24 = 204 minutes in total -sig", "204", False, "lenient", "hack", "no concluding cue"),
    # ---- whole-solution references (issue 11)
    (tagged("19"), "We have $a = 12$ and $b = 7$, so the sum we want is $a + b = 19$.", True, "strict", "issue", "reference: last stated math"),
    (tagged("20"), "We have $a = 12$ and $b = 7$, so the sum we want is $a + b = 19$.", False, "strict", "issue", "reference: last stated math, wrong answer"),
    (tagged("13"), "Three bottles of soda cost $3.00 x 3 = $9.00. Therefore, 3 bottles of soda and 2 bottles of water cost $9.00 + $4.00 = $13.00.", True, "strict", "gsm8k_test/872", "money signs are not math delimiters"),
    (tagged("18"), "Janet sells 16 - 3 - 4 = 9 duck eggs a day. She makes 9 * 2 = $18 every day at the farmer's market.", True, "strict", "issue", "reference without ####: final stated number"),
    (tagged("9"), "Janet sells 16 - 3 - 4 = 9 duck eggs a day. She makes 9 * 2 = $18 every day at the farmer's market.", False, "strict", "issue", "an intermediate value is not the result"),
    (tagged("\\frac{1}{2}"), "By symmetry both halves are equal, so the probability is $\\boxed{\\frac12}$.", True, "strict", "issue", "reference with a box"),
    (tagged("72"), "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether.\n#### 72", True, "strict", "gsm8k", "GSM8K solution reference"),
    (tagged("24"), "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips altogether.\n#### 72", False, "strict", "gsm8k", "intermediate value"),
    (tagged("5"), "Solving gives the answer is $5$ and we are done with this problem.", True, "strict", "issue", "reference with a statement"),
    # ---- one rounding policy in every container (issue 11)
    (tagged("(0.6, 2.5]"), "(\\frac{3}{5}, \\frac{5}{2}]", True, "strict", "issue", "exact decimals in an interval"),
    (tagged("(0.6, 2.6667]"), "(\\frac{3}{5}, \\frac{8}{3}]", False, "strict", "issue", "2.6667 is a rounding of 8/3: same policy as bare numbers"),
    (tagged("2.6667"), "\\frac{8}{3}", False, "strict", "policy", "a rounded repeating decimal is not the exact value"),
    (tagged("\\begin{pmatrix} 0.5 \\\\ -0.25 \\end{pmatrix}"), "\\begin{pmatrix} \\frac12 \\\\ -\\frac14 \\end{pmatrix}", True, "strict", "issue", "exact decimals in a matrix"),
    (tagged("\\begin{pmatrix} 0.333 \\\\ 1 \\end{pmatrix}"), "\\begin{pmatrix} \\frac13 \\\\ 1 \\end{pmatrix}", False, "strict", "issue", "rounded decimal in a matrix"),
    (tagged("(0.5, 0.75)"), "\\left(\\frac{1}{2}, \\frac{3}{4}\\right)", True, "strict", "model", "exact decimals in a tuple"),
    (tagged("\\{0.2, 0.4\\}"), "\\{\\frac15, \\frac25\\}", True, "strict", "model", "exact decimals in a set"),
    (tagged("\\{0.33, 0.67\\}"), "\\{\\frac13, \\frac23\\}", False, "strict", "model", "rounded decimals in a set"),
    (tagged("0.5"), "\\frac{1}{2}", True, "strict", "policy", "exact decimal"),
    (tagged("0.866"), "\\frac{\\sqrt{3}}{2}", False, "strict", "policy", "rounded irrational"),
    (tagged("3.14"), "\\pi", False, "strict", "policy", "rounded pi"),
    # ---- relative tolerance (issue 11 false positives)
    (tagged("\\frac{1}{2^{98}}"), "\\frac{1}{2^{99}}", False, "strict", "issue", "tiny numbers differ by a factor 2"),
    (tagged("10^{-40}"), "2\\cdot 10^{-40}", False, "strict", "issue", "tiny numbers differ by a factor 2"),
    (tagged("0.0000000000001"), "0.0000000000002", False, "strict", "issue", "tiny decimals"),
    (tagged("10^{-40}"), "0", False, "strict", "hard negative", "tiny is not zero"),
    (tagged("x - 10^{-40}"), "x - 2\\cdot10^{-40}", False, "strict", "hard negative", "tiny coefficients in an expression"),
    (tagged("\\frac{1}{2^{98}}"), "2^{-98}", True, "strict", "model", "the same tiny number"),
    (tagged("1.5 \\times 10^{-40}"), "\\frac{3}{2}\\cdot 10^{-40}", True, "strict", "model", "scientific notation"),
    (tagged("\\ln 2 + \\ln 3"), "\\ln 6", True, "strict", "model", "exact cancellation"),
    (tagged("123456789012"), "123456789013", False, "strict", "hard negative", "large integers differ"),
    (tagged("123456789012.5"), "123456789012", False, "strict", "hard negative", "large decimals differ"),
    # ---- honest credit (issue 11): policies
    ("\\boxed{5}", "5", False, "strict", "issue", "untagged completion under strict"),
    ("The answer is 5", "5", False, "strict", "issue", "untagged statement under strict"),
    ("<answer>5</answer>", "5", False, "strict", "issue", "answer block without </think>"),
    ("<think>First, 2+3 = 5. So \\boxed{5}", "5", False, "strict", "issue", "box inside an unterminated think"),
    ("<think>First, 2+3 = 5. So \\boxed{5}", "5", False, "lenient", "issue", "box inside an unterminated think"),
    ("<think>2+3 = 5 <answer>5</answer>", "5", False, "lenient", "issue", "answer block inside an unterminated think"),
    ("<think>a</think><think>then \\boxed{5}", "5", False, "lenient", "issue", "second think never closed"),
    ("<think>2 + 3 = 5</think> <answer>5</answer>", "5", True, "strict", "issue", "answer after </think>"),
    ("<think>2 + 3 = 5</think>\n<answer>\\boxed{5}</answer>", "5", True, "strict", "model", "boxed answer after </think>"),
    ("<think>maybe \\boxed{6}?</think> <answer>5</answer>", "5", True, "strict", "model", "think content never counts"),
    ("<think>maybe \\boxed{5}</think> <answer>6</answer>", "5", False, "strict", "hack", "think content never counts"),
    ("<think>maybe 5</think> The answer is 7.", "7", True, "lenient", "model", "lenient: statement after </think>"),
    ("<think>\\boxed{5}</think> The answer is 7.", "5", False, "lenient", "model", "lenient: the text after </think> wins"),
    ("<think>2+3 = \\boxed{5}</think>", "5", True, "lenient", "model", "lenient: a box in closed reasoning when nothing follows"),
    ("<think>2+3 = \\boxed{5}</think>", "5", False, "strict", "policy", "strict: no answer block"),
    ("<think>a</think><answer>5</answer><think>more \\boxed{6}", "5", True, "strict", "model", "a later unterminated think is ignored"),
    ("<think>a</think><answer>The final answer is $\\frac{14}{3}$.</answer>", "\\frac{14}{3}", True, "strict", "model", "sentence in the block"),
    # ---- unevaluated operators: not final answers
    (tagged("\\int_0^1 x^2 \\, dx"), "\\frac13", False, "strict", "hack", "the restated question is not an answer"),
    (tagged("\\sum_{k=1}^{100} k"), "5050", False, "strict", "hack", "the restated question is not an answer"),
    (tagged("\\lim_{x \\to 0} \\frac{\\sin x}{x}"), "1", False, "strict", "hack", "the restated question is not an answer"),
    (tagged("\\sum_{k=1}^{n} k^2"), "\\sum_{k=1}^{n} k^{2}", True, "strict", "model", "the reference has the operator too"),
    (tagged("\\frac{n(n+1)(2n+1)}{6}"), "\\sum_{k=1}^{n} k^{2}", True, "strict", "model", "evaluated form of the reference's sum"),
    # ---- ordinary forms that must stay right
    (tagged("\\frac{14}{3}"), "4\\frac{2}{3}", True, "strict", "model", "mixed number"),
    (tagged("\\dfrac{3}{4}"), "0.75", True, "strict", "model", "dfrac vs decimal"),
    (tagged("(x+1)^2"), "x^2+2x+1", True, "strict", "model", "factored vs expanded"),
    (tagged("\\sqrt{8}"), "2\\sqrt2", True, "strict", "model", "surd"),
    (tagged("2\\sqrt{2}"), "2\\sqrt{3}", False, "strict", "hard negative", "different surd"),
    (tagged("90^\\circ"), "90", True, "strict", "model", "degrees"),
    (tagged("\\$18.00"), "18", True, "strict", "model", "currency"),
    (tagged("18 dollars"), "18", True, "strict", "model", "units"),
    (tagged("12.5\\%"), "12.5", True, "strict", "model", "percent"),
    (tagged("\\text{(C)}"), "C", True, "strict", "model", "choice letter"),
    (tagged("\\textbf{(073)}"), "73", True, "strict", "aime24 solution", "bold AIME answer"),
    (tagged("D"), "\\text{(C)}", False, "strict", "hard negative", "wrong choice"),
    (tagged("025"), "25", True, "strict", "model", "AIME leading zero"),
    (tagged("x = 3"), "3", True, "strict", "model", "assignment"),
    (tagged("x = 4"), "3", False, "strict", "hard negative", "wrong assignment"),
    (tagged("y = 2x + 3"), "2x+3", True, "strict", "model", "line"),
    (tagged("[1, 2)"), "[1,2)", True, "strict", "model", "interval"),
    (tagged("(1, 2)"), "[1,2)", False, "strict", "hard negative", "open vs half-open"),
    (tagged("(-\\infty, 2) \\cup (3, \\infty)"), "(-\\infty,2)\\cup(3,\\infty)", True, "strict", "model", "union"),
    (tagged("101010_2"), "52_8", True, "strict", "model", "bases"),
    (tagged("52_9"), "52_8", False, "strict", "hard negative", "other base"),
    (tagged("\\text{Evelyn}"), "Evelyn", True, "strict", "model", "text answer"),
    (tagged("x + 18"), "18", False, "strict", "hard negative", "an expression containing the number"),
    (tagged("18, 19"), "18", False, "strict", "hard negative", "a list containing the number"),
    (tagged("1 \\pm \\sqrt{19}"), "1+\\sqrt{19}, 1-\\sqrt{19}", True, "strict", "model", "plus-minus"),
    (tagged("6 - 5i"), "-5i+6", True, "strict", "model", "complex"),
    (tagged("\\left( 3, \\frac{\\pi}{2} \\right)"), "(3, \\pi/2)", True, "strict", "model", "polar point"),
    (tagged("\\frac{1}{0}"), "5", False, "strict", "hostile", "division by zero"),
    (tagged(""), "5", False, "strict", "hostile", "empty answer"),
    (tagged("9^{9^{9^9}}"), "5", False, "strict", "hostile", "power tower"),
    (tagged("\\binom{1000000}{500000}"), "5", False, "strict", "hostile", "huge binomial"),
    (tagged("(x+y+z)^{100}"), "5", False, "strict", "hostile", "huge expansion"),
    (tagged("\\int_0^1 x^{x^{x^x}} dx"), "5", False, "strict", "hostile", "costly integral"),
    (tagged("\\sum_{n=1}^\\infty n^{n^{n^n}}"), "5", False, "strict", "hostile", "costly infinite sum"),
    # ---- boxed forms models write (Qwen/DeepSeek-style outputs)
    ("So the answer is $\\boxed{\\text{(B)}}$.", "B", True, "lenient", "model", "boxed choice"),
    ("The correct option is \\boxed{B}", "\\text{(B)}", True, "lenient", "model", "boxed bare letter"),
    ("\\boxed{\\dfrac{5}{2}}", "2.5", True, "lenient", "model", "dfrac vs decimal"),
    ("\\boxed{x \\in [2, 5)}", "[2,5)", True, "lenient", "model", "membership in an interval"),
    ("The side is \\boxed{5\\text{ cm}}", "5", True, "lenient", "model", "boxed units"),
    ("The area is \\boxed{5 \\text{ cm}^2}", "5", True, "lenient", "model", "boxed squared units"),
    ("\\boxed{\\$1,000}", "1000", True, "lenient", "model", "boxed money with comma"),
    ("\\boxed{1,000,000}", "1000000", True, "lenient", "model", "comma thousands, millions"),
    ("\\boxed{1\\,000\\,000}", "10^6", True, "lenient", "model", "thin-space millions vs power"),
    ("\\boxed{50\\%}", "50", True, "lenient", "model", "boxed percent"),
    ("\\boxed{\\text{Monday}}", "\\text{Monday}", True, "lenient", "model", "boxed word"),
    ("\\boxed{\\text{even}}", "\\text{odd}", False, "lenient", "hard negative", "other word"),
    ("\\boxed{\\{-2, 5\\}}", "-2, 5", True, "lenient", "model", "boxed set"),
    ("\\boxed{(-\\infty, -3] \\cup [2, \\infty)}", "(-\\infty,-3]\\cup[2,\\infty)", True, "lenient", "model", "boxed union"),
    ("\\boxed{y = -\\frac{1}{2}x + 3}", "y=-\\frac12 x+3", True, "lenient", "model", "boxed line"),
    ("\\boxed{\\sqrt{2}/2}", "\\frac{\\sqrt2}{2}", True, "lenient", "model", "slash fraction with root"),
    ("\\boxed{2\\pi}", "2\\pi", True, "lenient", "model", "pi multiple"),
    ("\\boxed{6.28}", "2\\pi", False, "lenient", "hard negative", "rounded 2 pi"),
    ("\\boxed{3.0}", "3", True, "lenient", "model", "trailing zero decimal"),
    ("\\boxed{-\\frac{3}{4}}", "-0.75", True, "lenient", "model", "negative fraction vs decimal"),
    ("**Final Answer**\n\\[\n\\boxed{36}\n\\]", "36", True, "lenient", "model", "display box"),
    ("\\boxed{10\\,080}", "10,\\!080", True, "lenient", "model", "thin space vs MATH's comma"),
    ("$\\boxed{3}$ \\text{ and } $\\boxed{4}$", "3, 4", True, "lenient", "model", "boxes joined by text and"),
    ("The final answer is $\\boxed{C}$", "\\text{(C)}", True, "lenient", "model", "boxed choice letter"),
    ("\\boxed{\\frac{9}{4}\\text{ square units}}", "\\frac94", True, "lenient", "model", "fraction with units"),
    ("\\boxed{30^{\\circ}}", "30", True, "lenient", "model", "degrees with braces"),
    ("\\boxed{1011_2}", "1011_2", True, "lenient", "model", "base two"),
    ("\\boxed{5, 7}", "7, 5", True, "lenient", "model", "set order"),
    ("\\boxed{(1, -2)}", "(1,-2)", True, "lenient", "model", "point"),
    ("\\boxed{(1, 2)}", "(2, 1)", False, "lenient", "hard negative", "ordered pair order"),
    ("\\boxed{[1, 2]}", "(1, 2)", False, "lenient", "hard negative", "closed vs open"),
    ("\\boxed{x > 2}", "x \\ge 2", False, "lenient", "hard negative", "strict vs non-strict inequality"),
    ("\\boxed{2^{10}}", "1024", True, "lenient", "model", "power vs value"),
    ("\\boxed{1.5\\times10^{3}}", "1500", True, "lenient", "model", "scientific notation vs integer"),
    ("\\boxed{x^2+2x+1}", "(x+1)^2", True, "lenient", "model", "expanded vs factored"),
    ("\\boxed{3\\sqrt{2}}", "\\sqrt{18}", True, "lenient", "model", "simplified surd"),
    ("\\boxed{\\frac{\\pi}{3}}", "\\frac{\\pi}{3}", True, "lenient", "model", "exact angle"),
    ("\\boxed{-5}", "5", False, "lenient", "hard negative", "sign"),
    ("\\boxed{\\frac{2}{3}}", "\\frac{3}{2}", False, "lenient", "hard negative", "reciprocal"),
    ("\\boxed{2\\sqrt{2}}", "2.828", False, "lenient", "hard negative", "exact vs rounded reference"),
    ("\\boxed{1000}", "1 000 000", False, "lenient", "hard negative", "thousands separators kept every digit"),
    ("\\boxed{e^2}", "e^{2}", True, "lenient", "model", "braces"),
    ("The answer is: $\\boxed{18}$", "18", True, "lenient", "model", "statement with box"),
    ("\\boxed{\\$18}", "18", True, "lenient", "model", "boxed dollars"),
    ("\\boxed{18\\text{ dollars}}", "18", True, "lenient", "model", "boxed number with text unit"),
    ("Therefore, $x = 4$ after we check both cases.", "4", False, "lenient", "hard negative", "math not at the end of the conclusion"),
    ("We check both cases and find it works. Thus $x = 4$.", "4", True, "lenient", "model", "conclusion with math at the end"),
    ("We check both cases and find it works. Thus $x = 4$.", "5", False, "lenient", "hard negative", "conclusion states another value"),
    ("<think>Try 3: no. Try 4: yes.</think>\nTherefore, the smallest such number is $4$.", "4", True, "lenient", "model", "conclusion after </think>"),
    ("<think>Try 3: no. Try 4: yes.</think>\nTherefore, the smallest such number is $4$.", "4", False, "strict", "policy", "strict: no answer block"),
    ("<think>work</think>\n<answer>\nThe final answer is $\\boxed{1\\,000}$.\n</answer>", "1000", True, "strict", "model", "block with sentence and thin-space box"),
    ("<think>work</think><answer>$\\boxed{2}, \\boxed{3}$</answer>", "\\{2, 3\\}", True, "strict", "model", "block with two boxes"),
    ("<think>work</think><answer>x = 2 or x = 3</answer>", "2, 3", True, "strict", "model", "two solutions in words"),
    ("<think>work</think><answer>k = 45, n = 2</answer>", "(45, 2)", True, "strict", "model", "assignments vs pair"),
    ("<think>Try 6: no. Try 7: yes.</think>\nThe smallest such integer is $7$.", "7", True, "lenient", "model", "short reply after </think>"),
    ("<think>Try 6: no. Try 7: yes.</think>\nThe smallest such integer is 7.", "7", True, "lenient", "model", "short reply after </think>, plain number"),
    ("<think>Try 6: no. Try 7: yes.</think>\nThe smallest such integer is $7$.", "6", False, "lenient", "hard negative", "short reply states another value"),
    ("<think>Try 6: no. Try 7: yes.</think>\nThe smallest such integer is $7$.", "7", False, "strict", "policy", "strict: no answer block"),
    ("I tried 6 and it failed. The smallest such integer is 7.", "7", False, "lenient", "policy", "untagged prose without a cue: no answer"),
    # ---- issue 11, round 2: forms of real model outputs (written for this suite)
    ('$$\\boxed{36}$$\n\\boxed{42}', '42', True, 'lenient', 'model', 'a box re-written in a new math span: the last one'),
    ('$$\\boxed{36}$$\n\\boxed{42}', '36, 42', False, 'lenient', 'hard negative', 'a re-boxed answer is not a set'),
    ('$\\boxed{12} \\text{ for part (a) and } \\boxed{7}$', '12, 7', True, 'lenient', 'model', 'boxes labelled by part'),
    ('$\\boxed{12} \\text{ for part (a) and } \\boxed{7}$', '12, 8', False, 'lenient', 'hard negative', 'one part wrong'),
    ('The roots are \\\\boxed{2}, \\\\boxed{5}', '2, 5', True, 'lenient', 'model', 'doubled backslashes before the boxes'),
    ('Half of 60 is $\\boxed{30}$, and adding the 14 left over gives the total.\nFinal Answer: The final answer is $44$. I hope it is correct.', '44', True, 'lenient', 'model', 'Final Answer after an intermediate box'),
    ('Half of 60 is $\\boxed{30}$, and adding the 14 left over gives the total.\nFinal Answer: The final answer is $44$. I hope it is correct.', '30', False, 'lenient', 'hard negative', 'the intermediate box is not the answer'),
    ('So the count is \\boxed{9}.\nI am confident the final answer is correct.', '9', True, 'lenient', 'model', 'a final-answer remark without a value keeps the box'),
    ('Adding both parts, the total number of marbles is 23. <|im_end|>\n<|im_start|>user\nWhat is 5+5?\n<|im_start|>assistant\nThe answer is 10.', '23', True, 'lenient', 'model', 'imagined next turn after <|im_end|>'),
    ('Adding both parts, the total number of marbles is 23. <|im_end|>\n<|im_start|>user\nWhat is 5+5?\n<|im_start|>assistant\nThe answer is 10.', '10', False, 'lenient', 'hard negative', "an imagined next turn's answer"),
    ('Each box holds 6 eggs and there are 4 boxes. So there are 24 eggs in total. I hope it is correct.', '24', True, 'lenient', 'model', 'conclusion then a pleasantry'),
    ('Fixing the first guest breaks the rotations. Therefore, there are 720 ways to seat the guests around the round table.', '720', True, 'lenient', 'model', 'there are N <noun phrase>'),
    ('Fixing the first guest breaks the rotations. Therefore, there are 720 ways to seat the guests around the round table.', '5040', False, 'lenient', 'hard negative', 'there are N: another count'),
    ('Subtracting gives 3x = 21, x = 7 Thus the number of apples is 7', '7', True, 'lenient', 'model', 'conclusion word without a full stop before it'),
    ('Both lines pass through it. So the point $P$ where the lines meet is $(2, -3)$.', '(2,-3)', True, 'lenient', 'model', "math after 'is' with earlier math in the sentence"),
    ('Both lines pass through it. So the point $P$ where the lines meet is $(2, -3)$.', '(-3,2)', False, 'lenient', 'hard negative', 'the coordinates swapped'),
    ('Checking both branches. Thus $\\frac{3}{4}$ is our final answer.', '0.75', True, 'lenient', 'model', "math then 'is our final answer'"),
    ('Checking both branches. Hence $x = -4$ is the only solution.', '-4', True, 'lenient', 'model', "math then 'is the only solution'"),
    ('Substituting back into the first equation closes the system. We find that $y = 5$.', '5', True, 'lenient', 'model', "'we find that' conclusion"),
    ('The first year added 20% and the second 20% of the new price. Overall, the price went up by 44%.', '44\\%', True, 'lenient', 'model', "'by N%' conclusion"),
    ('The first year added 20% and the second 20% of the new price. Overall, the price went up by 44%.', '40', False, 'lenient', 'hard negative', 'percent change: another value'),
    ('There are 10 balls and 3 are red. So the probability of drawing a red ball is 3/10.', '\\frac{3}{10}', True, 'lenient', 'model', 'conclusion with a slash fraction'),
    ('The inverse matrix is $\\begin{pmatrix} 2 & -1 \\\\ -1 & 1 \\end{pmatrix}$.', '\\begin{pmatrix} 2 & -1 \\\\ -1 & 1 \\end{pmatrix}', True, 'lenient', 'model', 'one-sentence reply ending in a matrix'),
    ('The perimeter of the square is 36 cm', '36', True, 'lenient', 'model', 'one-sentence reply with units'),
    ("After the discount it's 45€", '45', True, 'lenient', 'model', "one-sentence reply, it's N and a currency sign"),
    ('The floor area comes to 30m²', '30', False, 'lenient', 'hard negative', 'one sentence without is/=: no answer'),
    ('The area of the floor is 30m²', '30', True, 'lenient', 'model', 'number with a unit symbol'),
    ('The first step is to find 12.', '12', False, 'lenient', 'hard negative', 'a plan, not a result'),
    ('Result $$\n-14\n$$', '-14', True, 'lenient', 'model', 'display math over several lines'),
    ('$\\frac{2}{5}.$', '\\frac25', True, 'lenient', 'model', 'full stop inside the math'),
    ('$$\\sqrt{7},$$', '\\sqrt7', True, 'lenient', 'model', 'comma inside display math'),
    ('$3^{4}.$', '3', False, 'lenient', 'hard negative', 'a power is not its base'),
    ('$3^{4}.$', '81', True, 'lenient', 'model', 'a power with a full stop inside the math'),
    ('$2, 4, 6, \\ldots$', '2, 4, 6', False, 'lenient', 'hard negative', 'a sequence is not its first terms'),
    ('$2, 4, 6$', '2, 4, 6, \\dots', False, 'lenient', 'hard negative', 'the first terms are not the sequence'),
    ('\\boxed{1, 3, 5, \\dots}', '1, 3, 5, \\ldots', True, 'lenient', 'model', 'two ellipsis spellings'),
    ('\\boxed{g(x) = 3x - 1}', 'f(x) = 3x - 1', True, 'lenient', 'model', "the function's name differs"),
    ('\\boxed{g(x) = 3x - 1}', 'f(x) = 3x + 1', False, 'lenient', 'hard negative', 'another function'),
    ('\\boxed{a = 1, b = 6 \\quad \\text{and} \\quad a = 6, b = 1}', '(1, 6), (6, 1)', True, 'lenient', 'model', "assignment groups joined by 'and'"),
    ('\\boxed{a = 1, b = 6 \\quad \\text{and} \\quad a = 6, b = 1}', '(1, 6)', False, 'lenient', 'hard negative', 'one solution of two'),
    ('\\boxed{a=1,b=6;a=6,b=1}', 'a = 1, b = 6 \\quad \\text{and} \\quad a = 6, b = 1', True, 'lenient', 'model', "';' and 'and' between groups"),
    # ---- lenient forms of base models (boxed template, no tags)
    ("Let's compute. $2+3=5$. So the final answer is $\\boxed{5}$.", "5", True, "lenient", "model", "boxed template"),
    ("The final answer is $\\boxed{\\frac{\\sqrt{3}}{2}}$", "\\frac{\\sqrt3}{2}", True, "lenient", "model", "boxed surd"),
    ("5", "5", True, "lenient", "model", "bare answer"),
    ("\\frac{1}{2}", "0.5", True, "lenient", "model", "bare fraction"),
    ("x = 3", "3", True, "lenient", "model", "bare assignment"),
    ("18 dollars", "18", True, "lenient", "model", "bare number with units"),
    ("5 or 6", "5", False, "lenient", "hard negative", "a hedge"),
    ("I think it is 5 or 6", "5", False, "lenient", "hard negative", "a hedge in prose"),
    ("\\boxed{5} or \\boxed{6}", "5", False, "lenient", "hard negative", "a change of mind: the last box"),
    ("#### 42", "42", True, "lenient", "gsm8k", "GSM8K marker"),
]


def sample(records: list[dict], k: int, key) -> list[dict]:
    """k records spread over the file, preferring distinct answer shapes (deterministic)."""
    seen, picked = set(), []
    for r in records:
        shape = key(r)
        if shape not in seen:
            seen.add(shape)
            picked.append(r)
        if len(picked) >= k:
            break
    step = max(1, len(records) // k)
    for r in records[::step]:
        if len(picked) >= k:
            break
        if r not in picked:
            picked.append(r)
    return picked


def shape(answer: str) -> str:
    return re.sub(r"\d+", "0", re.sub(r"[A-Za-z]", "a", answer))[:12]


def perturb(answer: str) -> str:
    ints = list(re.finditer(r"\d+", answer))
    if not ints:
        return answer + "+1"
    m = ints[-1]
    return answer[: m.start()] + str(int(m.group()) + 1).zfill(len(m.group())) + answer[m.end() :]


def data_cases(data_dir: Path) -> list[tuple[str, str, bool, str, str, str]]:
    cases = []
    math500 = [json.loads(x) for x in (data_dir / "math500.jsonl").read_text().splitlines() if x.strip()]
    for r in sample(math500, 30, lambda r: shape(r["answer"])):
        sol, ans = r["solution"], r["answer"]
        src = f"math500/{r['id']}"
        cases.append((sol, ans, True, "lenient", src, "MATH solution as a completion (its box)"))
        cases.append((tagged(f"\\boxed{{{ans}}}"), sol, True, "strict", src, "MATH solution as the reference"))
        cases.append((tagged(f"\\boxed{{{perturb(ans)}}}"), sol, False, "strict", src, "perturbed answer vs solution reference"))
    gsm = [json.loads(x) for x in (data_dir / "gsm8k_test.jsonl").read_text().splitlines() if x.strip()]
    for r in gsm[:: len(gsm) // 12][:12]:
        sol, ans = r["solution"], str(r["answer"])
        src = f"gsm8k_test/{r['id']}"
        cases.append((sol, ans, True, "lenient", src, "GSM8K solution as a completion (#### N)"))
        cases.append((tagged(ans), sol, True, "strict", src, "GSM8K solution as the reference"))
        cases.append((tagged(str(int(ans) + 1)), sol, False, "strict", src, "off by one vs solution reference"))
        no_marker = sol[: sol.rfind("####")].strip()
        cases.append((tagged(ans), no_marker, True, "strict", src, "GSM8K solution without #### as the reference"))
    aime = [json.loads(x) for x in (data_dir / "aime24.jsonl").read_text().splitlines() if x.strip()]
    for r in aime[:10]:
        if "\\boxed" not in r.get("solution", ""):
            continue
        src = f"aime24/{r['id']}"
        cases.append((tagged(r["answer"]), r["solution"], True, "strict", src, "AIME solution (boxed) as the reference"))
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args()
    rows = HAND + data_cases(Path(args.data_dir))
    with OUT.open("w") as f:
        for completion, gold, expected, policy, source, why in rows:
            row = {"completion": completion, "gold": gold, "expected": expected, "policy": policy, "source": source, "why": why}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} cases to {OUT}")


if __name__ == "__main__":
    main()
