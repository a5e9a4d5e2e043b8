# The two commands of the course (see README.md):
#   make lab    set up a local virtual env (.venv) and open JupyterLab on notebooks/
#   make test   set up the same env and run every unit test and every notebook (fast + offline)
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PORT   ?= 8888
JOBS   ?= 2

.PHONY: install lab test notebooks refresh clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is needed, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -r requirements.txt -e .
	touch $@

lab: install
	$(BIN)/jupyter lab --notebook-dir=notebooks --port=$(PORT) $(if $(filter 0,$(shell id -u)),--allow-root)

test: install
	COURSE_FAST=1 COURSE_OFFLINE=1 HF_HUB_OFFLINE=1 TQDM_DISABLE=1 OMP_NUM_THREADS=1 PATH="$(abspath $(BIN)):$$PATH" \
		$(BIN)/python -m pytest -n $(JOBS) --dist loadfile

# Re-execute notebooks in full mode and store their outputs (what is committed).
notebooks: install
	$(BIN)/python -m course_utils.notebooks --execute $(NB)

# Rewrite every notebook's Colab badge and setup cell from course_utils/notebooks.py.
refresh: install
	$(BIN)/python -m course_utils.notebooks

clean:
	rm -rf $(VENV)
