# replisim: the two commands the README starts with are `make demo` and `make test`.
# Both set up everything they need on a fresh machine (as root), idempotently.

PYTHON ?= python3
export HF_HUB_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: demo test setup setup-core lint bench clean

## demo: install (with vLLM's CPU engine and the embedded model), then run the shipped
## scenario sweep into runs/demo and write its report
demo: setup-core
	PYTHON=$(PYTHON) bash .ci/install-vllm.sh
	replisim model prepare
	replisim validate scenarios.yaml
	replisim sweep scenarios.yaml --out runs/demo --workers 2 $(if $(wildcard runs/demo/rows.jsonl),--resume,)
	replisim report runs/demo --quiet
	@echo "report: runs/demo/report.html (plots in runs/demo/plots/)"

## test: install everything the tests need (Docker engine, bubblewrap, Chromium, Ray, ...),
## lint, run all tests (slow ones included)
test: setup lint
	bash .ci/pytest.sh

setup-core:
	$(PYTHON) -m pip install -q -e .

setup:
	$(PYTHON) -m pip install -q -e ".[dev]"
	bash .ci/setup.sh
	replisim hosts image build

lint:
	ruff check .
	ruff format --check sim agents policies
	mypy
	lint-imports

## bench: the performance figures the issues ask for
bench: setup-core
	replisim bench engine
	replisim bench scale

clean:
	rm -rf runs .pytest_cache .mypy_cache .ruff_cache
