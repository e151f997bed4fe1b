# `make demo` and `make test` do all setup on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export SDL_VIDEODRIVER ?= dummy
export SDL_AUDIODRIVER ?= dummy
export PYGAME_HIDE_SUPPORT_PROMPT := 1

.PHONY: install demo test lint browser bench readme-tables clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[dev]'
	touch $(STAMP)

demo: install
	$(BIN)/dagger start --robots 4

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy dagger buffers workers teleop_devices

browser:  # headless Chromium for the browser-console tests: Debian's package (Playwright's own download needs the internet)
	command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }

test: lint browser
	$(BIN)/python -m pytest -q

bench: install
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[bench]'
	$(BIN)/python benchmarks/fleet_overhead.py
	$(BIN)/python benchmarks/eval_cost.py
	$(BIN)/python benchmarks/robot_bridge.py
	$(BIN)/python benchmarks/data_path.py

readme-tables: install  # every measured table in README.md, from the current code (about 1.5 h; see --only)
	$(BIN)/python benchmarks/readme_tables.py

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
