"""r1.evaluation: grading is the training rewards' code; metrics, resume and settings checks with scripted completions."""

from __future__ import annotations

import json

import pytest

from r1.artifacts import read_jsonl
from r1.evaluation import SAMPLES_FILE, SettingsMismatchError, evaluate, grade
from r1.generation import Completion, sample_seed
from r1.templates import get_template, with_prefill
from rewards import accuracy_reward, format_reward

# Completions as the model writes them after the r1_zero prompt, which already ends in "<think>".
HAND_WRITTEN = [
    (" 2 + 2 = 4 </think> <answer>4</answer>", "4", True, 1.0),
    ("halve it</think>\n<answer>\\frac{1}{2}</answer>", "0.5", True, 1.0),
    ("guess</think><answer>5</answer>", "4", False, 1.0),
    ("x</think> so the answer is \\boxed{12}", "12", True, 0.0),  # no answer tags: the final \\boxed{} (lenient)
    ("so the answer is \\boxed{12}", "12", False, 0.0),  # only inside the unterminated pre-filled <think>: never
    ("<think>again</think><answer>3</answer>", "3", True, 0.0),  # a second <think> breaks the format
    ("a</think><answer>7</answer> and then more text", "7", True, 0.0),  # text after </answer>
    ("nothing useful", "7", False, 0.0),
    ("x</think><answer>\\boxed{x^2+2x+1}</answer>", "(x+1)^2", True, 1.0),
]


def test_grading_matches_the_training_rewards():
    template = get_template("r1_zero")
    completions = [c for c, *_ in HAND_WRITTEN]
    golds = [g for _, g, *_ in HAND_WRITTEN]
    graded = grade(completions, golds, template)
    assert [g["correct"] for g in graded] == [c for *_, c, _ in HAND_WRITTEN]
    assert [g["format"] for g in graded] == [f for *_, f in HAND_WRITTEN]
    # ... and equals what the training reward functions give on the prefilled completions
    full = with_prefill(completions, template.prefill)
    assert [float(g["correct"]) for g in graded] == accuracy_reward(full, answer=golds)
    assert [g["format"] for g in graded] == format_reward(full)
    assert format_reward(completions[:1]) == [0.0]  # without the re-attached "<think>" the format would be lost
    assert grade(["<answer>1</answer>"], [""], template)[0]["correct"] is None  # unusable reference


class ScriptedGenerator:
    """Returns a fixed completion per (problem, sample index) — recovered from the per-pair seed — and counts calls."""

    name = "scripted"

    def __init__(self, script: dict[tuple[str, int], str], seed: int = 0, fail_after: int | None = None):
        self.by_seed = {sample_seed(seed, key, j): text for (key, j), text in script.items()}
        self.calls = 0
        self.fail_after = fail_after

    def generate(self, prompts, seeds, *, temperature, top_p, max_new_tokens):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError("simulated crash")
        self.calls += 1
        return [Completion(self.by_seed[s], len(self.by_seed[s].split()), False) for s in seeds]


PROBLEMS = [
    {"id": "a", "problem": "What is 1/2 + 1/2?", "answer": "1"},
    {"id": "b", "problem": "What is 3 * 4?", "answer": "12"},
    {"id": "c", "problem": "What is 2 + 5?", "answer": "7"},
]


def ans(x: str) -> str:
    return f"t</think><answer>{x}</answer>"


SCRIPT = {
    # a: 2 of 4 correct ("1" and "\frac{2}{2}" are one vote); "2" also has 2 votes and appeared first → maj wrong
    ("a", 0): ans("2"), ("a", 1): ans("1"), ("a", 2): ans("2"), ("a", 3): ans("\\frac{2}{2}"),
    # b: 2 of 4 correct; "12" and "12.0" are one vote (2) against "13" (1), "11" (1)
    ("b", 0): ans("13"), ("b", 1): ans("12"), ("b", 2): ans("12.0"), ("b", 3): ans("11"),
    # c: 0 of 4 correct
    ("c", 0): ans("8"), ("c", 1): ans("8"), ("c", 2): ans("6"), ("c", 3): "nothing",
}


def run(gen, **kw):
    args = dict(num_samples=4, temperature=0.6, top_p=0.95, max_new_tokens=16, seed=0, batch_size=3, progress=False)
    args.update(kw)
    return evaluate(gen, None, PROBLEMS, "r1_zero", **args)


def test_metrics_of_scripted_completions():
    m = run(ScriptedGenerator(SCRIPT))
    assert m["avg@4"] == pytest.approx((2 / 4 + 2 / 4 + 0) / 3)
    assert m["maj@4"] == pytest.approx(1 / 3)  # only b's majority ("12") is right
    assert m["pass@4"] == pytest.approx(2 / 3)
    assert m["format_rate"] == pytest.approx(11 / 12)
    assert m["truncation_rate"] == 0.0
    assert m["num_problems"] == 3 and m["unusable_references"] == 0
    # accuracy of run j (sample j of every problem): [0, 2/3, 1/3, 1/3] → sample std sqrt(2/27)
    assert m["std@4"] == pytest.approx((2 / 27) ** 0.5)


