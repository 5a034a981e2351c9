# Entry points: `make demo` (set up + run the offline main job), `make test` (set up + all tests, the browser
# test included), `make lab` (set up + open the course in JupyterLab), `make instructor` (nbgrader tooling).
# Each sets up .venv/ with what it needs (pyproject extras: [train], [lab], [dev], [instructor]) and says
# what it is doing; a later target only adds what is missing.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
# PyTorch: on a machine without an NVIDIA GPU the CPU build (about 200 MB) from PyTorch's own index; the default
# index would give the CUDA build plus ~17 nvidia/triton wheels (several GB). Set TORCH_INDEX= (empty) for that,
# or another index, e.g. make lab TORCH_INDEX=https://download.pytorch.org/whl/cu128. Setup checks first that the
# index answers; where it does not (offline, a local wheel folder) it says so and uses pip's other indexes.
HAS_GPU    := $(shell nvidia-smi -L >/dev/null 2>&1 && echo yes)
TORCH_INDEX ?= $(if $(HAS_GPU),,https://download.pytorch.org/whl/cpu)
# CI and this project's machines pin torch; the package itself asks for torch>=2.2.
TORCH_PIN ?= torch==2.13.0
PIP = $(BIN)/pip install --disable-pip-version-check --progress-bar on

.PHONY: setup demo test unit notebooks lab instructor execute bench results clean-lab clean

$(BIN)/python:
	@echo "==> [setup] creating $(VENV)/ with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q --disable-pip-version-check --upgrade pip

$(BIN)/.torch: | $(BIN)/python
	@index="$(TORCH_INDEX)"; \
	if [ -n "$$index" ] && ! $(BIN)/python -c "import sys, urllib.request; urllib.request.urlopen(sys.argv[1] + '/torch/', timeout=10)" "$$index" 2>/dev/null; then \
	  echo "==> [setup] $$index does not answer: PyTorch from pip's other indexes instead"; index=; fi; \
	echo "==> [setup] PyTorch $(TORCH_PIN) from $${index:-pip's default index} (the largest download; a few minutes)"; \
	set -x; $(PIP) $${index:+--extra-index-url "$$index"} "$(TORCH_PIN)"
	@touch $@

# One marker per extra: .installed-lab, .installed-dev, ... (re-installed when pyproject.toml changes). The torch
# installed above satisfies TORCH_PIN, so this step keeps it and needs no torch index.
$(BIN)/.installed-%: pyproject.toml | $(BIN)/.torch
	@echo "==> [setup] loramini with its [$*] extra (editable: this checkout)"
	$(PIP) -e ".[$*]" "$(TORCH_PIN)"
	@if $(BIN)/python -c "import ipykernel" 2>/dev/null; then echo "==> [setup] registering the Jupyter kernel 'python3' in $(VENV)/"; \
	  $(BIN)/python -m ipykernel install --sys-prefix --name python3 >/dev/null; fi
	@touch $@
	@echo "==> [setup] done: $(VENV)/ has loramini[$*]"

setup: $(BIN)/.installed-dev

demo: $(BIN)/.installed-train
	$(BIN)/python -m loramini

# Every test (about 15 minutes on 2 CPU cores, of which the notebooks in a real browser 3-5); pytest prints why
# anything was skipped (-rs). Quicker: make unit, or .venv/bin/python -m pytest tests/test_layer.py
test: $(BIN)/.installed-dev
	LORAMINI_SMOKE=1 $(BIN)/python -m pytest -q tests $(wildcard notebooks/*.ipynb) \
	  $(if $(wildcard notebooks/*.ipynb),--nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg)

unit: $(BIN)/.installed-dev
	$(BIN)/python -m pytest -q tests -m "not browser"

notebooks: $(BIN)/.installed-dev
	LORAMINI_SMOKE=1 $(BIN)/python -m pytest -q --nbval-lax --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg notebooks/*.ipynb

# Read along: JupyterLab on the repository (so the notebooks' links into loramini/ work), opened at notebooks/.
# tools/lab/ is the students' lab: autosave off (overrides.json), so running cells never rewrites the committed
# notebooks (File > Save still saves; `make clean-lab` puts them back), and nbgrader's menus and server
# extensions off even in a .venv built by `make test` (labconfig/, jupyter_server_config.json). Extra flags:
# make lab LAB_ARGS="--no-browser --port 8899"
lab: $(BIN)/.installed-lab
	JUPYTER_CONFIG_PATH="$(CURDIR)/tools/lab$(if $(JUPYTER_CONFIG_PATH),:$(JUPYTER_CONFIG_PATH))" $(BIN)/jupyter lab --ServerApp.root_dir="$(CURDIR)" --LabApp.default_url=/lab/tree/notebooks \
	  --LabApp.app_settings_dir="$(CURDIR)/tools/lab" \
	  $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

# Undo what reading along saved into the committed notebooks (outputs, .py twins): lists them, asks first
# (make clean-lab YES=1 does not ask). Only tracked files are restored; new files of yours stay.
clean-lab:
	@changed="$$(git status --porcelain --untracked-files=no -- notebooks)"; \
	if [ -z "$$changed" ]; then echo "notebooks/ is as committed; nothing to restore"; exit 0; fi; \
	echo "$$changed"; answer="$(YES)"; \
	if [ "$$answer" != 1 ]; then printf "Restore these to the committed version (your changes to them are lost)? [y/N] "; \
	  read answer || true; fi; \
	case "$$answer" in y|Y|1) git checkout -- notebooks && echo "notebooks/ restored";; *) echo "left as they are";; esac

# Instructors: nbgrader and the grading tools (loramini[instructor]); see docs/teaching.md.
instructor: $(BIN)/.installed-instructor
	@echo "nbgrader is in $(VENV)/: $(BIN)/python -m loramini.course --help (docs/teaching.md)"

# Execute notebooks for committing (sync the jupytext pair, run quietly, clean outputs); see notebooks/README.md.
# make execute NB=notebooks/02_parameter_counting.py [ARGS=--smoke]   (default: every notebook)
execute: $(BIN)/.installed-dev
	$(BIN)/python tools/execute_notebooks.py $(ARGS) $(or $(NB),$(wildcard notebooks/[0-9][0-9]*_*.py))

bench: $(BIN)/.installed-train
	$(BIN)/python -m loramini bench --quick

# Refresh the results the package ships (loramini/results/) from benchmarks/results/ after a benchmark run.
results:
	cp benchmarks/results/accuracy-vs-params.json benchmarks/results/accuracy-vs-params-smoke.json \
	  benchmarks/results/budget-curves.json benchmarks/results/decoder-runs.json \
	  benchmarks/results/shape-rates.json benchmarks/results/rates-4x-sst2.json \
	  benchmarks/results/rates-4x-stsb.json loramini/results/

clean:
	rm -rf $(VENV) .pytest_cache test-artifacts
