# pyacemaker: `make quickstart` runs the TiO2 example, `make test` runs the test suite.
# Both create the virtual environment .venv and install everything they need first.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
QE := /usr/bin/pw.x /usr/share/espresso/pseudo
BUILD_TOOLS := /usr/bin/cmake /usr/bin/g++
CHROMIUM := /usr/bin/chromium
TF := $(VENV)/.nonlinear
# the one-node Slurm cluster of scripts/local-slurm (its config, state and logs)
SLURM_DIR ?= /tmp/pyacemaker-slurm
# eOn's client, built once into pyacemaker's cache (src/pyacemaker/eon.py looks there)
CACHE ?= $(or $(PYACEMAKER_CACHE_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/pyacemaker)
EONCLIENT := $(CACHE)/eon/venv/bin/eonclient

CONSTRAINTS := constraints.txt

.PHONY: quickstart test lint docs install nonlinear slurm eon clean constraints

quickstart: $(STAMP) $(BUILD_TOOLS)
	$(BIN)/pyacemaker doctor
	$(BIN)/pyacemaker run examples/quickstart.yaml
	$(BIN)/pyacemaker status runs/tio2

test: $(STAMP) $(BUILD_TOOLS) $(TF) $(QE) $(CHROMIUM) $(EONCLIENT) slurm
	$(BIN)/pyacemaker doctor
	SLURM_CONF=$(SLURM_DIR)/slurm.conf $(BIN)/python -m pytest -q
	$(BIN)/ruff check src tests benchmarks

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/hadolint Dockerfile

# Everything a run needs, with the ML-PACE plugin built into the cache: the one install the
# containers (Dockerfile, pyacemaker.def) run
install: $(STAMP) $(QE) $(BUILD_TOOLS)
	$(BIN)/pyacemaker doctor

# The documentation site (mkdocs.yml, docs/) into site/; the configuration reference and the
# troubleshooting page are generated from the code by docs/hooks.py
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

# The nonlinear trainer: pacemaker's TensorFlow backend (CPU). tf_keras and tensorpotential go in
# without their dependencies, whose metadata would pull CUDA builds of several GB.
nonlinear: $(TF)

$(TF): $(STAMP)
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) "tensorflow-cpu==2.20.0" "numpy<2.4" "pandas<3"
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) --no-deps tf_keras==2.20.1 tensorpotential==0.6.2.1
	touch $(TF)

# A one-node Slurm cluster on this machine (installs slurm-wlm and munge on first use), for the
# tests; stop it with `scripts/local-slurm stop`
slurm:
	PYACEMAKER_SLURM_DIR=$(SLURM_DIR) scripts/local-slurm start

# eOn's client for rare_events.engine: eon (scripts/eon/build: eon-akmc 3.6.0 from PyPI, built
# offline with clang 19; 25-40 min on 2 cores the first time)
eon: $(EONCLIENT)

$(EONCLIENT):
	scripts/eon/build $(CACHE)/eon/venv

# Quantum ESPRESSO (pw.x and its pseudopotential data) from Debian, for the espresso oracle
$(QE):
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y quantum-espresso quantum-espresso-data

# cmake and a C++ compiler, for `pyacemaker doctor` to build the ML-PACE plugin
$(BUILD_TOOLS):
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y cmake g++

# Chromium, headless, for the test that renders the HTML validation report
$(CHROMIUM):
	apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || { apt-get update && apt-get install -y python3-venv; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test,chgnet]'
	touch $(STAMP)

# Refresh the exact versions every install takes (after `make test` passed with newer ones);
# local version labels (torch's +cpu) are dropped: `==2.13.0` takes the CPU build where it lies
constraints: $(STAMP) $(TF)
	{ sed -n '1,2p' $(CONSTRAINTS); $(BIN)/python -m pip freeze --exclude-editable | grep -v '^pyacemaker' | sed 's/+[a-z0-9.]*$$//'; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)

clean:
	rm -rf $(VENV) runs site
