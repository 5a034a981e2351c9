# Entry points: `make demo` (set up + run the offline main job), `make test` (set up + all tests, the browser
# test included), `make lab` (set up + open the course in JupyterLab).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# CPU torch pinned for this machine and CI only; the package itself asks for torch>=2.2.
TORCH_PIN ?= torch==2.13.0

.PHONY: setup demo test unit notebooks lab execute bench student clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_PIN)"
	$(BIN)/pip install -q -e ".[dev]" "$(TORCH_PIN)"
	$(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/python -m loramini

unit: setup
	$(BIN)/python -m pytest -q tests

notebooks: setup
	LORAMINI_SMOKE=1 $(BIN)/python -m pytest -q --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg notebooks/*.ipynb

test: setup
	LORAMINI_SMOKE=1 $(BIN)/python -m pytest -q tests $(wildcard notebooks/*.ipynb) \
	  $(if $(wildcard notebooks/*.ipynb),--nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg)

# Read along: JupyterLab on the repository (so the notebooks' links into loramini/ work), opened at notebooks/.
# Extra flags: make lab LAB_ARGS="--no-browser --port 8899"
lab: setup
	$(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks \
	  $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Execute notebooks for committing (sync the jupytext pair, run quietly, clean outputs); see notebooks/README.md.
# make execute NB=notebooks/02_parameter_counting.py [ARGS=--smoke]   (default: every notebook)
execute: setup
	$(BIN)/python tools/execute_notebooks.py $(ARGS) $(or $(NB),$(wildcard notebooks/[0-9][0-9]_*.py))

bench: setup
	$(BIN)/python -m loramini bench --quick

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
