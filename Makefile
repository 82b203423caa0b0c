# Two commands on a fresh clone: `make demo` and `make test`. Both build .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_DIR ?= runs/demo

.PHONY: install demo test test-fast bench clean samples notebooks notebooks-fast book

install: $(STAMP)

# The book's pages load require.js, the widget manager and MathJax: fetched once into .venv (tools/book_assets.py,
# from the npm registry and the MathJax wheel) so the book works offline; chromium + chromedriver (Debian packages,
# installed when missing; root needed) open it headless in `make book` and `make test`.
BOOK_ASSETS := $(VENV)/share/book-assets
BROWSER := $(VENV)/.browser
$(BROWSER): $(STAMP) tools/book_assets.py
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		[ "$$(id -u)" = 0 ] || { echo "error: the book's check needs chromium and chromedriver (as root: apt-get install chromium chromium-driver)" >&2; exit 2; }; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null; }
	$(PY) tools/book_assets.py --out $(BOOK_ASSETS)
	touch $@

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m pmatrack_mini.experiments.demo --out $(DEMO_DIR)

# PMATRACK_FAST=1 is the one CI-size switch (read in pmatrack_mini/config.py). Two pytest workers, one torch thread
# each (most of the suite is small tensors and Python: two processes on two cores finish far sooner than one process
# with two threads); --dist loadscope keeps each notebook's cells, in order, in one worker.
test: $(STAMP) $(BROWSER)
	OMP_NUM_THREADS=1 PMATRACK_FAST=1 PMATRACK_REQUIRE_BROWSER=1 MPLBACKEND=Agg $(PY) -m pytest -q -n 2 --dist loadscope tests notebooks \
		--nbval-lax --nbval-current-env -p no:cacheprovider

# Measurements written to results/ (see each script's docstring). sanity_table trains three models (~35 min on 2
# cores); bench_align trains a stage-1 tracker and the stage-2 network and measures them (~1 h);
# bench_batch_tracking tracks with reproduce's stage-1 tracker and Full network (trained into runs/reproduce by the
# `reproduce --table components` line before it, ~3 h with its tracking if absent; then ~5 min); bench_long_run and
# bench_own_cameras share the 200-step networks of runs/bench_batch (~20 min to train), then track (~25 min);
# bench_inference times a stage-2 frame eager, traced and with the fast kernels (~2 min); bench_demo runs `make
# demo` on a fresh clone (~10 min); bench_recipe compares a stage-2 recipe setting with the Full row's network (~1
# h: one 1500-step training, then measures; ~20 min with --steps 400, reproduce's length before it trained 1500
# steps).
bench: $(STAMP)
	$(PY) benchmarks/bench_synth.py
	$(PY) benchmarks/bench_baseline.py
	$(PY) benchmarks/cost_table.py
	$(PY) benchmarks/bench_input.py
	$(PY) benchmarks/sanity_table.py
	$(PY) benchmarks/bench_align.py
	$(PY) benchmarks/reliability.py
	$(PY) -m pmatrack_mini.cli reproduce --table components --out runs/reproduce
	$(PY) benchmarks/bench_batch_tracking.py --stage1 runs/reproduce/runs/stage1/final.pt \
		--stage2 runs/reproduce/runs/stage2_all/final.pt --fast-kernels --sequences 12 --frames 80
	$(PY) benchmarks/bench_long_run.py
	$(PY) benchmarks/bench_own_cameras.py
	$(PY) benchmarks/bench_inference.py
	$(PY) benchmarks/bench_demo.py
	$(PY) benchmarks/bench_recipe.py --set align.param_beta=0.1
	$(PY) benchmarks/bench_recipe.py --set align.param_beta=0.3
	$(PY) benchmarks/bench_recipe.py --steps 400

samples: $(STAMP)
	$(PY) -m pmatrack_mini.cli synth data_samples --preset samples

# Re-execute the notebooks in full mode and store their outputs. Their networks are those of `pmatrack-mini reproduce
# --out runs/reproduce` (trained.family): a first build without that folder trains them there (the stage-1 tracker
# and six of reproduce's stage-2 networks, plus notebook 05's three 400-step lambda_cost networks); after `reproduce`,
# or on a rebuild, it only loads them. notebooks-fast stores CI-mode outputs instead, to check a change quickly (the
# committed notebooks must be full-mode: tests/test_stored_notebooks.py).
notebooks: $(STAMP)
	$(PY) tools/build_notebooks.py

notebooks-fast: $(STAMP)
	PMATRACK_FAST=1 $(PY) tools/build_notebooks.py

# Static HTML of the executed notebooks with an index page, book/index.html, then checked in headless Chromium.
book: $(STAMP) $(BROWSER)
	$(PY) tools/build_book.py --out book

clean:
	rm -rf $(VENV) runs book
