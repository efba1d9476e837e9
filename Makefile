# melforge: two commands do everything on a fresh machine (Python 3.11, pip, git):
#   make run    -> create .venv from the lock file, then run the whole pipeline (demo profile)
#   make test   -> create .venv from the lock file, then run the test suite
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
# the folder is part of the stamp: a workspace copied or moved elsewhere installs its own code again
LOCK_ID := $(shell (sha1sum requirements.lock pyproject.toml Makefile; echo "$(CURDIR)") | sha1sum | cut -c1-12)
STAMP  := $(VENV)/.melforge-installed-$(LOCK_ID)
PYTEST_ARGS ?=

.PHONY: run test install benchmarks ui lock clean-state

install: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	@# a venv's scripts name its folder: one copied from another folder runs that folder's code, or nothing
	@if [ -e $(VENV)/bin/melforge ] && ! head -1 $(VENV)/bin/melforge | grep -qF "$(abspath $(VENV))/bin/"; then \
	  echo "$(VENV) was made in another folder: re-creating it here"; rm -rf $(VENV); fi
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check uv==0.13.8
	$(VENV)/bin/uv pip sync --compile-bytecode --python $(PY) requirements.lock
	$(VENV)/bin/uv pip install --compile-bytecode --python $(PY) --no-deps -e .
	@rm -f $(VENV)/.melforge-installed-* && touch $(STAMP)

run: install
	$(VENV)/bin/melforge run

test: install
	$(PY) -m pytest $(PYTEST_ARGS)

benchmarks: install
	$(PY) benchmarks/logmel_speed.py
	$(PY) benchmarks/ingest_scaling.py
	$(PY) benchmarks/training_speed.py
	$(PY) benchmarks/orchestration_overhead.py
	$(PY) benchmarks/quality_curve.py --profile demo --minutes 4 --every-minutes 1
	$(PY) benchmarks/pitch_check.py   # after `make run`: the trained models/
	$(PY) benchmarks/recompute_metrics.py  # after `make run`: FAD, floor, precision/recall again with numpy/scipy
	$(PY) benchmarks/vocoder_speed.py  # learned vocoder vs Griffin-Lim (the learned one needs vocoder.steps > 0, e.g. --profile cpu)
	$(PY) benchmarks/faults.py         # ~20 min: interrupts, kill -9, S3 outage, tampered model, full disk

ui: install
	$(VENV)/bin/melforge ui

# Re-lock after editing pyproject.toml dependencies (needs the registry).
lock: install
	$(VENV)/bin/uv pip compile pyproject.toml --extra test --override requirements-overrides.txt \
	  --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements.lock

clean-state:
	rm -rf .melforge data models
