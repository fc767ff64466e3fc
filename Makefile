# qfota: every target installs what it needs into .venv from pinned versions.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MPY := $(BIN)/micropython
IMAGE := out/demo.bin
# The emulated Pico's Node bridge (qfota pico-sim): rp2040js, pinned by the lock file.
PICO_STAMP := host_tools/pico/node_modules/.installed

.PHONY: all venv goosebit test lint fmt demo demo-pico bench soak mpy typings clean

all: test

$(STAMP): requirements-dev.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==24.3.1
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP) $(PICO_STAMP)

$(PICO_STAMP): host_tools/pico/package.json host_tools/pico/package-lock.json
	npm ci --prefix host_tools/pico --no-audit --no-fund --loglevel=error
	touch $(PICO_STAMP)

# Emulated Pico fixtures: the MicroPython RPI_PICO UF2 and the RP2040 B1 boot ROM
# (../shared/pico in CI; set QFOTA_PICO_FIRMWARE/QFOTA_PICO_BOOTROM elsewhere).
export QFOTA_PICO_FIRMWARE ?= $(wildcard $(CURDIR)/../shared/pico/RPI_PICO-v1.28.0.uf2)
export QFOTA_PICO_BOOTROM ?= $(wildcard $(CURDIR)/../shared/pico/bootrom-b1.bin)

# MicroPython stubs for pyright, one folder per board (each provides its own `machine`):
# typings/<board>/ gets micropython-<board>-stubs and the stdlib stubs, pinned.
STUB_BOARDS := rp2 esp32 stm32 unix
typings/.installed: requirements-stubs.txt
	rm -rf typings
	for b in $(STUB_BOARDS); do \
	  $(BIN)/pip install --quiet --no-deps --target typings/$$b \
	    $$(grep -E "^micropython-($$b|stdlib)-stubs==" requirements-stubs.txt) || exit 1; \
	done
	touch typings/.installed

typings: typings/.installed

# gooseBit, the DDI server the fleet tests run on 127.0.0.1 (tests/goosebit_rig.py): its own
# venv (it needs Python >= 3.11 and pins of its own), from PyPI, every version pinned.
GB_VENV := .venv-goosebit
GB_STAMP := $(GB_VENV)/.installed
GB_PY ?= python3.11
$(GB_STAMP): requirements-goosebit.txt
	$(GB_PY) -m venv $(GB_VENV)
	$(GB_VENV)/bin/pip install --quiet --upgrade pip==24.3.1
	$(GB_VENV)/bin/pip install --quiet --no-deps -r requirements-goosebit.txt
	$(GB_VENV)/bin/pip check
	touch $(GB_STAMP)

goosebit: $(GB_STAMP)

# pyrightconfig.json checks firmware/ for the unix port; boards/pyright/<board>.json
# checks firmware/ and boards/<board>.py against that board's stubs.
lint: $(STAMP) typings/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	st=0; for p in pyrightconfig.json boards/pyright/rp2.json boards/pyright/esp32.json \
	    boards/pyright/stm32.json; do $(BIN)/pyright -p $$p || st=1; done; exit $$st

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP) $(PICO_STAMP) $(GB_STAMP) lint
	$(BIN)/pytest -q -n 2

# The README's first command: a full update against the EC200 simulator, on MicroPython.
demo: $(STAMP)
	$(BIN)/python -m qfota_tools.devtools.demo

# The whole chain on the emulated Pico: deploy, stage, boot, update, the revision after.
demo-pico: $(STAMP) $(PICO_STAMP)
	$(BIN)/python -m qfota_tools.devtools.demo_pico

# Every figure is measured and written even when one before it missed: the Pico figures
# run whatever bench/run.py found, and the target fails at the end if either missed any.
bench: $(STAMP) $(PICO_STAMP)
	@st=0; \
	$(BIN)/python bench/run.py || st=1; \
	$(BIN)/python bench/pico_bench.py || st=1; \
	if [ $$st -ne 0 ]; then echo "make bench: a figure missed (rows marked no in README.md)" >&2; fi; \
	exit $$st

soak: $(STAMP)
	$(BIN)/python -m qfota_tools.devtools.soak

mpy: $(STAMP)
	$(BIN)/python -m qfota_tools.build_mpy

clean:
	rm -rf $(VENV) $(GB_VENV) typings out build *.egg-info
