# rbm-report: `make report` builds the paper, `make test` runs the tests.
# Each sets up what it needs first: a virtual environment in .venv with the pinned
# packages, and the Fashion-MNIST files. `make help` lists every target.

PYTHON   ?= python3
VENV     ?= .venv
BIN      := $(VENV)/bin
STAMP    := $(VENV)/.installed-stamp
PRESET   ?= paper
THREADS  ?= 1
LAB_ARGS ?=
# Evaluated only by the recipes that use it (recursive `=`); JupyterLab needs --allow-root as root.
USER_ID   = $(shell id -u)

# torch's matrix products round differently with different thread counts, and
# sampling amplifies the difference: a fixed count makes a run repeatable
# (README, Determinism). $(call threads,N) prefixes a command with it.
threads = OMP_NUM_THREADS=$(1) MKL_NUM_THREADS=$(1)
# $(call apt_install,package,what for,what happens without it): one shell command that
# installs a Debian package with apt-get (as root, or through sudo) where it can, and
# says so either way; nothing fails when it cannot.
apt_install = if command -v apt-get >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; elif command -v sudo >/dev/null 2>&1; then SUDO=sudo; else SUDO=none; fi; \
	  if [ "$$SUDO" != none ]; then \
	    echo "Installing Debian's $(1) package ($(2))"; \
	    $$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(1) >/dev/null \
	      || echo "apt-get could not install $(1); $(3)"; \
	  fi; \
	else echo "$(1) is not installed and there is no apt-get; $(3)"; fi

.PHONY: help setup data test postgres pdftotext chromium report checked-outputs tune bench lab lock clean

help:
	@echo "make report    set up, get the data, execute the notebooks, render the manuscript"
	@echo "               PRESET=smoke  the smoke preset (about 3 minutes) into notebooks/executed-smoke/"
	@echo "               FORCE=1       re-execute notebooks that are already up to date"
	@echo "               THREADS=n     torch threads of the notebooks (default $(THREADS); same count, same numbers)"
	@echo "make test      set up, get the data, run the tests and the source notebooks under nbval (what CI runs)"
	@echo "make checked-outputs  store in the source notebooks the outputs of their nbval-check-output cells"
	@echo "               (executed at their smoke defaults, one thread), which nbval compares"
	@echo "make tune      tune, evaluate and summarise the paper preset: hours, one thread per chain,"
	@echo "               resumable, logs in results/logs/"
	@echo "               UNTIL=15:05   start no trial or refit that would not end by then (run again to go on)"
	@echo "make lab       JupyterLab on notebooks/ with the rbm-report kernel (THREADS=n as for report)"
	@echo "               LAB_ARGS=\"--no-browser --ip=0.0.0.0 --port=8888\"  passed on to jupyter lab"
	@echo "make bench     RBM speed benchmark into results/benchmarks/ (on an otherwise idle machine)"
	@echo "make setup     create $(VENV) with the pinned packages (about 6.4 GB, several minutes, the first time)"
	@echo "make data      find, verify and cache Fashion-MNIST (Debian's package where apt can install it)"
	@echo "make postgres  install Debian's PostgreSQL server binaries for the two-worker tuning test"
	@echo "make pdftotext install Debian's poppler-utils for the PDF checks of the render test"
	@echo "make chromium  install Debian's chromium for the HTML layout check of the render test"
	@echo "make lock      rewrite constraints.txt from $(VENV) after changing a pin in pyproject.toml"
	@echo "make clean     remove $(VENV) and the pytest cache (the data and results stay)"
	@echo "make help      this list"

# The environment is rebuilt when the pins change.
$(STAMP): pyproject.toml constraints.txt
	@echo "Installing the pinned packages into $(VENV): about 6.4 GB the first time (PyTorch's CUDA build), several minutes"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --progress-bar on --upgrade "pip>=24"
	$(BIN)/python -m pip install --progress-bar on -c constraints.txt -e ".[all]"
	$(BIN)/python -m ipykernel install --sys-prefix --name rbm-report --display-name "rbm-report" >/dev/null
	touch $(STAMP)

setup: $(STAMP)

# Debian's dataset-fashion-mnist package where apt can install it; otherwise
# rbmlib falls back to RBMLIB_DATA_DIR or torchvision's download, and says what
# to do if neither works.
data: setup
	@if [ ! -d /usr/share/datasets/fashion-mnist ]; then \
	  $(call apt_install,dataset-fashion-mnist,Fashion-MNIST,trying other sources); \
	fi
	$(BIN)/rbmlib data

# pytest collects the tests and the source notebooks (pyproject.toml: testpaths, --nbval-lax):
# nbval runs each notebook at its smoke defaults and compares its nbval-check-output cells.
test: data postgres pdftotext chromium
	$(BIN)/python -m pytest

