# vidlang: every target creates .venv on first use and installs torch first (TORCH_SPEC),
# so a GPU user can pick their build: make test TORCH_SPEC="torch==2.5.1 --index-url ...".
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= torch==2.13.0
export OMP_NUM_THREADS ?= 2
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1

.PHONY: install demo demo-video test test-latest constraints bench lint clean serve

# constraints.txt pins every dependency (loose pins stay in pyproject.toml), so every machine
# tests the same versions; `make test-latest` tries the newest ones, `make constraints` re-pins.
$(VENV)/.installed: pyproject.toml constraints.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_SPEC)
	$(PY) -m pip install -q -e ".[dev,milvus]" -c constraints.txt
	touch $@

install: $(VENV)/.installed

demo: install
	$(VENV)/bin/vidlang demo --out demo_out

# SynthVL-video end to end from MP4 files (render, extract, train MMN, eval, predict --video);
# several CPU minutes, so not part of `demo` (docs/video.md)
demo-video: install
	$(PY) scripts/run_video_evidence.py --out demo_video_out

# the search page + API over an offline demo collection (docs/serve.md); a few CPU minutes the
# first time, then it starts at once; SERVE_ARGS="--port 8080" etc.
SERVE_ARGS ?=
serve: install
	$(PY) scripts/build_serve_demo.py --out serve_demo
	$(VENV)/bin/vidlang serve serve_demo/index --grounding-ckpt serve_demo/mmn --videos serve_demo/web $(SERVE_ARGS)

# the suite is mostly subprocesses of the CLI (one-line errors, kill-and-resume, a browser):
# two pytest-xdist workers keep it near 10 minutes on 2 cores; worksteal evens out the long CLI
# tests at the end (TEST_WORKERS=0: one process)
TEST_WORKERS ?= 2
test: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist worksteal

# The newest release of every dependency (no constraints) in a fresh .venv-latest: run before
# `make constraints VENV=.venv-latest` moves the lock, or to see what an update breaks.
LATEST := .venv-latest
test-latest:
	rm -rf $(LATEST)
	python3 -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install -q --upgrade pip
	$(LATEST)/bin/python -m pip install -q $(TORCH_SPEC)
	$(LATEST)/bin/python -m pip install -q --upgrade --upgrade-strategy eager -e ".[dev,milvus]"
	$(LATEST)/bin/python -m pip freeze --exclude-editable > $(LATEST)/versions.txt
	$(LATEST)/bin/ruff check src tests benchmarks
	VIDLANG_UNCONSTRAINED=1 $(LATEST)/bin/python -m pytest -q -n $(TEST_WORKERS)

# Re-pin constraints.txt from the packages installed in $(VENV) (one command).
constraints:
	$(PY) scripts/freeze_constraints.py --out constraints.txt

# Quick sizes by default (a few minutes in all); `make bench BENCH_ARGS=` runs the full sizes
# the docs quote (1M-vector search, 1-hour video, paper-size MMN ...), which take much longer.
BENCH_ARGS ?= --quick
bench: install
	@for b in benchmarks/bench_*.py; do echo "== $$b $(BENCH_ARGS)"; $(PY) $$b $(BENCH_ARGS) || exit 1; done

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) $(LATEST) demo_out demo_video_out serve_demo .pytest_cache .ruff_cache .mypy_cache
