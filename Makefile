# lmcourse: the two commands of the README are `make book` and `make test`.
# Each creates .venv (Python venv + requirements.txt) when it is missing or stale.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export PYTHONHASHSEED := 0

.PHONY: venv book test lint assignments grade-demo grade clean pretrained

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

venv: $(VENV)/.installed

## Build the book from clean: every notebook executed, any warning or failing cell fails.
book: venv
	rm -rf _build
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "book: open _build/html/index.html"

## Run every test: ruff, unit tests, notebook/book checks, the nbgrader grading pipeline.
test: venv
	$(VENV)/bin/ruff check .
	MPLBACKEND=Agg $(PY) -m pytest

lint: venv
	$(VENV)/bin/ruff check .

## Regenerate solutions/ from scripts/homework/*.py (jupytext) and the student release
## (assignments/) with nbgrader.
assignments: venv
	$(PY) scripts/build_homework.py
	$(PY) scripts/release_assignments.py

## Grade demo: honest and attacking made-up students for every homework, graded in the sandbox.
grade-demo: venv
	sh scripts/install_bubblewrap.sh
	$(PY) scripts/grade_demo.py

## Grade a whole class: make grade HW=hw3_causal_attention (submitted/<student>/HW/HW.ipynb).
grade: venv
	sh scripts/install_bubblewrap.sh
	$(PY) scripts/grade.py $(HW)

clean:
	rm -rf _build gradebook.db submitted autograded feedback downloaded grades.csv

## Retrain the shipped checkpoint (the command recorded in its metadata).
pretrained: venv
	$(PY) scripts/train_pretrained.py --name shakespeare-char --max-iters 2000 --lr 2e-3 --warmup-iters 100
