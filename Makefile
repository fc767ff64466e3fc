# qfota: every target installs what it needs into .venv from pinned versions.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MPY := $(BIN)/micropython
IMAGE := out/demo.bin

.PHONY: all venv test lint fmt demo bench soak mpy typings clean

all: test

$(STAMP): requirements-dev.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==24.3.1
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP)

# MicroPython stubs for pyright (installed into typings/, not the venv).
typings/.installed: requirements-stubs.txt
	rm -rf typings
	$(BIN)/pip install --quiet --no-deps --target typings -r requirements-stubs.txt
	touch typings/.installed

lint: $(STAMP) typings/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pyright

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP) lint
	$(BIN)/pytest -q

# The README's first command: a full update against the EC200 simulator, on MicroPython.
demo: $(STAMP)
	$(BIN)/python -m qfota_tools.demo

bench: $(STAMP)
	$(BIN)/python bench/run.py

soak: $(STAMP)
	$(BIN)/python -m qfota_tools.soak

mpy: $(STAMP)
	$(BIN)/python -m qfota_tools.build_mpy

clean:
	rm -rf $(VENV) typings out build *.egg-info
