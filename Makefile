# The two commands of the README: `make lab` (the main job) and `make test`.
VENV := .venv
BIN := $(VENV)/bin

.PHONY: lab test test-fast lint bootstrap down try-salt bench

bootstrap:
	@scripts/bootstrap

## The main job: the seed's site on real kernels, deployed by salt, with traffic shown.
lab: bootstrap
	$(BIN)/lvs-lab demo

## Every test layer, the lab included (lint first: its config is in pyproject.toml).
test: bootstrap lint
	$(BIN)/python -m pytest

lint: bootstrap
	$(BIN)/ruff check .

## Unit and functional layers only (no lab kernel).
test-fast: bootstrap lint
	$(BIN)/python -m pytest -m "not lab"

down:
	$(BIN)/lvs-lab down

## Performance on Debian's stock kernel (QEMU) beside the lab's UML kernel (bench/reference.py).
bench: bootstrap
	$(BIN)/python bench/reference.py

## The unit and functional layers on the newest Salt 3008 the index has (a venv of its own).
try-salt:
	@scripts/try-newest-salt
