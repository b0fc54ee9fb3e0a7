# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test

.PHONY: demo test bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[all]'
	touch $@

$(TSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[all,test]'
	touch $@ $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/visionzoo demo

test: $(TSTAMP)
	$(BIN)/python -m pytest -n 2 --dist loadgroup $(PYTEST_ARGS)

bench: $(TSTAMP)
	$(BIN)/python benchmarks/extract_bench.py
	$(BIN)/python benchmarks/int8_bench.py
	$(BIN)/python benchmarks/train_bench.py
	$(BIN)/python benchmarks/search_bench.py
	$(BIN)/python benchmarks/dedup_bench.py
	$(BIN)/python benchmarks/detect_bench.py
	$(BIN)/python benchmarks/segment_bench.py
	$(BIN)/python benchmarks/faces_bench.py
	$(BIN)/python benchmarks/caption_bench.py
	$(BIN)/python benchmarks/serve_bench.py
	$(BIN)/python benchmarks/scale_bench.py
	$(BIN)/python benchmarks/ddp_bench.py
	$(BIN)/python benchmarks/remote_store_bench.py

clean:
	rm -rf $(VENV) build src/*.egg-info .pytest_cache
