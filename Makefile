# Two commands from a fresh clone: `make demo` and `make test`. Both build .venv when missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# The torch pair this machine installs from disk; override for other platforms.
TORCH ?= torch==2.14.1 torchvision==0.29.1
# Every distribution in the repository, core first; each is installed editable.
DISTS := . $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml export/pyproject.toml benchmarks/pyproject.toml))
STAMP := $(VENV)/.installed
DEMO := demo-output

.PHONY: install demo test lint clean startup-bench

install: $(STAMP)

$(STAMP): Makefile $(addsuffix /pyproject.toml,$(DISTS))
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip>=24" "setuptools>=69" wheel
	$(BIN)/python -m pip install -q $(TORCH)
	$(BIN)/python -m pip install -q --no-build-isolation $(addprefix -e ,$(DISTS)) "pytest>=8" "ruff>=0.6"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/zoo list

test: $(STAMP)
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

startup-bench: $(STAMP)
	$(BIN)/python benchmarks/scripts/startup.py

clean:
	rm -rf $(VENV) $(DEMO)
