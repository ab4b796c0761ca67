# rbm-report: `make report` builds the paper, `make test` runs the tests.
# Each sets up what it needs first: a virtual environment in .venv with the pinned
# packages, and the Fashion-MNIST files.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
PRESET ?= paper

.PHONY: help setup data test report bench lab lock clean

help:
	@echo "make report   set up, get the data, execute the notebooks, render the manuscript"
	@echo "              (PRESET=smoke for a quick check; FORCE=1 re-executes up-to-date notebooks)"
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

test: data postgres
	$(BIN)/python -m pytest

# Debian's PostgreSQL server binaries, for the test in which two workers share a
# study (tests/test_tuning_workers.py starts and stops its own server on
# 127.0.0.1, and is skipped without them). Nothing is started here.
.PHONY: postgres tune
postgres:
	@if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 \
	    && command -v apt-get >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; else SUDO=none; fi; \
	  if [ "$$SUDO" != none ]; then \
	    echo "Installing Debian's postgresql package (for the tuning tests)"; \
	    $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null || \
	      echo "apt-get could not install postgresql; the PostgreSQL test will be skipped"; \
	  fi; \
	fi

# The paper preset: tune the five studies, evaluate once on the test set, write
# results/summary.csv. Resumable: run it again after an interruption and it goes
# on (finished trials and evaluated seeds are kept). Two chains run side by side
# with one thread each (on two cores, torch's threads in two processes would
# fight): the CNN, LR and FNN; and the RBM models, rbm-fnn after rbm-lr so that
# it starts from rbm-lr's trained RBMs. Times: rbmlib/tuning/presets.py.
TUNE_CHAIN_A := cnn lr fnn
TUNE_CHAIN_B := rbm-lr rbm-fnn
tune: data
	@mkdir -p results/logs
	@echo "Tuning the paper preset; follow it with: tail -f results/logs/*.log"
	@chain() { args=""; for m in "$$@"; do args="$$args --model $$m"; \
	    OMP_NUM_THREADS=1 $(BIN)/rbmlib tune --preset paper --model $$m >> results/logs/tune-$$m.log 2>&1 || return 1; \
	  done; \
	  OMP_NUM_THREADS=1 $(BIN)/rbmlib evaluate --preset paper $$args >> results/logs/evaluate-$$1.log 2>&1; }; \
	chain $(TUNE_CHAIN_A) & a=$$!; chain $(TUNE_CHAIN_B) & b=$$!; \
	wait $$a; ra=$$?; wait $$b; rb=$$?; \
	if [ $$ra != 0 ] || [ $$rb != 0 ]; then echo "make tune: a chain failed; see results/logs/"; exit 1; fi
	$(BIN)/rbmlib summary --preset paper

# The notebooks run through papermill with notebooks/params/$(PRESET).yml into
# notebooks/executed/ (paper) or notebooks/executed-smoke/ (smoke), skipping those
# already executed from the same source and parameters; then `quarto render` if
# Quarto is installed (rbmlib/report.py).
report: data
	$(BIN)/python -m rbmlib.report --preset $(PRESET) $(if $(FORCE),--force)

# Speed of the RBM against the matmul peak, scikit-learn and the original
# formulation; run it on an otherwise idle machine.
bench: setup
	$(BIN)/python benchmarks/rbm_speed.py

# The source notebooks open with their smoke defaults and the rbm-report kernel;
# the executed copies that the manuscript embeds are in notebooks/executed/.
lab: data
	$(BIN)/jupyter lab notebooks

lock: setup
	@{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^rbmlib'; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache
