# Two commands for a fresh machine; each does its own set-up (scripts/setup.sh: apt packages, then the
# project's virtual environment .venv; a second run with nothing changed takes about a second).
#   make demo        renders the example lesson offline into out/photosynthesis/
#   make test        runs the whole test suite (slow: see README)
#   make test-fast   the unit tests, for development (seconds; no end-to-end runs)
PYTHON ?= python3
VENV ?= .venv
export PYTHON VENV
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup demo test test-fast

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/lessonforge make --from examples/photosynthesis.json --out out/photosynthesis --images none --critic none

test: setup
	$(VENV)/bin/python -m pytest -q

test-fast: setup
	$(VENV)/bin/python -m pytest -q -m "not slow and not real_models" tests/unit
