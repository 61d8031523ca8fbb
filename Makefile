# Grassroots: one entry point for developers and CI.
# `make run` starts the platform with the demo village; `make test` runs the whole suite.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
# Named after the pyproject.toml files' content, not their time: a checkout or a rebase
# touches them without changing them, and must not reinstall (git gives no stable mtimes).
PYPROJECT_HASH := $(shell $(PYTHON) -c "import hashlib; print(hashlib.sha256(b''.join(open(f, 'rb').read() for f in ('pyproject.toml', 'sdk/pyproject.toml'))).hexdigest()[:16])")
STAMP  := $(VENV)/.installed-$(PYPROJECT_HASH)
BUF    := node_modules/.bin/buf
# The last released contract: `buf breaking` refuses changes that would break its clients.
CONTRACT_BASELINE := proto/v1-baseline.binpb

.PHONY: help install proto buf swagger-ui web-vendor lint contract-baseline format services test test-serial test-unit test-integration run demo bench k8s clean

help:
	@echo "make run     start the five services and the gateway with the demo village"
	@echo "make test    run the whole test suite (two sessions side by side)"
	@echo "make test-serial  the same suite as one session"
	@echo "make lint    ruff, mypy (services, gateway, SDK, scenarios, devstack), buf lint, buf breaking"
	@echo "make proto   regenerate Python and typing stubs from proto/"
	@echo "make bench   run the benchmarks in bench/ and print their figures"
	@echo "make k8s     render k8s/ (base, overlays) from the component table and settings"

$(STAMP):
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet -e ./sdk   # the Python SDK (sdk/README.md)
	rm -f $(VENV)/.installed $(VENV)/.installed-*
	touch $(STAMP)

install: $(STAMP)

$(BUF): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(BUF)

buf: $(BUF)

# Swagger UI for /docs, copied from the npm package pinned in package.json and committed,
# so the gateway serves its docs with no CDN (government intranets are offline).
SWAGGER_UI := node_modules/swagger-ui-dist
swagger-ui: $(BUF)
	cp $(addprefix $(SWAGGER_UI)/,swagger-ui-bundle.js swagger-ui.css favicon-32x32.png LICENSE NOTICE) \
	   gateway/static/swagger-ui/

# Leaflet for the web pages (gateway/static/web), copied from the npm package pinned in
# package.json and committed for the same reason: `make run` needs no npm and no CDN.
# axe-core (the browser tests' accessibility check) is read from node_modules instead.
LEAFLET := node_modules/leaflet
web-vendor: $(BUF)
	mkdir -p gateway/static/web/vendor/leaflet/images
	cp $(addprefix $(LEAFLET)/dist/,leaflet.js leaflet.css) $(LEAFLET)/LICENSE \
	   gateway/static/web/vendor/leaflet/
	cp $(LEAFLET)/dist/images/*.png gateway/static/web/vendor/leaflet/images/

proto: $(STAMP)
	$(PY) tools/protogen.py

lint: $(STAMP) $(BUF)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy services gateway sdk/grassroots_sdk scenarios devstack
	$(BUF) lint
	$(BUF) format --diff --exit-code
	$(BUF) breaking --against $(CONTRACT_BASELINE)

# Run when a contract is released: later changes are checked against this image.
contract-baseline: $(BUF)
	$(BUF) build --exclude-source-info -o $(CONTRACT_BASELINE)

format: $(STAMP) $(BUF)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
	$(BUF) format -w

# PostgreSQL+PostGIS, Redis and Mosquitto on loopback: started, or installed as root.
services:
	$(PYTHON) tools/ensure_services.py

# Two pytest sessions side by side, one per core (tools/test_halves.py).
test: $(STAMP) services $(BUF)
	$(PY) -m tools.test_halves

# The same suite as one session, for reading a failure in order.
test-serial: $(STAMP) services $(BUF)
	$(PY) -m pytest

test-unit: $(STAMP)
	$(PY) -m pytest tests/unit tests/contract

test-integration: $(STAMP) services
	$(PY) -m pytest tests/integration

demo: $(STAMP)
	$(PY) -m devstack.demo_village --out var/demo-village.gpkg

run: $(STAMP) proto
	$(PY) -m devstack

bench: $(STAMP) services
	$(PY) bench/run.py

k8s: $(STAMP)
	$(PY) -m tools.k8s render

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
