# Two commands for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install demo test check bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch/torchvision first: a pinned, tested pair (CPU is enough; the same wheels run on CUDA).
	$(PY) -m pip install -q "torch==2.14.1" "torchvision==0.29.1"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: install
	# the committed reports/fong2017/ stays as it is: the demo's report goes to outputs/demo/fong2017/
	SALIENCY_REPORT_DIR=outputs/demo/fong2017 $(PY) -m replications.fong2017 fit

test: install
	# pytest exit 5 (no tests collected) is a failure: a run must execute tests.
	$(PY) -m pytest -q -p no:cacheprovider tests; rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests ran"; exit 1; fi; exit $$rc

check: install
	$(PY) -m replications check

bench: install
	$(PY) -m replications bench explainers
	$(PY) -m replications bench metrics

clean:
	rm -rf $(VENV) .pytest_cache
