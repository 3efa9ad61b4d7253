# Two entry points: `make run` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# On Raspberry Pi OS picamera2 and libcamera come from apt, so the venv must see system packages.
ON_PI := $(shell grep -qs 'Raspberry Pi' /proc/device-tree/model && echo yes)
VENV_FLAGS := $(if $(ON_PI),--system-site-packages,)
EXTRAS := $(if $(ON_PI),test$(comma)pi,test)
comma := ,

.PHONY: run test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

run: $(VENV)/.installed
	$(BIN)/edge demo

test: $(VENV)/.installed
	$(BIN)/python -m pytest

clean:
	rm -rf $(VENV) .pytest_cache
