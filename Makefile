# SoulsAI: `make run` starts the whole platform on embedded defaults, `make test` runs the test suite.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip

.PHONY: run test lint bench bench-long clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt requirements-client.txt | $(PY)
	$(PIP) install --progress-bar off -r requirements.txt
	touch $@

$(VENV)/.installed-dev: requirements-dev.txt $(VENV)/.installed
	$(PIP) install --progress-bar off -r requirements-dev.txt
	touch $@

run: $(VENV)/.installed  ## run the whole platform on http://127.0.0.1:8000 (PORT, DEMO_CLIENTS, ...)
	$(PY) manage.py runplatform

test: $(VENV)/.installed-dev  ## run the whole test suite (PYTEST_ARGS to pass options)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev  ## ruff
	$(VENV)/bin/ruff check .

bench: $(VENV)/.installed-dev  ## run the benchmarks (each prints JSON on its last line)
	$(PY) bench/codec.py
	$(PY) bench/learner.py
	$(PY) bench/relay.py --clients 64 --steps 128 --obs-dim 8 --duration 20
	$(PY) bench/relay.py --clients 1000 --rate 20 --steps 32 --duration 30 --notify
	$(PY) bench/arena.py
	$(PY) bench/learning.py --env CartPole-v1 --algo dqn --clients 2
	$(PY) bench/learning.py --env CartPole-v1 --algo ppo --clients 2
	$(PY) bench/learning.py --env soulsai/IudexArena-v0 --algo dqn --clients 2 --win-rate 0.5

bench-long: $(VENV)/.installed-dev  ## the long ones: LunarLander (about 10 min each) and scaling (about 20 min)
	$(PY) bench/learning.py --env LunarLander-v2 --algo dqn --clients 2
	$(PY) bench/learning.py --env LunarLander-v2 --algo ppo --clients 2
	$(PY) bench/scaling.py

clean:  ## remove the venv and local data (var/)
	rm -rf $(VENV) var build dist *.egg-info
