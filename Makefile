# riffd: `make demo` runs the demo, `make test` runs the whole test suite.
# Both create .venv and install what is missing (system packages with apt when run as root).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
# python3-zmq: the tests' second user (nobody) cannot run .venv, so its client runs on Debian's
# /usr/bin/python3 (tests/reliability/test_other_user.py)
# tmux: the live view's test drives `riffd view` in a tmux pane; iproute2: the Link tests bring
# up the loopback interface of a private network namespace (`ip link`)
DEBIAN_PACKAGES := jackd2 libportaudio2 fluidsynth python3-zmq tmux iproute2
MACOS_PACKAGES  := jack portaudio fluid-synth tmux

.PHONY: demo test setup system-deps train wheel bench stress soak clean

demo: setup
	$(PY) -m riffd.daemon demo

test: setup
	$(PY) -m pytest

setup: system-deps $(VENV)/.installed

# torch first, pinned: a plain `torch` requirement would pull a multi-GB CUDA build here.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

system-deps:
	@missing=""; \
	command -v jackd >/dev/null 2>&1 || missing="$$missing jackd2"; \
	command -v fluidsynth >/dev/null 2>&1 || missing="$$missing fluidsynth"; \
	command -v tmux >/dev/null 2>&1 || missing="$$missing tmux"; \
	[ "$$(uname)" = Darwin ] || command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	{ ldconfig -p 2>/dev/null | grep -q libportaudio.so.2; } || [ "$$(uname)" = Darwin ] || missing="$$missing libportaudio2"; \
	[ "$$(uname)" = Darwin ] || /usr/bin/python3 -c "import zmq" 2>/dev/null || missing="$$missing python3-zmq"; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing system packages:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEBIAN_PACKAGES) >/dev/null; \
	else \
		echo "riffd needs system packages that are missing:$$missing"; \
		echo "  Debian/Ubuntu: sudo apt-get install $(DEBIAN_PACKAGES)"; \
		echo "  macOS:         brew install $(MACOS_PACKAGES)"; \
		exit 1; \
	fi

train: setup
	$(PY) -m riffd.training train melody_erk

# the wheel users install (pip install dist/riffd-*.whl); tests/test_package.py installs it into a
# fresh virtualenv and runs riffd from another folder
wheel: setup
	$(PY) -m pip wheel --no-deps --no-build-isolation --wheel-dir dist .

# bench: the short benchmarks (minutes). stress and soak run long: 20 and 60 minutes.
LONG_BENCHMARKS := stress_timing.py soak.py
bench: setup
	for script in benchmarks/*.py; do \
		case " $(LONG_BENCHMARKS) " in *" $$(basename $$script) "*) continue;; esac; \
		case $$(basename $$script) in _*) continue;; esac; \
		echo "== $$script"; $(PY) $$script || exit 1; done

# note timing under CPU burners, realtime and non-realtime JACK (STRESS_ARGS="--minutes 1")
stress: setup
	$(PY) benchmarks/stress_timing.py --json out/stress_timing.json $(STRESS_ARGS)

# an hour of continuous play: RSS growth, lost and late notes (out/soak.json, out/soak.png)
soak: setup
	$(PY) benchmarks/soak.py $(SOAK_ARGS)

clean:
	rm -rf out runs .cache build dist