# Debian's PostgreSQL server binaries, for the test in which two workers share a
# study (tests/tuning/test_workers.py starts and stops its own server on
# 127.0.0.1, and is skipped without them). Nothing is started here.
postgres:
	@if ! command -v pg_ctl >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then \
	  $(call apt_install,postgresql,for the tuning tests,the PostgreSQL test will be skipped); \
	fi

# Debian's poppler-utils, whose pdftotext lets the render test read the PDF
# (tests/report/test_render.py; skipped without it).
pdftotext:
	@if ! command -v pdftotext >/dev/null 2>&1; then \
	  $(call apt_install,poppler-utils,for the PDF checks of the render test,the PDF checks will be skipped); \
	fi

# Debian's chromium, in which the render test measures the HTML article's tables,
# figures and equations against its column (skipped without it; a Chrome on the
# PATH serves as well).
chromium:
	@if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1 \
	    && ! command -v google-chrome >/dev/null 2>&1; then \
	  $(call apt_install,chromium,for the HTML layout check of the render test,that check will be skipped); \
	fi

# Tune every study of $(PRESET) (default paper), then evaluate once on the test set and
# write its summary.csv. Resumable: run it again after an interruption and it goes
# on (finished trials and evaluated seeds are kept). Two chains run side by side
# with one thread each (on two cores, torch's threads in two processes would
# fight). Both go through the same list of models, costliest first (evaluating: the one
# model whose refits are not shared first, EVALUATE_ORDER_<preset>), and each
# takes the next model the other is not running (`--skip-busy`, rbmlib/tuning/claim.py),
# so neither idles while the other has hours left; a tuning chain with no model left
# to take then joins the other's study as its second worker (`--join`, a second pass).
# Evaluation starts only when
# both chains are done: no test score is seen while a model is still tuned
# (protocol 2 refuses it anyway); it shares out the refits, seed by seed, the same way.
# Then the few-labels study on the evaluated refits, where the preset has one
# (rbmlib few-labels --if-applicable: protocol 2 and the smoke preset, its miniature).
# Costs: results/benchmarks/trial_cost.csv; where the studies stand: rbmlib status.
TUNE_ORDER_paper := rbm-fnn cnn fnn rbm-lr lr
TUNE_ORDER_protocol2 := rbm-fnn cnn pre-fnn fnn rbm-lr random-lr lr pca-lr
TUNE_ORDER_smoke := $(TUNE_ORDER_protocol2)
# The refits of a model that only one process may run (random-lr: one refit fills
# much of the memory; rbmlib/tuning/claim.py) come first, so that the other chain
# shares out the rest meanwhile instead of idling at the end.
EVALUATE_ORDER_protocol2 := random-lr rbm-fnn rbm-lr cnn pre-fnn fnn lr pca-lr
EVALUATE_ORDER_smoke := $(EVALUATE_ORDER_protocol2)
order = $(or $(if $(filter evaluate,$(1)),$(EVALUATE_ORDER_$(PRESET))),$(TUNE_ORDER_$(PRESET)))
# `rbmlib $(1) --skip-busy --model m` for every model in two chains side by side, one thread
# each, then (tuning only) the same with --join; logs in results/logs/$(PRESET)-$(1)-<model>.log.
# The few-labels looks of the seeds whose refits are done (rbmlib few-labels --ready-only),
# appended to results/logs/$(PRESET)-few-labels.log: after each model's refits, while their
# RBMs are in the cache, which a later session's checkout would not have.
few_labels = $(call threads,1) $(BIN)/rbmlib few-labels --if-applicable $(if $(1),$(1) )--preset $(PRESET) \
	$(if $(UNTIL),--until $(UNTIL_AT)) >> results/logs/$(PRESET)-few-labels.log 2>&1
