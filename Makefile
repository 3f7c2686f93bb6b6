# make install - put fsgateway on this host: a virtualenv with the package,
# the commands on the PATH (mount(8) finds `fsgateway` there for fstab lines),
# the systemd units, an example configuration, the Prometheus rules and the
# Grafana dashboard. Existing configuration is never overwritten. Dependencies are
# installed at the versions of constraints.txt (the tested ones). Runs from a
# checkout or from the sdist (which carries systemd/, deploy/, this Makefile).
#
#   make install                     everything (as root)
#   make install-files DESTDIR=/tmp/stage    only the files, under a staging root
#   make check-units                 systemd-analyze verify on the units
#   make check-rules                 promtool check rules + promtool test rules
#   make typecheck                   mypy on fsgateway, checker and syncd (the .venv of scripts/setup)
#   make test-pure                   the in-process tests of pure logic: no server, no mount, no
#                                    programs started (a couple of seconds)
#   make test-local                  everything that needs no server and no mount (also the tests
#                                    that start the commands, promtool, make: a minute or two)
#   make docs                        man pages and bash/zsh completion into $(BUILD), generated
#                                    from the commands' argparse parsers (argparse-manpage, shtab)
#
# Variables: PREFIX (/usr/local), VENV (/opt/fsgateway), SYSTEMD_DIR
# (/etc/systemd/system), SYSCONF_DIR (/etc/fsgateway), PROMETHEUS_DIR
# (/etc/prometheus), PYTHON (python3), DESTDIR (empty), BUILD (build), DOCS_BIN (the
# bin/ of a venv with fsgateway[docs]; default $(VENV)/bin), TEST_PYTHON (.venv/bin/python, for test-*).

PREFIX ?= /usr/local
VENV ?= /opt/fsgateway
SYSTEMD_DIR ?= /etc/systemd/system
SYSCONF_DIR ?= /etc/fsgateway
PROMETHEUS_DIR ?= /etc/prometheus
PYTHON ?= python3
DESTDIR ?=
BUILD ?= build
DOCS_BIN ?= $(VENV)/bin
TEST_PYTHON ?= .venv/bin/python
COMMANDS = fsgateway fsgateway-checker fsgateway-fw fsgateway-device fsgateway-syncd
UNITS = systemd/fsgateway@.service systemd/fsgateway-checker.service systemd/fsgateway-syncd.service
# command=module whose parser() builds its argparse parser
PARSERS = fsgateway=fsgateway.mount.cli fsgateway-checker=checker.cli fsgateway-fw=checker.fw \
    fsgateway-device=checker.device fsgateway-syncd=syncd.cli

.PHONY: install install-python install-files install-docs docs check-units check-rules typecheck deadcode test-pure test-local

install: install-python install-files install-docs
	systemctl daemon-reload 2>/dev/null || true
	@echo "next: edit $(SYSCONF_DIR)/fsgateway.toml, write $(SYSCONF_DIR)/passwd (0600),"
	@echo "      systemctl enable --now fsgateway@srv-firmware fsgateway-checker fsgateway-syncd"

install-python:
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet -c constraints.txt '.[docs]'
	install -d $(PREFIX)/bin
	for c in $(COMMANDS); do ln -sf $(VENV)/bin/$$c $(PREFIX)/bin/$$c; done

install-files:
	install -d $(DESTDIR)$(SYSTEMD_DIR) $(DESTDIR)$(PROMETHEUS_DIR) \
	    $(DESTDIR)$(PREFIX)/share/fsgateway $(DESTDIR)$(PREFIX)/share/doc/fsgateway
	install -d -m 0755 $(DESTDIR)$(SYSCONF_DIR)
	install -m 0644 $(UNITS) $(DESTDIR)$(SYSTEMD_DIR)/
	install -m 0644 deploy/prometheus/fsgateway-rules.yml $(DESTDIR)$(PROMETHEUS_DIR)/
	install -m 0644 deploy/prometheus/prometheus.yml deploy/grafana/fsgateway-dashboard.json \
	    $(DESTDIR)$(PREFIX)/share/fsgateway/
	install -m 0644 README.md $(DESTDIR)$(PREFIX)/share/doc/fsgateway/
	install -m 0644 systemd/README.md $(DESTDIR)$(PREFIX)/share/doc/fsgateway/systemd.md
	for f in fsgateway.toml srv-firmware.env; do \
	    [ -e $(DESTDIR)$(SYSCONF_DIR)/$$f ] || install -m 0644 deploy/etc/fsgateway/$$f $(DESTDIR)$(SYSCONF_DIR)/$$f; \
	done

docs:
	install -d $(BUILD)/man $(BUILD)/bash-completion $(BUILD)/zsh
	version=$$($(DOCS_BIN)/python -c 'import importlib.metadata as m; print(m.version("fsgateway"))') && \
	for pair in $(PARSERS); do c=$${pair%%=*}; m=$${pair#*=}; \
	    $(DOCS_BIN)/argparse-manpage --module $$m --function parser --prog $$c --project-name fsgateway \
	        --version "$$version" --manual-title "fsgateway manual" --output $(BUILD)/man/$$c.1 && \
	    $(DOCS_BIN)/shtab --shell=bash --prefix "$$(echo $$c | tr - _)" $$m.parser >$(BUILD)/bash-completion/$$c && \
	    $(DOCS_BIN)/shtab --shell=zsh --prefix "$$(echo $$c | tr - _)" $$m.parser >$(BUILD)/zsh/_$$c || exit 1; \
	done

install-docs: docs
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions \
	    $(DESTDIR)$(PREFIX)/share/zsh/site-functions
	install -m 0644 $(BUILD)/man/*.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	install -m 0644 $(BUILD)/bash-completion/* $(DESTDIR)$(PREFIX)/share/bash-completion/completions/
	install -m 0644 $(BUILD)/zsh/_* $(DESTDIR)$(PREFIX)/share/zsh/site-functions/

check-units:  # a template is verified through an instance of it
	tmp=$$(mktemp -d) && cp $(UNITS) $$tmp/ && cp systemd/fsgateway@.service $$tmp/fsgateway@srv-firmware.service && \
	    cd $$tmp && systemd-analyze verify fsgateway@srv-firmware.service fsgateway-checker.service \
	    fsgateway-syncd.service; rc=$$?; rm -rf $$tmp; exit $$rc

check-rules:
	promtool check rules deploy/prometheus/fsgateway-rules.yml
	cd deploy/prometheus && promtool test rules fsgateway-rules.test.yml fsgateway-rules.days.test.yml

typecheck:  # settings in pyproject.toml [tool.mypy]
	.venv/bin/mypy

deadcode:  # settings in pyproject.toml [tool.vulture]
	.venv/bin/vulture

# The tiers are markers tests/conftest.py gives every test from what it uses (pyproject.toml lists them).
test-pure:
	$(TEST_PYTHON) -m pytest -q -m "not s3 and not fuse and not e2e and not postgres and not process" tests

test-local:
	$(TEST_PYTHON) -m pytest -q -m "not s3 and not fuse and not e2e and not postgres" tests
