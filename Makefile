# RTS Fusion: setup, demo, tests, lint, plugin zip, benchmarks. Every target is idempotent.
PY := .venv/bin/python
export QT_QPA_PLATFORM := offscreen

.PHONY: setup demo test test-unit lint format zip bench bench-models

setup:
	bash scripts/setup.sh

demo: setup
	$(PY) scripts/demo.py

test: setup lint
	$(PY) -m pytest

# The quick part: everything but the marked slow groups (see pyproject.toml's markers).
test-unit: setup lint
	$(PY) -m pytest -m "not (installer or catalogue or qgis_process or end_to_end or learning or dask)"

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m flake8 plugin processing_provider
	$(PY) scripts/check_qt6.py plugin processing_provider

format:
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

zip:
	$(PY) scripts/build_zip.py

bench: setup
	$(PY) bench/bench_align.py
	$(PY) bench/bench_stack_memory.py
	$(PY) bench/bench_detect.py
	$(PY) bench/bench_onnx.py

bench-models: setup
	$(PY) bench/model_study.py
	$(PY) bench/compare_models.py
	$(PY) bench/light_fusionsa.py
