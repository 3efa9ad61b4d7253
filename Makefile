# Entry points: `make run`, `make test` (all tests) and `make check` (the fast ones). All create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
comma := ,
# On Raspberry Pi OS picamera2 and libcamera come from apt, so the venv must see system packages.
# Detected from /proc/device-tree; override with `make ON_PI=yes ...` (or ON_PI= for no).
ON_PI ?= $(shell grep -qs 'Raspberry Pi' /proc/device-tree/model && echo yes)
VENV_FLAGS := $(if $(ON_PI),--system-site-packages,)
EXTRAS := $(if $(ON_PI),test$(comma)pi,test)

.PHONY: run test check clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/edge demo

# Everything, CI included: subprocesses, broker, display, LFW, crash loops.
test: $(VENV)/.installed
	$(BIN)/python -m pytest --durations=15

# The quick loop while editing: everything not marked slow.
check: $(VENV)/.installed
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf $(VENV) .pytest_cache
