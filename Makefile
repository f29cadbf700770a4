# Thin targets over the project's entry points. `make run T=400` and `make test` install first when needed.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
T ?= 400
STUDY ?= default
POTENTIAL ?= fumi-tosi
# Keep thread counts explicit: builds, LAMMPS and tests share 2 cores.
export OMP_NUM_THREADS ?= 1
export OPENBLAS_NUM_THREADS ?= 1
export MKL_NUM_THREADS ?= 1
STAMP := $(VENV)/.installed

.PHONY: install lammps chromium slurm report run decks finetune sweep test test-fast bench gpu-bundle gpu-check clean help

help:
	@echo "make run T=400    run the default study at T (K) with POTENTIAL=$(POTENTIAL); print D ± σ"
	@echo "make test         build LAMMPS and install SLURM if needed (make lammps, make slurm), run the test suite"
	@echo "make report DIR=runs/default   HTML report (Arrhenius, D bars, MSD diagnostics, table, provenance)"
	@echo "make decks        render STUDY=$(STUDY) into runs/ with array job scripts for SITE=$(SITE)"
	@echo "make bench        benchmarks (ratios against baselines measured in the same run)"
	@echo "make finetune ARGS='train --strategy naive --data DIR --name NAME --foundation mace-mpa-0'"
	@echo "                  one fine-tuning step (python -m finetune --help lists them)"
	@echo "make sweep SWEEP=inputs/sweeps/paper.toml   strategies x N x replicas -> models -> D bar chart"
	@echo "make gpu-bundle   what a GPU machine without network needs for the GPU check (.gpu-bundle/)"
	@echo "make gpu-check OUT=gpu-results   on that GPU machine: build LAMMPS there, parity and ns/day"

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt torch==2.13.0
	$(PY) -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[ml,test]'
	@touch $@

# LAMMPS with ML-IAP + PYTHON (MACE), KSPACE and PLUGIN (DeePMD), cached outside the work tree by its inputs.
lammps: $(STAMP)
	VENV=$(VENV) bash tools/lammps.sh

# headless Chromium for the report tests, from Debian packages, cached outside the work tree
chromium: $(STAMP)
	VENV=$(VENV) bash tools/chromium.sh

# SLURM + MUNGE from Debian packages (as root) for the one-node cluster the tests start (tests/test_slurm.py)
slurm:
	bash tools/slurm.sh

# the HTML report of a study directory: make report DIR=runs/default
DIR ?= runs/$(STUDY)
report: $(STAMP)
	$(PY) -m analysis.report $(DIR)

run: $(STAMP)
	$(PY) -m driver run --study $(STUDY) --temperature $(T) --potential $(POTENTIAL)

# decks for a cluster: SITE is a site TOML (see inputs/sites/generic-slurm.toml) or generic-slurm / generic-pbs
SITE ?= generic-slurm
ACCELERATOR ?= gpu
decks: $(STAMP)
	$(PY) -m driver render --study $(STUDY) --accelerator $(ACCELERATOR) --site $(SITE)

# LAMMPS is built for the steps that run it (selfgen, train, validate, sweep); --help, data, select and list
# need none, and neither does an empty ARGS (the usage)
FINETUNE_NO_LAMMPS := $(or $(filter -h --help,$(ARGS)),$(filter data select list,$(firstword $(ARGS))),$(if $(strip $(ARGS)),,usage))
finetune: $(STAMP) $(if $(FINETUNE_NO_LAMMPS),,lammps)
	$(PY) -m finetune $(ARGS)

SWEEP ?= inputs/sweeps/paper.toml
sweep: $(STAMP) lammps
	$(PY) -m finetune sweep $(SWEEP)

test: $(STAMP) lammps chromium slurm
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not integration and not needs_build"

bench: $(STAMP)
	$(PY) -m tests.bench

# the GPU check: prepare here (registries reachable), run on a GPU machine (no network needed there)
gpu-bundle: $(STAMP)
	VENV=$(VENV) bash tools/gpu-bundle.sh

OUT ?= gpu-results
gpu-check:
	bash tools/gpu-check.sh $(OUT)

clean:
	rm -rf $(VENV) build *.egg-info
