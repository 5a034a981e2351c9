# Two entry points: `make demo` (set up + run the offline main job) and `make test` (set up + all tests).
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# CPU torch pinned for this machine and CI only; the package itself asks for torch>=2.2.
TORCH_PIN ?= torch==2.13.0

.PHONY: setup demo test unit notebooks bench student clean

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

bench: setup
	$(BIN)/python -m loramini bench --quick

clean:
	rm -rf $(VENV) .pytest_cache
