# qfota: every target installs what it needs into .venv from pinned versions.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
MPY := $(BIN)/micropython
IMAGE := out/demo.bin
# The emulated Pico's Node bridge (qfota pico-sim): rp2040js, pinned by the lock file.
PICO_STAMP := host_tools/pico/node_modules/.installed
# qemu-system-arm for the emulated STM32F405 (qfota stm32-sim), from Debian.
QEMU_STAMP := $(VENV)/.qemu

.PHONY: all venv goosebit test lint fmt demo demo-pico bench soak mpy typings clean

all: test

$(STAMP): requirements-dev.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip==24.3.1
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $(STAMP)

venv: $(STAMP) $(PICO_STAMP) $(QEMU_STAMP)

$(PICO_STAMP): host_tools/pico/package.json host_tools/pico/package-lock.json
	npm ci --prefix host_tools/pico --no-audit --no-fund --loglevel=error
	touch $(PICO_STAMP)

# Emulated Pico fixtures: the MicroPython RPI_PICO UF2 and the RP2040 B1 boot ROM
# (../shared/pico in CI; set QFOTA_PICO_FIRMWARE/QFOTA_PICO_BOOTROM elsewhere).
export QFOTA_PICO_FIRMWARE ?= $(wildcard $(CURDIR)/../shared/pico/RPI_PICO-v1.28.0.uf2)
export QFOTA_PICO_BOOTROM ?= $(wildcard $(CURDIR)/../shared/pico/bootrom-b1.bin)

# The emulated STM32F405 (qfota stm32-sim): QEMU's netduinoplus2 and a MicroPython stm32
# build for it (../shared/stm32 in CI; set QFOTA_STM32_FIRMWARE elsewhere). qemu-system-arm
# comes from Debian: installed here where it is missing and apt-get can (as root, as CI
# runs); elsewhere tests/test_stm32.py skips, saying why.
export QFOTA_STM32_FIRMWARE ?= $(wildcard $(CURDIR)/../shared/stm32/micropython-v1.28.0-QEMU_NETDUINO_PLUS_2.elf)
$(QEMU_STAMP):
	@if command -v qemu-system-arm >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends qemu-system-arm; \
	else echo "qemu-system-arm is missing (apt-get install qemu-system-arm): the stm32 tests will skip"; \
	  exit 0; fi; \
	mkdir -p $(VENV) && touch $(QEMU_STAMP)

# MicroPython stubs for pyright, one folder per board (each provides its own `machine`):
# typings/<board>/ gets the stubs package its boards/<board>.py declares (STUBS) and the
# stdlib stubs, pinned in requirements-stubs.txt.
typings/.installed: requirements-stubs.txt
	rm -rf typings
	$(PY) host_tools/qfota_tools/boards.py stubs > /dev/null  # a board file without STUBS fails here
	$(PY) host_tools/qfota_tools/boards.py stubs | while read b pkg; do \
	  req=$$(grep -E "^$$pkg==" requirements-stubs.txt) || { echo "$$pkg is not pinned in requirements-stubs.txt"; exit 1; }; \
	  $(BIN)/pip install --quiet --no-deps --target typings/$$b \
	    $$req $$(grep -E "^micropython-stdlib-stubs==" requirements-stubs.txt) || exit 1; \
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

# One pyright run per board: boards/pyright/<board>.json checks firmware/ and
# boards/<board>.py against that board's stubs; pyrightconfig.json the unix port's.
lint: $(STAMP) typings/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	projects=$$($(PY) host_tools/qfota_tools/boards.py pyright) || exit 1; \
	st=0; for p in $$projects; do $(BIN)/pyright -p $$p || st=1; done; exit $$st

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: $(STAMP) $(PICO_STAMP) $(GB_STAMP) $(QEMU_STAMP) lint
	$(BIN)/pytest -q -n 2

# The README's first command: a full update against the EC200 simulator, on MicroPython.
demo: $(STAMP)
	$(BIN)/python -m qfota_tools.devtools.demo

# The whole chain on the emulated Pico: deploy, stage, boot, update, the revision after.
demo-pico: $(STAMP) $(PICO_STAMP)
	$(BIN)/python -m qfota_tools.devtools.demo_pico

# Every figure is measured and written even when one before it missed: the Pico figures
# run whatever bench/run.py found, and the target fails at the end if either missed any.
bench: $(STAMP) $(PICO_STAMP) $(GB_STAMP)
	@st=0; \
	$(BIN)/python bench/run.py || st=1; \
	$(BIN)/python bench/pico_bench.py || st=1; \
	$(BIN)/python bench/fleet_bench.py || st=1; \
	if [ $$st -ne 0 ]; then echo "make bench: a figure missed (rows marked no in README.md)" >&2; fi; \
	exit $$st

soak: $(STAMP)
	$(BIN)/python -m qfota_tools.devtools.soak

mpy: $(STAMP)
	$(BIN)/python -m qfota_tools.build_mpy

clean:
	rm -rf $(VENV) $(GB_VENV) typings out build *.egg-info