# Tuning passes after the first: each joins a study that the other chain runs, and each
# model's target can still grow (a preset with equal_finished runs every study to as many
# finished trials as the study with the most, which grows while that one lacks complete
# trials), so passes follow until every study has its budget (`rbmlib status --budgets`),
# or one that UNTIL stopped, or these run out (`make tune` again goes on).
JOIN_PASSES := --join --join --join --join
budgets_met = $(BIN)/rbmlib status --budgets --preset $(PRESET) >> results/logs/$(PRESET)-budgets.log 2>&1
# UNTIL as one date and time, fixed when make starts: `--until 20:10` alone means its next
# occurrence, so a command that a chain starts after 20:10 would take tomorrow's 20:10 and run on.
UNTIL_AT := $(if $(UNTIL),$(shell at=$$(date -d '$(UNTIL)' +%s) && { [ $$at -gt $$(date +%s) ] || at=$$((at + 86400)); } && date -d @$$at +%Y-%m-%dT%H:%M))
# Where UNTIL stops a model (exit status 3: its next trial or refit would not end in time,
# or nobody knows its length yet), the chain goes on to the others, whose next trial
# may still fit (a shorter one, or one it can join), and ends with status 3, which sets
# `stopped`; any other failure ends the chain and the recipe.
chains = chain() { st=0; for pass in "" $(if $(filter tune,$(1)),$(JOIN_PASSES)); do for m in $(call order,$(1)); do \
	    $(call threads,1) $(BIN)/rbmlib $(1) --skip-busy $$pass --preset $(PRESET) --model $$m $(if $(UNTIL),--until $(UNTIL_AT)) \
	      >> results/logs/$(PRESET)-$(1)-$$m.log 2>&1 || { rc=$$?; [ $$rc = 3 ] || return $$rc; st=3; }; \
	    $(if $(filter evaluate,$(1)),$(call few_labels,--ready-only --skip-busy) || { rc=$$?; [ $$rc = 3 ] || return $$rc; st=3; };) \
	  done; $(if $(filter tune,$(1)),$(call budgets_met) && break; [ $$st = 3 ] && [ -n "$$pass" ] && break;) \
	  done; return $$st; }; \
	chain & a=$$!; chain & b=$$!; \
	wait $$a; ra=$$?; wait $$b; rb=$$?; \
	for rc in $$ra $$rb; do case $$rc in 0|3) ;; *) echo "make tune: a chain of rbmlib $(1) failed; see results/logs/$(PRESET)-$(1)-*.log"; exit 1;; esac; done; \
	stopped=$$( { [ $$ra = 3 ] || [ $$rb = 3 ]; } && echo 1)
tune: data
	@mkdir -p results/logs
	@echo "Tuning the $(PRESET) preset; follow it with: tail -f results/logs/$(PRESET)-*.log"
	@echo "  (where it stands: $(BIN)/rbmlib status --preset $(PRESET))"
	@$(call chains,tune); \
	if [ -n "$$stopped" ]; then echo "make tune: stopped for UNTIL=$(UNTIL) (nothing evaluated yet); run it again to go on"; exit 0; fi; \
	$(call budgets_met) || { echo "make tune: a study still lacks its budget (see results/logs/$(PRESET)-budgets.log); run it again to go on"; exit 0; }; \
	echo "Evaluating the $(PRESET) preset on the test set (logs: results/logs/$(PRESET)-evaluate-*.log)"; \
	$(call chains,evaluate); \
	if [ -n "$$stopped" ]; then echo "make tune: stopped for UNTIL=$(UNTIL) in the evaluation; run it again to go on"; exit 0; fi; \
	$(call few_labels) || { [ $$? = 3 ] || exit 1; echo "make tune: stopped for UNTIL=$(UNTIL) in the few-labels study; run it again to go on"; exit 0; }; \
	$(BIN)/rbmlib summary --preset $(PRESET)

# The notebooks run through papermill with notebooks/params/$(PRESET).yml into
# notebooks/executed/ (paper) or notebooks/executed-smoke/ (smoke), skipping those
# already executed from the same source and parameters; then `quarto render` with
# the `quarto` on the PATH, else the one of $(VENV) (`pip install -e .[render]`), else
# a note on what to install (rbmlib/report/pipeline.py). The kernels inherit the thread count.
report: data
	$(call threads,$(THREADS)) $(BIN)/python -m rbmlib.report --preset $(PRESET) $(if $(FORCE),--force)

# After changing a notebook or the code it calls: execute the source notebooks at their smoke
# defaults with one thread, as CI runs them, and keep in each only the outputs of its cells
# tagged nbval-check-output, the outputs that nbval compares (ONLY="02_rbm_anatomy ..." for some).
checked-outputs: data
	$(call threads,1) $(BIN)/python -m rbmlib.report --store-checked-outputs $(if $(ONLY),--only $(ONLY))

# Speed of the RBM (float32 and bf16) against the float32 and bf16 matmul peaks,
# scikit-learn, learnergy, rbms and the original formulation; run it on an
# otherwise idle machine. The peers come from the `bench` extra (pinned in constraints.txt).
bench: setup
	$(BIN)/python -m pip install --progress-bar on -c constraints.txt -e ".[bench]"
	$(BIN)/python benchmarks/rbm_speed.py

# The source notebooks open with their smoke defaults and the rbm-report kernel
# (with the report's thread count, so a notebook run here gives the report's numbers);
# the executed copies that the manuscript embeds are in notebooks/executed/.
lab: data
	$(call threads,$(THREADS)) $(BIN)/jupyter lab notebooks $(if $(filter 0,$(USER_ID)),--allow-root) $(LAB_ARGS)

lock: setup
	@{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | grep -v '^rbmlib'; } > constraints.new
	mv constraints.new constraints.txt

clean:
	rm -rf $(VENV) .pytest_cache