def test_resume_after_a_crash_gives_the_same_metrics_and_no_duplicates(tmp_path):
    full = run(ScriptedGenerator(SCRIPT), output_dir=tmp_path / "full")

    out = tmp_path / "crashed"
    with pytest.raises(RuntimeError):
        run(ScriptedGenerator(SCRIPT, fail_after=2), output_dir=out)
    assert len(read_jsonl(out / SAMPLES_FILE)) == 6  # two batches of 3 stored before the crash
    with open(out / SAMPLES_FILE, "a") as f:
        f.write('{"benchmark": "custom", "id": "c", "sample_in')  # a write torn by a kill
    gen = ScriptedGenerator(SCRIPT)
    resumed = run(gen, output_dir=out)
    assert gen.calls == 2  # 12 pairs in batches of 3: only the two missing batches ran again
    rows = read_jsonl(out / SAMPLES_FILE)
    assert sorted((r["id"], r["sample_index"]) for r in rows) == sorted(SCRIPT)
    for key in ("avg@4", "std@4", "ci95@4", "maj@4", "pass@1", "pass@2", "pass@4", "format_rate", "tokens_generated"):
        assert resumed[key] == full[key], key
    assert set(rows[0]) >= {"benchmark", "id", "sample_index", "completion", "answer", "correct", "tokens", "truncated"}
    # a finished run resumes to the same numbers without generating anything
    again = ScriptedGenerator(SCRIPT)
    assert run(again, output_dir=out)["avg@4"] == full["avg@4"] and again.calls == 0


def test_mismatched_settings_are_refused_not_mixed(tmp_path):
    run(ScriptedGenerator(SCRIPT), output_dir=tmp_path)
    with pytest.raises(SettingsMismatchError, match="temperature: 0.6 -> 1.0"):
        run(ScriptedGenerator(SCRIPT), output_dir=tmp_path, temperature=1.0)
    with pytest.raises(SettingsMismatchError, match="num_samples"):
        run(ScriptedGenerator(SCRIPT), output_dir=tmp_path, num_samples=2)
    with pytest.raises(SettingsMismatchError, match="resume it, or pick a new output folder"):
        run(ScriptedGenerator(SCRIPT), output_dir=tmp_path, resume=False)
    settings = json.loads((tmp_path / "settings.json").read_text())
    assert settings["settings"]["temperature"] == 0.6  # the refused runs changed nothing


# ------------------------------------------------------------------ several ranks (gloo, in-process workers)


def _rank_worker(rank: int, world: int, init_file: str, out: str, kwargs: dict, results: dict) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        gen = ScriptedGenerator(SCRIPT)
        seen: list[int] = []
        original = gen.generate

        def spy(prompts, seeds, **kw):
            seen.extend(seeds)
            return original(prompts, seeds, **kw)

        gen.generate = spy
        try:
            m = run(gen, output_dir=out, **kwargs)
            results[rank] = {"metrics": {k: v for k, v in m.items() if k != "wall_time_s"}, "seeds": seen}
        except SettingsMismatchError as e:
            results[rank] = {"error": str(e), "seeds": seen}
    finally:
        dist.destroy_process_group()


def run_ranks(tmp_path, out, world=2, **kwargs):
    import torch.multiprocessing as mp

    manager = mp.Manager()
    results = manager.dict()
    init = tmp_path / f"init-{len(list(tmp_path.iterdir()))}"
    mp.spawn(_rank_worker, args=(world, str(init), str(out), kwargs, results), nprocs=world, join=True)
    return [results[r] for r in range(world)]


@pytest.mark.slow  # 10 s; `make test` splits an evaluation over 2 real processes in test_eval_cli
def test_two_ranks_split_the_work_write_once_and_match_one_process(tmp_path):
    one = run(ScriptedGenerator(SCRIPT), output_dir=tmp_path / "one", batch_size=2)
    ranks = run_ranks(tmp_path, tmp_path / "two", batch_size=2)
    # 12 pairs in 6 batches of 2: each rank ran 3 batches, none ran a pair twice, together they ran every pair
    assert [len(r["seeds"]) for r in ranks] == [6, 6]
    assert not set(ranks[0]["seeds"]) & set(ranks[1]["seeds"])
    for r in ranks:  # every rank returns rank 0's metrics, equal to the one-process run's
        for key in ("avg@4", "std@4", "ci95@4", "maj@4", "pass@4", "format_rate", "tokens_generated"):
            assert r["metrics"][key] == one[key], key
    rows = read_jsonl(tmp_path / "two" / SAMPLES_FILE)
    assert sorted((r["id"], r["sample_index"]) for r in rows) == sorted(SCRIPT)  # each pair once
    assert rows == read_jsonl(tmp_path / "one" / SAMPLES_FILE)  # even in the same order

    # a refusal on rank 0 (other settings) is raised on every rank, nobody hangs or generates
    refused = run_ranks(tmp_path, tmp_path / "two", batch_size=2, temperature=1.0)
    assert all("temperature: 0.6 -> 1.0" in r["error"] for r in refused)
    assert all(not r["seeds"] for r in refused)


def test_two_ranks_resume_a_killed_run(tmp_path):
    out = tmp_path / "crashed"
    with pytest.raises(RuntimeError):
        run(ScriptedGenerator(SCRIPT, fail_after=2), output_dir=out, batch_size=3)  # 2 of 4 batches stored
    ranks = run_ranks(tmp_path, out, batch_size=3)
    assert [len(r["seeds"]) for r in ranks] == [3, 3]  # the two missing batches, one per rank
    rows = read_jsonl(out / SAMPLES_FILE)
    assert sorted((r["id"], r["sample_index"]) for r in rows) == sorted(SCRIPT)
    full = run(ScriptedGenerator(SCRIPT), output_dir=tmp_path / "full", batch_size=3)
    assert ranks[1]["metrics"]["avg@4"] == full["avg@4"] and ranks[1]["metrics"]["maj@4"] == full["maj@4"]
