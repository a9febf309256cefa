"""No code execution from model text or data, and no custom model code unless the user asks for it.

- A static audit of every Python file in r1/, rewards/, eval/ and recipes/: no eval/exec/compile/__import__, no
  pickle-family loads, no unsafe YAML, no torch.load without weights_only=True, no shell commands, no literal
  trust_remote_code=True. Anything that must stay goes in ALLOWED with the reason (today only the code
  reward's sandbox, which runs model-written programs on purpose, isolated; see tests/test_code_sandbox.py).
- Behaviour: hostile completions that are Python code reach no interpreter (Countdown parses with `ast`; the one
  `eval` on the math path, sympy's `parse_expr` inside math-verify, only ever sees digits, operators and brackets).
- trust_remote_code is False by default in the training config, the eval CLI and r1.models, and reaches
  `from_pretrained` exactly as set.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
AUDITED = ("r1", "rewards", "eval", "recipes")
TINY = str(REPO / "tests/configs/tiny_qwen2.yaml")

BUILTINS = {"eval", "exec", "compile", "__import__", "breakpoint"}
MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "marshal", "shelve", "joblib"}
CALLS = {  # dotted call -> why it is dangerous
    "os.system": "shell command",
    "os.popen": "shell command",
    "yaml.unsafe_load": "arbitrary Python objects from YAML",
    "yaml.full_load": "Python objects from YAML",
    "sympy.sympify": "eval() of a string",
    "sympify": "eval() of a string",
    "parse_expr": "eval() of a string",
    "sympy.parsing.sympy_parser.parse_expr": "eval() of a string",
}
# (file, finding) -> why it is safe. Keep it short and justified.
_SANDBOX = "rewards/sandbox.py"
ALLOWED: dict[tuple[str, str], str] = {
    # The code reward runs model-written programs against tests by design; the sandbox is the one place that does.
    (_SANDBOX, "exec()"): "the program and the tests, each in its own forked process after the uid drop, namespaces, "
                          "seccomp and rlimits (candidate C, tester T); never in the caller",
    (_SANDBOX, "compile()"): "the program and the tests, compiled in those same sandbox processes before exec",
    (_SANDBOX, "__import__()"): "the fork server warming stdlib modules from a constant list (_WARM_MODULES)",
}


def dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{dotted(node.value)}.{node.attr}"
    return ""


def kw(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def is_true(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def findings(tree: ast.AST) -> list[tuple[int, str]]:
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for n in names:
                if n.split(".")[0] in MODULES:
                    out.append((node.lineno, f"import {n}"))
            if isinstance(node, ast.ImportFrom) and node.module in ("builtins",):
                out.append((node.lineno, "from builtins import"))
        if not isinstance(node, ast.Call):
            continue
        name = dotted(node.func)
        if isinstance(node.func, ast.Name) and name in BUILTINS:
            out.append((node.lineno, f"{name}()"))
        if name.split(".")[0] in MODULES:
            out.append((node.lineno, f"{name}()"))
        if name in CALLS or name.split(".")[-1] in ("sympify", "parse_expr"):
            out.append((node.lineno, f"{name}()"))
        if name.split(".")[-1] == "load" and name.split(".")[0] == "torch" and not is_true(kw(node, "weights_only")):
            out.append((node.lineno, "torch.load without weights_only=True"))
        if name == "yaml.load" and "Safe" not in dotted(kw(node, "Loader") or ast.Constant(None)):
            out.append((node.lineno, "yaml.load without SafeLoader"))
        if name.split(".")[-1] == "load" and name.split(".")[0] in ("np", "numpy") and is_true(kw(node, "allow_pickle")):
            out.append((node.lineno, "numpy.load(allow_pickle=True)"))
        if name.split(".")[0] == "subprocess" and is_true(kw(node, "shell")):
            out.append((node.lineno, f"{name}(shell=True)"))
        if is_true(kw(node, "trust_remote_code")):
            out.append((node.lineno, "trust_remote_code=True"))
    return out


def sources() -> list[Path]:
    files = [p for d in AUDITED for p in sorted((REPO / d).rglob("*.py"))]
    assert len(files) > 20  # the audit looked at the code base, not at an empty folder
    return files


def test_no_code_execution_calls_in_the_code_base():
    problems = []
    for path in sources():
        rel = str(path.relative_to(REPO))
        for line, what in findings(ast.parse(path.read_text(encoding="utf-8"), filename=rel)):
            if (rel, what) not in ALLOWED:
                problems.append(f"{rel}:{line}: {what}")
    assert not problems, "code execution risk (justify in ALLOWED or remove):\n" + "\n".join(problems)


def test_the_audit_catches_what_it_looks_for():
    bad = (
        "import pickle\nx = eval(s)\nexec(s)\n__import__(m)\ntorch.load(p)\nyaml.load(t)\nos.system(c)\n"
        "subprocess.run(c, shell=True)\nsympy.sympify(s)\nf(trust_remote_code=True)\nnp.load(p, allow_pickle=True)\n"
        "model.eval()\ntorch.load(p, weights_only=True)\nyaml.load(t, Loader=yaml.SafeLoader)\nf(trust_remote_code=t)\n"
    )
    found = [what for _, what in findings(ast.parse(bad))]
    assert found == [
        "import pickle", "eval()", "exec()", "__import__()", "torch.load without weights_only=True",
        "yaml.load without SafeLoader", "os.system()", "subprocess.run(shell=True)", "sympy.sympify()",
        "trust_remote_code=True", "numpy.load(allow_pickle=True)",
    ]


# -------------------------------------------------------------------------------------------- model text as code

CODE = [
    "__import__('os').system('touch {marker}')",
    "<answer>__import__('os').system('touch {marker}')</answer>",
    "<answer>\\boxed{{__import__('os').system('touch {marker}')}}</answer>",
    "<answer>().__class__.__bases__[0].__subclasses__()</answer>",
    "<answer>(lambda: open('{marker}', 'w'))()</answer>",
    "<answer>1 + 1; import os; os.system('touch {marker}')</answer>",
    "<answer>exec(\"open('{marker}','w')\")</answer>",
    "<answer>(lambda: 3*4)() or __import__('os').system('touch {marker}')</answer>",  # reaches parse_expr: as 3*4)(
]


def test_code_in_completions_is_never_run(tmp_path, monkeypatch):
    import math_verify.parser

    from rewards import accuracy_reward, countdown_reward, format_reward, tag_count_reward
    from rewards.mathcheck import parse_answer

    seen: list[str] = []
    real = math_verify.parser.parse_expr

    def spy(expr, *a, **k):
        seen.append(expr)
        return real(expr, *a, **k)

    monkeypatch.setattr(math_verify.parser, "parse_expr", spy)
    math_verify.parser.parse_expr_cached.cache_clear()
    marker = tmp_path / "pwned"
    texts = [c.format(marker=marker) for c in CODE]
    for t in texts:  # in this process, with a spy on the one eval() in the math path
        parse_answer(t)
    assert accuracy_reward(texts, answer=["2"] * len(texts)) == [0.0] * len(texts)  # and in the workers
    scores = countdown_reward(texts, target=[2] * len(texts), nums=[[1, 1]] * len(texts))
    assert max(scores) < 1.0  # at most TinyZero's format credit for an <answer> block: nothing was evaluated
    format_reward(completions=texts)
    tag_count_reward(completions=texts)
    assert not marker.exists()
    allowed = set("0123456789. \t+-*/^()×÷")
    assert seen and all(set(e) <= allowed for e in seen), seen


# -------------------------------------------------------------------------------------------- trust_remote_code


class Captured(Exception):
    pass


def test_trust_remote_code_defaults_to_false_everywhere():
    import inspect

    import r1.models
    from eval.cli import build_parser
    from r1.config import parse_args

    assert parse_args(["--config", TINY]).training.trust_remote_code is False
    for preset in sorted((REPO / "recipes/configs").glob("*.yaml")):
        assert "trust_remote_code" not in preset.read_text(), preset.name
    assert build_parser().parse_args(["--model", "m", "--benchmarks", "b"]).trust_remote_code is False
    for fn in (r1.models.resolve_model, r1.models.load_model, r1.models.load_tokenizer):
        assert inspect.signature(fn).parameters["trust_remote_code"].default is False, fn.__name__


@pytest.mark.parametrize("setting", [False, True])
def test_trust_remote_code_reaches_from_pretrained_as_set(setting, monkeypatch):
    import transformers

    from r1.models import load_model, load_tokenizer, resolve_model

    seen = {}

    def capture(kind):
        def f(path, *a, **k):
            seen[kind] = k.get("trust_remote_code")
            raise Captured(kind)
        return f

    path = resolve_model("tiny:qwen2")
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", capture("model"))
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", capture("tokenizer"))
    for loader in (load_model, load_tokenizer):
        with pytest.raises(Captured):
            loader(path, trust_remote_code=setting)
    assert seen == {"model": setting, "tokenizer": setting}


@pytest.mark.parametrize("setting", [False, True])
def test_entry_points_pass_trust_remote_code_through(setting, monkeypatch, tmp_path):
    import r1.models
    from eval.cli import _load, build_parser

    seen = {}
    real_tokenizer = r1.models.load_tokenizer

    def tokenizer(path, **k):
        seen.setdefault("tokenizer", []).append(k.get("trust_remote_code"))
        return real_tokenizer(path)

    def model(path, **k):
        seen.setdefault("model", []).append(k.get("trust_remote_code"))
        raise Captured("model")

    import eval.cli
    import r1.train

    for module in (eval.cli, r1.train):  # the entry points' own references to r1.models' loaders
        monkeypatch.setattr(module, "load_tokenizer", tokenizer)
        monkeypatch.setattr(module, "load_model", model)
    path = r1.models.resolve_model("tiny:qwen2")

    flag = ["--trust-remote-code"] if setting else []
    args = build_parser().parse_args(["--model", path, "--benchmarks", "aime24", *flag])
    with pytest.raises(Captured):
        _load(args, {"model": path, "backend": "transformers"})

    from recipes import r1_zero as recipe

    with pytest.raises(Captured):
        recipe.main(["--config", TINY, "--output_dir", str(tmp_path / "run"), "--model_name_or_path", path,
                     "--trust_remote_code", str(setting).lower()])
    assert seen == {"tokenizer": [setting, setting], "model": [setting, setting]}
