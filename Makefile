# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv if missing.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
TSTAMP := $(VENV)/.installed-test
DSTAMP := $(VENV)/.installed-docs
DATASETS ?= $(abspath ../shared/datasets)

.PHONY: demo test test-slow test-all docs gallery bench install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[all]'
	touch $@

$(TSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[all,test]'
	touch $@ $(STAMP)

$(DSTAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -e '.[all,docs]'
	touch $@ $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/visionzoo demo

# Two tiers (docs/development.md): `make test` is the fast tier (every command, option and error path on
# tiny inputs); `make test-slow` the end-to-end tier (training to a quality, kill and resume, DDP, Ray,
# servers, the browser, the README tour); `make test-all` both. CI runs both tiers.
PYTEST := $(BIN)/python -m pytest -n 2 --dist loadgroup

test: $(TSTAMP)
	$(PYTEST) -m "not slow" $(PYTEST_ARGS)

test-slow: $(TSTAMP)
	$(PYTEST) -m slow $(PYTEST_ARGS)

test-all: $(TSTAMP)
	$(PYTEST) $(PYTEST_ARGS)

# The site in site/: the gallery's missing pictures first (real runs, cached in .cache/docs), then a strict
# build that runs the notebooks; a broken link, picture or API name fails it.
docs: $(DSTAMP)
	VISIONZOO_DATASETS=$(DATASETS) $(BIN)/python docs/gallery.py $(GALLERY_ARGS)
	VISIONZOO_DATASETS=$(DATASETS) NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

gallery: $(DSTAMP)
	VISIONZOO_DATASETS=$(DATASETS) $(BIN)/python docs/gallery.py --force

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
	rm -rf $(VENV) build src/*.egg-info .pytest_cache site .cache/docs
