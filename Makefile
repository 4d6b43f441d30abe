# lmcourse: the two commands of the README are `make book` and `make test`.
# Each creates .venv (Python venv + requirements.txt) when it is missing or stale.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export PYTHONHASHSEED := 0

.PHONY: venv system-deps book test lint colab-check gpu-check browser-check assignments grade-demo grade clean pretrained

$(VENV)/.installed: requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

venv: $(VENV)/.installed

## Debian packages the tests need: headless Chromium for the explorers' browser test and
## bubblewrap for the grading sandbox. Installed with apt-get only when missing (root or sudo).
system-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || sh scripts/install_browser.sh
	@sh scripts/install_bubblewrap.sh

## Build the book from clean: every notebook executed, any warning or failing cell fails.
book: venv
	rm -rf _build
	$(VENV)/bin/jupyter-book build . -W -n --keep-going
	@echo "book: open _build/html/index.html"

## Run every test: ruff, unit tests, notebook/book checks, the nbgrader grading pipeline,
## then the students' path (colab-check).
test: venv system-deps
	$(VENV)/bin/ruff check .
	LMCOURSE_REQUIRE_BROWSER=1 LMCOURSE_REQUIRE_BWRAP=1 MPLBACKEND=Agg $(PY) -m pytest
	$(MAKE) colab-check

## The in-page explorers of the built book (_build/html, after `make book`) in headless
## Chromium, from file:// with no network.
browser-check: venv system-deps
	LMCOURSE_REQUIRE_BROWSER=1 $(PY) -m pytest -q tests/test_browser.py -k built_book

## Every chapter and assignment (solutions filled in) in a fresh Colab-like venv that has
## only Colab's preinstalled packages plus the lmcourse wheel, installed by the setup cell.
colab-check: venv
	$(PY) scripts/colab_check.py --jobs 2

## On a CUDA machine (never in CI): every notebook on the GPU, then the benchmarks.
gpu-check: venv
	$(PY) scripts/gpu_check.py

lint: venv
	$(VENV)/bin/ruff check .

## Regenerate solutions/ from scripts/homework/*.py (jupytext) and the student release
## (assignments/) with nbgrader.
assignments: venv
	$(PY) scripts/build_homework.py
	$(PY) scripts/release_assignments.py

## Grade demo: honest, partial and attacking made-up students for every homework (grader/demo.py
## and grader/students/<hw>.py), graded in the sandbox.
grade-demo: venv
	sh scripts/install_bubblewrap.sh
	PYTHONPATH=$(CURDIR) $(PY) -m grader.demo

## Grade a whole class: make grade HW=hw3_causal_attention (submitted/<student>/HW/HW.ipynb);
## prints the scores and the similarity report (similarity-HW.csv).
grade: venv
	sh scripts/install_bubblewrap.sh
	PYTHONPATH=$(CURDIR) $(PY) -m grader.grade $(HW)

clean:
	rm -rf _build gradebook.db submitted autograded feedback downloaded grades.csv similarity-*.csv

## Retrain the shipped checkpoint (the command recorded in its metadata).
pretrained: venv
	$(PY) -m lmcourse train --preset cpu-tiny --out runs/pretrained --device cpu --threads 2 \
		--block-size 128 --max-iters 2000 --lr 2e-3 --warmup-iters 100 \
		--export-pretrained shakespeare-char
