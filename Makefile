# Two commands for a fresh machine; each does its own set-up.
#   make demo   renders the example lesson offline into out/photosynthesis/
#   make test   runs the test suite
PYTHON ?= python3
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup demo test

setup:
	@bash scripts/setup.sh

demo: setup
	lessonforge make --from examples/photosynthesis.json --out out/photosynthesis --images none --critic none

test: setup
	$(PYTHON) -m pytest -q
