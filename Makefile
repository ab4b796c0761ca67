# rbm-report: `make report` builds the paper, `make test` runs the tests.
# Each sets up what it needs first: a virtual environment in .venv with the pinned
# packages, and the Fashion-MNIST files.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: help setup data test report bench lab lock clean

help:
	@echo "make report   set up, get the data, build the report"
	@echo "make test     set up, get the data, run the tests (what CI runs)"
	@echo "make bench    RBM speed benchmark"
	@echo "make lab      JupyterLab with the project's environment"

# The environment is rebuilt when the pins change.
$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[all]"
	$(BIN)/python -m ipykernel install --sys-prefix --name rbm-report --display-name "rbm-report" >/dev/null
	touch $(STAMP)

setup: $(STAMP)

# Debian's dataset-fashion-mnist package where apt can install it; otherwise
# rbmlib falls back to RBMLIB_DATA_DIR or torchvision's download, and says what
# to do if neither works.
data: setup
	@if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; else SUDO=none; fi; \
	  if [ "$$SUDO" != none ]; then \
	    echo "Installing Debian's dataset-fashion-mnist package"; \
	    $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq dataset-fashion-mnist >/dev/null || \
	      echo "apt-get could not install dataset-fashion-mnist; trying other sources"; \
	  fi; \
	fi
	$(BIN)/rbmlib data

test: data
	$(BIN)/python -m pytest

report: data
	@echo "Data ready. Still to come: the notebooks (papermill) and quarto render (see the open issues)."

lab: data
	$(BIN)/jupyter lab notebooks

lock: setup
	@{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^rbmlib'; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache
