"""Programmatic evaluation: generate n samples per problem, grade them with the training rewards, compute metrics.

Used by the `python -m eval` CLI and by training (held-out evaluation, model already in memory):

    from r1.evaluation import evaluate
    m = evaluate(model, tokenizer, problems, "oneshot", num_samples=4, temperature=0.6, max_new_tokens=64)
    m["avg@4"], m["maj@4"], m["pass@1"], m["format_rate"]

Grading is the training rewards' code, unchanged: the template's pre-filled prefix is re-attached to each completion
(`with_prefill`), `rewards.extract_answer` picks the answer, `rewards.verify_batch` compares it to the reference and
`rewards.format_reward` scores the tags.

With `output_dir`, every graded sample is appended to `output_dir/samples.jsonl` as soon as its batch finishes, and
a rerun with the same settings continues where a killed run stopped. "Same metrics as an uninterrupted run" rests on:
(1) each (problem, sample_index) samples from its own seed, so its completion does not depend on batching or on what
was already done; (2) the batch plan is a fixed function of the problem list and batch size, and an unfinished batch
is regenerated whole, so even the floating-point batch shapes repeat; (3) grades are stored with the samples, never
recomputed; (4) metrics are computed from the stored samples ordered by (problem, sample_index), independent of the
file order; (5) `settings.json` pins everything that changes a number, and a mismatch is refused, never mixed.

Across processes (`accelerate launch --num_processes N -m eval`, or training under DDP): when a torch process group
with several ranks is initialised, every rank must call `evaluate` with the same arguments. The batches of the plan
are dealt out round-robin (rank r runs batches r, r+N, ...), each rank generates and grades its own, and rank 0
gathers the records after every round, alone writes samples.jsonl / settings.json, computes the metrics and
broadcasts them. Since every batch is the batch the 1-process run makes, the samples and metrics are the same for
any number of ranks (given the same per-process thread count); resume works as in one process.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from r1.artifacts import append_jsonl, atomic_write_json, iter_jsonl, repair_jsonl
from r1.errors import SettingsMismatchError
from r1.generation import Completion, Generator, TransformersGenerator, sample_seed
from r1.scoring import SampleResult, compute_metrics
from r1.templates import Template, get_template, with_prefill
from rewards import cluster_answers, extract_answer, format_reward, verify_batch
from rewards.code import extract_program, score_programs
from rewards.countdown import countdown_reward
from rewards.extract import last_answer_block

logger = logging.getLogger(__name__)

SAMPLES_FILE = "samples.jsonl"
SETTINGS_FILE = "settings.json"
# Settings that change the numbers: a resumed run must match all of them. (batch_size only changes float rounding.)
PINNED = ("model", "template", "num_samples", "temperature", "top_p", "max_new_tokens", "seed", "backend", "dtype",
          "stop_at_answer")


def run_settings(
    *,
    model: str,
    template: str,
    num_samples: int,
    temperature: float,
    top_p: float,
    max_new_tokens: int,
    seed: int,
    backend: str,
    dtype: str,
    batch_size: int,
    stop_at_answer: bool = True,
) -> dict[str, Any]:
    """The settings recorded in settings.json / results.json (built the same way by the CLI and by `evaluate`).

    `stop_at_answer` is recorded as in effect: true only when the template has an answer tag to stop at."""
    return {
        "stop_at_answer": bool(stop_at_answer and get_template(template).stop_text),
        "model": model,
        "template": template,
        "num_samples": int(num_samples),
        "temperature": float(temperature),
        "top_p": float(top_p),
        "max_new_tokens": int(max_new_tokens),
        "seed": int(seed),
        "backend": backend,
        "dtype": dtype,
        "batch_size": int(batch_size),
    }


def validate_settings(settings: dict[str, Any]) -> None:
    """Raise ValueError (one line) for settings no evaluation can use."""
    if settings["num_samples"] <= 0:
        raise ValueError(f"--num-samples must be >= 1 (got {settings['num_samples']})")
    if settings["max_new_tokens"] <= 0:
        raise ValueError(f"--max-new-tokens must be >= 1 (got {settings['max_new_tokens']})")
    if settings["batch_size"] <= 0:
        raise ValueError(f"--batch-size must be >= 1 (got {settings['batch_size']})")
    if settings["temperature"] < 0:
        raise ValueError(f"--temperature must be >= 0 (got {settings['temperature']})")
    if not 0 < settings["top_p"] <= 1:
        raise ValueError(f"--top-p must be in (0, 1] (got {settings['top_p']})")
    get_template(settings["template"])


def problems_sha256(problems: Sequence[dict[str, Any]]) -> str:
    """Content hash of a problem list (used when no data file hash is given)."""
    h = hashlib.sha256()
    for p in problems:
        row = [str(p.get("id", "")), p["problem"], str(p["answer"])] + ([list(p["tests"])] if "tests" in p else [])
        h.update(json.dumps(row, ensure_ascii=False).encode())
    return h.hexdigest()


def check_output_dir(
    output_dir: str | Path, settings: dict[str, Any], benchmark: str, data_sha256: str, *, resume: bool = True
) -> None:
    """Refuse to mix: raise SettingsMismatchError if `output_dir` holds samples made with other settings or data.

    Cheap (reads two small files); the CLI calls it before loading any weights.
    """
    out = Path(output_dir)
    samples, recorded = out / SAMPLES_FILE, out / SETTINGS_FILE
    has_samples = samples.exists() and samples.stat().st_size > 0
    if has_samples and not resume:
        raise SettingsMismatchError(f"{out} already holds {SAMPLES_FILE}; resume it, or pick a new output folder")
    if not has_samples:
        return  # nothing generated yet: nothing to mix with
    if not recorded.exists():
        raise SettingsMismatchError(
            f"{samples} exists but {recorded} is missing, so its settings cannot be checked; use a new output folder"
        )
    try:
        old = json.loads(recorded.read_text(encoding="utf-8"))
    except ValueError as e:
        raise SettingsMismatchError(f"cannot read {recorded} ({e}); use a new output folder") from None
    diffs = [f"{k}: {old['settings'].get(k)!r} -> {settings.get(k)!r}" for k in PINNED if old["settings"].get(k) != settings.get(k)]
    old_sha = old.get("benchmarks", {}).get(benchmark, {}).get("data_sha256")
    if old_sha is not None and old_sha != data_sha256:
        diffs.append(f"{benchmark} data sha256: {old_sha[:12]}… -> {data_sha256[:12]}…")
    if diffs:
        raise SettingsMismatchError(
            f"{out} holds samples made with other settings ({'; '.join(diffs)}); rerun with the recorded settings "
            "or use a new --output folder"
        )
    if old["settings"].get("batch_size") != settings.get("batch_size"):
        logger.warning(
            "batch size changed (%s -> %s): completions are still seeded per sample, but float rounding may differ",
            old["settings"].get("batch_size"),
            settings.get("batch_size"),
        )


def _record_settings(output_dir: Path, settings: dict[str, Any], benchmark: str, data_sha256: str) -> None:
    path = output_dir / SETTINGS_FILE
    old = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {"benchmarks": {}}
    old["settings"] = {**old.get("settings", {}), **settings}
    old["benchmarks"][benchmark] = {"data_sha256": data_sha256}
    atomic_write_json(path, old)


def grade(completions: Sequence[str], references: Sequence[str], template: Template,
          tests: Sequence[Any] | None = None, countdown: Sequence[tuple[Any, Any]] | None = None) -> list[dict[str, Any]]:
    """Grade generated texts exactly as the training rewards do. Returns answer / correct / format per completion.

    `correct` is None when the reference itself cannot be parsed (counted as wrong, reported separately).
    Code problems pass `tests` (one test list per completion; `references` are then only recorded): the answer is
    the completion's program (`rewards.code.extract_program`) and `correct` whether it passes every test in the
    sandbox (`score_programs`, as the `code` reward scores it); None when the tests are unusable or the sandbox
    itself failed. Countdown problems pass `countdown` ((target, nums) per completion): `correct` is whether the
    `countdown` reward gives full credit (the equation uses each number once and reaches the target).
    """
    texts = with_prefill(list(completions), template.prefill)
    if countdown is not None:
        answers = [last_answer_block(t) or "" for t in texts]
        scores = countdown_reward(texts, target=[t for t, _ in countdown], nums=[n for _, n in countdown])
        correct = [None if s is None else s == 1.0 for s in scores]
    elif tests is not None:
        answers = [extract_program(t) for t in texts]
        correct = [None if s is None else s == 1.0 for s in score_programs(answers, list(tests))]
    else:
        answers = [extract_answer(t) for t in texts]
        correct = verify_batch(answers, [str(r) for r in references])
    fmt = format_reward(completions=texts)
    return [
        {"answer": a, "correct": None if c is None else bool(c), "format": float(f or 0.0)}
        for a, c, f in zip(answers, correct, fmt, strict=True)
    ]


def _problem_keys(problems: Sequence[dict[str, Any]]) -> list[str]:
    """Stable per-problem keys: the `id` column when present and unique, else the position."""
    ids = [p.get("id") for p in problems]
    if all(i is not None for i in ids) and len({str(i) for i in ids}) == len(ids):
        return [str(i) for i in ids]
    if any(i is not None for i in ids):
        logger.warning("problem ids are missing or not unique; keying samples by position instead")
    return [str(i) for i in range(len(problems))]


def _as_generator(model: Any, tokenizer: Any, stop: str | None) -> Generator:
    if isinstance(model, torch.nn.Module):
        return TransformersGenerator(model, tokenizer, stop=stop)
    return model  # already a Generator (e.g. the CLI's VLLMGenerator)


def _model_id(model: Any) -> str:
    inner = getattr(model, "model", model)
    return str(getattr(getattr(inner, "config", None), "_name_or_path", "") or type(inner).__name__)


def _model_dtype(model: Any) -> str:
    inner = getattr(model, "model", model)
    return str(getattr(inner, "dtype", "auto")).replace("torch.", "")


def evaluate(
    model: Any,
    tokenizer: Any,
    problems: Sequence[dict[str, Any]],
    template: str = "r1_zero",
    *,
    num_samples: int = 1,
    temperature: float = 0.6,
    top_p: float = 0.95,
    max_new_tokens: int = 1024,
    seed: int = 0,
    batch_size: int = 16,
    output_dir: str | Path | None = None,
    resume: bool = True,
    benchmark: str = "custom",
    model_id: str | None = None,
    dtype: str | None = None,
    data_sha256: str | None = None,
    progress: bool = True,
    stop_at_answer: bool = True,
    distributed: bool | None = None,
) -> dict[str, Any]:
    """Evaluate `model` on `problems` (dicts with `problem`, `answer`, optional `id`) and return the metrics dict.

    `model` is a loaded transformers model (generation runs in it, batched, KV cache) or a `Generator` (e.g. the
    CLI's vLLM backend, built with the same stop). `temperature=0` is greedy. With `stop_at_answer` and a template
    that asks for answer tags, a completion ends right after `</answer>` (as in training). Keys: `avg@n`, `std@n`, `ci95@n`, `maj@n`, `pass@k` (k = 1, 2,
    4, … ≤ n), `format_rate`, `mean_tokens`, `truncation_rate`, `tokens_generated`, `num_problems`, `num_samples`,
    `unusable_references`, `wall_time_s`, `settings`.

    `distributed`: split the work between the ranks of the initialised process group (None = when there is one
    with several ranks; every rank must then call this with the same arguments and gets the same metrics back).
    """
    if not problems:
        raise ValueError(f"benchmark {benchmark!r} has no problems")
    stop = get_template(template).stop_text if stop_at_answer else None
    gen = _as_generator(model, tokenizer, stop)
    settings = run_settings(
        model=model_id or _model_id(model), template=template, num_samples=num_samples, temperature=temperature,
        top_p=top_p, max_new_tokens=max_new_tokens, seed=seed, backend=gen.name, dtype=dtype or _model_dtype(model),
        batch_size=batch_size, stop_at_answer=stop_at_answer,
    )
    validate_settings(settings)
    if temperature == 0 and num_samples > 1:
        logger.warning("temperature 0 is greedy: all %d samples of a problem will be identical", num_samples)
    data_sha256 = data_sha256 or problems_sha256(problems)
    keys = _problem_keys(problems)
    ranks = _Ranks.current(distributed)
    start = time.time()
    # rank 0 alone reads and writes output_dir; a refusal there (settings mismatch) is raised on every rank
    store = ranks.agree(lambda: _SampleStore(output_dir, settings, benchmark, data_sha256, keys, resume))
    store = store or _SampleStore(None, settings, benchmark, data_sha256, keys, resume)  # ranks > 0 keep nothing
    new_tokens = _generate_missing(gen, tokenizer, problems, keys, get_template(template), settings, store, benchmark,
                                   progress and ranks.is_main, ranks)
    metrics = ranks.agree(lambda: _metrics(store, keys, num_samples, majority_vote=not (is_code(problems) or _is_countdown(problems))))
    metrics["wall_time_s"] = time.time() - start
    metrics["tokens_generated_this_run"] = new_tokens
    metrics["data_sha256"] = data_sha256
    metrics["settings"] = settings
    return metrics


def is_code(problems: Sequence[dict[str, Any]]) -> bool:
    """Code problems (r1.benchmarks: humaneval, mbpp, files with `tests`) carry the tests their programs must pass."""
    return bool(problems) and "tests" in problems[0]


def _is_countdown(problems: Sequence[dict[str, Any]]) -> bool:
    """Countdown problems (r1.tasks) are graded on their `target` and `nums`, like the `countdown` reward."""
    return bool(problems) and "target" in problems[0] and "nums" in problems[0]


def _metrics(store: _SampleStore, keys: list[str], num_samples: int, majority_vote: bool = True) -> dict[str, Any]:
    results = [[_as_result(store.done[(k, j)]) for j in range(num_samples)] for k in keys]
    # programs and equations have no canonical answer to vote on: no majority vote there (r1.scoring)
    metrics = compute_metrics(results, cluster_answers if majority_vote else None)
    metrics["unusable_references"] = sum(store.done[(k, 0)]["correct"] is None for k in keys)
    return metrics


class _Ranks:
    """This process's place among the evaluating processes, and the few collectives the runner needs."""

    def __init__(self, rank: int = 0, world: int = 1):
        self.rank, self.world = rank, world

    @classmethod
    def current(cls, distributed: bool | None) -> _Ranks:
        if distributed is False or not (dist.is_available() and dist.is_initialized()):
            return cls()
        return cls(dist.get_rank(), dist.get_world_size())

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def agree(self, compute: Any) -> Any:
        """`compute()` on rank 0; its result (or its exception) on every rank. A `_SampleStore` stays on rank 0:
        the other ranks get None."""
        if self.world == 1:
            return compute()
        box: list[Any] = [None]
        value = error = None
        if self.is_main:
            try:
                value = compute()
                box[0] = ("ok", None if isinstance(value, _SampleStore) else value)
            except Exception as e:
                error, box[0] = e, ("error", e)
        dist.broadcast_object_list(box, src=0)
        status, payload = box[0]
        if status == "error":
            raise error if error is not None else payload
        return value if self.is_main else payload

    def gather(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Every rank's records on rank 0, in rank order (an empty list elsewhere)."""
        if self.world == 1:
            return records
        parts: list[Any] | None = [None] * self.world if self.is_main else None
        dist.gather_object(records, parts, dst=0)
        return [r for part in parts for r in part] if parts is not None else []

    def broadcast(self, value: Any) -> Any:
        if self.world == 1:
            return value
        box = [value if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]


class _SampleStore:
    """The graded samples of one benchmark: those already in `output_dir/samples.jsonl` (resume) plus new ones,
    appended as each batch finishes. Without an output_dir it only keeps them in memory."""

    def __init__(self, output_dir: str | Path | None, settings: dict[str, Any], benchmark: str, data_sha256: str,
                 keys: list[str], resume: bool):
        self.done: dict[tuple[str, int], dict[str, Any]] = {}
        self.path: Path | None = None
        if output_dir is None:
            return
        out = Path(output_dir)
        check_output_dir(out, settings, benchmark, data_sha256, resume=resume)
        out.mkdir(parents=True, exist_ok=True)
        self.path = out / SAMPLES_FILE
        if repair_jsonl(self.path):
            logger.warning("dropped a torn last line from %s (the previous run was killed mid-write)", self.path)
        _record_settings(out, settings, benchmark, data_sha256)
        key_set, n = set(keys), settings["num_samples"]
        for r in iter_jsonl(self.path):
            k = (str(r.get("id")), int(r.get("sample_index", -1)))
            if r.get("benchmark") == benchmark and k[0] in key_set and 0 <= k[1] < n:
                self.done.setdefault(k, r)
        if self.done:
            logger.info("%s: resuming, %d of %d samples already in %s", benchmark, len(self.done), len(keys) * n, self.path)

    def add(self, records: list[dict[str, Any]]) -> None:
        for rec in records:
            self.done[(rec["id"], rec["sample_index"])] = rec
        if self.path is not None:
            append_jsonl(self.path, records)


def _generate_missing(
    gen: Generator, tokenizer: Any, problems: Sequence[dict[str, Any]], keys: list[str], tmpl: Template,
    settings: dict[str, Any], store: _SampleStore, benchmark: str, progress: bool, ranks: _Ranks | None = None,
) -> int:
    """Generate and grade every (problem, sample) not in `store`, batch by batch; returns the new tokens.

    The batch plan is a fixed function of the problem list and batch size; a batch with any missing sample is
    regenerated whole (same shapes as an uninterrupted run) and only its missing samples are stored. With several
    ranks, the batches to run are dealt out round-robin and rank 0 stores what every rank made, round by round."""
    ranks = ranks or _Ranks()
    lockstep = ranks.world > 1 and getattr(gen, "lockstep", False)  # sharded weights: every rank in every generate
    n, size = settings["num_samples"], settings["batch_size"]
    prompts = [tmpl.render(str(p["problem"]), tokenizer) for p in problems]
    pairs = [(i, j) for i in range(len(problems)) for j in range(n)]
    batches = [pairs[s : s + size] for s in range(0, len(pairs), size)]
    # the batches with a missing sample, as rank 0 (the only rank with the stored samples) sees them
    todo = ranks.broadcast([b for b, batch in enumerate(batches) if any((keys[i], j) not in store.done for i, j in batch)])
    remaining = {keys[i]: sum((keys[i], j) not in store.done for j in range(n)) for i in range(len(problems))}
    bar = _progress(benchmark, len(problems), sum(v == 0 for v in remaining.values()), progress)
    start, new_tokens = time.time(), 0
    try:
        for first in range(0, len(todo), ranks.world):
            mine = todo[first + ranks.rank] if first + ranks.rank < len(todo) else None
            if mine is None and lockstep:  # the last round, fewer batches than ranks: generate and drop one anyway
                _generate_batch(gen, batches[todo[first]], prompts, keys, settings)
            made = [] if mine is None else _run_batch(gen, batches[mine], prompts, problems, keys, tmpl, settings, benchmark)
            # regenerated only to repeat the batch shape: keep the stored one
            records = [r for r in ranks.gather(made) if (r["id"], r["sample_index"]) not in store.done]
            store.add(records)
            for rec in records:
                remaining[rec["id"]] -= 1
                new_tokens += rec["tokens"]
                bar.update(int(remaining[rec["id"]] == 0))
            bar.set_postfix_str(f"{new_tokens / max(time.time() - start, 1e-9):.0f} tok/s", refresh=True)
    finally:
        bar.close()
    return int(ranks.broadcast(new_tokens))


def _run_batch(
    gen: Generator, batch: list[tuple[int, int]], prompts: list[str], problems: Sequence[dict[str, Any]],
    keys: list[str], tmpl: Template, settings: dict[str, Any], benchmark: str,
) -> list[dict[str, Any]]:
    """Generate and grade one batch of (problem index, sample index) pairs: one record per pair, in batch order."""
    completions = _generate_batch(gen, batch, prompts, keys, settings)
    tests = [problems[i]["tests"] for i, _ in batch] if is_code(problems) else None
    countdown = [(problems[i]["target"], problems[i]["nums"]) for i, _ in batch] if _is_countdown(problems) else None
    grades = grade([c.text for c in completions], [problems[i]["answer"] for i, _ in batch], tmpl, tests, countdown)
    return [
        _sample_record(benchmark, keys[i], j, problems[i], c, g)
        for (i, j), c, g in zip(batch, completions, grades, strict=True)
    ]


def _generate_batch(
    gen: Generator, batch: list[tuple[int, int]], prompts: list[str], keys: list[str], settings: dict[str, Any],
) -> list[Completion]:
    """The completions of one batch, each (problem, sample) pair with its own seed."""
    return gen.generate(
        [prompts[i] for i, _ in batch], [sample_seed(settings["seed"], keys[i], j) for i, j in batch],
        temperature=settings["temperature"], top_p=settings["top_p"], max_new_tokens=settings["max_new_tokens"],
    )


def _sample_record(benchmark: str, key: str, j: int, problem: dict[str, Any], c: Completion, g: dict[str, Any]) -> dict[str, Any]:
    return {
        "benchmark": benchmark,
        "id": key,
        "sample_index": j,
        "completion": c.text,
        "answer": g["answer"],
        "reference": str(problem["answer"]),
        "correct": g["correct"],
        "format": g["format"],
        "tokens": c.tokens,
        "truncated": c.truncated,
    }


def _as_result(r: dict[str, Any]) -> SampleResult:
    return SampleResult(
        sample_index=int(r["sample_index"]),
        answer=str(r.get("answer") or ""),
        correct=bool(r.get("correct")),
        format_score=float(r.get("format") or 0.0),
        tokens=int(r.get("tokens", 0)),
        truncated=bool(r.get("truncated")),
    )


def _progress(desc: str, total: int, initial: int, enabled: bool) -> Any:
    return tqdm(total=total, initial=initial, desc=desc, unit="problem", disable=not enabled, dynamic_ncols=True)
