# kbypass.xdp — every entry point a user or CI needs. Each target does its own set-up
# (Debian packages for the controller, a pinned virtualenv, the collection link).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || command -v python3)
VENV := $(CURDIR)/.venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.kbypass-stamp
COLL_LINK := $(CURDIR)/.collections/ansible_collections/kbypass/xdp
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(BIN):$(PATH)
export PYTHONDONTWRITEBYTECODE := 1

PLAYBOOK := $(BIN)/ansible-playbook -i inventory/local
ARGS ?=

.PHONY: help run teardown verify facts tune bench test unit integration sanity lint molecule \
        artifact sanity-next docs ee fleet fleet-packages fleet-scale molecule-ovs ovs-bench observe \
        toolchain setup clean-venv

help:
	@echo "make run       - whole pipeline on the local netns test bed (playbooks/site.yml)"
	@echo "make test      - every test: unit, integration, sanity, lint, molecule"
	@echo "make teardown  - remove everything the run created"
	@echo "make verify | facts | tune | bench"
	@echo "make observe   - pcapng of what the XDP program sees on the DUT (reports/*-observe-*.pcapng)"
	@echo "make docs      - HTML docs of every module and role (docs/build/site/build/html)"
	@echo "make artifact | sanity-next | ee - parts of make test (tarball run, ansible-core 2.20, EE)"
	@echo "make molecule-ovs - the Open vSwitch afxdp scenario (part of make test)"
	@echo "make ovs-bench - OVS-afxdp vs Linux bridge vs kbypass-fwd l2fwd (rate, RTT)"
	@echo "make fleet     - part of make test: N Debian 12 hosts (systemd-nspawn) over SSH"
	@echo "make fleet-scale - converge wall time of 1 host vs 4 hosts, with a per-task profile"

# --- set-up -----------------------------------------------------------------------
$(STAMP): requirements.txt test-requirements.txt constraints.txt
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  need=""; for p in python3-venv python3-pip git make rsync shellcheck; do \
	    dpkg -s $$p >/dev/null 2>&1 || need="$$need $$p"; done; \
	  if [ -n "$$need" ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; fi; fi
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check \
	  -r requirements.txt -r test-requirements.txt -c constraints.txt
	touch $@

$(COLL_LINK):
	mkdir -p $(dir $@)
	ln -sfn $(CURDIR) $@

setup: $(STAMP) $(COLL_LINK)

# ansible-core alone plus requirements.txt: what a user of the collection has (make artifact).
CORE_VENV := $(CURDIR)/.venv-core
$(CORE_VENV)/.kbypass-stamp: requirements.txt constraints.txt
	test -x $(CORE_VENV)/bin/python || $(PYTHON) -m venv $(CORE_VENV)
	$(CORE_VENV)/bin/python -m pip install -q --disable-pip-version-check \
	  ansible-core -r requirements.txt -c constraints.txt
	touch $@

# Second point of the support matrix: ansible-core 2.20 on Python 3.12 (pyenv), sanity only.
ANSIBLE_CORE_NEXT ?= 2.20.10
PYTHON_NEXT ?= $(lastword $(sort $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python3)))
NEXT_VENV := $(CURDIR)/.venv-next
$(NEXT_VENV)/.kbypass-stamp: requirements.txt
	@test -n "$(PYTHON_NEXT)" || { echo "no Python 3.12 (set PYTHON_NEXT=...)" >&2; exit 1; }
	test -x $(NEXT_VENV)/bin/python || $(PYTHON_NEXT) -m venv $(NEXT_VENV)
	$(NEXT_VENV)/bin/python -m pip install -q --disable-pip-version-check \
	  ansible-core==$(ANSIBLE_CORE_NEXT) -r requirements.txt
	touch $@

# The target's toolchain (clang, libbpf, libxdp, bpftool, ...) comes from our own role,
# so tests build against exactly what users get.
toolchain: setup
	$(PLAYBOOK) playbooks/site.yml --tags toolchain $(ARGS)

# --- the product --------------------------------------------------------------------
run: setup
	$(PLAYBOOK) playbooks/site.yml $(ARGS)

teardown: setup
	$(PLAYBOOK) playbooks/teardown.yml $(ARGS)

verify: setup
	$(PLAYBOOK) playbooks/verify.yml $(ARGS)

facts: setup
	$(PLAYBOOK) playbooks/facts.yml $(ARGS)

tune: setup
	$(PLAYBOOK) playbooks/tune.yml $(ARGS)

# Capture at the XDP hook of the running bed (ARGS='-e observe_duration=5
# -e "observe_filter=udp port 4242"'); the normal program is back afterwards.
observe: setup
	$(PLAYBOOK) playbooks/observe.yml $(ARGS)

# playbooks/bench.yml on the local inventory (reports/bench-*.md/.json/.png); cleans up
# also after a failure or Ctrl-C. ARGS='-e bench_profile=full' for the long run.
bench: toolchain
	$(BIN)/python hack/bench.py $(ARGS)

# Needs Open vSwitch installed (the ovs role) and not running; starts and stops its own.
ovs-bench: toolchain
	$(BIN)/python hack/ovs_bench.py $(ARGS)

# --- tests --------------------------------------------------------------------------
test: toolchain
	$(MAKE) --no-print-directory unit integration sanity lint sanity-next ee molecule molecule-ovs \
	  artifact fleet

unit: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit

integration: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/integration

sanity: setup
	bash hack/sanity.sh

sanity-next: setup $(NEXT_VENV)/.kbypass-stamp
	SANITY_VENV=$(NEXT_VENV) PYTHON_VERSION=3.12 bash hack/sanity.sh

lint: setup
	$(BIN)/ansible-lint --offline --profile production

molecule: setup
	$(BIN)/molecule test -s default

# Open vSwitch userspace bridge with afxdp ports (kbovs* names); stops its daemons after.
molecule-ovs: setup
	$(BIN)/molecule test -s ovs

# HTML docs of every module and role: docs/build/site/build/html/index.html
docs: setup
	bash hack/docs.sh

# Execution-environment metadata: ansible-builder create + introspection (no containers).
ee: setup
	bash hack/ee-check.sh

# Build the tarball, install it into a project outside the repository, run it from there.
artifact: setup $(CORE_VENV)/.kbypass-stamp
	bash tests/artifact/run.sh

# N Debian 12 hosts (systemd-nspawn, systemd as PID 1) over SSH; KBFLEET_HOSTS=N (default 3).
# Caches: /var/cache/kbypass-fleet (base image, apt-cacher-ng), ~/.cache/kbypass/wheels.
fleet-packages:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then need=""; \
	  for p in debootstrap systemd-container apt-cacher-ng openssh-client; do \
	    dpkg -s $$p >/dev/null 2>&1 || need="$$need $$p"; done; \
	  if [ -n "$$need" ]; then apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$need >/dev/null; fi; fi

fleet: setup fleet-packages
	$(BIN)/molecule test -s fleet

# Not part of make test (about 10 minutes): README "Beyond one machine" has its figures.
fleet-scale: setup fleet-packages
	bash hack/fleet-scale.sh

clean-venv:
	rm -rf $(VENV) $(CORE_VENV) $(NEXT_VENV) .collections
