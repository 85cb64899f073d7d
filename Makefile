# pbrl: `make train` and `make test` set everything up on a fresh Debian/Ubuntu machine.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=
TEST_WORKERS ?= 2

.PHONY: setup system-deps train test bench bench-ppo baseline report clean

# The virtualenv, rebuilt when the package metadata changes. torch comes from constraints.txt
# (the CPU build 2.13.0): an unconstrained torch would pull a multi-GB CUDA wheel.
$(VENV)/.installed: setup.cfg pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch
	$(BIN)/pip install -q -c constraints.txt -e ".[dev,dmc,metaworld]"
	touch $@

# The benchmark's peers (stable-baselines3, SBX and CPU JAX), installed by `make bench` only.
$(VENV)/.bench: $(VENV)/.installed
	$(BIN)/pip install -q -c constraints.txt -e ".[bench]"
	touch $@

# Debian packages for headless MuJoCo rendering (EGL, with OSMesa as the fallback) and the
# chromium that the viewer's browser test drives (playwright never downloads a browser here).
# Installed when running as root; otherwise printed as a hint (videos are skipped without them).
SYSTEM_PACKAGES := libegl1 libgl1 libosmesa6 chromium
system-deps:
	@if ! (ldconfig -p | grep -q 'libEGL.so.1' && ldconfig -p | grep -q 'libOSMesa.so' && command -v chromium >/dev/null); then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $(SYSTEM_PACKAGES); \
	  else echo "note: run 'sudo apt-get install $(SYSTEM_PACKAGES)' for videos and the viewer's browser test"; fi; \
	fi

setup: system-deps $(VENV)/.installed

train: setup           ## the default run (a small PEBBLE run on Pendulum-v1, ~3 minutes after setup); pass overrides as ARGS="env=hopper ..."
	$(BIN)/pbrl-train $(ARGS)

test: setup            ## the whole test suite, on TEST_WORKERS pytest-xdist workers (a test file runs on one worker)
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=10 tests

bench: setup $(VENV)/.bench  ## plain SAC throughput: pbrl beside stable-baselines3 and SBX (~15 minutes)
	$(BIN)/python experiments/bench_sac.py

bench-ppo: setup $(VENV)/.bench  ## PPO throughput: pbrl beside stable-baselines3, same settings (~10 minutes)
	$(BIN)/python experiments/bench_ppo.py

baseline: setup        ## SAC on the true reward, resumable multiruns + report
	$(BIN)/python experiments/sac_baseline.py

clean:
	rm -rf $(VENV) *.egg-info
