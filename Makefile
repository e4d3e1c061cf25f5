# Two commands for a fresh clone: `make demo` and `make test`. Both bootstrap .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.requirements-installed

.PHONY: demo test bench venv clean

$(STAMP): requirements.txt requirements-nodeps.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -r requirements-nodeps.txt
	touch $(STAMP)

venv: $(STAMP)

demo: venv  ## AU sweep (AU4, AU6+AU12 at -5..5) of the 20 bundled faces, identity measured on every edit
	$(PY) edit.py measure.measurer.identity_every=1

test: venv
	$(PY) -m pytest

bench: venv  ## benchmarks (not tests); figures go in the README
	PYTHONPATH=. $(PY) bench/bench_warp.py
	PYTHONPATH=. $(PY) bench/bench_measure.py
	PYTHONPATH=. $(PY) bench/bench_closed_loop.py
	PYTHONPATH=. $(PY) bench/bench_demo.py
	PYTHONPATH=. $(PY) bench/bench_train.py
	PYTHONPATH=. $(PY) bench/bench_magicface.py
	PYTHONPATH=. $(PY) bench/bench_study.py

clean:
	rm -rf outputs multirun .pytest_cache
