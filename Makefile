# provnet — the two commands: `make demo` (the main job on the lab province) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PROVNET := $(VENV)/bin/provnet
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: setup demo test unit integration lint clean-lab bench

setup:            ## install Debian packages and the Python venv (idempotent)
	@scripts/bootstrap.sh

demo: setup       ## the lab province: validate, IP plan, lab up, converge with site.yml, per-site summary
	$(PROVNET) inventory validate
	$(PROVNET) inventory ipplan
	$(PROVNET) lab up
	$(VENV)/bin/ansible-playbook playbooks/site.yml
	$(PROVNET) status

test: setup lint  ## every test suite: lint, unit, then integration on one shared lab
	$(PROVNET) lab down --force
	$(PY) -m pytest -q -p no:cacheprovider tests/unit tests/integration

unit: setup
	$(PY) -m pytest -q -p no:cacheprovider tests/unit

lint: setup       ## ansible-lint, production profile (.ansible-lint), on the playbooks and roles
	PATH="$(abspath $(VENV))/bin:$$PATH" $(VENV)/bin/ansible-lint playbooks roles

clean-lab: setup
	$(PROVNET) lab down --force

bench: setup      ## scale benchmarks; results land in benchmarks/results/
	$(PY) benchmarks/bench_inventory.py
