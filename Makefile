# Newcomer entry points: `make demo` and `make test` (both set up what they need).
VENV ?= .venv
PY := $(VENV)/bin/python
.PHONY: setup system-packages demo-packages venv homeassistant test unit demo fleet-demo e2e bench bench-quick ipk clean

setup: system-packages venv

# the Debian packages: everything the tests need, or only the demo's (mosquitto, python3-venv)
system-packages:
	@bash ci/install-system-packages.sh test

demo-packages:
	@bash ci/install-system-packages.sh demo

$(VENV)/.installed: setup.py collector/pyproject.toml requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q -e . -e collector
	touch $@

venv: $(VENV)/.installed

# Home Assistant Core in .venv-ha for tests/homeassistant (once; about 4 min from PyPI)
homeassistant:
	@bash ci/install-homeassistant.sh

test: setup homeassistant
	$(PY) -m pytest -q tests

unit: venv
	$(PY) -m pytest -q tests --ignore=tests/e2e --ignore=tests/homeassistant

demo: demo-packages venv
	$(PY) demo/run_demo.py

# PostgreSQL, mosquitto, three collectors in one share group and 200 simulated routers
fleet-demo: system-packages venv
	$(PY) demo/fleet_demo.py

# the emulated router's scenarios; ARCH=mipsel or ARCH=s390x runs that CPU's subset instead
ARCH ?= x86_64
e2e: setup
	ROUTERWATCH_QEMU_ARCH=$(ARCH) $(PY) -m pytest -q tests/e2e

bench: setup
	$(PY) bench/run_all.py

bench-quick: setup
	$(PY) bench/run_all.py --quick

ipk: venv
	$(PY) openwrt/build_ipk.py --out dist

clean:
	rm -rf $(VENV) .venv-ha dist build *.egg-info agent/*.egg-info collector/*.egg-info
