# edgecnn: `make demo` runs the main job offline; `make test` runs the test suite.
# Both create the virtualenv they need (.venv) on first use.
VENV   ?= .venv
PY     := $(VENV)/bin/python
EDGECNN := $(VENV)/bin/edgecnn
STAMP  := $(VENV)/.installed-$(shell cat setup.py | cksum | cut -d' ' -f1)

.PHONY: install test demo bench java-test arm-check clean

install: $(STAMP)

$(STAMP): setup.py
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

test: install
	$(PY) -m pytest -q -p no:cacheprovider tests

demo: install
	$(EDGECNN) models --paper

bench: install
	$(EDGECNN) models

clean:
	rm -rf $(VENV) build *.egg-info
