# The README's two commands: `make demo` (demo data -> workflow -> report) and `make test`.
# Both create the virtual environment in .venv on first use and reinstall when pyproject.toml changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
CORES  ?= 2

.PHONY: venv demo test clean-demo

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev,slurm]"
	@touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m mmneuro.demo --cores $(CORES)

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean-demo:
	rm -rf data/demo results .snakemake
