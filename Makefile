# The two commands of the course (see README.md):
#   make lab    set up a local virtual env (.venv) and open JupyterLab on notebooks/
#   make test   set up the same env and run every unit test and every notebook (fast + offline)
# Authoring (README "For authors"):
#   make check, make notebooks NB=..., make refresh
#   make site   the course website in build/site/html (README "The course website"); make site-check its tests
# >>> instructor-only
# Instructors (README "For instructors"): make student-version, make grade, make release, make colab-check
# <<< instructor-only
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
PORT   ?= 8888
JOBS   ?= 2
LAB_ARGS ?=
# BROWSER=0 leaves out the tests that need Chromium (for a machine without root; CI never does)
BROWSER ?= 1
INSTALLER ?= pip
UV_ARGS ?=
NBVAL   = --nbval-lax --nbval-current-env --nbval-cell-timeout=600

.PHONY: install lab test check notebooks refresh student-version site site-check grade release colab-check clean

install: $(VENV)/.installed

# INSTALLER=uv installs the same requirements with uv (from PyPI), which unpacks in parallel: CI uses
# it (about 70 s instead of pip's 170 s for torch's CUDA build on 2 cores), with UV_ARGS naming the
# package sources pip is configured with (.ci/uv_args.py). Everyone else: pip.
$(VENV)/.installed: requirements.txt pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "Python 3.10+ is needed, found " + sys.version.split()[0]'
	$(PYTHON) -m venv $(VENV)
ifeq ($(INSTALLER),uv)
	$(BIN)/python -m pip install -q uv
	$(BIN)/python -m uv pip install -q --python $(BIN)/python --compile-bytecode $(UV_ARGS) -r requirements.txt -e .
else
	$(BIN)/python -m pip install -q -r requirements.txt -e .
endif
	touch $@

lab: install
	$(BIN)/jupyter lab --notebook-dir=notebooks --port=$(PORT) $(if $(filter 0,$(shell id -u)),--allow-root) $(LAB_ARGS)

test: install
	COURSE_FAST=1 COURSE_OFFLINE=1 HF_HUB_OFFLINE=1 TQDM_DISABLE=1 OMP_NUM_THREADS=1 PATH="$(abspath $(BIN)):$$PATH" \
		$(BIN)/python -m pytest -n $(JOBS) --dist loadfile $(if $(filter 0,$(BROWSER)),-m "not browser") \
		$(NBVAL) tests notebooks

# The conventions check alone (also part of `make test`).
check: install
	$(BIN)/python -m course_utils.authoring.conventions --check

# Re-execute notebooks in full mode and store their outputs (what is committed).
notebooks: install
	$(BIN)/python -m course_utils.authoring.execute $(NB)

# Rewrite every notebook's Colab badge and setup cell from course_utils/authoring/conventions.py.
refresh: install
	$(BIN)/python -m course_utils.authoring.conventions

# >>> instructor-only (the student release leaves this block out)
# Regenerate notebooks/student/ from the exercise's solution source.
student-version: install
	$(BIN)/python -m course_utils.authoring.student_version

# Grade a folder of submissions, each kernel in a sandbox (README "For instructors"):
#   make grade SUBMISSIONS=path/to/submissions [OUT=grades.csv] [GRADE_ARGS="--workers 4 --fast"]
# On a Dask cluster (README "Grading a class on a Dask cluster"): SCHEDULER=tcp://HOST:8786 (or 'local',
# or $$DASK_SCHEDULER_ADDRESS), and RESOURCES=GPU=1 to send each submission to a worker with a GPU.
# grading_cluster is the grader's command line (course_utils.authoring.grading) that can also use Dask.
SUBMISSIONS ?=
OUT ?= grades.csv
GRADE_ARGS ?=
SCHEDULER ?=
RESOURCES ?=
grade: install
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=path/to/submissions [OUT=grades.csv] [SCHEDULER=tcp://HOST:8786] [RESOURCES=GPU=1]"; exit 2; }
	$(BIN)/python -m course_utils.authoring.grading_cluster $(SUBMISSIONS) --out $(OUT) \
		$(if $(SCHEDULER),--scheduler $(SCHEDULER)) $(if $(RESOURCES),--resources $(RESOURCES)) $(GRADE_ARGS)

# Run every notebook as a student on Colab would, on Colab's package versions (README "Colab replica");
# writes /content, as Colab does (run as root, or own that folder):
#   make colab-check [TORCH=colab] [COLAB_ARGS="--only 00_,08_"]
# TORCH=colab installs Colab's torch/torchvision too (with COLAB_ARGS="--python python3.12", Colab's
# Python: the full replica, before a release); UV_ARGS as for `make install` (default: the package
# sources pip is configured with, .ci/uv_args.py).
TORCH ?= ours
COLAB_ARGS ?=
colab-check: install
	$(BIN)/python -m course_utils.authoring.colab_check --torch $(TORCH) $(COLAB_ARGS) $(if $(strip $(UV_ARGS)),-- $(UV_ARGS))

# Write the public student release (no solutions, no hidden tests):
#   make release DEST=../course-release [REPO=owner/name]
# Only after the full Colab replica (make colab-check TORCH=colab) passed on these notebooks: CI runs
# part of it (.ci/run says why); COLAB_CHECK=ours accepts a full run with our torch, COLAB_CHECK=skip
# releases without (it says so).
DEST ?=
REPO ?=
COLAB_CHECK ?= colab
release: install
	@test -n "$(DEST)" || { echo "usage: make release DEST=path/outside/this/repo [REPO=owner/name]"; exit 2; }
	@if [ "$(COLAB_CHECK)" = skip ]; then echo "release: WITHOUT a full Colab replica (COLAB_CHECK=skip)"; \
	else $(BIN)/python -m course_utils.authoring.colab_check --verify --torch $(COLAB_CHECK); fi
	$(BIN)/python -m course_utils.authoring.release $(DEST) $(if $(REPO),--repo $(REPO))
# <<< instructor-only

# The course website from the committed notebooks (no re-execution); fails on any Sphinx warning.
site: install
	$(BIN)/python -m course_utils.authoring.site

# The website's own checks (also part of `make test`): build it, then its tests on that build
# (accessibility with axe-core, keyboard tour, alt texts, links, search, no solution code).
site-check: site
	SITE_DIR=build/site/html $(BIN)/python -m pytest tests/test_site.py tests/test_site_alt_text.py tests/test_site_browser.py

clean:
	rm -rf $(VENV)
