# The two commands of the README: `make demo` and `make test`. Both set up what is missing
# first (virtualenv from requirements.lock, service jars from Maven Central) and reuse the
# cache afterwards.
SHELL := /bin/bash
VENV ?= .venv
ARGUS := $(VENV)/bin/argus
PYTEST_ARGS ?=

.PHONY: setup demo test down status lock

setup:
	@ARGUS_VENV=$(VENV) scripts/bootstrap-venv
	@$(ARGUS) setup

demo: setup
	@$(ARGUS) demo

test: setup
	@scripts/ensure-chromium
	@$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

down:
	@$(ARGUS) stack down

status:
	@$(ARGUS) stack status

# Re-resolve the pinned dependency set after editing pyproject.toml.
lock:
	@$(VENV)/bin/python -m uv pip compile pyproject.toml --extra test --extra tools --extra deploy \
		--python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements.lock
