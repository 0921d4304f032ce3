# Two commands for a fresh machine; each does its own set-up (scripts/setup.sh: apt packages, then the
# project's virtual environment .venv; a second run with nothing changed takes about a second).
#   make demo        renders the example lesson offline into out/photosynthesis/
#   make test        ruff, mypy and the whole test suite (what CI runs; slow: see README)
#   make check       ruff and mypy only
#   make test-fast   the fast tests, for development (pytest -m "not slow" -n auto: no whole lessons, one worker per
#                    core; under two minutes)
PYTHON ?= python3
VENV ?= .venv
export PYTHON VENV
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup demo check test test-fast

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/lessonforge make --from examples/photosynthesis.json --out out/photosynthesis --images none --critic none

check: setup
	$(VENV)/bin/python -m ruff check .
	$(VENV)/bin/python -m mypy

test: check
	$(VENV)/bin/python -m pytest -q

test-fast: setup
	$(VENV)/bin/python -m pytest -q -m "not slow" -n auto
