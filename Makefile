# Two commands do everything on a fresh machine: `make test` and `make demo`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# On a machine without an NVIDIA GPU, install the CPU build of torch *before* anything that
# depends on torch, so pip never pulls a multi-GB CUDA build. GPU users: `make TORCH_SPEC=torch`
# (or install codeloop with plain pip into an environment that already has CUDA torch).
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)
PYTEST_ARGS ?=

export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: venv test test-fast demo bench clean-venv

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

venv: $(VENV)/.installed

# As root, the sandbox corpus runs a second time as an unprivileged user: that is the mode in which
# the sandbox builds its namespaces inside a user namespace, and what most users' machines give.
test: $(VENV)/.installed
	$(PY) -m pytest $(PYTEST_ARGS)
	@if [ "$$(id -u)" = 0 ]; then \
	  echo "sandbox corpus as an unprivileged user (nobody):"; \
	  $(PY) scripts/as_user.py --user nobody -- $(PY) -m pytest -q -p no:cacheprovider tests/execution/test_execution_sandbox.py; \
	fi

test-fast: $(VENV)/.installed
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

demo: $(VENV)/.installed
	$(VENV)/bin/codeloop run recipes/demo.yaml

bench: $(VENV)/.installed
	$(PY) benchmarks/execution.py

clean-venv:
	rm -rf $(VENV)
