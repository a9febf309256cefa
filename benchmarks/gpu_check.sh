#!/usr/bin/env bash
# One prepared run for a lent GPU machine (H200): correctness of the fast rollout on CUDA, then the GRPO step
# benchmark and the rollout benchmark at the Qwen2.5-0.5B shape. Results (JSON + logs) go to $OUT.
#
# Here, once, before the run (the GPU machine has no internet; TRL, datasets and this transformers travel as wheels):
#   mkdir -p .git/info && echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .whl \
#     trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 transformers==5.24.0
# Then run it with the device tool: command `bash benchmarks/gpu_check.sh`, carry [".whl"], timeout_s 600.
#
#   bash benchmarks/gpu_check.sh             # the full check (~8 min on an H200, compile warm-ups included)
#   bash benchmarks/gpu_check.sh --quick     # fewer steps/batches (~4 min)
#   bash benchmarks/gpu_check.sh --dry-run   # the same script at the tiny size on CPU: checks the plumbing only
set -uo pipefail
cd "$(dirname "$0")/.."

MODE=full
for arg in "$@"; do
    case "$arg" in
        --quick) MODE=quick ;;
        --dry-run) MODE=dry ;;
        *) echo "unknown argument $arg; use --quick or --dry-run" >&2; exit 2 ;;
    esac
done

PY=${PYTHON:-python3}
[ -x .venv/bin/python ] && [ "$MODE" = dry ] && PY=.venv/bin/python
OUT=${OUT:-$(mktemp -d /tmp/gpu_check.XXXXXX)}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export R1_CACHE_DIR=${R1_CACHE_DIR:-/tmp/r1-cache}
START=$(date +%s)
say() { echo "[gpu_check +$(( $(date +%s) - START ))s] $*" | tee -a "$OUT/gpu_check.log"; }

# 1. Carried wheels (skipped when there are none, e.g. on a machine that already has them).
if ls .whl/*.whl >/dev/null 2>&1 && [ "$MODE" != dry ]; then
    say "installing carried wheels: $(ls .whl | tr '\n' ' ')"
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { say "wheel install failed"; exit 1; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi

# 2. What we run on.
{ command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; } \
    2>&1 | tee -a "$OUT/gpu_check.log"
$PY - <<'EOF' 2>&1 | tee -a "$OUT/gpu_check.log" || { say "imports failed"; exit 1; }
import importlib.metadata as md, torch
print("torch", torch.__version__, "cuda", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
for name in ("transformers", "trl", "accelerate", "datasets", "pyarrow", "huggingface_hub", "tokenizers", "vllm"):
    try:
        print(name, md.version(name))
    except md.PackageNotFoundError:
        print(name, "missing")
import trl, datasets, transformers  # noqa: F401  (fail here, clearly, not inside a benchmark)
EOF

if [ "$MODE" = dry ]; then
    DEVICE=cpu SIZE=tiny STEP_ARGS="--steps 3 --rounds 1 --threads 1" STEP_LIMIT=300
    ROLL_ARGS="--batches 4 --new-tokens 16 --repeats 1 --threads 1" ROLL_LIMIT=120
elif [ "$MODE" = quick ]; then
    DEVICE=cuda SIZE=0.5b STEP_ARGS="--steps 4 --rounds 1" STEP_LIMIT=220
    ROLL_ARGS="--batches 64,1024 --repeats 1" ROLL_LIMIT=120
else  # fits one 10-minute device command: ~1 + 5.5 + 3.5 min at most
    DEVICE=cuda SIZE=0.5b STEP_ARGS="--steps 5 --rounds 1" STEP_LIMIT=330
    ROLL_ARGS="--batches 64,256,1024 --repeats 1" ROLL_LIMIT=200
fi

# 3. Correctness on this device: the lean loop samples exactly what generate samples (fp32 and bf16, dynamic cache,
#    where r1.decode_step's direct step runs: its call count is printed), and the static-cache lean loop matches
#    generate's static path.
say "correctness on $DEVICE"
DEVICE=$DEVICE timeout 150 $PY - <<'EOF' 2>&1 | tee "$OUT/correctness.log"
import json, os, sys
sys.path.insert(0, ".")
import torch
from transformers import GenerationConfig
from r1.models import load_model, load_tokenizer
import logging
from r1.decode_step import DirectDecoder
from r1.decoding import lean_sample
from r1.rollout import static_generation_config
logging.basicConfig(level=logging.WARNING)  # a direct decode step that disagrees with the module forward warns
device = os.environ["DEVICE"]
direct_calls = []
_direct = DirectDecoder.__call__
DirectDecoder.__call__ = lambda self, *a: (direct_calls.append(1), _direct(self, *a))[1]
tok = load_tokenizer("tiny:qwen2")
results = {}
for dtype in ("float32", "bfloat16"):
    model = load_model("tiny:qwen2", dtype=dtype, device=device).eval()
    enc = tok(["What is 2 + 3?", "Question: what is the sum of 17 and 25? Think step by step."] * 8,
              return_tensors="pt", padding=True).to(device)
    base = GenerationConfig(max_new_tokens=48, do_sample=True, temperature=0.9, top_p=0.95,
                            pad_token_id=tok.pad_token_id, eos_token_id=[tok.eos_token_id])
    for name, config in (("dynamic", base), ("static", static_generation_config(base, enc["input_ids"].shape[1]))):
        outs = []
        for sampler in (None, lean_sample):
            torch.manual_seed(0)
            with torch.no_grad():
                outs.append(model.generate(**enc, generation_config=config, custom_generate=sampler))
        results[f"{dtype}/{name}"] = bool(torch.equal(outs[0], outs[1]))
print(json.dumps({"device": device, "lean_equals_generate": results, "direct_decode_calls": len(direct_calls)}))
EOF

# 4. The GRPO step benchmark (the target: >= 5x TRL defaults, >= 10,000 completion tokens/s).
say "grpo_step_bench --size $SIZE $STEP_ARGS"
timeout $STEP_LIMIT $PY benchmarks/grpo_step_bench.py --size $SIZE --device $DEVICE $STEP_ARGS \
    --out "$OUT/grpo_step_${SIZE}_${DEVICE}.json" 2>&1 | tee "$OUT/grpo_step.log"
say "grpo_step_bench exit ${PIPESTATUS[0]}"

# 5. Raw rollout speed per backend (target: >= 50,000 tokens/s at batch 1024).
say "rollout_bench --size $SIZE $ROLL_ARGS"
timeout $ROLL_LIMIT $PY benchmarks/rollout_bench.py --size $SIZE --device $DEVICE $ROLL_ARGS \
    --out "$OUT/rollout_${SIZE}_${DEVICE}.json" 2>&1 | tee "$OUT/rollout.log"
say "rollout_bench exit ${PIPESTATUS[0]}"
say "done; results in $OUT: $(ls "$OUT" | tr '\n' ' ')"
