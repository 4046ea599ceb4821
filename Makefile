# probe — every target installs what it needs (Debian packages, .venv) when it is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV    := .venv
PY      := $(VENV)/bin/python
PROBE   := $(VENV)/bin/probe
STAMP   := $(VENV)/.installed
TOPO    ?= inventory/lab-3regions.yaml
# the demo takes down its own lab only (never a test run's beside it)
LABNAME ?= lab3
LABINV  ?= /run/probe-lab/lab3/inventory.yaml
DEMO_ARGS ?= --duration 5 --omit 2
# command:package pairs; a package is installed when its command is missing
SYSDEPS := /usr/sbin/sshd:openssh-server ssh:openssh-client iperf3:iperf3 ping:iputils-ping \
           fping:fping ip:iproute2 pgrep:procps ssh-keygen:openssh-client unshare:util-linux \
           tc:iproute2 chromium:chromium nft:nftables busybox:busybox
SUDO    := $(if $(filter 0,$(shell id -u)),,sudo)

.PHONY: help sysdeps venv demo demo-field demo-large test test-unit bench lint clean lab-up lab-down

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

sysdeps: ## install the Debian packages the lab and the tools need (apt-get, once)
	@missing=""; for pair in $(SYSDEPS); do cmd=$${pair%%:*}; pkg=$${pair##*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  policy=/usr/sbin/policy-rc.d; made=""; \
	  if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee $$policy >/dev/null; \
	    $(SUDO) chmod +x $$policy; made=1; fi; \
	  $(SUDO) apt-get update -qq && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  rc=$$?; [ -n "$$made" ] && $(SUDO) rm -f $$policy; exit $$rc; \
	fi

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP) ## create .venv with probe and its dev tools

demo: sysdeps venv ## lab up -> probe run (ping + iperf3) -> grids, report, calc, gate -> lab down
	@set -e; trap '$(PROBE) lab down --name $(LABNAME) >/dev/null' EXIT; \
	$(PROBE) lab up $(TOPO); \
	$(PROBE) run $(LABINV) -o reports/ $(DEMO_ARGS) || [ $$? -eq 4 ]; \
	$(PROBE) show reports/latest --metric rtt_p50_ms; \
	$(PROBE) show reports/latest --metric rtt_p50_ms --by region; \
	$(PROBE) show reports/latest --metric bw_mbps; \
	$(PROBE) report reports/latest --policy inventory/policies/lab-wan.yaml; \
	$(PROBE) calc reports/latest --model llama-3-8b --stages 3 --scenario decode,prefill; \
	$(PROBE) groups reports/latest --max-rtt 50ms --stages 2; \
	$(PROBE) gate reports/latest --policy inventory/policies/coverage.yaml || true; \
	echo "report: reports/latest/report.html"

demo-field: ## the demo on lab-field.yaml: networks, NAT, a firewall, non-root, busybox, cubic/bbr
	@$(MAKE) --no-print-directory demo TOPO=inventory/lab-field.yaml \
	  LABNAME=field LABINV=/run/probe-lab/field/inventory.yaml DEMO_ARGS="--networks all --duration 3 --omit 1"

demo-large: ## the demo on lab-large.yaml: 60 hosts in 6 regions, sampled bandwidth (~3 min)
	@$(MAKE) --no-print-directory demo TOPO=inventory/lab-large.yaml LABNAME=biglab \
	  LABINV=/run/probe-lab/biglab/inventory.yaml DEMO_ARGS="--pairs sample:1 --duration 2 --omit 0"

# Unit tests on two workers, a file to one worker (a module fixture runs once: test_bad_input's
# corpus is ~80 s of subprocesses); lab tests one at a time: lab hosts share the machine's /tmp
# and /etc/passwd, so two labs' "nothing left behind" checks and accounts would see each other.
test: sysdeps venv ## run every test (the lab tests need root)
	$(PY) -m pytest -q -m "not lab" -n 2 --dist loadfile
	$(PY) -m pytest -q -m lab

test-unit: venv ## tests that need no lab
	$(PY) -m pytest -q -m "not lab"

bench: sysdeps venv ## benchmarks; JSON under reports/bench/
	@mkdir -p reports/bench
	$(PY) -m bench

lint: venv ## ruff, mypy --strict, import-linter
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

lab-up: sysdeps venv ## bring the default lab up
	$(PROBE) lab up $(TOPO)

lab-down: venv ## take every lab down
	$(PROBE) lab down

clean: ## remove the virtualenv and caches
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
